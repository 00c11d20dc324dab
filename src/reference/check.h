// The precision contract (docs/contract.md §1) as a checker, for tests and benchmarks.
//   written elements:   |got - exact| <= 1 ulp (of exact, in out's dtype) + 2^-16 * M,
//                       M = |y| + |scale| * sum_r |B[n,r]| * sum_h |x_h * A[r,h]|
//   unwritten elements: bitwise equal to y.
#pragma once
#include <cstdint>
#include <string>

#include "addlora/addlora.h"
#include "reference/reference.h"

namespace addlora::ref {

// Spacing of `dtype` numbers at |v| (the ulp of the binade holding v; subnormal spacing near 0).
double ulp_of(double v, DType dtype);
// Largest finite value of a floating dtype.
double max_finite(DType dtype);
// The contract for one element: `m` is M above (Expected::condition).
bool within_target(double got, double exact, double m, DType dtype);

struct CheckResult {
  bool ok = true;
  int64_t bad = 0;             // elements outside the target
  double max_err_ulps = 0;     // worst |got - exact| / ulp(exact) over written elements
  double max_err_m = 0;        // worst (|got - exact| - 1 ulp)+ / M: the contract allows 2^-16
  // Diagnostics for failures: worst |got - exact| / (|y| + |d|) and / condition (see Expected).
  double max_rel_magnitude = 0, max_rel_condition = 0;
  std::string report;          // the first few failures, one per line
  explicit operator bool() const { return ok; }
};

// Compares every element of `out` (logical [B, H3], any strides) with the oracle.
CheckResult check_out(const Expected& e, const TensorView& out, int max_lines = 8);

}  // namespace addlora::ref
