// One-shot calls (add_lora, shrink, expand): planned without a Plan object and run with a
// per-thread workspace, so a small call makes no heap allocation (docs/design.md, "one-shot call").
#include <cstdlib>
#include <new>

#include "core/fault.h"
#include "core/plan_impl.h"
#include "core/status.h"
#include "kernels/kernels.h"

namespace addlora::detail {

Status OneCall::plan(const Arguments* slices, size_t n, Rules rules, bool shrink_only, Error& error) {
  error = Error{};
  if (slices == nullptr || n == 0)
    return fail(&error, Status::null_pointer, ErrorKind::null, "", "slices must not be null or empty");
  Problem* built = inline_;
  if (n > kInlineSlices) {
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

// The calling thread's kept buffer (freed when the thread ends).
struct KeptBuffer {
  void* data = nullptr;
  uint64_t bytes = 0;
  ~KeptBuffer() { std::free(data); }
};
thread_local KeptBuffer t_kept;

void* aligned_bytes(uint64_t bytes) { return std::aligned_alloc(64, (bytes + 63) & ~uint64_t{63}); }

}  // namespace

CallWorkspace::~CallWorkspace() {
  if (owned_) std::free(data_);
}

Status CallWorkspace::acquire(uint64_t bytes, Error& error) {
  if (bytes == 0) return Status::ok;
  const auto no_memory = [&] {
    return fail(&error, Status::internal, ErrorKind::internal, "",
                "cannot allocate the workspace (" + std::to_string(bytes) + " bytes)");
  };
  if (allocation_fails()) return no_memory();
  if (bytes > kKeptBytes) {
    data_ = aligned_bytes(bytes);
    owned_ = data_ != nullptr;
    return data_ ? Status::ok : no_memory();
  }
  if (t_kept.bytes < bytes) {
    std::free(t_kept.data);
    t_kept.data = nullptr;
    t_kept.bytes = 0;
    // Grown to at least 16 KiB at a time, so a thread's mix of small calls settles at once.
    const uint64_t grown = bytes < (uint64_t{16} << 10) ? uint64_t{16} << 10 : bytes;
    void* p = aligned_bytes(grown);
    if (!p) return no_memory();
    t_kept.data = p;
    t_kept.bytes = grown;
  }
  data_ = t_kept.data;
  return Status::ok;
}

}  // namespace addlora::detail
