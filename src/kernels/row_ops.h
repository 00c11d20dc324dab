// Row operations of the scheduler's phases that need no SIMD kernel (dispatch.cc): the copy of
// y to out before the expands of an out-of-place call, and the expand phase of a shrink-only
// call.  Internal to src/kernels.
#pragma once
#include <cstdint>

#include "kernels/work.h"

namespace addlora::kernels::internal {

// out[b, :] = y[b, :] (any strides and dtypes).
void copy_row(const detail::Problem& p, int64_t b);

// The expand phase of a shrink-only call (Problem::shrink_only): out[row, y_offset + n] =
// y + scale * z[pos][n] for positions [pb, pe) of one adapter and n in [nb, ne), in fp32 with one
// FMA and one rounding, as the expand's epilogue rounds its dot product.
void write_scaled_z(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t nb, int64_t ne);

}  // namespace addlora::kernels::internal
