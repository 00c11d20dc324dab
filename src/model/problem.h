// The validated, normalised description every kernel receives.  Built once by planning
// (src/core/plan.cc); kernels trust it completely and never fail.
#pragma once
#include <cstdint>

#include "addlora/addlora.h"
#include "model/dtype.h"

namespace addlora::detail {

// A weight matrix family [W, M, N] at the selected layer: element (w, m, n) of adapter w.
// ND:  base + w*adapter_stride + m*row_stride + n*col_stride            (elements)
// NZ:  base + w*adapter_stride + (n/16)*(ceil(M/16)*256) + m*16 + n%16   (docs/contract.md §5, zero padded)
struct WeightDesc {
  const void* base = nullptr;   // element (0, 0, 0) of the layer (offset and layer applied)
  DType dtype = DType::f16;
  Layout layout = Layout::nd;
  int64_t adapter_stride = 0;   // elements between adapters (w)
  int64_t row_stride = 0;       // ND only (m)
  int64_t col_stride = 0;       // ND only (n)
};

// An activation matrix [rows, cols] with row and column strides (elements, > 0 unless rows/cols==1).
struct MatrixDesc {
  const void* base = nullptr;   // element (0, 0) (offset applied)
  DType dtype = DType::f16;
  int64_t row_stride = 0;
  int64_t col_stride = 1;
};

struct Problem {
  int64_t B = 0;          // rows
  int64_t H1 = 0;         // x columns
  int64_t H2 = 0;         // weight_b rows (expand width)
  int64_t H3 = 0;         // y / out columns
  int64_t R = 0;          // rank (== H1 when there is no weight A)
  int64_t W = 0;          // adapters; indices outside [0, W) mean "no adapter"
  int64_t S = 0;          // columns written: out[:, y_offset : y_offset + S]
  int64_t y_offset = 0;
  double scale = 1.0;    // as given; the kernels apply it in fp32 (docs/contract.md §1.3)

  MatrixDesc x, y;
  MatrixDesc out;         // base is writable (const_cast at the kernel boundary is fine)
  bool in_place = false;  // out and y are the same view: only the slice is written

  const void* indices = nullptr;   // element 0
  DType index_dtype = DType::i32;  // i32 or i64
  int64_t index_stride = 1;

  // Optional per-adapter rank limit (int32, clamped to [0, R] when read) and scale factor
  // (fp32, multiplied with `scale`); nullptr when absent.
  const int32_t* ranks = nullptr;
  int64_t ranks_stride = 1;
  const float* scales = nullptr;
  int64_t scales_stride = 1;

  bool has_a = false;
  // The shrink-only call (addlora::shrink): no weight B; the expand phase writes
  // out[:, y_offset + r] = y + scale * z[r] for r < S (S = R = H2; b is unused).
  bool shrink_only = false;
  WeightDesc a;           // [W, R, H1]  (m = r, n = h1)
  WeightDesc b;           // [W, H2, R]  (m = h2, n = r)
};

}  // namespace addlora::detail

namespace addlora::detail {

// Element offset of (w, m, n) in a weight family of logical matrix shape [M, N].
inline int64_t weight_offset(const WeightDesc& d, int64_t M, int64_t w, int64_t m, int64_t n) {
  if (d.layout == Layout::fractal_nz) return w * d.adapter_stride + (n / 16) * model::nz_chunk_step(M) + m * 16 + (n % 16);
  return w * d.adapter_stride + m * d.row_stride + n * d.col_stride;
}

// Adapter of row b among the first W adapters (default: all of p's), or -1 for "no adapter".
inline int64_t adapter_of(const Problem& p, int64_t b, int64_t W) {
  const int64_t i = p.index_dtype == DType::i64
                        ? static_cast<const int64_t*>(p.indices)[b * p.index_stride]
                        : static_cast<const int32_t*>(p.indices)[b * p.index_stride];
  return (i >= 0 && i < W) ? i : -1;
}
inline int64_t adapter_of(const Problem& p, int64_t b) { return adapter_of(p, b, p.W); }

}  // namespace addlora::detail

namespace addlora::detail {

// Ranks adapter w uses (R unless a per-adapter rank limits it).
inline int64_t rank_of(const Problem& p, int64_t w) {
  if (p.ranks == nullptr) return p.R;
  const int64_t r = p.ranks[w * p.ranks_stride];
  return r < 0 ? 0 : (r > p.R ? p.R : r);
}

// Scale applied to adapter w's delta.
inline double scale_of(const Problem& p, int64_t w) {
  return p.scales == nullptr ? p.scale : p.scale * p.scales[w * p.scales_stride];
}

}  // namespace addlora::detail
