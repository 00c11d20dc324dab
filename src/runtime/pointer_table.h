// A map from non-null pointers to pointers, flat: open addressing with linear probing, at most
// half full.  A lookup usually reads one cache line, whose address is known before the lookup
// (home_line), so several lookups can have their misses in flight at once -- the registry of
// live aclTensors is consulted for every tensor of every operator call, often cold (tensor.cc).
// Not thread-safe: the owner locks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace addlora_rt {

class PointerTable {
 public:
  // The value stored for key, or nullptr when key is absent (values may be null: see contains).
  // The pointer is good until the next set or erase.
  const void* const* find(const void* key) const {
    const size_t i = index_of(key);
    return i == kAbsent ? nullptr : &slots_[i].value;
  }
  bool contains(const void* key) const { return find(key) != nullptr; }
  // The line a lookup of key starts at (for a prefetch), or nullptr while the table is empty.
  const void* home_line(const void* key) const { return slots_.empty() ? nullptr : &slots_[home(key)]; }
  // Inserts key or replaces its value.  May throw std::bad_alloc (growing), leaving the table
  // as it was.
  void set(const void* key, const void* value) {
    const size_t at = index_of(key);
    if (at != kAbsent) {
      slots_[at].value = value;
      return;
    }
    if (2 * (size_ + 1) > slots_.size()) grow();
    place(key, value);
    ++size_;
  }
  // Removes key; false if it was absent.  Later entries of its probe run move back into the
  // gap (backward shift), so lookups never need tombstones.
  bool erase(const void* key) {
    size_t i = index_of(key);
    if (i == kAbsent) return false;
    for (size_t j = (i + 1) & mask(); slots_[j].key != nullptr; j = (j + 1) & mask()) {
      const size_t h = home(slots_[j].key);
      // Move j's entry into the gap at i unless its home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    --size_;
    return true;
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    const void* key = nullptr;
    const void* value = nullptr;
  };
  static constexpr size_t kAbsent = SIZE_MAX;
  size_t mask() const { return slots_.size() - 1; }
  size_t index_of(const void* key) const {
    if (slots_.empty()) return kAbsent;
    for (size_t i = home(key);; i = (i + 1) & mask()) {
      if (slots_[i].key == key) return i;
      if (slots_[i].key == nullptr) return kAbsent;
    }
  }
  // Fibonacci hashing of the address (its low 4 bits are alignment, always zero).
  size_t home(const void* key) const {
    const uint64_t h = (reinterpret_cast<uintptr_t>(key) >> 4) * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(h >> (64 - bits_));
  }
  void place(const void* key, const void* value) {
    size_t i = home(key);
    while (slots_[i].key != nullptr) i = (i + 1) & mask();
    slots_[i] = Slot{key, value};
  }
  void grow() {
    std::vector<Slot> old(slots_.empty() ? 64 : 2 * slots_.size());  // may throw: nothing changed yet
    old.swap(slots_);
    bits_ = 0;
    while ((size_t{1} << bits_) < slots_.size()) ++bits_;
    for (const Slot& s : old)
      if (s.key != nullptr) place(s.key, s.value);
  }

  std::vector<Slot> slots_;  // a power of two, or empty
  int bits_ = 0;             // log2 of slots_.size()
  size_t size_ = 0;
};

}  // namespace addlora_rt
