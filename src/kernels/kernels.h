// Kernel entry points.  Inputs are validated, normalised Problems (src/core/problem.h);
// nothing here fails, and the only allocation is a per-thread scratch buffer (scratch.h) whose
// absence selects a path that needs none.  The SIMD variants are chosen at run time.
#pragma once
#include <cstddef>
#include <cstdint>

#include "model/problem.h"

namespace addlora::kernels {

// Scratch bytes execute() needs for `p` (a function of the shapes only, never of the
// thread count, so plans stay valid when the pool size changes).
uint64_t workspace_bytes(const detail::Problem& p);

// Computes out for the whole problem.  `workspace` holds workspace_bytes(p) bytes.
// Results are bitwise identical for any thread count and run.  One accumulator policy (work.h):
// fp32 FMA chains of at most 64 products per lane folded into fp64, z in fp32.  SIMD kernels
// (Highway, best target of this CPU) on the thread pool; strides other than unit column
// strides (or NZ weights) fall back to execute_portable.
void execute(const detail::Problem& p, void* workspace);

// Multi-slice: the slices of one call (they share x, y, out and indices; slices after the
// first update out in place, see plan.cc), run as one job.  The rows are grouped once and each
// phase runs every slice's tasks in one parallel region.  Same bits as execute() on each slice
// in turn.  Slices run in batches of up to 8, so the workspace holds the grouping and the
// partial sums of one batch.
uint64_t workspace_bytes(const detail::Problem* ps, size_t n);
void execute(const detail::Problem* ps, size_t n, void* workspace);

// Plain C++ baseline (scalar, one thread, fp64 sums, grouped by adapter).  Meets the same
// contract as execute() (more tightly); also its generic-stride path.
void execute_portable(const detail::Problem& p, void* workspace);
uint64_t workspace_bytes_portable(const detail::Problem& p);  // its scratch (execute() sizes for both)

// Thread pool and SIMD target control (backing addlora::set_num_threads & co).
// Default threads: ADDLORA_NUM_THREADS, else the hardware threads.  simd_target(): "AVX3",
// "AVX2" or "SCALAR"; ADDLORA_SIMD_TARGET=<name> (EMU128 = SCALAR) forces a lower one.
// ADDLORA_BF16_DOT=1 / 0 turns the bf16 shrink's vdpbf16ps path on / off (default: AMD CPUs
// with AVX512_BF16; shrink_bf16.h).
void set_num_threads(int n);
int num_threads();
const char* simd_target();

}  // namespace addlora::kernels
