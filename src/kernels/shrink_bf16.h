// The shrink for bf16 x and bf16 A on CPUs with AVX512_BF16 (vdpbf16ps) where it is on
// (bf16_dot_usable), called from the AVX3 target's Shrink (shrink-inl.h) only.  Not part of
// the library's interface.
//
// Same task contract as TargetKernels::shrink (work.h) and the same accumulator policy: each
// fp32 lane takes at most kChain = 64 products per chain (32 vdpbf16ps over 1024 columns, two
// exact products per lane each, added one after the other with one rounding each), folded
// into fp64 every 1024 columns from the start of the K chunk -- the AVX3 FMA path's fold
// boundaries (kSegCols = 64 * 16).  Lane l of a 32-column step holds columns 2l and 2l+1 in
// both layouts (ND: one 64-byte load; FRACTAL_NZ: the two 16-column chunks side by side), so
// NZ A gives the bits of ND A.
//
// vdpbf16ps treats subnormal inputs as zero and flushes subnormal results.  Inputs are
// screened (before, or for decode while, the products are formed): a (row, rank, K chunk)
// whose x row or A row holds a "tiny" value -- nonzero with magnitude below 2^-56, subnormals
// included -- is then computed with fp32 FMAs instead (same chains and folds).  Without tiny values every nonzero input is a multiple of 2^-63, every
// product and every partial sum a multiple of 2^-126: zero or normal, so DAZ/FTZ never act
// and the result is the IEEE one of the same operations.  The choice depends only on the
// values of that x row and A row in that chunk (never on blocking or threads).
#pragma once
#include <cstdint>

#include "kernels/work.h"

namespace addlora::kernels::internal {

// The CPU has AVX512F/BW/VL and AVX512_BF16 (checked once).
bool bf16_dot_supported();
// Whether bf16 shrinks take this path by default: ADDLORA_BF16_DOT=1 or 0 if set, else on AMD
// CPUs only.  Zen 4 and Zen 5 form two products per lane per instruction at about their FMA
// rate; the Intel Xeon measured issues vdpbf16ps at a quarter of its FMA rate (half the
// products per cycle of two FMA ports), where the FMA path is faster (bench/notes.md).
// Decided once per process; the bits of a bf16 shrink depend on it (docs/contract.md §1.4).
bool bf16_dot_default();
// bf16_dot_supported() and the path is on (the default above unless a test hook set it).
bool bf16_dot_usable();
// Test hooks: turn the path on or off (where supported), or back to the default; count of
// shrink tasks it has run, and of (row, rank, chunk) results it recomputed with FMAs because
// of tiny inputs.
void set_bf16_dot_enabled(bool on);
void reset_bf16_dot();
uint64_t bf16_dot_tasks();
uint64_t bf16_dot_fallbacks();

// One shrink task (as TargetKernels::shrink) for x.dtype == A.dtype == bf16, unit column
// strides (the SIMD path's precondition).  Call only if bf16_dot_usable().
void shrink_bf16_dot(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t k);

}  // namespace addlora::kernels::internal
