// Plain C++ baseline of the whole operator: group rows by adapter, shrink, expand.
// Products and sums in fp64 (at scalar speed that costs nothing over fp32), one final rounding
// (fp16/bf16 outputs via a round-to-odd fp32 step, so the double rounding is exact).  It is
// execute()'s generic path (strides the SIMD kernels do not take) for both precisions: fp64
// sums meet docs/contract.md §1 even where the dot products cancel internally.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/numeric.h"
#include "kernels/kernels.h"

namespace addlora::kernels {
namespace {

using detail::Problem;

double load(const void* base, DType t, int64_t i) {
  return model::visit_float(t, [&](auto tt) { return double{model::load_float<decltype(tt)::value>(base, i)}; });
}

// Rounds v to the dtype once.  fp16 / bf16 go through fp32 first, which could round twice;
// so the fp32 step rounds to odd (keeps a sticky bit), making the final rounding exact.
float to_float_odd(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) != v && std::isfinite(f)) {
    uint32_t u = numeric::float_to_bits(f);
    if (f == 0.0f) {  // v is below the smallest subnormal: take it, with v's sign
      f = numeric::bits_to_float(v > 0 ? 1u : 0x80000001u);
    } else if ((u & 1u) == 0) {  // even result of a rounding: step to the odd neighbour towards v
      const bool up = (static_cast<double>(f) < v) == (f >= 0.0f);
      u = up ? u + 1 : u - 1;
      f = numeric::bits_to_float(u);
    }
  }
  return f;
}

void store(void* base, DType t, int64_t i, double v) {
  model::visit_float(t, [&](auto tt) {
    constexpr DType T = decltype(tt)::value;
    model::store_float<T>(base, i, T == DType::f32 ? static_cast<float>(v) : to_float_odd(v));
  });
}

int64_t align64(int64_t n) { return (n + 63) & ~int64_t{63}; }

struct Scratch {
  int64_t* key;   // [B] adapter of each row (-1 = none)
  int32_t* order; // [B] rows sorted by (adapter, row)
  double* z;      // [B, R] rank vectors, in `order` positions
};

Scratch carve(const Problem& p, void* ws) {
  char* c = static_cast<char*>(ws);
  Scratch s;
  s.key = reinterpret_cast<int64_t*>(c);
  c += align64(p.B * 8);
  s.order = reinterpret_cast<int32_t*>(c);
  c += align64(p.B * 4);
  s.z = reinterpret_cast<double*>(c);
  return s;
}

}  // namespace

uint64_t workspace_bytes_portable(const Problem& p) {
  return static_cast<uint64_t>(align64(p.B * 8) + align64(p.B * 4) + align64(p.B * p.R * 8));
}

void execute_portable(const Problem& p, void* workspace) {
  Scratch s = carve(p, workspace);
  void* out = const_cast<void*>(p.out.base);

  // Everything of out that no adapter writes equals y.
  if (!p.in_place) {
    for (int64_t b = 0; b < p.B; ++b)
      for (int64_t c = 0; c < p.H3; ++c)
        store(out, p.out.dtype, b * p.out.row_stride + c * p.out.col_stride,
              load(p.y.base, p.y.dtype, b * p.y.row_stride + c * p.y.col_stride));
  }

  // group_by_adapter: rows sorted by (adapter, row); rows with no adapter sort first.
  for (int64_t b = 0; b < p.B; ++b) {
    s.key[b] = detail::adapter_of(p, b);
    s.order[b] = static_cast<int32_t>(b);
  }
  std::sort(s.order, s.order + p.B, [&](int32_t l, int32_t r) {
    return s.key[l] != s.key[r] ? s.key[l] < s.key[r] : l < r;
  });

  int64_t g = 0;
  while (g < p.B && s.key[s.order[g]] < 0) ++g;
  while (g < p.B) {
    const int64_t w = s.key[s.order[g]];
    int64_t end = g;
    while (end < p.B && s.key[s.order[end]] == w) ++end;

    // Per-adapter rank and scale (Problem::ranks / scales): ranks past `rank` are not read.
    const int64_t rank = detail::rank_of(p, w);
    const double scale = detail::scale_of(p, w);

    // shrink: z[row] = x[row] . A[w]^T   (or z = x without weight A)
    for (int64_t k = g; k < end; ++k) {
      const int64_t row = s.order[k];
      double* z = s.z + k * p.R;
      for (int64_t r = 0; r < rank; ++r) {
        if (!p.has_a) {
          z[r] = load(p.x.base, p.x.dtype, row * p.x.row_stride + r * p.x.col_stride);
          continue;
        }
        double acc = 0.0;
        for (int64_t h = 0; h < p.H1; ++h)
          acc += load(p.x.base, p.x.dtype, row * p.x.row_stride + h * p.x.col_stride) *
                 load(p.a.base, p.a.dtype, detail::weight_offset(p.a, p.R, w, r, h));
        z[r] = acc;
      }
    }
    // expand: out[row, off+n] = y[row, off+n] + scale * (z . B[w]^T)[n]
    for (int64_t k = g; k < end; ++k) {
      const int64_t row = s.order[k];
      const double* z = s.z + k * p.R;
      for (int64_t n = 0; n < p.S; ++n) {
        double acc = 0.0;
        if (p.shrink_only) acc = n < rank ? z[n] : 0.0;  // no weight B: z itself (Problem::shrink_only)
        else
          for (int64_t r = 0; r < rank; ++r)
            acc += z[r] * load(p.b.base, p.b.dtype, detail::weight_offset(p.b, p.H2, w, n, r));
        const int64_t col = p.y_offset + n;
        const double yv = load(p.y.base, p.y.dtype, row * p.y.row_stride + col * p.y.col_stride);
        store(out, p.out.dtype, row * p.out.row_stride + col * p.out.col_stride, yv + scale * acc);
      }
    }
    g = end;
  }
}

}  // namespace addlora::kernels
