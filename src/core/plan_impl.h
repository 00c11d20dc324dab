// What a Plan holds: the arguments it was made from (so buffers can be re-pointed and
// re-validated) and the normalised Problem the kernels run.
#pragma once
#include <string>

#include "addlora/addlora.h"
#include "core/problem.h"
#include "core/validate.h"

namespace addlora {

struct Plan::Impl {
  Arguments args;
  Rules rules = Rules::general;
  detail::Problem problem;
  uint64_t workspace = 0;
  // Validates args and rebuilds problem/workspace; leaves them untouched on failure.
  Status rebuild(std::string* message);
};

namespace detail {
Problem build_problem(const Arguments& a, const Shape& s);
}

}  // namespace addlora
