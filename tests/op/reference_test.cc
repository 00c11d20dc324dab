// The oracle itself against small cases computed by hand (numbers in the comments), its
// addressing (ND strides, FRACTAL_NZ), the test-data packer and the docs/contract.md §1 checker.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "reference/check.h"
#include "reference/reference.h"
#include "reference/testdata.h"

using namespace addlora;
using namespace addlora::ref;

namespace {

// Fills weight [W, L, M, N] so every matrix other than (w, l) holds `junk`.
void fill_all(TestTensor& t, double junk) {
  const auto& d = t.dims();
  for (int64_t a = 0; a < d[0]; ++a)
    for (int64_t b = 0; b < d[1]; ++b)
      for (int64_t m = 0; m < d[2]; ++m)
        for (int64_t n = 0; n < d[3]; ++n) t.set({a, b, m, n}, junk);
}

void set_rows(TestTensor& t, int64_t w, int64_t l, const std::vector<std::vector<double>>& rows) {
  for (size_t m = 0; m < rows.size(); ++m)
    for (size_t n = 0; n < rows[m].size(); ++n) t.set({w, l, int64_t(m), int64_t(n)}, rows[m][n]);
}

}  // namespace

TEST(Reference, WithWeightAHandComputed) {
  // x = [[1, 2], [3, -1]];  A[1,1] = [[1, 0], [1, 1]]  -> row 0: z = [1*1+2*0, 1*1+2*1] = [1, 3]
  // B[1,1] = [[1, 1], [2, 0], [0, -1]]                 -> z.B^T = [1+3, 2+0, 0-3] = [4, 2, -3]
  // scale 0.5 -> d = [2, 1, -1.5];  y row 0 = [10, 20, 30, 40, 50], yOffset 1, slice -1 (H2 = 3)
  // -> out row 0 = [10, 22, 31, 38.5, 50].  Row 1 has index 5 >= W = 2: out row 1 = y row 1.
  TestTensor y = TestTensor::nd(DType::f16, {2, 5});
  TestTensor x = TestTensor::nd(DType::f16, {2, 2});
  TestTensor a = TestTensor::nd(DType::f16, {2, 2, 2, 2});
  TestTensor b = TestTensor::nd(DType::f16, {2, 2, 3, 2});
  TestTensor idx = TestTensor::nd(DType::i32, {2});
  for (int c = 0; c < 5; ++c) { y.set({0, c}, 10.0 * (c + 1)); y.set({1, c}, c + 1); }
  x.set({0, 0}, 1); x.set({0, 1}, 2); x.set({1, 0}, 3); x.set({1, 1}, -1);
  fill_all(a, 7);
  fill_all(b, 9);
  set_rows(a, 1, 1, {{1, 0}, {1, 1}});
  set_rows(b, 1, 1, {{1, 1}, {2, 0}, {0, -1}});
  idx.fill_ints({1, 5}, 0);

  Arguments args;
  args.y = y.view(); args.x = x.view(); args.weight_a = a.view(); args.weight_b = b.view();
  args.indices = idx.view(); args.out = args.y;
  args.layer_idx = 1; args.scale = 0.5; args.y_offset = 1; args.y_slice_size = -1;
  const Expected e = compute(args);
  const double row0[5] = {10, 22, 31, 38.5, 50};
  for (int c = 0; c < 5; ++c) {
    EXPECT_EQ(e.at(0, c), row0[c]) << c;
    EXPECT_EQ(e.at(1, c), c + 1) << c;
    EXPECT_EQ(e.written[c], c >= 1 && c <= 3) << c;
    EXPECT_EQ(e.written[5 + c], 0) << c;
  }
  EXPECT_EQ(e.magnitude[3], 40 + 1.5);  // |y| + |d|
  EXPECT_EQ(e.rows_with_adapter, 1);
}

TEST(Reference, WithoutWeightANzInt64StridedSlice) {
  // No weight A: z = x[b] (H1 = R = 2).  weightB [1, 1, 3, 2] stored FRACTAL_NZ.
  // B[0,0] = [[1, 2], [3, 4], [5, 6]];  x row 1 = [1, -1]  -> z.B^T = [1-2, 3-4, 5-6] = [-1, -1, -1]
  // scale 2, yOffset 0, slice 2 -> out row 1 = [y10 - 2, y11 - 2, y12] = [5-2, 6-2, 7] = [3, 4, 7]
  // Row 0 has index -1: untouched.  y is strided: column stride 3, row stride 11, offset 4.
  TestTensor y = TestTensor::nd(DType::f16, {2, 3}, {11, 3}, 4);
  TestTensor x = TestTensor::nd(DType::f16, {2, 2});
  TestTensor b = TestTensor::nz(DType::f16, {1, 1, 3, 2}, 5);
  TestTensor idx = TestTensor::nd(DType::i64, {2});
  for (int c = 0; c < 3; ++c) { y.set({0, c}, -c); y.set({1, c}, 5 + c); }
  x.set({0, 0}, 100); x.set({0, 1}, 100); x.set({1, 0}, 1); x.set({1, 1}, -1);
  set_rows(b, 0, 0, {{1, 2}, {3, 4}, {5, 6}});
  idx.fill_ints({-1, 0}, 7);

  Arguments args;
  args.y = y.view(); args.x = x.view(); args.weight_b = b.view(); args.indices = idx.view();
  args.out = args.y; args.scale = 2; args.y_slice_size = 2;
  const Expected e = compute(args);
  EXPECT_EQ(e.at(0, 0), 0); EXPECT_EQ(e.at(0, 1), -1); EXPECT_EQ(e.at(0, 2), -2);
  EXPECT_EQ(e.at(1, 0), 3); EXPECT_EQ(e.at(1, 1), 4); EXPECT_EQ(e.at(1, 2), 7);
  EXPECT_EQ(e.written[3], 1); EXPECT_EQ(e.written[4], 1); EXPECT_EQ(e.written[5], 0);
}

