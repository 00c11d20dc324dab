// Per-adapter ranks and scales (Arguments::ranks / scales) against the fp64 oracle, and the
// equivalence they promise: an adapter limited to rank r equals a rank-r adapter.
#include <gtest/gtest.h>

#include <vector>

#include "addlora/addlora.h"
#include "model/numeric.h"
#include "reference/check.h"
#include "reference/reference.h"
#include "reference/testdata.h"

namespace addlora {
namespace {

struct Case {
  int64_t B = 37, H1 = 40, H2 = 24, H3 = 48, R = 32, W = 4, L = 2;
  bool nz = false, has_a = true;
  DType dt = DType::f16;
};

void run_case(const Case& c, uint64_t seed) {
  ref::Rng rng(seed);
  const int64_t H1 = c.has_a ? c.H1 : c.R;
  ref::TestTensor x = ref::TestTensor::nd(c.dt, {c.B, H1}), y = ref::TestTensor::nd(c.dt, {c.B, c.H3}),
                  out = ref::TestTensor::nd(c.dt, {c.B, c.H3});
  ref::TestTensor b = c.nz ? ref::TestTensor::nz(DType::f16, {c.W, c.L, c.H2, c.R})
                           : ref::TestTensor::nd(DType::f16, {c.W, c.L, c.H2, c.R});
  ref::TestTensor a = c.nz ? ref::TestTensor::nz(DType::f16, {c.W, c.L, c.R, H1})
                           : ref::TestTensor::nd(DType::f16, {c.W, c.L, c.R, H1});
  for (ref::TestTensor* t : {&x, &y, &out, &a, &b}) t->fill_uniform(rng, -1, 1);
  ref::TestTensor idx = ref::TestTensor::nd(DType::i32, {c.B});
  std::vector<int64_t> iv(c.B);
  for (auto& v : iv) v = rng.below(c.W + 2) - 1;  // -1 .. W: some rows without adapter
  idx.fill_ints(iv, -5);
  // ranks: 0, a partial rank, the full rank, and out of range values (clamped to [0, R]).
  ref::TestTensor ranks = ref::TestTensor::nd(DType::i32, {c.W}, {2});  // strided on purpose
  ranks.fill_ints({0, 5, c.R, c.R + 100}, -9);
  ref::TestTensor scales = ref::TestTensor::nd(DType::f32, {c.W});
  const double sv[] = {0.5, -2.0, 0.25, 1.5};
  for (int64_t w = 0; w < c.W; ++w) scales.set({w}, sv[w % 4]);

  Arguments g;
  g.x = x.view();
  g.y = y.view();
  g.out = out.view();
  g.weight_b = b.view();
  if (c.has_a) g.weight_a = a.view();
  g.indices = idx.view();
  g.ranks = ranks.view();
  g.scales = scales.view();
  g.layer_idx = 1;
  g.scale = 0.03;
  g.y_offset = c.H3 - c.H2;
  const ref::Expected e = ref::compute(g);
  std::string msg;
  ASSERT_EQ(add_lora(g, Rules::general, &msg), Status::ok) << msg;
  const ref::CheckResult r = ref::check_out(e, g.out);
  EXPECT_TRUE(r.ok) << r.report;
  const std::vector<uint8_t> before = out.image_bytes();
  EXPECT_EQ(out.changes_outside_view(before), "");
}

TEST(PerAdapter, RanksAndScalesMatchTheOracle) {
  Case c;
  run_case(c, 1);
  c.nz = true;
  run_case(c, 2);
  c.has_a = false;
  run_case(c, 3);
  c.dt = DType::bf16;
  c.nz = false;
  run_case(c, 4);
}

// Adapter limited to rank 8 of a 32-rank padded tensor == a rank-8 tensor: bitwise.
TEST(PerAdapter, LimitedRankEqualsSmallerTensor) {
  const int64_t B = 6, H = 32, R = 32, r = 8;
  std::vector<float> x(B * H), y(B * H), a(R * H), b(H * R), a8(r * H), b8(H * r), o1(B * H), o2(B * H);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7) % 11) * 0.1f - 0.5f;
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 5);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 3) % 13) * 0.05f - 0.3f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 5) % 17) * 0.02f - 0.15f;
  for (int64_t k = 0; k < r; ++k)
    for (int64_t h = 0; h < H; ++h) a8[k * H + h] = a[k * H + h];
  for (int64_t n = 0; n < H; ++n)
    for (int64_t k = 0; k < r; ++k) b8[n * r + k] = b[n * R + k];
  std::vector<int32_t> idx(B, 0), ranks{static_cast<int32_t>(r)};
  std::vector<float> scales{3.0f};
  Arguments g;
  g.x = TensorView::contiguous(x.data(), DType::f32, {B, H});
  g.y = TensorView::contiguous(y.data(), DType::f32, {B, H});
  g.indices = TensorView::contiguous(idx.data(), DType::i32, {B});
  g.out = TensorView::contiguous(o1.data(), DType::f32, {B, H});
  g.weight_a = TensorView::contiguous(a.data(), DType::f32, {1, 1, R, H});
  g.weight_b = TensorView::contiguous(b.data(), DType::f32, {1, 1, H, R});
  g.ranks = TensorView::contiguous(ranks.data(), DType::i32, {1});
  g.scales = TensorView::contiguous(scales.data(), DType::f32, {1});
  g.scale = 0.5;
  ASSERT_EQ(add_lora(g, Rules::general), Status::ok);
  Arguments h = g;
  h.ranks = TensorView{};
  h.scales = TensorView{};
  h.scale = 1.5;
  h.out = TensorView::contiguous(o2.data(), DType::f32, {B, H});
  h.weight_a = TensorView::contiguous(a8.data(), DType::f32, {1, 1, r, H});
  h.weight_b = TensorView::contiguous(b8.data(), DType::f32, {1, 1, H, r});
  ASSERT_EQ(add_lora(h, Rules::general), Status::ok);
  EXPECT_EQ(o1, o2);
}

TEST(PerAdapter, Validation) {
  std::vector<uint16_t> x(32, 0), y(32, 0), b(256, 0);
  std::vector<float> sc(2, 1.0f);
  std::vector<int32_t> idx(2, 0), rk(2, 1);
  Arguments g;
  g.x = TensorView::contiguous(x.data(), DType::f16, {2, 16});
  g.y = TensorView::contiguous(y.data(), DType::f16, {2, 16});
  g.out = g.y;
  g.weight_b = TensorView::contiguous(b.data(), DType::f16, {1, 1, 16, 16});
  g.indices = TensorView::contiguous(idx.data(), DType::i32, {2});
  std::string msg;
  ASSERT_EQ(add_lora(g, Rules::cann, &msg), Status::ok) << msg;  // the baseline is legal
  g.ranks = TensorView::contiguous(rk.data(), DType::i32, {2});  // W is 1
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::invalid_shape);
  EXPECT_NE(msg.find("ranks must be 1-D of W=1"), std::string::npos) << msg;
  g.ranks = TensorView::contiguous(sc.data(), DType::f32, {1});
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::invalid_param);
  EXPECT_NE(msg.find("ranks dtype must be INT32"), std::string::npos) << msg;
  g.ranks = TensorView{};
  g.scales = TensorView::contiguous(sc.data(), DType::f32, {1});
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::ok) << msg;
  EXPECT_EQ(add_lora(g, Rules::cann, &msg), Status::invalid_param);
  EXPECT_NE(msg.find("scales is not an input of aclnnAddLora"), std::string::npos) << msg;
}

}  // namespace
}  // namespace addlora
