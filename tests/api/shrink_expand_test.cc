// addlora::shrink and addlora::expand against the fp64 oracle.  The shrink's exact value,
// z[b, r] (+)= scale * sum_h x[b, h] * A[i, layer, r, h], is the operator without weight A
// with x as the rank vector and weight_a in weight_b's place, so ref::compute of that call is
// its oracle (and M, |y| + |scale| * sum_h |x_h a_rh|, its contract's scale).  Sweeps the
// shapes serving users hit (H1 not a multiple of 16, ranks 1-512), the three dtypes, both
// weight layouts, strided z, overwrite and accumulate, rows without an adapter, and the row
// counts that take each kernel path; unwritten elements and guard bytes must not change.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "addlora/addlora.h"
#include "reference/check.h"
#include "reference/reference.h"
#include "reference/testdata.h"

namespace addlora {
namespace {

// Adapter indices -1 .. W for B rows: some rows get no adapter.
std::vector<int64_t> random_indices(ref::Rng& rng, int64_t B, int64_t W) {
  std::vector<int64_t> iv(static_cast<size_t>(B));
  for (auto& v : iv) v = rng.below(W + 2) - 1;
  return iv;
}

// The oracle's y for a call that writes columns [col0, col0 + cols) of the rows with an adapter
// of `now` ([B, H]): `now` itself when it accumulates, else with that slice zeroed.
ref::TestTensor oracle_y(const TensorView& now, const std::vector<int64_t>& iv, int64_t W, int64_t col0, int64_t cols,
                         bool accumulate) {
  const int64_t B = now.dims[0], H = now.dims[1];
  ref::TestTensor y = ref::TestTensor::nd(now.dtype, {B, H});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < H; ++c) {
      const bool written = iv[b] >= 0 && iv[b] < W && c >= col0 && c < col0 + cols;
      y.set({b, c}, written && !accumulate ? 0.0 : ref::load(now, {b, c}));
    }
  return y;
}

// Runs call() (a shrink or an expand) and checks its result view against `op`, the operator
// call (no weight A, x as the rank vector) whose exact value is the half's, through ref::compute;
// `written` is the tensor behind result, none of whose bytes outside the view may change.
template <class Call>
void expect_oracle(const Arguments& op, ref::TestTensor& written, const TensorView& result, Call call) {
  const ref::Expected e = ref::compute(op);
  const std::vector<uint8_t> before = written.image_bytes();
  std::string msg;
  ASSERT_EQ(call(&msg), Status::ok) << msg;
  const ref::CheckResult r = ref::check_out(e, result);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(written.changes_outside_view(before), "");
}

struct ShrinkCase {
  int64_t B, H1, R, W;
  DType dt;
  bool nz, accumulate;
  int64_t z_pad;  // z has R + z_pad columns (the rest must stay as it was)
};

void run_shrink(const ShrinkCase& c, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "B=" << c.B << " H1=" << c.H1 << " R=" << c.R << " W=" << c.W << " dt="
                                  << dtype_name(c.dt) << (c.nz ? " NZ" : " ND") << (c.accumulate ? " accumulate" : ""));
  const int64_t L = 2, Rz = c.R + c.z_pad;
  ref::Rng rng(seed);
  ref::TestTensor x = ref::TestTensor::nd(c.dt, {c.B, c.H1});
  ref::TestTensor a = c.nz ? ref::TestTensor::nz(c.dt, {c.W, L, c.R, c.H1}) : ref::TestTensor::nd(c.dt, {c.W, L, c.R, c.H1});
  // z strided: rows padded by 3 elements, so a write past a row's end would show.
  ref::TestTensor z = ref::TestTensor::nd(c.dt, {c.B, Rz}, ref::padded_strides({c.B, Rz}, 1, 3));
  for (ref::TestTensor* t : {&x, &a, &z}) t->fill_uniform(rng, -1, 1);
  ref::TestTensor idx = ref::TestTensor::nd(DType::i32, {c.B});
  const std::vector<int64_t> iv = random_indices(rng, c.B, c.W);
  idx.fill_ints(iv, -7);

  ShrinkArguments s;
  s.x = x.view();
  s.weight_a = a.view();
  s.indices = idx.view();
  s.z = z.view();
  s.layer_idx = 1;
  s.scale = 0.37;
  s.accumulate = c.accumulate;

  // The oracle: z_out = (accumulate ? z : 0) + scale * x . A^T over columns [0, R).
  ref::TestTensor y = oracle_y(s.z, iv, c.W, 0, c.R, c.accumulate);
  Arguments as_expand;
  as_expand.x = s.x;
  as_expand.weight_b = s.weight_a;
  as_expand.indices = s.indices;
  as_expand.y = as_expand.out = y.view();
  as_expand.layer_idx = s.layer_idx;
  as_expand.scale = s.scale;
  expect_oracle(as_expand, z, s.z, [&](std::string* m) { return shrink(s, m); });
  if (testing::Test::HasFatalFailure()) return;
  // Rows without an adapter are untouched, bit for bit.
  for (int64_t b = 0; b < c.B; ++b) {
    if (iv[b] >= 0 && iv[b] < c.W) continue;
    for (int64_t col = 0; col < Rz; ++col) {
      ASSERT_EQ(ref::load_bits(s.z, {b, col}), ref::load_bits(y.view(), {b, col})) << "row " << b << " col " << col;
    }
  }
}