TEST(Reference, IndicesOutsideRangeMeanNoAdapter) {
  // W = 1: only index 0 applies; -1, 1 (== W), INT32_MIN, INT32_MAX do nothing.
  // x = 1 everywhere, B = [[2]] (H2 = R = 1, no A), scale 1 -> d = 2 for index 0.
  const std::vector<int64_t> ids = {0, -1, 1, INT32_MIN, INT32_MAX};
  TestTensor y = TestTensor::nd(DType::f16, {5, 1});
  TestTensor x = TestTensor::nd(DType::f16, {5, 1});
  TestTensor b = TestTensor::nd(DType::f16, {1, 1, 1, 1});
  TestTensor idx = TestTensor::nd(DType::i32, {5}, {2}, 1);
  for (int r = 0; r < 5; ++r) { y.set({r, 0}, 0.25); x.set({r, 0}, 1); }
  b.set({0, 0, 0, 0}, 2);
  idx.fill_ints(ids, 0);
  Arguments args;
  args.y = y.view(); args.x = x.view(); args.weight_b = b.view(); args.indices = idx.view();
  args.out = args.y;
  const Expected e = compute(args);
  EXPECT_EQ(e.at(0, 0), 2.25);
  for (int r = 1; r < 5; ++r) EXPECT_EQ(e.at(r, 0), 0.25) << r;
  EXPECT_EQ(e.rows_with_adapter, 1);
}

TEST(Reference, NzAddressing) {
  // Logical [2, 1, 20, 18]: M = 20, N = 18 -> M1 = 2, N1 = 2, one matrix = 2*2*256 = 1024.
  // (m 3, n 5):   block (0, 0), inner 3*16 + 5               = 53
  // (m 17, n 17): block (1, 1): (17/16)*(2*256) + 17*16 + 1  = 512 + 272 + 1 = 785
  // matrix t = 1 adds 1024; offset 9 adds 9.
  TensorView v;
  v.layout = Layout::fractal_nz;
  v.ndim = 4;
  v.dims[0] = 2; v.dims[1] = 1; v.dims[2] = 20; v.dims[3] = 18;
  v.offset = 9;
  const int64_t i1[4] = {0, 0, 3, 5}, i2[4] = {0, 0, 17, 17}, i3[4] = {1, 0, 17, 17};
  EXPECT_EQ(element_offset(v, i1), 9 + 53);
  EXPECT_EQ(element_offset(v, i2), 9 + 785);
  EXPECT_EQ(element_offset(v, i3), 9 + 1024 + 785);
}

TEST(Reference, PackNzPlacesElementsAndZeroPads) {
  // [2, 17] -> M1 = 1, N1 = 2: 512 elements.  (1, 3) -> 1*16 + 3 = 19; (1, 16) -> 256 + 16 = 272.
  std::vector<uint8_t> nd(2 * 17 * 2);
  for (int e = 0; e < 34; ++e) { nd[2 * e] = uint8_t(e + 1); nd[2 * e + 1] = 0; }
  const std::vector<uint8_t> nz = pack_nz(nd, 1, 2, 17, 2);
  ASSERT_EQ(nz.size(), 512u * 2);
  EXPECT_EQ(nz[2 * 19], 17 + 3 + 1);
  EXPECT_EQ(nz[2 * 272], 17 + 16 + 1);
  EXPECT_EQ(nz[2 * 0], 1);
  EXPECT_EQ(nz[2 * 2 * 16], 0);    // row 2 does not exist: padding
  EXPECT_EQ(nz[2 * 257], 0);       // column 17 does not exist: padding
}

TEST(Reference, StridedViewAddressingAndSentinels) {
  // [2, 3] with strides {7, 2}, offset 3: element (1, 2) at 3 + 7 + 4 = 14.
  TestTensor t = TestTensor::nd(DType::f16, {2, 3}, {7, 2}, 3);
  EXPECT_EQ(t.storage_elems(), 15);
  t.set({1, 2}, 1.5);
  EXPECT_EQ(load(t.view(), {1, 2}), 1.5);
  const std::vector<uint8_t> before = t.image_bytes();
  t.set({0, 1}, 2.0);  // inside the view: not reported
  EXPECT_EQ(t.changes_outside_view(before), "");
  uint16_t* s = static_cast<uint16_t*>(t.storage());
  EXPECT_EQ(s[4], kHalfSentinel);  // the gap between columns 0 and 1 of row 0
  s[4] = 0;
  EXPECT_NE(t.changes_outside_view(before), "");
}

