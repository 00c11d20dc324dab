// Independent fp64 oracle for AddLora (tests and benchmarks only).
//
// Computes the operator straight from an addlora::Arguments: its own element addressing
// (ND strides + offset, FRACTAL_NZ per docs/contract.md §5), its own index decoding (int32 / int64,
// strided), fp16 / bf16 / fp32 element reads.  It deliberately shares nothing with src/core
// except numeric.h (the exhaustively tested scalar conversions), so a bug in the planner's
// addressing cannot hide in the oracle too.  Arguments are assumed valid: the oracle is for
// inputs the library accepted.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "addlora/addlora.h"

namespace addlora::ref {

// Bytes per element (own copy: the oracle links nothing of the library).
size_t element_size(DType t);

// Storage element offset (from view.data) of the logical element `idx` (ndim indices).
// ND: offset + sum idx[k]*strides[k].  FRACTAL_NZ: the packed layout of docs/contract.md §5, where the
// leading dims (all but the last two) are flattened into the matrix index t.
int64_t element_offset(const TensorView& v, const int64_t* idx);

// Element value (exact in fp64) of a floating tensor.
double load(const TensorView& v, std::initializer_list<int64_t> idx);
// Raw bits of an element (fp16/bf16 -> 16 bits, fp32/int32 -> 32 bits, int64 -> low 64).
uint64_t load_bits(const TensorView& v, std::initializer_list<int64_t> idx);
// indices[b] as a 64-bit integer (int32 or int64 tensor).
int64_t load_index(const TensorView& v, int64_t b);

// Expected out[B, H3], row-major.
struct Expected {
  int64_t B = 0, H3 = 0;
  std::vector<double> value;       // exact (fp64) value of out[b, c]
  std::vector<double> magnitude;   // |y| + |d| (diagnostics)
  // M of the precision contract: |y| + |scale| * sum_r |B[n,r]| * sum_h |x_h A[r,h]| (without
  // A: sum_r |B[n,r]| |x_r|), the scale of the rounding error fp32 accumulation can make.
  std::vector<double> condition;
  std::vector<uint8_t> written;    // 1: element gets y + d; 0: element must equal y bitwise
  std::vector<uint64_t> y_bits;    // y's raw bits (for the bitwise check of unwritten elements)
  int64_t rows_with_adapter = 0;   // how many rows had 0 <= index < W (test diagnostics)
  double at(int64_t b, int64_t c) const { return value[b * H3 + c]; }
};

// Computes the operator in fp64 from the arguments (reads y, x, weights, indices).
// Call it before running the library when out is y (in place).
Expected compute(const Arguments& args);

}  // namespace addlora::ref
