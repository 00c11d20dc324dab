// The precision contract (docs/contract.md §1) under adversarial data, on every compiled SIMD
// target: every written element within 1 ulp + 2^-16 * M of the fp64 oracle.
//
// The data is built against a plain fp32 FMA chain per lane (16 lanes, the widest target):
// all products and weights positive, and each next product picked from a few candidates so
// that adding it to that lane's running fp32 sum rounds down by as much as possible.  Such a
// chain over all of K loses nearly half an ulp of a large partial sum at every step, which
// breaks the bound; the library's chains of at most 64 products folded into fp64 must not.
// Each case first shows that the naive chain does break the bound on its data (so the test can
// fail), then checks the library.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "addlora/addlora.h"
#include "model/dtype.h"
#include "model/numeric.h"
#include "kernels/work.h"
#include "reference/check.h"
#include "reference/reference.h"
#include "reference/testdata.h"

namespace {

using addlora::DType;
using addlora::ref::Rng;
using addlora::ref::TestTensor;
using addlora::numeric::float_to_half;
using addlora::numeric::half_to_float;

constexpr int kChainLanes = 16;
constexpr int kCandidates = 12;

// Products of one sign that a naive fp32 chain per lane rounds down as far as it can.
// first[k] is fixed (x, or z for the expand); returns the fp16 bits of second[k].
class AdversarialDot {
 public:
  explicit AdversarialDot(uint64_t seed) : rng_(seed) {}
  // Picks second[k] for each k against the naive chain sum of first[k] * second[k].
  std::vector<uint16_t> pick(const std::vector<float>& first) {
    std::vector<uint16_t> out(first.size());
    float lane[kChainLanes] = {};
    for (size_t k = 0; k < first.size(); ++k) {
      float& s = lane[k % kChainLanes];
      double best_loss = -1;
      uint16_t best = 0;
      for (int c = 0; c < kCandidates; ++c) {
        const uint16_t bits = float_to_half(static_cast<float>(rng_.uniform(0.5, 1.0)));
        const double p = static_cast<double>(first[k]) * half_to_float(bits);  // exact
        const double loss = (static_cast<double>(s) + p) - static_cast<double>(std::fma(first[k], half_to_float(bits), s));
        if (loss > best_loss) { best_loss = loss; best = bits; }
      }
      out[k] = best;
      s = std::fma(first[k], half_to_float(best), s);
    }
    return out;
  }
  // The naive chain's result for first . second: 16 fp32 lanes, summed in fp32.
  static float naive(const std::vector<float>& first, const uint16_t* second) {
    float lane[kChainLanes] = {};
    for (size_t k = 0; k < first.size(); ++k)
      lane[k % kChainLanes] = std::fma(first[k], half_to_float(second[k]), lane[k % kChainLanes]);
    float s = 0;
    for (float v : lane) s += v;
    return s;
  }

