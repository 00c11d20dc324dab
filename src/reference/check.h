// The precision target of SPEC §1 as a checker, for tests and benchmarks.
//   written elements:   |got - exact| <= 1 ulp (of exact, in out's dtype)
//                       or |got - exact| <= 1e-6 * (|y| + |d|)   (cancellation in y + d)
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
// SPEC §1 target for one element.
bool within_target(double got, double exact, double magnitude, DType dtype);

struct CheckResult {
  bool ok = true;
  int64_t bad = 0;             // elements outside the target
  double max_err_ulps = 0;     // worst |got - exact| / ulp(exact) over written elements
  // Diagnostics for failures: worst |got - exact| / (|y| + |d|) and / condition (see Expected).
  double max_rel_magnitude = 0, max_rel_condition = 0;
  std::string report;          // the first few failures, one per line
  explicit operator bool() const { return ok; }
};

// Which tolerance applies to updated elements.
enum class Target {
  spec,  // SPEC §1: 1 ulp, or 1e-6 * (|y| + |d|)
  fast,  // Precision::fast (fp32 sums): 1 ulp, or 1e-6 * (|y| + |scale| sum|z||b|)
};

// Compares every element of `out` (logical [B, H3], any strides) with the oracle.
CheckResult check_out(const Expected& e, const TensorView& out, int max_lines = 8, Target target = Target::spec);

}  // namespace addlora::ref
