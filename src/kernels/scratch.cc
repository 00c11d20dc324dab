#include "kernels/scratch.h"

#include <atomic>

#include "model/kept_buffer.h"

namespace addlora::kernels::internal {

namespace {

std::atomic<bool> refused{false};

// The thread's scratch, kept for its life (model/kept_buffer.h).
thread_local model::KeptBuffer t_scratch;
thread_local model::KeptRelease t_release;

}  // namespace

void refuse_thread_scratch(bool refuse) { refused.store(refuse); }

void* thread_scratch(size_t bytes) {
  if (refused.load(std::memory_order_relaxed) || t_scratch.released) return nullptr;
  void* p = nullptr;
  return model::take(t_scratch, t_release, bytes, &p) ? p : nullptr;
}

}  // namespace addlora::kernels::internal