TEST(Check, UlpOfEachDtype) {
  EXPECT_EQ(ulp_of(1.0, DType::f16), std::ldexp(1, -10));
  EXPECT_EQ(ulp_of(1.999, DType::f16), std::ldexp(1, -10));
  EXPECT_EQ(ulp_of(-2.0, DType::f16), std::ldexp(1, -9));
  EXPECT_EQ(ulp_of(65504, DType::f16), 32);
  EXPECT_EQ(ulp_of(0, DType::f16), std::ldexp(1, -24));
  EXPECT_EQ(ulp_of(1e-7, DType::f16), std::ldexp(1, -24));  // subnormal range
  EXPECT_EQ(ulp_of(1.0, DType::bf16), std::ldexp(1, -7));
  EXPECT_EQ(ulp_of(1.0, DType::f32), std::ldexp(1, -23));
}

TEST(Check, OneUlpPlusTheContractsShareOfM) {
  // exact 1 + 2^-11 (halfway): both neighbours 1 and 1 + 2^-10 are within 1 ulp; 1 + 2^-9 is not.
  const double e = 1 + std::ldexp(1, -11);
  // (M = 0: exactly 1 ulp.)
  EXPECT_TRUE(within_target(1.0, e, 0, DType::f16));
  EXPECT_TRUE(within_target(1 + std::ldexp(1, -10), e, 0, DType::f16));
  EXPECT_FALSE(within_target(1 + std::ldexp(1, -9), e, 0, DType::f16));
  // M = 2^16: 1 ulp + 1 is allowed, a little more is not.
  EXPECT_TRUE(within_target(e + 1 + std::ldexp(1, -10), e, 65536, DType::f16));
  EXPECT_FALSE(within_target(e + 1 + std::ldexp(1, -8), e, 65536, DType::f16));
  // y = 1000, d = -999.9 (M = 1999.9): exact 0.1, allowed 2^-14 + 1999.9 * 2^-16 = 0.03058.
  EXPECT_TRUE(within_target(0.1 + 0.0305, 0.1, 1999.9, DType::f16));
  EXPECT_FALSE(within_target(0.1 + 0.0307, 0.1, 1999.9, DType::f16));
  EXPECT_FALSE(within_target(NAN, 0.1, 1, DType::f16));
  // 70000 rounds to +inf in fp16; 65504 must stay finite.
  EXPECT_TRUE(within_target(INFINITY, 70000, 70000, DType::f16));
  EXPECT_FALSE(within_target(INFINITY, 65504, 65504, DType::f16));
  EXPECT_FALSE(within_target(-INFINITY, 70000, 70000, DType::f16));
}

TEST(Check, ReportsWrongAndUntouchedElements) {
  // y = [[1, 2]], index 0, B = [[1]] (H2 = R = 1, no A), x = 3, scale 1, yOffset 1:
  // out = [1, 2 + 3] = [1, 5].  A correct out passes; 5.01 fails; touching out[0,0] fails.
  TestTensor y = TestTensor::nd(DType::f16, {1, 2});
  TestTensor x = TestTensor::nd(DType::f16, {1, 1});
  TestTensor b = TestTensor::nd(DType::f16, {1, 1, 1, 1});
  TestTensor idx = TestTensor::nd(DType::i32, {1});
  TestTensor out = TestTensor::nd(DType::f16, {1, 2});
  y.set({0, 0}, 1); y.set({0, 1}, 2); x.set({0, 0}, 3); b.set({0, 0, 0, 0}, 1); idx.fill_ints({0}, 0);
  Arguments args;
  args.y = y.view(); args.x = x.view(); args.weight_b = b.view(); args.indices = idx.view();
  args.out = out.view(); args.y_offset = 1;
  const Expected e = compute(args);
  out.set({0, 0}, 1); out.set({0, 1}, 5);
  EXPECT_TRUE(check_out(e, out.view()).ok);
  out.set({0, 1}, 5.01);  // fp16 5.0117, 3 ulp away
  EXPECT_FALSE(check_out(e, out.view()).ok);
  out.set({0, 1}, 5); out.set({0, 0}, -0.0);
  const CheckResult r = check_out(e, out.view());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.bad, 1);
}

TEST(Check, UsesTheConditionNotTheResult) {
  // exact 0.1 with |y|+|d| = 1 but M = 1000: an fp32 result 0.1 + 0.015 (within 2^-16 * 1000 =
  // 0.01526) passes; 0.1 + 0.0155 does not.
  Expected e;
  e.B = 1; e.H3 = 1;
  e.value = {0.1}; e.magnitude = {1}; e.condition = {1000}; e.written = {1}; e.y_bits = {0};
  TestTensor out = TestTensor::nd(DType::f32, {1, 1});
  out.set({0, 0}, 0.115);
  EXPECT_TRUE(check_out(e, out.view()).ok);
  out.set({0, 0}, 0.1155);
  EXPECT_FALSE(check_out(e, out.view()).ok);
}
