// Per-thread scratch memory of the kernels: buffers too large for a task's stack that a task
// may use for the length of one call.  The kernels' only allocation: it never fails a call, since
// a kernel that gets none takes a path that needs none (with the same bits).  Internal to
// src/kernels.
#pragma once
#include <cstddef>

namespace addlora::kernels::internal {

// At least `bytes` bytes, 64-byte aligned, owned by the calling thread and kept (grown as
// needed) until it exits, so that large calls pay no allocation or page faults after the
// first.  nullptr when the memory cannot be had: the caller then takes a path that needs none.
void* thread_scratch(size_t bytes);

// Test hook: while set, thread_scratch returns nullptr as if the memory could not be had
// (tests compare the paths that use scratch with those that do without, bitwise).
void refuse_thread_scratch(bool refuse);

}  // namespace addlora::kernels::internal
