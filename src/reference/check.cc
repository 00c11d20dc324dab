#include "reference/check.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace addlora::ref {
namespace {

struct FloatFormat { int mantissa_bits; int min_exp; };  // explicit mantissa bits, min normal exponent

FloatFormat format_of(DType t) {
  switch (t) {
    case DType::f16: return {10, -14};
    case DType::bf16: return {7, -126};
    case DType::f32: return {23, -126};
    default: return {52, -1022};
  }
}

}  // namespace

double ulp_of(double v, DType dtype) {
  const FloatFormat f = format_of(dtype);
  int e = 0;
  if (v != 0) {
    std::frexp(v, &e);  // |v| = m * 2^e, m in [0.5, 1): binade exponent is e - 1
    e -= 1;
  }
  if (v == 0 || e < f.min_exp) e = f.min_exp;
  return std::ldexp(1.0, e - f.mantissa_bits);
}

double max_finite(DType dtype) {
  switch (dtype) {
    case DType::f16: return 65504.0;
    case DType::bf16: return std::ldexp(255.0, 120);  // 0x7f7f
    case DType::f32: return std::numeric_limits<float>::max();
    default: return std::numeric_limits<double>::max();
  }
}

bool within_target(double got, double exact, double m, DType dtype) {
  if (std::isnan(got) || std::isnan(exact)) return false;
  const double top = max_finite(dtype);
  if (std::fabs(exact) >= top + ulp_of(top, dtype) / 2)  // rounds to infinity
    return std::isinf(got) && std::signbit(got) == std::signbit(exact);
  if (std::isinf(got)) return false;
  const double err = std::fabs(got - exact);
  return err <= ulp_of(exact, dtype) + std::ldexp(m, -16);
}

CheckResult check_out(const Expected& e, const TensorView& out, int max_lines) {
  CheckResult r;
  char line[512];
  for (int64_t b = 0; b < e.B; ++b)
    for (int64_t c = 0; c < e.H3; ++c) {
      const size_t k = static_cast<size_t>(b * e.H3 + c);
      bool good;
      if (e.written[k]) {
        const double got = load(out, {b, c});
        good = within_target(got, e.value[k], e.condition[k], out.dtype);
        if (std::isfinite(got)) {
          const double err = std::fabs(got - e.value[k]), ulp = ulp_of(e.value[k], out.dtype);
          r.max_err_ulps = std::fmax(r.max_err_ulps, err / ulp);
          if (e.condition[k] > 0) r.max_err_m = std::fmax(r.max_err_m, std::fmax(0.0, err - ulp) / e.condition[k]);
        }
        if (!good) {
          const double err = std::fabs(got - e.value[k]);
          r.max_rel_magnitude = std::fmax(r.max_rel_magnitude, err / e.magnitude[k]);
          r.max_rel_condition = std::fmax(r.max_rel_condition, err / e.condition[k]);
        }
        if (!good && r.bad < max_lines) {
          std::snprintf(line, sizeof line,
                        "out[%lld,%lld] = %.9g, expected %.9g (err %.3g = %.3g ulp = %.3g x (|y|+|d| = %.4g); "
                        "%.3g x (|y|+|scale| sum|z||b| = %.4g))\n",
                        (long long)b, (long long)c, got, e.value[k], std::fabs(got - e.value[k]),
                        std::fabs(got - e.value[k]) / ulp_of(e.value[k], out.dtype),
                        std::fabs(got - e.value[k]) / e.magnitude[k], e.magnitude[k],
                        std::fabs(got - e.value[k]) / e.condition[k], e.condition[k]);
          r.report += line;
        }
      } else {
        const uint64_t got = load_bits(out, {b, c});
        good = got == e.y_bits[k];
        if (!good && r.bad < max_lines) {
          std::snprintf(line, sizeof line, "out[%lld,%lld] bits 0x%llx must equal y's 0x%llx (not in the update)\n",
                        (long long)b, (long long)c, (unsigned long long)got, (unsigned long long)e.y_bits[k]);
          r.report += line;
        }
      }
      if (!good) ++r.bad;
    }
  r.ok = r.bad == 0;
  if (!r.ok) {
    std::snprintf(line, sizeof line, " bad element(s); worst err/(|y|+|d|) %.3g, worst err/condition %.3g:\n",
                  r.max_rel_magnitude, r.max_rel_condition);
    r.report = std::to_string(r.bad) + line + r.report;
  }
  return r;
}

}  // namespace addlora::ref
