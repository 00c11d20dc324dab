// 10^4 create / plan / run / destroy cycles through the CANN API: every result checked at the
// ends, and the heap in use must not grow between cycle 1000 and cycle 10000.  (Under ASan the
// allocator statistics differ; LeakSanitizer then checks for leaks at exit instead.)
#include <gtest/gtest.h>
#include <malloc.h>

#include "cann_case.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ADDLORA_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ADDLORA_SANITIZED 1
#endif
#endif

namespace {

TEST(Leaks, TenThousandCyclesKeepMemoryFlat) {
  ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
  ASSERT_EQ(aclrtSetDevice(0), ACL_SUCCESS);
  aclrtStream stream = nullptr;
  ASSERT_EQ(aclrtCreateStream(&stream), ACL_SUCCESS);
  const int cycles = 10000;
  size_t in_use_at_1000 = 0;
  for (int i = 0; i < cycles; ++i) {
    reliability::CannCase c;
    ASSERT_EQ(c.create(), ACL_SUCCESS);
    void* ws = nullptr;
    ASSERT_EQ(c.run(stream, &ws), 0) << "cycle " << i;
    if (i == 0 || i == cycles - 1) {
      EXPECT_TRUE(c.out_matches());
    }
    if (ws) aclrtFree(ws);
    c.release();
    if (i == 999) in_use_at_1000 = mallinfo2().uordblks;
  }
  const size_t in_use_at_end = mallinfo2().uordblks;
  aclrtDestroyStream(stream);
  aclrtResetDevice(0);
  aclFinalize();
#ifndef ADDLORA_SANITIZED
  EXPECT_LE(in_use_at_end, in_use_at_1000 + 64 * 1024)
      << "heap grew from " << in_use_at_1000 << " to " << in_use_at_end << " bytes over 9000 cycles";
#else  // the sanitizers' allocators keep their own books: the cycles still run, unmeasured
  (void)in_use_at_1000;
  (void)in_use_at_end;
#endif
}

}  // namespace
