// The library's own API surface: C API, NZ conversion, plans (re-pointing, workspace),
// thread settings, messages.  Numerical sweeps live in tests/op against the fp64 oracle.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "addlora/addlora.h"
#include "core/numeric.h"

extern "C" int addlora_c_api_smoke(void);

namespace addlora {
namespace {

TEST(CApi, RunsAndReportsErrors) { EXPECT_EQ(addlora_c_api_smoke(), 0); }

TEST(Nz, RoundTripAndLayout) {
  // [2, 3, 20, 37]: M and N not multiples of 16 to exercise the zero padding.
  const int64_t dims[] = {2, 3, 20, 37};
  const int64_t nz = nz_elements(dims, 4);
  ASSERT_EQ(nz, 2 * 3 * 2 * 3 * 256);  // M1 = 2, N1 = 3
  std::vector<uint16_t> nd(2 * 3 * 20 * 37);
  std::iota(nd.begin(), nd.end(), uint16_t{1});
  TensorView v = TensorView::contiguous(nd.data(), DType::f16, {2, 3, 20, 37});
  std::vector<uint16_t> packed(nz, 0xffff);
  ASSERT_EQ(nd_to_nz(v, packed.data(), nz), Status::ok);
  // SPEC §5: (t, m, n) at t*(N1*M1*256) + (n/16)*(M1*256) + m*16 + n%16.
  const int64_t t = 4, m = 19, n = 33;
  EXPECT_EQ(packed[t * 3 * 2 * 256 + (n / 16) * 2 * 256 + m * 16 + n % 16], nd[(t * 20 + m) * 37 + n]);
  // Padding (m = 20..31 of the second row block) is zero.
  EXPECT_EQ(packed[0 * 512 + 1 * 256 + (20 - 16) * 16 + 0], 0);
  std::vector<uint16_t> back(nd.size(), 0);
  TensorView w = TensorView::contiguous(back.data(), DType::f16, {2, 3, 20, 37});
  ASSERT_EQ(nz_to_nd(packed.data(), nz, w), Status::ok);
  EXPECT_EQ(back, nd);
}

TEST(Nz, RejectsBadArguments) {
  std::vector<uint16_t> nd(16 * 16), nz(256);
  TensorView v = TensorView::contiguous(nd.data(), DType::f16, {16, 16});
  std::string msg;
  EXPECT_EQ(nd_to_nz(v, nz.data(), 255, &msg), Status::invalid_param);
  EXPECT_NE(msg.find("smaller"), std::string::npos) << msg;
  EXPECT_EQ(nd_to_nz(v, nullptr, 256, &msg), Status::null_pointer);
  TensorView f = TensorView::contiguous(nd.data(), DType::f32, {8, 16});
  EXPECT_EQ(nd_to_nz(f, nz.data(), 256, &msg), Status::invalid_param);
  const int64_t bad[] = {-1, 16};
  EXPECT_EQ(nz_elements(bad, 2), 0);
}

// A one-row problem with exactly representable values (fp32) for exact expectations.
struct Tiny {
  std::vector<float> x{1, 2}, a{3, 4}, b{1, 2}, y{100, 200}, out{0, 0}, x2{2, 0};
  std::vector<int32_t> idx{0};
  Arguments args() {
    Arguments g;
    g.y = TensorView::contiguous(y.data(), DType::f32, {1, 2});
    g.out = TensorView::contiguous(out.data(), DType::f32, {1, 2});
    g.x = TensorView::contiguous(x.data(), DType::f32, {1, 2});
    g.weight_a = TensorView::contiguous(a.data(), DType::f32, {1, 1, 1, 2});
    g.weight_b = TensorView::contiguous(b.data(), DType::f32, {1, 1, 2, 1});
    g.indices = TensorView::contiguous(idx.data(), DType::i32, {1});
    g.scale = 0.5;
    return g;
  }
};

TEST(Plan, RepointInputAndOutput) {
  Tiny t;
  Plan plan;
  std::string msg;
  ASSERT_EQ(make_plan(t.args(), Rules::general, &plan, &msg), Status::ok) << msg;
  std::vector<char> ws(plan.workspace_bytes() + 64);
  plan.run(ws.data());
  EXPECT_EQ(t.out[0], 105.5f);  // z = 11, d = [11, 22] * 0.5
  EXPECT_EQ(t.out[1], 211.0f);
  ASSERT_TRUE(plan.set_input_data(kInputX, t.x2.data()));  // z = 6, d = [3, 6]
  std::vector<float> out2(2, 0);
  ASSERT_TRUE(plan.set_output_data(0, out2.data()));
  plan.run(ws.data());
  EXPECT_EQ(out2[0], 103.0f);
  EXPECT_EQ(out2[1], 206.0f);
  EXPECT_FALSE(plan.set_input_data(7, t.x2.data()));
  EXPECT_FALSE(plan.set_output_data(1, out2.data()));
  // Re-pointing out onto x would alias an input: refused, plan unchanged.
  EXPECT_FALSE(plan.set_output_data(0, t.x2.data()));
}

TEST(Plan, MessagesNameTheRule) {
  Tiny t;
  Arguments g = t.args();
  g.y_offset = 1;  // H2 = 2, H3 = 2
  Plan plan;
  std::string msg;
  EXPECT_EQ(make_plan(g, Rules::general, &plan, &msg), Status::invalid_shape);
  EXPECT_EQ(msg, "AddLora: yOffset + H2 must be <= H3 (yOffset=1, H2=2, H3=2)");
  EXPECT_FALSE(plan.valid());
  EXPECT_EQ(make_plan(t.args(), Rules::general, nullptr, &msg), Status::null_pointer);
}

TEST(Plan, OutOfPlaceLeavesYAndAliasRules) {
  Tiny t;
  Arguments g = t.args();
  g.out = g.y;  // in place
  ASSERT_EQ(add_lora(g, Rules::general), Status::ok);
  EXPECT_EQ(t.y[0], 105.5f);
  g = t.args();
  g.out = g.x;  // out aliasing x: an error, nothing written
  g.out.dims[1] = 2;
  std::string msg;
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::invalid_param);
  EXPECT_NE(msg.find("overlaps x"), std::string::npos) << msg;
  EXPECT_EQ(t.x[0], 1.0f);
}

TEST(Threads, SettingIsVisible) {
  const int before = num_threads();
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  set_num_threads(before);
  EXPECT_EQ(num_threads(), before);
  EXPECT_STRNE(simd_target(), "");
}

}  // namespace
}  // namespace addlora