TEST(ShrinkCall, MatchesTheOracle) {
  const ShrinkCase cases[] = {
      {1, 4096, 16, 1, DType::f16, false, false, 0},    // decode
      {3, 3424, 64, 2, DType::bf16, false, true, 5},    // H1 not a multiple of 64
      {16, 4097, 16, 16, DType::f16, false, false, 0},  // odd H1, one row per adapter
      {40, 5000, 128, 3, DType::f32, false, true, 16},  // many rows per adapter
      {7, 300, 1, 3, DType::f16, false, false, 2},      // rank 1
      {5, 96, 512, 2, DType::bf16, false, false, 0},    // rank 512
      {64, 1024, 64, 4, DType::bf16, true, false, 0},   // FRACTAL_NZ weight_a
      {9, 777, 48, 5, DType::f16, true, true, 3},
      {130, 640, 32, 1, DType::f16, false, true, 0},    // more than one row tile
  };
  uint64_t seed = 11;
  for (const ShrinkCase& c : cases) run_shrink(c, seed++);
}

// The expand: out[b, off : off + S] (+)= scale * z[b] . B^T, i.e. the operator without weight A.
void run_expand(int64_t B, int64_t R, int64_t H2, int64_t S, int64_t off, DType dt, bool nz, bool accumulate,
                uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "expand B=" << B << " R=" << R << " H2=" << H2 << " S=" << S << " off=" << off
                                  << " dt=" << dtype_name(dt) << (nz ? " NZ" : " ND") << (accumulate ? " accumulate" : ""));
  const int64_t W = 3, L = 2, H3 = off + H2 + 5;
  ref::Rng rng(seed);
  ref::TestTensor z = ref::TestTensor::nd(DType::f32, {B, R});
  ref::TestTensor wb = nz ? ref::TestTensor::nz(dt, {W, L, H2, R}) : ref::TestTensor::nd(dt, {W, L, H2, R});
  ref::TestTensor out = ref::TestTensor::nd(dt, {B, H3});
  for (ref::TestTensor* t : {&z, &wb, &out}) t->fill_uniform(rng, -1, 1);
  ref::TestTensor idx = ref::TestTensor::nd(DType::i64, {B});
  const std::vector<int64_t> iv = random_indices(rng, B, W);
  idx.fill_ints(iv, -3);
  ExpandArguments e;
  e.z = z.view();
  e.weight_b = wb.view();
  e.indices = idx.view();
  e.out = out.view();
  e.layer_idx = 1;
  e.scale = -0.8;
  e.y_offset = off;
  e.y_slice_size = S == H2 ? -1 : S;
  e.accumulate = accumulate;
  ref::TestTensor y = oracle_y(e.out, iv, W, off, S, accumulate);
  ref::TestTensor oracle_out = ref::TestTensor::nd(dt, {B, H3});
  Arguments g;
  g.x = e.z;
  g.weight_b = e.weight_b;
  g.indices = e.indices;
  g.y = y.view();
  g.out = oracle_out.view();
  g.layer_idx = e.layer_idx;
  g.scale = e.scale;
  g.y_offset = off;
  g.y_slice_size = S;
  expect_oracle(g, out, e.out, [&](std::string* m) { return expand(e, m); });
}

TEST(ExpandCall, MatchesTheOracle) {
  run_expand(1, 16, 4096, 4096, 0, DType::f16, false, true, 21);      // decode
  run_expand(9, 64, 3424, 3000, 7, DType::bf16, false, false, 22);    // a slice, overwrite
  run_expand(40, 128, 512, 512, 16, DType::f32, false, true, 23);     // outer-product tiles
  run_expand(6, 48, 768, 768, 0, DType::f16, true, false, 24);        // FRACTAL_NZ
  run_expand(13, 512, 96, 50, 3, DType::bf16, false, true, 25);       // rank 512, narrow slice
}

// The shrink over every SIMD target the CPU has and 1 or 2 threads gives the same bits.
TEST(ShrinkCall, BitwiseAcrossThreadCounts) {
  ref::Rng rng(5);
  const int64_t B = 48, H1 = 2000, R = 64, W = 3;
  ref::TestTensor x = ref::TestTensor::nd(DType::bf16, {B, H1}), a = ref::TestTensor::nd(DType::bf16, {W, 1, R, H1});
  x.fill_uniform(rng, -1, 1);
  a.fill_uniform(rng, -1, 1);
  ref::TestTensor idx = ref::TestTensor::nd(DType::i32, {B});
  std::vector<int64_t> iv(B);
  for (int64_t b = 0; b < B; ++b) iv[b] = b % W;
  idx.fill_ints(iv, 0);
  std::vector<std::vector<uint8_t>> results;
  const int saved = num_threads();
  for (int threads : {1, 2, 1}) {
    set_num_threads(threads);
    ref::TestTensor z = ref::TestTensor::nd(DType::f32, {B, R});
    ShrinkArguments s;
    s.x = x.view();
    s.weight_a = a.view();
    s.indices = idx.view();
    s.z = z.view();
    s.scale = 0.5;
    std::string msg;
    ASSERT_EQ(shrink(s, &msg), Status::ok) << msg;
    results.push_back(z.image_bytes());
  }
  set_num_threads(saved);
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

}  // namespace
}  // namespace addlora
