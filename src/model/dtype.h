// Facts about element types and the FRACTAL_NZ layout, computed in one place for planning,
// validation and the kernels (docs/contract.md §5).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "addlora/addlora.h"
#include "model/numeric.h"

namespace addlora::model {

// Bytes per element (1 for values outside the enum: validation rejects them first).
constexpr size_t element_size(DType t) {
  switch (t) {
    case DType::f16:
    case DType::bf16: return 2;
    case DType::f32:
    case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 1;
}

// FRACTAL_NZ stores a logical [M, N] matrix as ceil(N/16) column blocks of ceil(M/16)*16 rows
// of 16 elements, zero padded: elements between 16-column chunks of one row, and per matrix.
constexpr int64_t nz_chunk_step(int64_t M) { return ((M + 15) / 16) * 256; }
constexpr int64_t nz_matrix_elements(int64_t M, int64_t N) { return ((N + 15) / 16) * nz_chunk_step(M); }

// Calls f(std::integral_constant<DType, T>{}) for the floating dtype t (f16, bf16, else f32):
// one place turns a run-time dtype into a compile-time one.
template <class F>
inline decltype(auto) visit_float(DType t, F&& f) {
  switch (t) {
    case DType::f16: return f(std::integral_constant<DType, DType::f16>{});
    case DType::bf16: return f(std::integral_constant<DType, DType::bf16>{});
    default: return f(std::integral_constant<DType, DType::f32>{});
  }
}

// Element i of a T array as fp32 (exact for every floating T), and v rounded to T (nearest
// even).  Scalar paths use these with visit_float; the SIMD kernels have vector versions.
template <DType T>
inline float load_float(const void* base, int64_t i) {
  if constexpr (T == DType::f16) return numeric::half_to_float(static_cast<const uint16_t*>(base)[i]);
  else if constexpr (T == DType::bf16) return numeric::bf16_to_float(static_cast<const uint16_t*>(base)[i]);
  else return static_cast<const float*>(base)[i];
}
template <DType T>
inline void store_float(void* base, int64_t i, float v) {
  if constexpr (T == DType::f16) static_cast<uint16_t*>(base)[i] = numeric::float_to_half(v);
  else if constexpr (T == DType::bf16) static_cast<uint16_t*>(base)[i] = numeric::float_to_bf16(v);
  else static_cast<float*>(base)[i] = v;
}

}  // namespace addlora::model