 private:
  Rng rng_;
};

struct Shape {
  int64_t H1, R, H2;
  bool has_a;
  int64_t rows = 1;  // copies of the row, all on the one adapter (many: the batched shrink's paths)
};

class AdversarialPrecision : public ::testing::TestWithParam<Shape> {
 protected:
  void TearDown() override { addlora::kernels::internal::force_simd_target(nullptr); }
};

// fp16 x and weights, fp32 y and out (so that 1 ulp of the output does not hide the sums'
// error), one row (or copies of it), one adapter, scale 1, y = 0: out[n] = sum_r B[n, r] * z_r.
TEST_P(AdversarialPrecision, MeetsTheBoundWhereANaiveFp32ChainDoesNot) {
  const Shape sh = GetParam();
  SCOPED_TRACE("H1=" + std::to_string(sh.H1) + " R=" + std::to_string(sh.R) + " H2=" + std::to_string(sh.H2) +
               (sh.has_a ? " with A" : " without A"));
  AdversarialDot adv(sh.H1 * 31 + sh.R);
  Rng rng(5);
  TestTensor x = TestTensor::nd(DType::f16, {sh.rows, sh.H1});
  TestTensor y = TestTensor::nd(DType::f32, {sh.rows, sh.H2});
  TestTensor out = TestTensor::nd(DType::f32, {sh.rows, sh.H2});
  TestTensor idx = TestTensor::nd(DType::i32, {sh.rows});
  TestTensor wb = TestTensor::nd(DType::f16, {1, 1, sh.H2, sh.R});
  TestTensor wa = TestTensor::nd(DType::f16, {1, 1, sh.has_a ? sh.R : 1, sh.H1});
  idx.fill_ints(std::vector<int64_t>(static_cast<size_t>(sh.rows), 0), -7);
  y.fill_uniform(rng, 0, 0);
  std::vector<float> xv(static_cast<size_t>(sh.H1));
  uint16_t* xs = static_cast<uint16_t*>(x.storage());
  for (int64_t k = 0; k < sh.H1; ++k) {
    xs[k] = float_to_half(static_cast<float>(rng.uniform(0.5, 1.0)));
    xv[static_cast<size_t>(k)] = half_to_float(xs[k]);
  }
  for (int64_t i = 1; i < sh.rows; ++i) std::copy(xs, xs + sh.H1, xs + i * sh.H1);
  // z as the library keeps it (fp32) for the naive expand below; without A, z = x.
  std::vector<float> z = xv;
  // The dot products that break a naive chain: the shrink's (with A, K = H1) or the expand's
  // (without A, K = R = H1).
  bool naive_breaks = false;
  if (sh.has_a) {
    uint16_t* as = static_cast<uint16_t*>(wa.storage());
    z.assign(static_cast<size_t>(sh.R), 0);
    for (int64_t r = 0; r < sh.R; ++r) {
      const std::vector<uint16_t> row = adv.pick(xv);
      std::copy(row.begin(), row.end(), as + r * sh.H1);
      double exact = 0, m = 0;
      for (int64_t k = 0; k < sh.H1; ++k) exact += static_cast<double>(xv[k]) * half_to_float(row[k]);
      m = exact;  // all products positive
      const double err = std::fabs(AdversarialDot::naive(xv, row.data()) - exact);
      if (err > std::ldexp(m, -16) + std::ldexp(std::fabs(exact), -23)) naive_breaks = true;
      z[static_cast<size_t>(r)] = static_cast<float>(exact);
    }
    uint16_t* bs = static_cast<uint16_t*>(wb.storage());
    for (int64_t i = 0; i < sh.H2 * sh.R; ++i) bs[i] = float_to_half(static_cast<float>(rng.uniform(0.5, 1.0)));
  } else {
    uint16_t* bs = static_cast<uint16_t*>(wb.storage());
    for (int64_t n = 0; n < sh.H2; ++n) {
      const std::vector<uint16_t> row = adv.pick(z);
      std::copy(row.begin(), row.end(), bs + n * sh.R);
      double exact = 0;
      for (int64_t r = 0; r < sh.R; ++r) exact += static_cast<double>(z[r]) * half_to_float(row[r]);
      const double err = std::fabs(AdversarialDot::naive(z, row.data()) - exact);
      if (err > std::ldexp(exact, -16) + std::ldexp(exact, -23)) naive_breaks = true;
    }
  }
  if (sh.H1 >= 16 * 1024) {
    EXPECT_TRUE(naive_breaks) << "the data should defeat one fp32 chain over all of K";
  }

  addlora::Arguments a;
  a.x = x.view();
  a.y = y.view();
  a.out = out.view();
  a.indices = idx.view();
  a.weight_b = wb.view();
  if (sh.has_a) a.weight_a = wa.view();
  a.scale = 1.0;
  const addlora::ref::Expected e = addlora::ref::compute(a);
  for (const std::string& t : addlora::kernels::internal::available_simd_targets()) {
    SCOPED_TRACE("target " + t);
    ASSERT_TRUE(addlora::kernels::internal::force_simd_target(t.c_str()));
    std::string msg;
    const uint64_t outer_before = addlora::kernels::internal::outer_shrink_tasks();
    ASSERT_EQ(addlora::add_lora(a, addlora::Rules::general, &msg), addlora::Status::ok) << msg;
    // The 128-row tile takes the outer-product shrink on AVX-512 (and only there).
    if (sh.rows >= 128 && sh.has_a) {
      EXPECT_EQ(addlora::kernels::internal::outer_shrink_tasks() > outer_before, t == "AVX3") << "outer-product shrink";
    }
    const addlora::ref::CheckResult r = addlora::ref::check_out(e, out.view(), 4);
    EXPECT_TRUE(r.ok) << r.report;
    // The scheme's proof leaves about 2x margin: the worst error stays near 2^-17 M or below.
    EXPECT_LT(r.max_err_m, std::ldexp(1.0, -16)) << "worst (err - 1 ulp) / M";
    char worst[64];
    std::snprintf(worst, sizeof worst, "%.3g", r.max_err_m);
    RecordProperty("max_err_m_" + t, worst);
  }
}

// The final rounding of special y values, on every target and kernel path (rows alone, in
// pairs, in outer-product blocks; whole and ragged column blocks): with x = 0 every delta is
// +0, so out must equal the scalar conversion of fma(+0, scale, y) bit for bit -- signalling
// NaNs quieted with their payload and sign, infinities kept, -0 + +0 = +0, subnormals kept.
TEST(FinalRounding, SpecialYValuesMatchTheScalarConversion) {
  using addlora::numeric::bf16_to_float;
  using addlora::numeric::float_to_bf16;
  const uint16_t f16_specials[] = {0x7c01, 0xfe03, 0x7e00, 0x7c00, 0xfc00, 0x8000, 0x0000, 0x7bff, 0xfbff,
                                   0x0001, 0x83ff, 0x3c00};
  const uint16_t bf16_specials[] = {0x7f81, 0xffa3, 0x7fc0, 0x7f80, 0xff80, 0x8000, 0x0000, 0x7f7f, 0xff7f,
                                    0x0001, 0x807f, 0x3f80};
  const int64_t H1 = 32, R = 16, H = 100;  // 100 columns: whole 64-column blocks and a ragged one
  const float scale = 0.75f;
  for (DType dt : {DType::f16, DType::bf16})
    for (int64_t B : {1, 3, 40}) {
      SCOPED_TRACE(std::string(addlora::dtype_name(dt)) + " B=" + std::to_string(B));
      const uint16_t* sp = dt == DType::f16 ? f16_specials : bf16_specials;
      std::vector<uint16_t> x(B * H1, 0), a(R * H1), b(H * R), y(B * H), out(B * H, 0x1234);
      for (size_t i = 0; i < a.size(); ++i) a[i] = dt == DType::f16 ? 0x3c00 : 0x3f80;  // 1.0
      for (size_t i = 0; i < b.size(); ++i) b[i] = i % 2 ? (dt == DType::f16 ? 0xbc00 : 0xbf80) : (dt == DType::f16 ? 0x3c00 : 0x3f80);
      for (size_t i = 0; i < y.size(); ++i) y[i] = sp[i % 12];
      std::vector<int32_t> idx(B, 0);
      addlora::Arguments g;
      g.x = addlora::TensorView::contiguous(x.data(), dt, {B, H1});
      g.y = addlora::TensorView::contiguous(y.data(), dt, {B, H});
      g.out = addlora::TensorView::contiguous(out.data(), dt, {B, H});
      g.weight_a = addlora::TensorView::contiguous(a.data(), dt, {1, 1, R, H1});
      g.weight_b = addlora::TensorView::contiguous(b.data(), dt, {1, 1, H, R});
      g.indices = addlora::TensorView::contiguous(idx.data(), DType::i32, {B});
      g.scale = scale;
      for (const std::string& t : addlora::kernels::internal::available_simd_targets()) {
        SCOPED_TRACE("target " + t);
        ASSERT_TRUE(addlora::kernels::internal::force_simd_target(t.c_str()));
        std::fill(out.begin(), out.end(), 0x1234);
        std::string msg;
        ASSERT_EQ(addlora::add_lora(g, addlora::Rules::general, &msg), addlora::Status::ok) << msg;
        int bad = 0;
        for (size_t i = 0; i < y.size(); ++i) {
          const float yf = dt == DType::f16 ? half_to_float(y[i]) : bf16_to_float(y[i]);
          const float r = std::fma(0.0f, scale, yf);
          const uint16_t want = dt == DType::f16 ? float_to_half(r) : float_to_bf16(r);
          if (out[i] != want && bad++ < 5) ADD_FAILURE() << "element " << i << ": y " << std::hex << y[i] << " out " << out[i] << " want " << want;
        }
        EXPECT_EQ(bad, 0);
      }
      addlora::kernels::internal::force_simd_target(nullptr);
    }
}

// A shrink-only call's last step (z = fma(x.A^T, scale, z) rounded once to z's dtype) on every
// target, with whole vectors and tails, padded rows, and a strided z (the portable kernel).
// With H1 = 1 and x = 1 the dot product is A's value exactly, so the expected bits follow from
// std::fma and the scalar conversions.
class ShrinkOnlyWrite : public ::testing::Test {
 protected:
  void TearDown() override { addlora::kernels::internal::force_simd_target(nullptr); }
};

TEST_F(ShrinkOnlyWrite, MatchesOneFmaAndOneRounding) {
  const float z_specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 65504.0f, -65519.0f, 3.0e38f, 1e-40f, 6e-8f};
  Rng rng(77);
  for (DType dt : {DType::f16, DType::bf16, DType::f32})
    for (int64_t B : {1, 3, 40})
      for (int64_t R : {1, 5, 16, 37})
        for (const auto& [col_stride, pad] : {std::pair<int64_t, int64_t>{1, 0}, {1, 3}, {2, 0}}) {
          SCOPED_TRACE(std::string(addlora::dtype_name(dt)) + " B=" + std::to_string(B) + " R=" + std::to_string(R) +
                       " z column stride " + std::to_string(col_stride) + ", row padding " + std::to_string(pad));
          const float scale = 0.3f;
          std::vector<float> x(B, 1.0f), a(R);
          for (float& v : a) v = static_cast<float>(rng.uniform(-4, 4)) * (rng.uniform(0, 1) < 0.2 ? 1e4f : 1.0f);
          const int64_t es = static_cast<int64_t>(addlora::dtype_size(dt)), pitch = R * col_stride + pad;
          std::vector<unsigned char> z0(static_cast<size_t>(B * pitch * es)), z;
          // Element bits of z's dtype: the library's scalar conversions (round to nearest even).
          auto to_bits = [&](float f, unsigned char* at) {
            addlora::model::visit_float(dt, [&](auto t) { addlora::model::store_float<decltype(t)::value>(at, 0, f); });
          };
          auto to_float = [&](const unsigned char* at) {
            return addlora::model::visit_float(dt,
                                               [&](auto t) { return addlora::model::load_float<decltype(t)::value>(at, 0); });
          };
          for (int64_t i = 0; i < B * pitch; ++i)
            to_bits(i % 7 == 3 ? z_specials[(i / 7) % 10] : static_cast<float>(rng.uniform(-2, 2)), &z0[i * es]);
          std::vector<int32_t> idx(B, 0);
          addlora::ShrinkArguments s;
          s.x = addlora::TensorView::contiguous(x.data(), DType::f32, {B, 1});
          s.weight_a = addlora::TensorView::contiguous(a.data(), DType::f32, {1, 1, R, 1});
          s.indices = addlora::TensorView::contiguous(idx.data(), DType::i32, {B});
          s.scale = scale;
          s.accumulate = true;
          for (const std::string& t : addlora::kernels::internal::available_simd_targets()) {
            SCOPED_TRACE("target " + t);
            ASSERT_TRUE(addlora::kernels::internal::force_simd_target(t.c_str()));
            z = z0;
            s.z = addlora::TensorView::contiguous(z.data(), dt, {B, R});
            s.z.strides[0] = pitch;
            s.z.strides[1] = col_stride;
            std::string msg;
            ASSERT_EQ(addlora::shrink(s, &msg), addlora::Status::ok) << msg;
            int bad = 0;
            for (int64_t i = 0; i < B * pitch; ++i) {
              std::vector<unsigned char> want(z0.begin() + i * es, z0.begin() + (i + 1) * es);
              const int64_t c = i % pitch;  // the row's element c: column c / col_stride if on the grid
              if (c < R * col_stride && c % col_stride == 0)
                to_bits(std::fma(a[c / col_stride], scale, to_float(&z0[i * es])), want.data());
              if (std::memcmp(want.data(), &z[i * es], static_cast<size_t>(es)) != 0 && bad++ < 5)
                ADD_FAILURE() << "element " << i << ": got " << to_float(&z[i * es]) << " want "
                              << to_float(want.data());
            }
            EXPECT_EQ(bad, 0);
          }
        }
}

INSTANTIATE_TEST_SUITE_P(Shapes, AdversarialPrecision,
                         ::testing::Values(Shape{131072, 16, 64, true},   // the longest K of the contract
                                           Shape{4096, 512, 64, true},    // the widest rank tested
                                           Shape{20000, 96, 40, true},    // ragged K, rank past one chain
                                           // a 128-row tile: the outer-product shrink (AVX-512)
                                           Shape{4096, 512, 64, true, 130},
                                           Shape{20000, 128, 40, true, 130},
                                           Shape{131072, 131072, 16, false},  // the expand's K = H1
                                           Shape{5000, 5000, 33, false}),
                         [](const ::testing::TestParamInfo<Shape>& i) {
                           return "H1_" + std::to_string(i.param.H1) + "_R_" + std::to_string(i.param.R) +
                                  (i.param.has_a ? "_A" : "_noA") +
                                  (i.param.rows > 1 ? "_rows_" + std::to_string(i.param.rows) : "");
                         });

}  // namespace
