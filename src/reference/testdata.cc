#include "reference/testdata.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "model/numeric.h"
#include "reference/reference.h"

namespace addlora::ref {

uint64_t encode(double v, DType dtype) {
  switch (dtype) {
    case DType::f16: return numeric::float_to_half(static_cast<float>(v));
    case DType::bf16: return numeric::float_to_bf16(static_cast<float>(v));
    case DType::f32: return numeric::float_to_bits(static_cast<float>(v));
    default: throw std::invalid_argument("encode: not a float dtype");
  }
}

double balanced_scale(int64_t H1, int64_t R, bool has_a) {
  // Uniform[-1,1) has variance 1/3: z has std sqrt(H1)/3 (with A) or 1/sqrt(3) (without),
  // z . b has std sqrt(R/3) * std(z).
  const double z = has_a ? std::sqrt(static_cast<double>(H1)) / 3 : 1 / std::sqrt(3.0);
  return 1 / (z * std::sqrt(R / 3.0));
}

std::vector<uint8_t> pack_nz(const std::vector<uint8_t>& nd, int64_t T, int64_t M, int64_t N, size_t esize) {
  const int64_t M1 = (M + 15) / 16, N1 = (N + 15) / 16;
  std::vector<uint8_t> out(static_cast<size_t>(T * N1 * M1 * 256) * esize, 0);
  size_t dst = 0;
  // Walk the packed storage in order: matrix, column block, row block, 16x16 fractal.
  for (int64_t t = 0; t < T; ++t)
    for (int64_t nb = 0; nb < N1; ++nb)
      for (int64_t mb = 0; mb < M1; ++mb)
        for (int64_t i = 0; i < 16; ++i)
          for (int64_t j = 0; j < 16; ++j, dst += esize) {
            const int64_t m = mb * 16 + i, n = nb * 16 + j;
            if (m < M && n < N) std::memcpy(&out[dst], &nd[static_cast<size_t>((t * M + m) * N + n) * esize], esize);
          }
  return out;
}

std::vector<int64_t> padded_strides(const std::vector<int64_t>& dims, int64_t col_stride, int64_t row_pad) {
  std::vector<int64_t> s(dims.size());
  if (dims.empty()) return s;
  const size_t n = dims.size();
  s[n - 1] = col_stride;
  if (n >= 2) s[n - 2] = dims[n - 1] * col_stride + row_pad;
  for (size_t k = n - 2; n >= 3 && k-- > 0;) s[k] = s[k + 1] * dims[k + 1];
  return s;
}

TestTensor TestTensor::nd(DType dtype, std::vector<int64_t> dims, std::vector<int64_t> strides, int64_t offset) {
  TestTensor t;
  t.dtype_ = dtype;
  t.esize_ = element_size(dtype);
  t.dims_ = std::move(dims);
  if (strides.empty()) strides = padded_strides(t.dims_, 1, 0);
  if (strides.size() != t.dims_.size()) throw std::invalid_argument("TestTensor: strides rank");
  t.strides_ = std::move(strides);
  t.offset_ = offset;
  int64_t last = offset;
  for (size_t k = 0; k < t.dims_.size(); ++k) last += (t.dims_[k] - 1) * t.strides_[k];
  t.storage_elems_ = last + 1;
  t.init_image();
  // Mark view elements by walking every logical index.
  std::vector<int64_t> idx(t.dims_.size(), 0);
  int64_t total = 1;
  for (int64_t d : t.dims_) total *= d;
  for (int64_t e = 0; e < total; ++e) {
    t.in_view_[static_cast<size_t>(t.storage_index(idx))] = 1;
    for (size_t k = idx.size(); k-- > 0;) { if (++idx[k] < t.dims_[k]) break; idx[k] = 0; }
  }
  return t;
}

TestTensor TestTensor::nz(DType dtype, std::vector<int64_t> dims, int64_t offset) {
  if (dims.size() < 2) throw std::invalid_argument("TestTensor::nz: needs >= 2 dims");
  TestTensor t;
  t.dtype_ = dtype;
  t.layout_ = Layout::fractal_nz;
  t.esize_ = element_size(dtype);
  t.dims_ = std::move(dims);
  t.strides_.assign(t.dims_.size(), 0);
  t.offset_ = offset;
  const size_t n = t.dims_.size();
  int64_t T = 1;
  for (size_t k = 0; k + 2 < n; ++k) T *= t.dims_[k];
  const int64_t packed = T * ((t.dims_[n - 1] + 15) / 16) * ((t.dims_[n - 2] + 15) / 16) * 256;
  t.storage_elems_ = offset + packed;
  t.init_image();
  t.logical_.assign(static_cast<size_t>(T * t.dims_[n - 2] * t.dims_[n - 1]) * t.esize_, 0);
  t.repack();
  // Only real elements count as the view; the zero padding must stay zero (checked as "outside").
  const std::vector<uint8_t> ones(t.logical_.size() / t.esize_ * t.esize_, 0xff);
  const std::vector<uint8_t> mask = pack_nz(ones, T, t.dims_[n - 2], t.dims_[n - 1], t.esize_);
  for (size_t e = 0; e < mask.size() / t.esize_; ++e)
    t.in_view_[static_cast<size_t>(offset) + e] = mask[e * t.esize_] != 0;
  return t;
}

void TestTensor::init_image() {
  const size_t elems = static_cast<size_t>(storage_elems_ + 2 * kGuard);
  image_.resize(elems * esize_);
  in_view_.assign(static_cast<size_t>(storage_elems_), 0);
  for (size_t e = 0; e < elems; ++e) {
    uint8_t* p = &image_[e * esize_];
    switch (dtype_) {
      case DType::f16: std::memcpy(p, &kHalfSentinel, 2); break;
      case DType::bf16: std::memcpy(p, &kBf16Sentinel, 2); break;
      case DType::f32: std::memcpy(p, &kFloatSentinel, 4); break;
      default: std::memset(p, 0x5a, esize_); break;
    }
  }
}

int64_t TestTensor::storage_index(const std::vector<int64_t>& idx) const {
  int64_t off = offset_;
  for (size_t k = 0; k < dims_.size(); ++k) off += idx[k] * strides_[k];
  return off;
}

void TestTensor::repack() {
  const size_t n = dims_.size();
  int64_t T = 1;
  for (size_t k = 0; k + 2 < n; ++k) T *= dims_[k];
  const std::vector<uint8_t> packed = pack_nz(logical_, T, dims_[n - 2], dims_[n - 1], esize_);
  std::memcpy(&image_[static_cast<size_t>(kGuard + offset_) * esize_], packed.data(), packed.size());
}

void TestTensor::write_logical(const std::vector<int64_t>& idx, uint64_t bits) {
  if (layout_ == Layout::fractal_nz) {
    int64_t flat = 0;
    for (size_t k = 0; k < dims_.size(); ++k) flat = flat * dims_[k] + idx[k];
    std::memcpy(&logical_[static_cast<size_t>(flat) * esize_], &bits, esize_);
  } else {
    std::memcpy(&image_[static_cast<size_t>(kGuard + storage_index(idx)) * esize_], &bits, esize_);
  }
}

void TestTensor::fill_uniform(Rng& rng, double lo, double hi) {
  std::vector<int64_t> idx(dims_.size(), 0);
  int64_t total = 1;
  for (int64_t d : dims_) total *= d;
  for (int64_t e = 0; e < total; ++e) {
    write_logical(idx, encode(rng.uniform(lo, hi), dtype_));
    for (size_t k = idx.size(); k-- > 0;) { if (++idx[k] < dims_[k]) break; idx[k] = 0; }
  }
  if (layout_ == Layout::fractal_nz) repack();
}

void TestTensor::set(const std::vector<int64_t>& idx, double v) {
  const bool is_int = dtype_ == DType::i32 || dtype_ == DType::i64;
  write_logical(idx, is_int ? static_cast<uint64_t>(static_cast<int64_t>(v)) : encode(v, dtype_));
  if (layout_ == Layout::fractal_nz) repack();
}

void TestTensor::fill_ints(const std::vector<int64_t>& values, int64_t sentinel) {
  if (dims_.size() != 1 || static_cast<int64_t>(values.size()) != dims_[0])
    throw std::invalid_argument("fill_ints: 1-D tensor of values.size() elements");
  for (size_t e = 0; e < image_.size() / esize_; ++e) {
    const uint64_t bits = static_cast<uint64_t>(sentinel);
    std::memcpy(&image_[e * esize_], &bits, esize_);
  }
  for (size_t b = 0; b < values.size(); ++b)
    write_logical({static_cast<int64_t>(b)}, static_cast<uint64_t>(values[b]));
}

TensorView TestTensor::view_at(void* storage) const {
  TensorView v;
  v.data = storage;
  v.dtype = dtype_;
  v.layout = layout_;
  v.ndim = static_cast<int32_t>(dims_.size());
  for (size_t k = 0; k < dims_.size(); ++k) {
    v.dims[k] = dims_[k];
    v.strides[k] = strides_[k];
  }
  v.offset = offset_;
  v.storage_elems = storage_elems_;
  return v;
}

std::string TestTensor::changes_outside_view(const std::vector<uint8_t>& before) const {
  std::string s;
  int found = 0;
  for (size_t e = 0; e < image_.size() / esize_; ++e) {
    const int64_t se = static_cast<int64_t>(e) - kGuard;
    if (se >= 0 && se < storage_elems_ && in_view_[static_cast<size_t>(se)]) continue;
    if (std::memcmp(&image_[e * esize_], &before[e * esize_], esize_) != 0 && found++ < 5) {
      char line[96];
      std::snprintf(line, sizeof line, "storage element %lld (outside the view) changed\n", (long long)se);
      s += line;
    }
  }
  if (found) s = std::to_string(found) + " element(s) outside the view changed:\n" + s;
  return s;
}

std::string TestTensor::changes(const std::vector<uint8_t>& before) const {
  size_t count = 0, first = 0;
  for (size_t i = 0; i < image_.size(); ++i)
    if (image_[i] != before[i] && count++ == 0) first = i;
  if (!count) return "";
  return std::to_string(count) + " byte(s) changed, first at storage element " +
         std::to_string(static_cast<long long>(first / esize_) - kGuard);
}

}  // namespace addlora::ref
