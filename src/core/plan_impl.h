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
// The Problem of "x expanded by weight_a [W, L, R, H1] into z" (how shrink() validates) as
// the shrink it means: weight_a becomes A over H1, the rank is R, and z = y + scale * x.Aᵀ is
// written through the expand's epilogue.
void to_shrink_only(Problem* p);
}

}  // namespace addlora
