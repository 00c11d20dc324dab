// One-shot calls (add_lora, shrink, expand): planned without a Plan object and run with a
// per-thread workspace, so a small call makes no heap allocation (docs/design.md, "one-shot call").
#include <cstdlib>
#include <new>
#include <type_traits>

#include "core/fault.h"
#include "core/plan_impl.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "model/fence.h"

namespace addlora::detail {

Status OneCall::plan(const Arguments* slices, size_t n, Rules rules, bool shrink_only, Error& error) {
  error = Error{};
  if (slices == nullptr || n == 0)
    return fail(&error, Status::null_pointer, ErrorKind::null, "", "slices must not be null or empty");
  static_assert(std::is_trivially_destructible_v<Problem>, "inline_ is never destroyed");
  Problem* built = nullptr;
  if (n <= kInlineSlices) {
    for (size_t k = 0; k < n; ++k) new (inline_ + k * sizeof(Problem)) Problem();
    built = std::launder(reinterpret_cast<Problem*>(inline_));
  } else {
    if (allocation_fails()) return out_of_memory(&error);
    try {
      more_.assign(n, Problem{});
    } catch (const std::bad_alloc&) {
      return out_of_memory(&error);
    }
    built = more_.data();
  }
  try {  // a failure's message is built in std::strings
    if (Status st = plan_slices(slices, n, rules, shrink_only, built, &workspace_, &error); st != Status::ok)
      return st;
  } catch (const std::bad_alloc&) {
    return out_of_memory(&error);
  }
  problems_ = built;
  n_ = n;
  return Status::ok;
}

void OneCall::run(void* workspace) const {
  if (n_ > 0) kernels::execute(problems_, n_, workspace);
}

namespace {

void* aligned_bytes(uint64_t bytes) { return std::aligned_alloc(64, (bytes + 63) & ~uint64_t{63}); }

// Under AddressSanitizer the kept buffer's bytes past this call's workspace are poisoned, so a
// kernel overrunning its workspace is caught as it would be in a buffer of the exact size.
using model::fence_tail;

// The calling thread's kept buffer, in plain thread_locals without destructors: they stay usable
// while the thread's other objects and, for the main thread, static objects are destroyed (a
// call may come from their destructors).  KeptRelease frees the buffer when the thread ends;
// calls after that get buffers of their own.  `busy`: a buffer in use by this thread's current
// call, so a nested call (none today: the kernels call nothing back) would not share it.
thread_local void* t_kept_data = nullptr;
thread_local uint64_t t_kept_bytes = 0;
thread_local bool t_kept_released = false;
thread_local bool t_kept_busy = false;
struct KeptRelease {
  bool armed = false;
  ~KeptRelease() {
    fence_tail(t_kept_data, t_kept_bytes, t_kept_bytes);
    std::free(t_kept_data);
    t_kept_data = nullptr;
    t_kept_bytes = 0;
    t_kept_released = true;
  }
};
thread_local KeptRelease t_kept_release;  // its destructor is registered at its first use

}  // namespace

CallWorkspace::~CallWorkspace() {
  if (owned_) std::free(data_);
  else if (data_) t_kept_busy = false;
}

Status CallWorkspace::acquire(uint64_t bytes, Error& error) {
  if (bytes == 0) return Status::ok;
  const auto no_memory = [&] {
    return fail(&error, Status::internal, ErrorKind::internal, "",
                "cannot allocate the workspace (" + std::to_string(bytes) + " bytes)");
  };
  if (allocation_fails()) return no_memory();
  if (bytes > kKeptBytes || t_kept_released || t_kept_busy) {
    data_ = aligned_bytes(bytes);
    owned_ = data_ != nullptr;
    return data_ ? Status::ok : no_memory();
  }
  if (t_kept_bytes < bytes) {
    t_kept_release.armed = true;  // (first use: registers the release before the first buffer)
    fence_tail(t_kept_data, t_kept_bytes, t_kept_bytes);
    std::free(t_kept_data);
    t_kept_data = nullptr;
    t_kept_bytes = 0;
    // At least 16 KiB, so that a thread's small calls share one buffer from the start.
    const uint64_t grown = bytes < (uint64_t{16} << 10) ? uint64_t{16} << 10 : bytes;
    void* p = aligned_bytes(grown);
    if (!p) return no_memory();
    t_kept_data = p;
    t_kept_bytes = grown;
  }
  fence_tail(t_kept_data, bytes, t_kept_bytes);
  t_kept_busy = true;
  data_ = t_kept_data;
  return Status::ok;
}

}  // namespace addlora::detail
