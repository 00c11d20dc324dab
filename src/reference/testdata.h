// Test data for AddLora: tensors in strided buffers with sentinels.
//
// A TestTensor owns an "image": guard elements, the storage the view lives in, guard
// elements.  Everything the view does not cover (guards, the gaps of a strided view, and
// the storage before its offset) holds a sentinel, so tests can check that the library
// neither writes outside `out`'s view nor reads gaps (a float sentinel is a NaN, which
// poisons any result it leaks into).  FRACTAL_NZ tensors keep their logical ND values and
// are packed by pack_nz (written independently of the oracle's addressing).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "addlora/addlora.h"

namespace addlora::ref {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * (static_cast<double>(gen_() >> 11) * 0x1p-53); }
  int64_t below(int64_t n) { return static_cast<int64_t>(gen_() % static_cast<uint64_t>(n)); }
  uint64_t bits() { return gen_(); }
 private:
  std::mt19937_64 gen_;
};

// Sentinels: quiet NaNs with a recognisable payload; integers use a caller-chosen value.
constexpr uint16_t kHalfSentinel = 0x7e5a;
constexpr uint16_t kBf16Sentinel = 0x7fa5;
constexpr uint32_t kFloatSentinel = 0x7fcada5au;

// Packs row-major logical matrices [T, M, N] (raw element bits, `esize` bytes each) into
// FRACTAL_NZ [T, ceil(N/16), ceil(M/16), 16, 16] with zero padding (docs/contract.md §5).
std::vector<uint8_t> pack_nz(const std::vector<uint8_t>& nd, int64_t T, int64_t M, int64_t N, size_t esize);

// Row-major strides for `dims` with an inner (column) stride and extra elements after every
// row: {.., dims[n-1]*col + row_pad, col}.  Outer dims are dense over the padded rows.
std::vector<int64_t> padded_strides(const std::vector<int64_t>& dims, int64_t col_stride, int64_t row_pad);

class TestTensor {
 public:
  static constexpr int64_t kGuard = 67;  // sentinel elements before and after the storage

  // ND view with the given strides (empty = contiguous) and storage offset (elements).
  static TestTensor nd(DType dtype, std::vector<int64_t> dims, std::vector<int64_t> strides = {}, int64_t offset = 0);
  // FRACTAL_NZ (weights) with logical dims, packed storage starting `offset` elements in.
  static TestTensor nz(DType dtype, std::vector<int64_t> dims, int64_t offset = 0);

  // Float tensors: uniform values in [lo, hi), rounded to the dtype.
  void fill_uniform(Rng& rng, double lo, double hi);
  // Sets one logical element (float tensors: rounded to the dtype; int tensors: exact).
  void set(const std::vector<int64_t>& idx, double v);
  // Integer tensors: the values of a 1-D view, and the sentinel placed everywhere else.
  void fill_ints(const std::vector<int64_t>& values, int64_t sentinel);

  // A view over this tensor's host storage, or over a copy of the storage at `storage`
  // (e.g. device memory holding image() copied at image_device_base).
  TensorView view() const { return view_at(storage()); }
  TensorView view_at(void* storage) const;

  void* storage() const { return const_cast<uint8_t*>(image_.data()) + kGuard * esize_; }
  int64_t storage_elems() const { return storage_elems_; }  // offset + span of the view
  uint8_t* image() { return image_.data(); }
  const std::vector<uint8_t>& image_bytes() const { return image_; }
  size_t image_size() const { return image_.size(); }
  size_t guard_bytes() const { return kGuard * esize_; }

  DType dtype() const { return dtype_; }
  Layout layout() const { return layout_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int64_t offset() const { return offset_; }

  // Bytes of the image not covered by the view's elements that differ from `before`
  // (a description of the first few; "" when none).  Guards, gaps and NZ padding.
  std::string changes_outside_view(const std::vector<uint8_t>& before) const;
  // Any byte differing from `before` ("" when identical).
  std::string changes(const std::vector<uint8_t>& before) const;

 private:
  TestTensor() = default;
  void init_image();
  void write_logical(const std::vector<int64_t>& idx, uint64_t bits);
  int64_t storage_index(const std::vector<int64_t>& idx) const;  // ND only
  void repack();                                                  // NZ: logical_ -> image_

  DType dtype_ = DType::f16;
  Layout layout_ = Layout::nd;
  size_t esize_ = 2;
  std::vector<int64_t> dims_, strides_;
  int64_t offset_ = 0, storage_elems_ = 0;
  std::vector<uint8_t> image_;
  std::vector<uint8_t> in_view_;   // per storage element: 1 if it is a view element
  std::vector<uint8_t> logical_;   // NZ only: row-major logical element bits
};

// Rounds v to the dtype and returns its bits (f16/bf16: 16 bits; f32: 32 bits).
uint64_t encode(double v, DType dtype);

// A scale that makes |d| about as large as |y| for uniform [-1, 1) data.
double balanced_scale(int64_t H1, int64_t R, bool has_a);

}  // namespace addlora::ref
