#include "kernels/scratch.h"

#include <atomic>
#include <cstdlib>

#include "model/fence.h"

namespace addlora::kernels::internal {

namespace {

std::atomic<bool> refused{false};

// Under AddressSanitizer the bytes of the buffer past what the current task asked for are
// poisoned, so that a kernel reading beyond its request is reported.
using model::fence_tail;

// The buffer in plain thread_locals without destructors, so that they stay usable while the
// thread's other objects (and, for the main thread, static objects) are destroyed: a call may
// come from their destructors.  ScratchRelease frees the buffer when the thread ends; a call
// after that gets no scratch and takes the path that needs none.
thread_local void* t_data = nullptr;
thread_local size_t t_bytes = 0;
thread_local bool t_released = false;
struct ScratchRelease {
  bool armed = false;  // written at first use: that use registers the destructor
  ~ScratchRelease() {
    fence_tail(t_data, t_bytes, t_bytes);
    std::free(t_data);
    t_data = nullptr;
    t_bytes = 0;
    t_released = true;
  }
};
thread_local ScratchRelease t_release;

}  // namespace

void refuse_thread_scratch(bool refuse) { refused.store(refuse); }

void* thread_scratch(size_t bytes) {
  if (refused.load(std::memory_order_relaxed) || t_released) return nullptr;
  if (t_bytes < bytes) {
    t_release.armed = true;
    fence_tail(t_data, t_bytes, t_bytes);
    std::free(t_data);  // the old block first: never two at once
    t_bytes = 0;
    const size_t rounded = (bytes + 63) / 64 * 64;
    t_data = std::aligned_alloc(64, rounded);
    if (t_data) t_bytes = rounded;
  }
  if (t_data) fence_tail(t_data, bytes, t_bytes);
  return t_data;
}

}  // namespace addlora::kernels::internal
