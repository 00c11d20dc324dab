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
  // Validates the slices and rebuilds problems/workspace; leaves them untouched on failure,
  // then fills `error` (when non-null).
  Status rebuild(Error* error);
};

namespace detail {
Problem build_problem(const Arguments& a, const Shape& s);
}

}  // namespace addlora
