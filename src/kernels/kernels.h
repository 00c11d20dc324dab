// Kernel entry points.  Inputs are validated, normalised Problems (src/core/problem.h);
// nothing here fails or allocates.  The SIMD variants are chosen at run time.
#pragma once
#include <cstdint>

#include "core/problem.h"

namespace addlora::kernels {

// Scratch bytes execute() needs for `p` (a function of the shapes only, never of the
// thread count, so plans stay valid when the pool size changes).
uint64_t workspace_bytes(const detail::Problem& p);

// Computes out for the whole problem.  `workspace` holds workspace_bytes(p) bytes.
// Results are bitwise identical for any thread count.
void execute(const detail::Problem& p, void* workspace);

// Plain C++ baseline (fp32 accumulation, grouped by adapter).  Same contract as execute().
void execute_portable(const detail::Problem& p, void* workspace);

// Thread pool and SIMD target control (backing addlora::set_num_threads & co).
void set_num_threads(int n);
int num_threads();
const char* simd_target();

}  // namespace addlora::kernels
