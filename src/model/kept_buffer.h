// A buffer kept by a thread between uses and lent out in part: the call workspace
// (core/one_call.cc) and the kernels' scratch (kernels/scratch.cc).  Both keep it in plain
// thread_locals without destructors, so that it stays usable while the thread's other objects
// (and, for the main thread, static objects) are destroyed -- a call may come from their
// destructors -- and free it through a KeptRelease when the thread ends; a use after that
// takes the path that needs no kept buffer.  Under AddressSanitizer the bytes past the part lent
// are poisoned (fence.h).  Header-only and at the bottom layer so that both can use it.
#pragma once
#include <cstdint>
#include <cstdlib>

#include "model/fence.h"

namespace addlora::model {

struct KeptBuffer {  // trivially destructible: a thread_local of it is never torn down
  void* data = nullptr;
  uint64_t bytes = 0;
  bool released = false;  // the thread is ending: no buffer from now on
};

// Frees kb's block.
inline void drop(KeptBuffer& kb) {
  fence_tail(kb.data, kb.bytes, kb.bytes);
  std::free(kb.data);
  kb.data = nullptr;
  kb.bytes = 0;
}

// Replaces kb's block by one of at least `bytes` (rounded up to 64-byte lines), the old block
// freed first so that the two never exist at once.  False, and kb empty, when none is had.
inline bool regrow(KeptBuffer& kb, uint64_t bytes) {
  drop(kb);
  const uint64_t rounded = (bytes + 63) / 64 * 64;
  kb.data = std::aligned_alloc(64, rounded);
  if (kb.data) kb.bytes = rounded;
  return kb.data != nullptr;
}

// Lends the first `bytes` of kb's block (the rest poisoned under AddressSanitizer).
inline void* lend(KeptBuffer& kb, uint64_t bytes) {
  fence_tail(kb.data, bytes, kb.bytes);
  return kb.data;
}

// A thread_local of it frees `kept` when the thread ends.  Setting `kept` at the buffer's first
// use is that use of the thread_local which registers its destructor.
struct KeptRelease {
  KeptBuffer* kept = nullptr;
  ~KeptRelease() {
    if (!kept) return;
    drop(*kept);
    kept->released = true;
  }
};

// The first `bytes` of kb's block at *out, the block regrown first (to at least min_bytes) when
// it is shorter, with `release` armed to free it at thread exit.  False when no block is had;
// kb must not be released (the caller takes its other path then).
inline bool take(KeptBuffer& kb, KeptRelease& release, uint64_t bytes, void** out, uint64_t min_bytes = 0) {
  if (kb.bytes < bytes) {
    release.kept = &kb;
    if (!regrow(kb, bytes > min_bytes ? bytes : min_bytes)) return false;
  }
  *out = lend(kb, bytes);
  return true;
}

}  // namespace addlora::model
