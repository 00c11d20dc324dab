#include <algorithm>
#include "reference/reference.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "model/numeric.h"

namespace addlora::ref {
namespace {

int64_t ceil16(int64_t v) { return (v + 15) / 16; }

double decode(const TensorView& v, int64_t off) {
  const char* base = static_cast<const char*>(v.data);
  switch (v.dtype) {
    case DType::f16: { uint16_t h; std::memcpy(&h, base + off * 2, 2); return numeric::half_to_float(h); }
    case DType::bf16: { uint16_t h; std::memcpy(&h, base + off * 2, 2); return numeric::bf16_to_float(h); }
    case DType::f32: { float f; std::memcpy(&f, base + off * 4, 4); return f; }
    default: throw std::invalid_argument("reference: tensor is not floating point");
  }
}

// Logical matrix [rows, cols] of a weight tensor [W, L, rows, cols] at (w, layer), in fp64.
std::vector<double> weight_matrix(const TensorView& t, int64_t w, int64_t layer) {
  const int64_t rows = t.dims[2], cols = t.dims[3];
  std::vector<double> m(static_cast<size_t>(rows * cols));
  int64_t idx[4] = {w, layer, 0, 0};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      idx[2] = r;
      idx[3] = c;
      m[r * cols + c] = decode(t, element_offset(t, idx));
    }
  return m;
}

}  // namespace

size_t element_size(DType t) {
  switch (t) {
    case DType::f16: case DType::bf16: return 2;
    case DType::f32: case DType::i32: return 4;
    case DType::i64: return 8;
  }
  return 0;
}

int64_t element_offset(const TensorView& v, const int64_t* idx) {
  if (v.layout == Layout::fractal_nz) {
    if (v.ndim < 2) throw std::invalid_argument("reference: NZ needs >= 2 dims");
    const int64_t M = v.dims[v.ndim - 2], N = v.dims[v.ndim - 1];
    const int64_t m = idx[v.ndim - 2], n = idx[v.ndim - 1];
    int64_t t = 0;  // flattened leading (batch) index
    for (int k = 0; k < v.ndim - 2; ++k) t = t * v.dims[k] + idx[k];
    const int64_t M1 = ceil16(M), N1 = ceil16(N);
    return v.offset + t * (N1 * M1 * 256) + (n / 16) * (M1 * 256) + m * 16 + (n % 16);
  }
  int64_t off = v.offset;
  for (int k = 0; k < v.ndim; ++k) off += idx[k] * v.strides[k];
  return off;
}

double load(const TensorView& v, std::initializer_list<int64_t> idx) {
  if (static_cast<int>(idx.size()) != v.ndim) throw std::invalid_argument("reference: index rank");
  return decode(v, element_offset(v, idx.begin()));
}

uint64_t load_bits(const TensorView& v, std::initializer_list<int64_t> idx) {
  if (static_cast<int>(idx.size()) != v.ndim) throw std::invalid_argument("reference: index rank");
  const int64_t off = element_offset(v, idx.begin());
  const char* base = static_cast<const char*>(v.data);
  const size_t size = element_size(v.dtype);
  uint64_t bits = 0;
  std::memcpy(&bits, base + off * static_cast<int64_t>(size), size);  // little endian
  return bits;
}

int64_t load_index(const TensorView& v, int64_t b) {
  const int64_t off = v.offset + b * v.strides[0];
  const char* base = static_cast<const char*>(v.data);
  if (v.dtype == DType::i32) { int32_t i; std::memcpy(&i, base + off * 4, 4); return i; }
  if (v.dtype == DType::i64) { int64_t i; std::memcpy(&i, base + off * 8, 8); return i; }
  throw std::invalid_argument("reference: indices must be int32 or int64");
}

Expected compute(const Arguments& a) {
  const int64_t B = a.y.dims[0], H3 = a.y.dims[1];
  const int64_t W = a.weight_b.dims[0], H2 = a.weight_b.dims[2], R = a.weight_b.dims[3];
  const bool has_a = a.weight_a.data != nullptr && a.weight_a.ndim != 0;
  const int64_t H1 = a.x.dims[1];
  const int64_t S = a.y_slice_size == -1 ? H2 : a.y_slice_size;
  if (!has_a && H1 != R) throw std::invalid_argument("reference: without weight A, H1 must equal R");

  Expected e;
  e.B = B;
  e.H3 = H3;
  const size_t n = static_cast<size_t>(B * H3);
  e.value.resize(n);
  e.magnitude.resize(n);
  e.condition.resize(n);
  e.written.assign(n, 0);
  e.y_bits.resize(n);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < H3; ++c) {
      e.value[b * H3 + c] = load(a.y, {b, c});
      e.magnitude[b * H3 + c] = std::fabs(e.value[b * H3 + c]);
      e.condition[b * H3 + c] = e.magnitude[b * H3 + c];
      e.y_bits[b * H3 + c] = load_bits(a.y, {b, c});
    }

  // Adapter matrices converted once, on first use.
  std::vector<std::vector<double>> A(static_cast<size_t>(W)), Bm(static_cast<size_t>(W));
  std::vector<double> x(static_cast<size_t>(H1)), z(static_cast<size_t>(R)), zabs(static_cast<size_t>(R));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t i = load_index(a.indices, b);
    if (i < 0 || i >= W) continue;
    ++e.rows_with_adapter;
    // Per-adapter rank (int32, clamped to [0, R]) and scale factor (fp32), when given.
    const int64_t rank = a.ranks.data == nullptr ? R : std::min<int64_t>(R, std::max<int64_t>(0, load_index(a.ranks, i)));
    const double scale = a.scales.data == nullptr ? a.scale : a.scale * load(a.scales, {i});
    if (Bm[i].empty()) {
      Bm[i] = weight_matrix(a.weight_b, i, a.layer_idx);                 // [H2, R]
      if (has_a) A[i] = weight_matrix(a.weight_a, i, a.layer_idx);       // [R, H1]
    }
    for (int64_t h = 0; h < H1; ++h) x[h] = load(a.x, {b, h});
    if (has_a) {
      for (int64_t r = 0; r < rank; ++r) {
        double s = 0, sa = 0;
        const double* row = &A[i][r * H1];
        for (int64_t h = 0; h < H1; ++h) {
          s += x[h] * row[h];
          sa += std::fabs(x[h] * row[h]);
        }
        z[r] = s;
        zabs[r] = sa;
      }
    } else {
      z = x;
      for (int64_t r = 0; r < R; ++r) zabs[r] = std::fabs(x[r]);
    }
    for (int64_t c = 0; c < S; ++c) {
      double s = 0, sa = 0;
      const double* row = &Bm[i][c * R];
      for (int64_t r = 0; r < rank; ++r) {
        s += z[r] * row[r];
        sa += zabs[r] * std::fabs(row[r]);
      }
      const double d = scale * s;
      const size_t k = static_cast<size_t>(b * H3 + a.y_offset + c);
      e.magnitude[k] = std::fabs(e.value[k]) + std::fabs(d);
      e.condition[k] = std::fabs(e.value[k]) + std::fabs(scale) * sa;
      e.value[k] += d;
      e.written[k] = 1;
    }
  }
  return e;
}

}  // namespace addlora::ref
