// Views the validator must accept exactly (no false overlap) or reject exactly, and the NZ
// conversion's bounds and overflow checks.  Results are compared with the fp64 oracle.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "addlora/addlora.h"
#include "reference/check.h"
#include "reference/reference.h"

namespace addlora {
namespace {

// out and x are column slices of one fused [B, 3H] buffer: they share no element, so the
// call is legal and computes the right values.
TEST(Views, ColumnSlicesOfOneBufferAreNotAnOverlap) {
  const int64_t B = 5, H = 16, R = 16, pitch = 3 * H;
  std::vector<float> fused(B * pitch), y(B * H), a(R * H), b(H * R);
  for (size_t i = 0; i < fused.size(); ++i) fused[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 5) - 2.0f;
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 3) * 0.125f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 4) * 0.0625f;
  std::vector<int32_t> idx(B, 0);
  Arguments g;
  g.x = TensorView::contiguous(fused.data() + H, DType::f32, {B, H});  // columns [H, 2H)
  g.x.strides[0] = pitch;
  g.out = TensorView::contiguous(fused.data(), DType::f32, {B, H});    // columns [0, H)
  g.out.strides[0] = pitch;
  g.y = TensorView::contiguous(y.data(), DType::f32, {B, H});
  g.weight_a = TensorView::contiguous(a.data(), DType::f32, {1, 1, R, H});
  g.weight_b = TensorView::contiguous(b.data(), DType::f32, {1, 1, H, R});
  g.indices = TensorView::contiguous(idx.data(), DType::i32, {B});
  const ref::Expected e = ref::compute(g);
  std::string msg;
  ASSERT_EQ(add_lora(g, Rules::general, &msg), Status::ok) << msg;
  const ref::CheckResult r = ref::check_out(e, g.out);
  EXPECT_TRUE(r.ok) << r.report;
  // Columns [H - 1, 2H - 1) of the same buffer do overlap x: refused.
  g.out.data = fused.data() + 1;
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::invalid_param);
  EXPECT_NE(msg.find("out overlaps x"), std::string::npos) << msg;
}

// Strides [17, 2] on a 16 x 16 view interleave rows without writing any element twice.
TEST(Views, InterleavedOutIsExactlyChecked) {
  const int64_t B = 16, H = 16;
  std::vector<float> x(B * H, 0.5f), y(B * H, 1.0f), w(H * H, 0.0f), out(17 * 16 + 2 * 16, -1.0f);
  std::vector<int32_t> idx(B, -1);  // no adapter: out must become y everywhere
  Arguments g;
  g.x = TensorView::contiguous(x.data(), DType::f32, {B, H});
  g.y = TensorView::contiguous(y.data(), DType::f32, {B, H});
  g.weight_b = TensorView::contiguous(w.data(), DType::f32, {1, 1, H, H});
  g.indices = TensorView::contiguous(idx.data(), DType::i32, {B});
  g.out = TensorView::contiguous(out.data(), DType::f32, {B, H});
  g.out.strides[0] = 17;
  g.out.strides[1] = 2;
  std::string msg;
  ASSERT_EQ(add_lora(g, Rules::general, &msg), Status::ok) << msg;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < H; ++j) ASSERT_EQ(out[i * 17 + j * 2], 1.0f);
  g.out.strides[0] = 16;  // (i+1, j) == (i, j+8): overlaps itself
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::invalid_param);
  EXPECT_NE(msg.find("overlaps itself"), std::string::npos) << msg;
}

TEST(Views, EmptyBatchNeedsNoStorage) {
  std::vector<float> w(16 * 16, 0.0f);
  float dummy = 0.0f;
  int32_t idx = 0;
  Arguments g;
  g.x = TensorView::contiguous(&dummy, DType::f32, {0, 16});
  g.y = TensorView::contiguous(&dummy, DType::f32, {0, 16});
  g.out = g.y;
  g.weight_b = TensorView::contiguous(w.data(), DType::f32, {1, 1, 16, 16});
  g.indices = TensorView::contiguous(&idx, DType::i32, {0});
  for (TensorView* v : {&g.x, &g.y, &g.out, &g.indices}) v->storage_elems = 0;
  std::string msg;
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::ok) << msg;
  g.out = TensorView::contiguous(&dummy, DType::f32, {0, 16});  // another empty view at x's address
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::ok) << msg;
}

TEST(Views, NzConversionBoundsAndOverflow) {
  const int64_t huge[] = {std::numeric_limits<int64_t>::max(), 16};
  EXPECT_EQ(nz_elements(huge, 2), 0);
  std::vector<uint16_t> nd(256), nz(256);
  TensorView v = TensorView::contiguous(nd.data(), DType::f16, {16, 16});
  v.storage_elems = 10;
  std::string msg;
  EXPECT_EQ(nd_to_nz(v, nz.data(), 256, &msg), Status::invalid_param);
  EXPECT_NE(msg.find("storage"), std::string::npos) << msg;
  v.storage_elems = 256;
  v.offset = -1;
  EXPECT_EQ(nz_to_nd(nz.data(), 256, v, &msg), Status::invalid_param);
}

}  // namespace
}  // namespace addlora
