// PointerTable (the registry of live aclTensors) against std::unordered_map under random
// inserts, replacements and erases, with keys packed close together so probe runs are long,
// wrap around the table's end, and are cut by erases (the backward shift).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "runtime/pointer_table.h"

namespace {

const void* ptr(uintptr_t v) { return reinterpret_cast<const void*>(v); }

TEST(PointerTable, MatchesAReferenceMap) {
  // 31 keys keep a 64-slot table about half full: long runs, often wrapping past its end.
  for (uintptr_t nkeys : {31u, 300u})
  for (uintptr_t stride : {16u, 64u, 4096u}) {
    addlora_rt::PointerTable t;
    std::unordered_map<const void*, const void*> ref;
    std::mt19937_64 rng(stride * nkeys);
    std::vector<const void*> keys;
    for (uintptr_t k = 1; k <= nkeys; ++k) keys.push_back(ptr(0x10000 + k * stride));
    for (int step = 0; step < 20000; ++step) {
      const void* k = keys[rng() % keys.size()];
      const int op = static_cast<int>(rng() % 3);
      if (op == 0) {
        const void* v = ptr(rng() % 2 ? 0 : static_cast<uintptr_t>(step + 1));  // null values are values
        t.set(k, v);
        ref[k] = v;
      } else if (op == 1) {
        ASSERT_EQ(t.erase(k), ref.erase(k) == 1) << "step " << step;
      }
      ASSERT_EQ(t.size(), ref.size());
      if (step % 7 == 0) {
        for (const void* q : keys) {
          const void* const* got = t.find(q);
          auto it = ref.find(q);
          ASSERT_EQ(got != nullptr, it != ref.end()) << "step " << step;
          if (got) {
            ASSERT_EQ(*got, it->second);
          }
          ASSERT_EQ(t.contains(q), it != ref.end());
        }
      }
    }
  }
}

TEST(PointerTable, EmptyAndAbsent) {
  addlora_rt::PointerTable t;
  EXPECT_EQ(t.find(ptr(0x40)), nullptr);
  EXPECT_EQ(t.home_line(ptr(0x40)), nullptr);
  EXPECT_FALSE(t.erase(ptr(0x40)));
  t.set(ptr(0x40), nullptr);
  ASSERT_NE(t.find(ptr(0x40)), nullptr);
  EXPECT_EQ(*t.find(ptr(0x40)), nullptr);
  EXPECT_NE(t.home_line(ptr(0x50)), nullptr);
  EXPECT_TRUE(t.erase(ptr(0x40)));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.contains(ptr(0x40)));
}

}  // namespace
