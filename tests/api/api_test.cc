// The library's own API surface: C API, NZ conversion, plans (re-pointing, workspace),
// thread settings, messages.  Numerical sweeps live in tests/op against the fp64 oracle.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "addlora/addlora.h"
#include "model/numeric.h"

extern "C" int addlora_c_api_smoke(void);
extern "C" int addlora_c_api_halves_smoke(void);
extern "C" int addlora_c_api_zeroed_defaults(void);

namespace addlora {
namespace {

TEST(CApi, RunsAndReportsErrors) { EXPECT_EQ(addlora_c_api_smoke(), 0); }
TEST(CApi, HalvesRunFromC) { EXPECT_EQ(addlora_c_api_halves_smoke(), 0); }
TEST(CApi, ZeroedStructIsNdWithUnknownStorage) { EXPECT_EQ(addlora_c_api_zeroed_defaults(), 0); }

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
  // docs/contract.md §5: (t, m, n) at t*(N1*M1*256) + (n/16)*(M1*256) + m*16 + n%16.
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

// The conversions' Error& overloads: a dtype is a type error, a short buffer a memory error,
// a missing buffer a null error, a rank outside 2..8 a shape error.
TEST(Nz, ErrorCarriesKind) {
  std::vector<uint16_t> nd(16 * 16), nz(256);
  TensorView v = TensorView::contiguous(nd.data(), DType::f16, {16, 16});
  Error e;
  EXPECT_EQ(nd_to_nz(v, nz.data(), 256, e), Status::ok);
  EXPECT_EQ(e.kind, ErrorKind::none);
  EXPECT_EQ(nd_to_nz(v, nz.data(), 255, e), Status::invalid_param);
  EXPECT_EQ(e.kind, ErrorKind::memory);
  EXPECT_EQ(e.message, "AddLora: NZ buffer is smaller than nz_elements(dims)");
  EXPECT_EQ(nz_to_nd(nullptr, 256, v, e), Status::null_pointer);
  EXPECT_EQ(e.kind, ErrorKind::null);
  TensorView f = TensorView::contiguous(nd.data(), DType::f32, {8, 16});
  EXPECT_EQ(nd_to_nz(f, nz.data(), 256, e), Status::invalid_param);
  EXPECT_EQ(e.kind, ErrorKind::type);
  EXPECT_EQ(e.message, "AddLora: FRACTAL_NZ conversion needs a 16-bit dtype");
  TensorView r1 = TensorView::contiguous(nd.data(), DType::f16, {256});
  EXPECT_EQ(nd_to_nz(r1, nz.data(), 256, e), Status::invalid_param);
  EXPECT_EQ(e.kind, ErrorKind::shape);
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

// The Error& overloads carry the kind next to the code and the same message: 161002 is a
// type error for a dtype and a memory error for a stride.
TEST(Plan, ErrorCarriesKind) {
  Tiny t;
  Plan plan;
  Error e;
  ASSERT_EQ(make_plan(t.args(), Rules::general, &plan, e), Status::ok);
  EXPECT_EQ(e.kind, ErrorKind::none);
  EXPECT_EQ(e.message, "");
  Arguments g = t.args();
  g.y_offset = 1;
  EXPECT_EQ(make_plan(g, Rules::general, &plan, e), Status::invalid_shape);
  EXPECT_EQ(e.status, Status::invalid_shape);
  EXPECT_EQ(e.kind, ErrorKind::shape);
  EXPECT_EQ(e.message, "AddLora: yOffset + H2 must be <= H3 (yOffset=1, H2=2, H3=2)");
  g = t.args();
  g.x.dtype = DType::i32;
  EXPECT_EQ(add_lora(g, Rules::general, e), Status::invalid_param);
  EXPECT_EQ(e.kind, ErrorKind::type);
  g = t.args();
  g.out = g.x;
  EXPECT_EQ(add_lora(g, Rules::general, e), Status::invalid_param);
  EXPECT_EQ(e.kind, ErrorKind::memory);
  g = t.args();
  g.x.data = nullptr;
  EXPECT_EQ(add_lora(g, Rules::general, e), Status::null_pointer);
  EXPECT_EQ(e.kind, ErrorKind::null);
  EXPECT_EQ(e.message, "AddLora: x must not be null");
  std::string msg;  // the std::string* overload reports the same text
  EXPECT_EQ(add_lora(g, Rules::general, &msg), Status::null_pointer);
  EXPECT_EQ(msg, e.message);
}

// Precision::exact and Precision::fast are aliases of one contract (docs/contract.md §1.2):
// both are accepted under both rule sets; a value outside the enum is not.
TEST(Plan, BothPrecisionsUnderBothRules) {
  std::vector<uint16_t> x(16), a(16 * 16), b(16 * 16), y(16), out(16);
  std::vector<int32_t> idx{0};
  Arguments g;
  g.y = TensorView::contiguous(y.data(), DType::f16, {1, 16});
  g.out = TensorView::contiguous(out.data(), DType::f16, {1, 16});
  g.x = TensorView::contiguous(x.data(), DType::f16, {1, 16});
  g.weight_a = TensorView::contiguous(a.data(), DType::f16, {1, 1, 16, 16});
  g.weight_b = TensorView::contiguous(b.data(), DType::f16, {1, 1, 16, 16});
  g.indices = TensorView::contiguous(idx.data(), DType::i32, {1});
  for (Rules rules : {Rules::cann, Rules::general})
    for (Precision p : {Precision::exact, Precision::fast}) {
      g.precision = p;
      std::string msg;
      EXPECT_EQ(add_lora(g, rules, &msg), Status::ok) << msg;
    }
  g.precision = static_cast<Precision>(7);
  std::string msg;
  EXPECT_EQ(add_lora(g, Rules::cann, &msg), Status::invalid_param);
  EXPECT_EQ(msg, "AddLora: precision must be exact or fast (got 7)");
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

namespace addlora {
namespace {

// q, k, v slices of a fused projection in one call == three consecutive single calls.
TEST(MultiSlice, EqualsConsecutiveSingleCalls) {
  const int64_t B = 7, H1 = 48, R = 16, W = 3, L = 2, H3 = 96;
  const int64_t h2[3] = {32, 16, 40}, off[3] = {0, 32, 56};
  std::vector<uint16_t> x(B * H1), y(B * H3), out_multi(B * H3, 0), out_single(B * H3, 0);
  std::vector<std::vector<uint16_t>> a(3), b(3);
  std::vector<int32_t> idx{0, 2, -1, 1, 5, 2, 0};
  uint32_t s = 7;
  auto rnd = [&] {
    s = s * 1664525u + 1013904223u;
    return numeric::float_to_half(static_cast<float>(static_cast<int>((s >> 9) % 2001) - 1000) / 1000.0f);
  };
  for (auto& v : x) v = rnd();
  for (auto& v : y) v = rnd();
  std::vector<Arguments> slices(3);
  for (int k = 0; k < 3; ++k) {
    a[k].resize(W * L * R * H1);
    b[k].resize(W * L * h2[k] * R);
    for (auto& v : a[k]) v = rnd();
    for (auto& v : b[k]) v = rnd();
    Arguments& g = slices[k];
    g.x = TensorView::contiguous(x.data(), DType::f16, {B, H1});
    g.y = TensorView::contiguous(y.data(), DType::f16, {B, H3});
    g.out = TensorView::contiguous(out_multi.data(), DType::f16, {B, H3});
    g.indices = TensorView::contiguous(idx.data(), DType::i32, {B});
    g.weight_a = TensorView::contiguous(a[k].data(), DType::f16, {W, L, R, H1});
    g.weight_b = TensorView::contiguous(b[k].data(), DType::f16, {W, L, h2[k], R});
    g.layer_idx = 1;
    g.scale = 0.05 * (k + 1);
    g.y_offset = off[k];
  }
  const std::vector<uint16_t> y0 = y;
  std::string msg;
  ASSERT_EQ(add_lora(slices.data(), slices.size(), Rules::general, &msg), Status::ok) << msg;
  EXPECT_EQ(y, y0) << "multi-slice out of place wrote y";
  for (int k = 0; k < 3; ++k) {
    Arguments g = slices[k];
    g.out = TensorView::contiguous(out_single.data(), DType::f16, {B, H3});
    if (k > 0) g.y = g.out;  // later calls update the first call's output in place
    ASSERT_EQ(add_lora(g, Rules::general, &msg), Status::ok) << msg;
  }
  EXPECT_EQ(out_multi, out_single);
  // Columns 48..55 belong to no slice and row 2 has no adapter: both equal y.
  EXPECT_EQ(out_multi[0 * H3 + 50], y[0 * H3 + 50]);
  EXPECT_EQ(out_multi[2 * H3 + 10], y[2 * H3 + 10]);
  EXPECT_NE(out_multi[0 * H3 + 10], y[0 * H3 + 10]);
}

TEST(MultiSlice, RejectsOverlapAndMismatchedSharedViews) {
  std::vector<float> x(2 * 16, 1), y(2 * 32, 0), out(2 * 32, 0), w(16 * 16, 0), x2(2 * 16, 1);
  std::vector<int32_t> idx{0, 0};
  Arguments g;
  g.x = TensorView::contiguous(x.data(), DType::f32, {2, 16});
  g.y = TensorView::contiguous(y.data(), DType::f32, {2, 32});
  g.out = TensorView::contiguous(out.data(), DType::f32, {2, 32});
  g.indices = TensorView::contiguous(idx.data(), DType::i32, {2});
  g.weight_b = TensorView::contiguous(w.data(), DType::f32, {1, 1, 16, 16});
  Arguments slices[2] = {g, g};
  slices[1].y_offset = 8;  // [0, 16) and [8, 24) overlap
  std::string msg;
  EXPECT_EQ(add_lora(slices, 2, Rules::general, &msg), Status::invalid_shape);
  EXPECT_NE(msg.find("overlapping columns"), std::string::npos) << msg;
  slices[1].y_offset = 16;
  EXPECT_EQ(add_lora(slices, 2, Rules::general, &msg), Status::ok) << msg;
  slices[1].x = TensorView::contiguous(x2.data(), DType::f32, {2, 16});
  EXPECT_EQ(add_lora(slices, 2, Rules::general, &msg), Status::invalid_param);
  EXPECT_NE(msg.find("slice 1: x must be the same view"), std::string::npos) << msg;
  EXPECT_EQ(add_lora(nullptr, 0, Rules::general, &msg), Status::null_pointer);
}

}  // namespace
}  // namespace addlora
