// One-shot calls (add_lora, shrink, expand): planned without a Plan object and run with a
// per-thread workspace, so a small call makes no heap allocation (docs/design.md, "one-shot call").
#include <cstdlib>
#include <new>
#include <type_traits>

#include "core/fault.h"
#include "core/plan_impl.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "model/kept_buffer.h"

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

// The calling thread's kept buffer (model/kept_buffer.h); calls after the thread's release get
// buffers of their own.  `busy`: a buffer in use by this thread's current call, so a nested
// call (none today: the kernels call nothing back) would not share it.
thread_local model::KeptBuffer t_kept;
thread_local model::KeptRelease t_kept_release;
thread_local bool t_kept_busy = false;

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
  if (bytes > kKeptBytes || t_kept.released || t_kept_busy) {
    data_ = aligned_bytes(bytes);
    owned_ = data_ != nullptr;
    return data_ ? Status::ok : no_memory();
  }
  // At least 16 KiB, so that a thread's small calls share one buffer from the start.
  if (!model::take(t_kept, t_kept_release, bytes, &data_, uint64_t{16} << 10)) return no_memory();
  t_kept_busy = true;
  return Status::ok;
}

}  // namespace addlora::detail
