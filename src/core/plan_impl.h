// What a Plan holds: the arguments it was made from (so buffers can be re-pointed and
// re-validated) and the normalised Problems the kernels run, one per LoRA slice.
#pragma once
#include <string>
#include <vector>

#include "addlora/addlora.h"
#include "model/problem.h"
#include "core/validate.h"

namespace addlora {

struct Plan::Impl {
  std::vector<Arguments> slices;   // one per LoRA pair; they share y, x, indices, out
  Rules rules = Rules::general;
  std::vector<detail::Problem> problems;
  uint64_t workspace = 0;
  // Made by shrink(): the slice was validated as an expand of x by weight_a (rank H1), and
  // its Problem is the shrink it stands for (detail::to_shrink_only), after every rebuild too.
  bool shrink_only = false;
  // Turns the validated problems into shrink-only ones (no second validation) and resizes the
  // workspace for them.
  void set_shrink_only();
  // Validates the slices and rebuilds problems/workspace; leaves them untouched on failure,
  // then fills `error` (when non-null).
  Status rebuild(Error* error);
};

struct PlanAccess {
  static Plan::Impl* impl(Plan& p) { return p.impl_.get(); }
};

namespace detail {
Problem build_problem(const Arguments& a, const Shape& s);

// Validates `n` slices under `rules` and writes their normalised Problems to built[0, n) and
// the workspace bytes they need (shrink_only: see Plan::Impl).  On failure `built` holds
// nothing meaningful and `error` (when non-null) says why.
Status plan_slices(const Arguments* slices, size_t n, Rules rules, bool shrink_only, Problem* built,
                   uint64_t* workspace, Error* error);

// A call planned to run once (add_lora, shrink, expand): its Problems are kept inline for up to
// kInlineSlices slices (a fused q/k/v projection has three), so planning allocates nothing.
class OneCall {
 public:
  Status plan(const Arguments* slices, size_t n, Rules rules, bool shrink_only, Error& error);
  uint64_t workspace_bytes() const { return workspace_; }
  void run(void* workspace) const;

 private:
  static constexpr size_t kInlineSlices = 4;
  // Room for that many, constructed by plan() for the call's slices only (a Problem is a few
  // hundred bytes: initialising all four cost a measurable part of a tiny call).
  alignas(Problem) unsigned char inline_[kInlineSlices * sizeof(Problem)];
  std::vector<Problem> more_;  // more slices than that
  const Problem* problems_ = nullptr;
  size_t n_ = 0;
  uint64_t workspace_ = 0;
};

// The workspace of a one-shot call.  Each calling thread keeps one buffer of up to kKeptBytes
// between calls, so a small call allocates nothing; a larger workspace is allocated for the
// call and freed after it (so is any workspace once the thread's buffer is released at thread
// exit).  Every acquisition of a non-empty workspace asks the fault site (core/fault.h),
// reused or not.
class CallWorkspace {
 public:
  CallWorkspace() = default;
  CallWorkspace(const CallWorkspace&) = delete;
  CallWorkspace& operator=(const CallWorkspace&) = delete;
  ~CallWorkspace();
  // An internal status (nothing written anywhere) when the memory cannot be had.
  Status acquire(uint64_t bytes, Error& error);
  void* data() const { return data_; }
  static constexpr uint64_t kKeptBytes = uint64_t{1} << 20;

 private:
  void* data_ = nullptr;
  bool owned_ = false;  // a buffer of this call alone (larger than kKeptBytes)
};
// The Problem of "x expanded by weight_a [W, L, R, H1] into z" (how shrink() validates) as
// the shrink it means: weight_a becomes A over H1, the rank is R, and z = y + scale * x.Aᵀ is
// written through the expand's epilogue.
void to_shrink_only(Problem* p);
}

}  // namespace addlora
