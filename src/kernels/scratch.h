// Per-thread scratch memory of the kernels: buffers too large for a task's stack that a task
// may use for the length of one call.  Internal to src/kernels.
#pragma once
#include <cstddef>

namespace addlora::kernels::internal {

// At least `bytes` bytes, 64-byte aligned, owned by the calling thread and kept (grown as
// needed) until it exits, so that large calls pay no allocation or page faults after the
// first.  nullptr when the memory cannot be had: the caller then takes a path that needs none.
void* thread_scratch(size_t bytes);

}  // namespace addlora::kernels::internal
