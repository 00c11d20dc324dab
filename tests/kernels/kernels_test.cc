// Kernel tests: every SIMD target compiled into this build and supported by this CPU, against
// the independent fp64 oracle (src/reference) with the precision contract's bound (docs/contract.md §1.2), on sweeps of shapes
// (ragged H and R, B up to 300), layouts (ND row-strided, ND column-strided -> generic path,
// FRACTAL_NZ), dtypes (fp16 / bf16 / fp32, mixed), in place and out of place.  Sentinels
// around every buffer catch stray reads (NaN poisons the result) and writes; a guarded
// workspace catches scratch overruns.  Results must be bitwise identical for 1/2/3/7 threads.
// Per-adapter ranks and scales: the weights past each adapter's rank hold NaN (they must not
// be read), and a rank-limited adapter gives the same bits as a tensor of that rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <memory>
#include <thread>
#include <string>
#include <tuple>
#include <vector>

#include "addlora/addlora.h"
#include "kernels/scratch.h"
#include "kernels/work.h"
#include "reference/check.h"
#include "reference/reference.h"
#include "reference/testdata.h"

namespace {

using addlora::DType;
using addlora::Layout;
using addlora::ref::Rng;
using addlora::ref::TestTensor;

struct Spec {
  DType xd = DType::f16, wd = DType::f16, yd = DType::f16;
  int64_t B = 1, H1 = 16, H2 = 16, H3 = 16, R = 16, W = 1, L = 1, layer = 0;
  int64_t y_offset = 0, slice = -1;
  bool has_a = true, in_place = false;
  Layout la = Layout::nd, lb = Layout::nd;
  bool row_pad = false;    // activations and ND weights with padded rows (SIMD path)
  bool col_stride = false; // activations with column stride 2 (generic path)
  double none_fraction = 0.2;  // rows with no adapter
  int64_t group = 0;           // > 0: exactly this many rows per adapter, interleaved (B = W * group)
  bool per_adapter = false;    // random Arguments::ranks (strided, some out of range) and scales
  addlora::Precision precision = addlora::Precision::exact;  // fast: an alias of exact (the same bound)
  uint64_t seed = 1;

  std::string str() const {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "B=%lld H1=%lld H2=%lld H3=%lld R=%lld W=%lld off=%lld slice=%lld A=%d inplace=%d "
                  "nzA=%d nzB=%d pad=%d colstride=%d dt=%d/%d/%d fast=%d per_adapter=%d group=%lld seed=%llu",
                  (long long)B, (long long)H1, (long long)H2, (long long)H3, (long long)R, (long long)W,
                  (long long)y_offset, (long long)slice, has_a, in_place, la == Layout::fractal_nz,
                  lb == Layout::fractal_nz, row_pad, col_stride, (int)xd, (int)wd, (int)yd,
                  precision == addlora::Precision::fast, per_adapter, (long long)group, (unsigned long long)seed);
    return buf;
  }
};

struct Case {
  Spec s;
  std::unique_ptr<TestTensor> y, x, wa, wb, idx, out, ranks, scales;
  double scale = 1;

  explicit Case(const Spec& spec) : s(spec) {
    Rng rng(s.seed);
    auto act = [&](DType t, int64_t rows, int64_t cols) {
      if (s.col_stride)
        return std::make_unique<TestTensor>(TestTensor::nd(
            t, {rows, cols}, addlora::ref::padded_strides({rows, cols}, 2, 3), 5));
      if (s.row_pad)
        return std::make_unique<TestTensor>(TestTensor::nd(
            t, {rows, cols}, addlora::ref::padded_strides({rows, cols}, 1, 7), 3));
      return std::make_unique<TestTensor>(TestTensor::nd(t, {rows, cols}));
    };
    auto weight = [&](std::vector<int64_t> dims, Layout l) {
      if (l == Layout::fractal_nz) return std::make_unique<TestTensor>(TestTensor::nz(s.wd, dims, 9));
      if (s.row_pad)
        return std::make_unique<TestTensor>(
            TestTensor::nd(s.wd, dims, addlora::ref::padded_strides(dims, 1, 5), 11));
      return std::make_unique<TestTensor>(TestTensor::nd(s.wd, dims));
    };
    y = act(s.yd, s.B, s.H3);
    x = act(s.xd, s.B, s.H1);
    wb = weight({s.W, s.L, s.H2, s.R}, s.lb);
    if (s.has_a) wa = weight({s.W, s.L, s.R, s.H1}, s.la);
    if (!s.in_place) out = act(s.yd, s.B, s.H3);
    y->fill_uniform(rng, -1, 1);
    x->fill_uniform(rng, -1, 1);
    wb->fill_uniform(rng, -1, 1);
    if (wa) wa->fill_uniform(rng, -1, 1);
    if (out) out->fill_uniform(rng, -1, 1);  // garbage the kernel must overwrite
    std::vector<int64_t> iv(s.B);
    for (auto& v : iv) v = rng.uniform(0, 1) < s.none_fraction ? (rng.below(2) ? -1 : s.W) : rng.below(s.W);
    if (s.group > 0)  // row b to adapter (7b + 3) mod W: every adapter gets B / W rows (W coprime to 7)
      for (int64_t b = 0; b < s.B; ++b) iv[b] = (7 * b + 3) % s.W;
    idx = std::make_unique<TestTensor>(TestTensor::nd(DType::i32, {s.B}));
    idx->fill_ints(iv, -7);
    scale = addlora::ref::balanced_scale(s.H1, s.R, s.has_a) * (rng.below(2) ? 1 : -0.5);
    if (s.per_adapter) add_ranks_and_scales(rng);
  }

  // Ranks: 0, R, out of range (clamped) or random; the selected layer's A rows and B columns
  // past each rank are poisoned with NaN (a read would leak into the result).  ND: the first
  // and the last row / column past the rank (a partial 16-chunk and a whole one beyond);
  // NZ (every set() repacks): one element of each.
  void add_ranks_and_scales(Rng& rng) {
    std::vector<int64_t> rv(s.W);
    for (auto& r : rv) {
      switch (rng.below(5)) {
        case 0: r = 0; break;
        case 1: r = s.R; break;
        case 2: r = rng.below(2) ? -1 - rng.below(5) : s.R + 1 + rng.below(5); break;
        default: r = 1 + rng.below(s.R); break;
      }
    }
    ranks = std::make_unique<TestTensor>(TestTensor::nd(DType::i32, {s.W}, {2}));
    ranks->fill_ints(rv, -11);
    scales = std::make_unique<TestTensor>(TestTensor::nd(DType::f32, {s.W}));
    scales->fill_uniform(rng, -2, 2);
    const double nan = std::nan("");
    for (int64_t w = 0; w < s.W; ++w) {
      const int64_t rank = std::min<int64_t>(s.R, std::max<int64_t>(0, rv[w]));
      if (rank == s.R) continue;
      for (int64_t r : {rank, s.R - 1}) {
        const bool nz_b = s.lb == Layout::fractal_nz, nz_a = s.la == Layout::fractal_nz;
        for (int64_t n = 0; n < (nz_b ? 1 : s.H2); ++n) wb->set({w, s.layer, n, r}, nan);
        if (wa)
          for (int64_t h = 0; h < (nz_a ? 1 : s.H1); ++h) wa->set({w, s.layer, r, h}, nan);
      }
    }
  }

  addlora::Arguments args() const {
    addlora::Arguments a;
    a.y = y->view();
    a.x = x->view();
    a.weight_b = wb->view();
    a.indices = idx->view();
    if (wa) a.weight_a = wa->view();
    if (ranks) a.ranks = ranks->view();
    if (scales) a.scales = scales->view();
    a.out = out ? out->view() : a.y;
    a.layer_idx = s.layer;
    a.scale = scale;
    a.y_offset = s.y_offset;
    a.y_slice_size = s.slice;
    a.precision = s.precision;
    return a;
  }
  const TestTensor& out_tensor() const { return out ? *out : *y; }
};

// Runs the case through make_plan/run with a sentinel-guarded workspace; returns out's image.
std::vector<uint8_t> run(Case& c, std::string* failure) {
  addlora::Plan plan;
  std::string msg;
  const addlora::Status st = addlora::make_plan(c.args(), addlora::Rules::general, &plan, &msg);
  if (st != addlora::Status::ok) { *failure = "make_plan: " + msg; return {}; }
  constexpr size_t kGuard = 256;
  std::vector<uint8_t> ws(plan.workspace_bytes() + 2 * kGuard + 64, 0xa5);
  uint8_t* base = ws.data() + kGuard;
  base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
  plan.run(base);
  for (uint8_t* p = ws.data(); p < base; ++p)
    if (*p != 0xa5) { *failure = "workspace underrun"; break; }
  for (uint8_t* p = base + plan.workspace_bytes(); p < ws.data() + ws.size(); ++p)
    if (*p != 0xa5) { *failure = "workspace overrun"; break; }
  return c.out_tensor().image_bytes();
}

// Full check of one case on the current target: values vs the oracle, memory outside views.
void check_case(const Spec& s) {
  SCOPED_TRACE(s.str());
  Case c(s);
  const addlora::ref::Expected e = addlora::ref::compute(c.args());
  std::vector<std::vector<uint8_t>> before;
  for (const TestTensor* t : {c.y.get(), c.x.get(), c.wb.get(), c.idx.get(), c.wa.get(), c.out.get(),
                              c.ranks.get(), c.scales.get()})
    before.push_back(t ? t->image_bytes() : std::vector<uint8_t>{});
  std::string failure;
  run(c, &failure);
  ASSERT_EQ(failure, "");
  const auto res = addlora::ref::check_out(e, c.out_tensor().view(), 8);
  EXPECT_TRUE(res.ok) << res.bad << " bad elements, max " << res.max_err_ulps << " ulp\n" << res.report;
  EXPECT_EQ(c.out_tensor().changes_outside_view(c.out ? before[5] : before[0]), "");
  // Inputs untouched (y too when out of place).
  int i = 0;
  for (const TestTensor* t : {c.y.get(), c.x.get(), c.wb.get(), c.idx.get(), c.wa.get(), static_cast<TestTensor*>(nullptr), c.ranks.get(),
                              c.scales.get()}) {
    if (t && !(i == 0 && s.in_place)) {
      EXPECT_EQ(t->changes(before[i]), "") << "input " << i;
    }
    ++i;
  }
}

class PerTarget : public ::testing::Test {
 protected:
  void TearDown() override { addlora::kernels::internal::force_simd_target(nullptr); }
  template <class F>
  void for_each_target(F f) {
    const auto targets = addlora::kernels::internal::available_simd_targets();
    ASSERT_FALSE(targets.empty());
    for (const std::string& t : targets) {
      SCOPED_TRACE("target " + t);
      ASSERT_TRUE(addlora::kernels::internal::force_simd_target(t.c_str()));
      EXPECT_STREQ(addlora::simd_target(), t.c_str());
      f();
    }
  }
};

// Random fp16 values in [-1, 1] (the oracle's rounding), n of them.
std::vector<uint16_t> random_f16(Rng& rng, int64_t n) {
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (auto& e : v) e = static_cast<uint16_t>(addlora::ref::encode(rng.uniform(-1, 1), DType::f16));
  return v;
}

// The row operands of a call over contiguous buffers: fp16 x [B, H1] and y [B, H3], int32 indices [B].
void set_rows(addlora::Arguments* g, std::vector<uint16_t>& x, std::vector<uint16_t>& y, std::vector<int32_t>& idx,
              int64_t B, int64_t H1, int64_t H3) {
  using addlora::TensorView;
  g->x = TensorView::contiguous(x.data(), DType::f16, {B, H1});
  g->y = TensorView::contiguous(y.data(), DType::f16, {B, H3});
  g->indices = TensorView::contiguous(idx.data(), DType::i32, {B});
}

DType pick_dtype(Rng& rng) {
  static const DType all[] = {DType::f16, DType::bf16, DType::f32};
  return all[rng.below(3)];
}

// Random shapes with ragged sizes; every target sees the same list.
std::vector<Spec> sweep(uint64_t seed, int n, bool per_adapter = false) {
  Rng rng(seed);
  std::vector<Spec> out;
  for (int i = 0; i < n; ++i) {
    Spec s;
    s.seed = seed * 1000 + i;
    s.per_adapter = per_adapter;
    s.B = 1 + rng.below(i % 4 == 0 ? 300 : 40);
    s.H1 = 1 + rng.below(i % 5 == 0 ? 1100 : 200);
    s.R = 1 + rng.below(i % 6 == 0 ? 512 : 80);
    s.H2 = 1 + rng.below(300);
    s.H3 = s.H2 + rng.below(40);
    s.y_offset = rng.below(s.H3 - s.H2 + 1);
    s.slice = rng.below(3) == 0 ? rng.below(s.H2 + 1) : -1;
    s.W = 1 + rng.below(6);
    s.L = 1 + rng.below(2);
    s.layer = rng.below(s.L);
    s.has_a = rng.below(6) != 0;
    if (!s.has_a) s.R = s.H1;
    s.in_place = rng.below(2);
    s.la = rng.below(3) == 0 ? Layout::fractal_nz : Layout::nd;
    s.lb = rng.below(3) == 0 ? Layout::fractal_nz : Layout::nd;
    s.row_pad = rng.below(2);
    s.col_stride = rng.below(8) == 0;
    s.xd = pick_dtype(rng);
    s.yd = pick_dtype(rng);
    s.wd = (s.la == Layout::fractal_nz || s.lb == Layout::fractal_nz) && rng.below(2) ? DType::f16
                                                                                       : pick_dtype(rng);
    if ((s.la == Layout::fractal_nz || s.lb == Layout::fractal_nz) && s.wd == DType::f32) s.wd = DType::bf16;
    if (i % 3 == 0) s.xd = s.wd = s.yd = DType::f16;  // the main case
    out.push_back(s);
    s.precision = addlora::Precision::fast;  // the same case through the alias
    out.push_back(s);
  }
  return out;
}

TEST_F(PerTarget, RandomSweepAgainstOracle) {
  const auto specs = sweep(7, 70);
  for_each_target([&] {
    for (const Spec& s : specs) check_case(s);
  });
}

// Random per-adapter ranks and scales (Arguments::ranks / scales) on the same kind of sweep.
TEST_F(PerTarget, PerAdapterRanksAndScalesSweep) {
  const auto specs = sweep(11, 40, true);
  for_each_target([&] {
    for (const Spec& s : specs) check_case(s);
  });
}

// Shapes at the edges of the blocking: K chunk boundaries, row blocks, lane tails.
TEST_F(PerTarget, BlockingEdges) {
  std::vector<Spec> specs;
  for (int64_t H1 : {1, 15, 16, 17, 511, 512, 513, 1024 + 15})
    for (int64_t R : {1, 3, 16, 17, 33}) {
      Spec s;
      s.H1 = H1; s.R = R; s.H2 = 40; s.H3 = 41; s.B = 9; s.W = 2; s.seed = H1 * 100 + R;
      specs.push_back(s);
    }
  for (int64_t B : {1, 4, 5, 31, 32, 33, 65}) {
    Spec s;
    s.B = B; s.H1 = 64; s.R = 16; s.H2 = 256 + 17; s.H3 = 300; s.y_offset = 20; s.W = 3; s.seed = B;
    s.none_fraction = 0;
    specs.push_back(s);
  }
  { Spec s; s.R = 512; s.H1 = 64; s.H2 = 33; s.H3 = 33; s.B = 7; s.W = 2; specs.push_back(s); }
  { Spec s; s.R = 512; s.H1 = 32; s.H2 = 48; s.H3 = 48; s.B = 3; s.lb = Layout::fractal_nz; s.la = Layout::fractal_nz; specs.push_back(s); }
  // Rank split (several adapters of ~2 rows) over H1 > 4096: x is streamed, not pre-widened.
  for (Layout la : {Layout::nd, Layout::fractal_nz}) {
    Spec s; s.B = 9; s.W = 4; s.H1 = 4096 + 100; s.R = 40; s.H2 = 50; s.H3 = 50; s.la = la; s.seed = 41;
    specs.push_back(s);
  }
  // One row over NZ A (ShrinkOneRowNz): fp32 x read directly (not pre-widened) with bf16
  // weights, fp16 x with an odd chunk count, bf16 x and weights over H1 > 4096.
  for (auto [xd, wd, H1, W] : std::vector<std::tuple<DType, DType, int64_t, int64_t>>{
           {DType::f32, DType::bf16, 1024, 1}, {DType::f16, DType::f16, 1040, 1}, {DType::bf16, DType::bf16, 4096 + 64, 2}}) {
    Spec s; s.B = W; s.W = W; s.H1 = H1; s.R = 40; s.H2 = 30; s.H3 = 30; s.la = Layout::fractal_nz;
    s.xd = xd; s.wd = wd; s.none_fraction = 0; s.seed = 43 + H1;
    specs.push_back(s);
  }
  { Spec s; s.B = 20; s.none_fraction = 1.0; specs.push_back(s); }  // no row has an adapter
  // Per-adapter ranks across the path choices: outer product / dot (one row, rows in pairs),
  // rank split / split-K shrink.
  for (auto [B, R, H1, H2] : std::vector<std::array<int64_t, 4>>{
           {9, 300, 64, 70}, {140, 40, 4200, 64}, {1, 512, 100, 300}, {5, 33, 2100, 40}, {30, 520, 48, 40}}) {
    Spec s;
    s.B = B; s.R = R; s.H1 = H1; s.H2 = H2; s.H3 = H2 + 3; s.y_offset = 2; s.W = 3; s.seed = B * R;
    s.per_adapter = true;
    specs.push_back(s);
    s.la = s.lb = Layout::fractal_nz;
    specs.push_back(s);
  }
  // Groups of 64 rows or more over 16-bit ND A in whole vectors: the first row block keeps the
  // A it widens and the others read it as fp32 (shrink-inl.h, kKeepA); per-adapter ranks below
  // the tensor's, split-K (70 rows: the second K chunk does not keep A), and 16-bit x and
  // weights of either kind.
  for (auto [B, W, R, H1, xd, wd] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, DType, DType>>{
           {200, 2, 40, 512, DType::f16, DType::f16}, {70, 1, 64, 4096, DType::f16, DType::f16},
           {150, 2, 33, 1024, DType::bf16, DType::f16}, {130, 1, 20, 256, DType::f16, DType::bf16}}) {
    Spec s;
    s.B = B; s.W = W; s.R = R; s.H1 = H1; s.H2 = 70; s.H3 = 70; s.xd = xd; s.wd = wd; s.none_fraction = 0;
    s.per_adapter = B == 200; s.seed = B + R;
    specs.push_back(s);
  }
  { Spec s; s.B = 5; s.slice = 0; specs.push_back(s); }              // nothing written
  for (size_t i = 0, n = specs.size(); i < n; ++i) {  // and every case through the fast alias
    specs.push_back(specs[i]);
    specs.back().precision = addlora::Precision::fast;
  }
  for_each_target([&] {
    for (const Spec& s : specs) check_case(s);
  });
}

// W = 3 adapters of exactly `group` rows each at rank R, over a short K and a ragged slice of
// H2 = 5 blocks + 13 columns at a column offset: the expand forms' shapes.
Spec group_spec(int64_t group, int64_t R, uint64_t seed) {
  Spec s;
  s.group = group; s.W = 3; s.B = s.W * group; s.none_fraction = 0;
  s.R = R; s.H1 = 40; s.H2 = 16 * 5 + 13; s.H3 = s.H2 + 9; s.y_offset = 5;
  s.seed = seed;
  return s;
}

// The expand's forms by the rows per adapter (on AVX-512: dot products with rows in fours above
// rank 64, then pairs and single rows; the column form for 13-16 rows at ranks 48 and 64; the
// row-lane form for 7, 8 and other 13-16-row tiles at ranks 17 to 128, and 17-64-row tiles at
// ranks 65 to 128; the outer product), over
// ND, row-padded ND and FRACTAL_NZ B, 16-bit and fp32 weights and
// y, in place and not, a ragged last column block, a column offset, and per-adapter ranks below
// the tensor's (the B columns past them hold NaN): within the contract's bound of the fp64 oracle.
TEST_F(PerTarget, ExpandFormsByRowsPerAdapter) {
  std::vector<Spec> specs;
  uint64_t seed = 1;
  for (int64_t group : {4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 17, 24, 33, 64, 65})
    for (int64_t R : {32, 40, 48, 64, 100, 128}) {
      Spec s = group_spec(group, R, seed++);
      const int v = static_cast<int>(s.seed % 4);
      s.lb = v == 1 ? Layout::fractal_nz : Layout::nd;
      s.row_pad = v == 2;
      s.per_adapter = v == 3;
      s.in_place = s.seed % 2 == 0;
      s.wd = s.seed % 3 == 0 ? DType::bf16 : (s.lb == Layout::nd && s.seed % 5 == 0) ? DType::f32 : DType::f16;
      s.yd = s.seed % 7 == 0 ? DType::f32 : s.seed % 3 == 1 ? DType::bf16 : DType::f16;
      s.xd = s.wd;
      specs.push_back(s);
    }
  for_each_target([&] {
    for (const Spec& s : specs) check_case(s);
  });
}

// An adapter limited to rank r of a padded [.., R, ..] tensor gives the same bits as a tensor
// of rank r (same path choices, same sums), on every target, for both precisions.  W adapters
// share the limit; with W > 1 and few rows each, the shrink takes the rank split.
TEST_F(PerTarget, LimitedRankEqualsSmallerTensor) {
  struct Shape { int64_t B, H1, H2, R, r, W; };
  for (const Shape sh : {Shape{1, 40, 50, 40, 17, 1}, Shape{5, 40, 50, 600, 8, 1}, Shape{20, 40, 50, 600, 33, 1},
                         Shape{20, 1500, 50, 64, 16, 1}, Shape{3, 70, 90, 32, 0, 1},
                         // the row-lane expand (AVX-512: 7-8 rows, 13-16 rows past rank 32)
                         Shape{8, 40, 50, 128, 40, 1}, Shape{7, 40, 50, 64, 17, 1}, Shape{14, 40, 50, 128, 100, 1},
                         // the column expand (AVX-512: 13-16 rows at ranks 48 and 64)
                         Shape{14, 40, 50, 128, 64, 1}, Shape{16, 40, 50, 64, 48, 1},
                         // rank split: 2 rows per adapter; H1 > 4096 streams x
                         Shape{8, 40, 50, 40, 17, 4}, Shape{16, 1500, 50, 64, 16, 8}, Shape{6, 4200, 30, 100, 33, 3}})
    for (auto prec : {addlora::Precision::exact, addlora::Precision::fast}) {
      SCOPED_TRACE(std::to_string(sh.B) + "x" + std::to_string(sh.R) + " r=" + std::to_string(sh.r) + " W=" +
                   std::to_string(sh.W) + (prec == addlora::Precision::fast ? " fast" : " exact"));
      Rng rng(sh.R * 131 + sh.r);
      const int64_t W = sh.W;
      std::vector<uint16_t> x = random_f16(rng, sh.B * sh.H1), y = random_f16(rng, sh.B * sh.H2);
      std::vector<uint16_t> a = random_f16(rng, W * sh.R * sh.H1), b = random_f16(rng, W * sh.H2 * sh.R);
      std::vector<uint16_t> ar(W * sh.r * sh.H1 + 1), br(W * sh.H2 * sh.r + 1);
      for (int64_t w = 0; w < W; ++w) {
        for (int64_t k = 0; k < sh.r; ++k)
          for (int64_t h = 0; h < sh.H1; ++h) ar[(w * sh.r + k) * sh.H1 + h] = a[(w * sh.R + k) * sh.H1 + h];
        for (int64_t n = 0; n < sh.H2; ++n)
          for (int64_t k = 0; k < sh.r; ++k) br[(w * sh.H2 + n) * sh.r + k] = b[(w * sh.H2 + n) * sh.R + k];
      }
      std::vector<int32_t> idx(sh.B), rank(W, static_cast<int32_t>(sh.r));
      for (int64_t i = 0; i < sh.B; ++i) idx[i] = static_cast<int32_t>(i % W);
      std::vector<float> factor(W, -1.25f);
      using addlora::TensorView;
      addlora::Arguments g;
      set_rows(&g, x, y, idx, sh.B, sh.H1, sh.H2);
      g.weight_a = TensorView::contiguous(a.data(), DType::f16, {W, 1, sh.R, sh.H1});
      g.weight_b = TensorView::contiguous(b.data(), DType::f16, {W, 1, sh.H2, sh.R});
      g.ranks = TensorView::contiguous(rank.data(), DType::i32, {W});
      g.scales = TensorView::contiguous(factor.data(), DType::f32, {W});
      g.scale = 0.375;
      g.precision = prec;
      addlora::Arguments h = g;
      h.ranks = h.scales = TensorView{};
      h.scale = 0.375 * -1.25;
      if (sh.r > 0) {
        h.weight_a = TensorView::contiguous(ar.data(), DType::f16, {W, 1, sh.r, sh.H1});
        h.weight_b = TensorView::contiguous(br.data(), DType::f16, {W, 1, sh.H2, sh.r});
      } else {
        h.scale = 0;  // rank 0: no delta at all
      }
      for_each_target([&] {
        std::vector<uint16_t> o1(y.size()), o2(y.size());
        g.out = TensorView::contiguous(o1.data(), DType::f16, {sh.B, sh.H2});
        h.out = TensorView::contiguous(o2.data(), DType::f16, {sh.B, sh.H2});
        ASSERT_EQ(addlora::add_lora(g, addlora::Rules::general), addlora::Status::ok);
        ASSERT_EQ(addlora::add_lora(h, addlora::Rules::general), addlora::Status::ok);
        EXPECT_TRUE(o1 == o2);
        if (sh.r == 0) { EXPECT_TRUE(o1 == y); }
      });
    }
}

// FRACTAL_NZ weights give the same bits as the same weights in ND, on every target and for both
// precisions: the NZ traversal (panels of columns, accumulators kept between them) must sum
// the same products in the same order.  Shapes cover several panels with a ragged end, the
// rank split (several adapters of few rows; tasks of 16 to 256 ranks) and split-K (one
// adapter, or many rows), ranks that are not multiples of 4 or 16, the outer-product and dot
// expands (one row: skewed rank groups), and per-adapter ranks.
TEST_F(PerTarget, FractalNzEqualsNdBitwise) {
  struct Shape { int64_t B, W, H1, H2, R; bool ranks; };
  for (const Shape sh : {Shape{1, 1, 4096 + 17, 300, 128, false}, Shape{8, 4, 1000, 257, 33, false},
                         Shape{40, 2, 4200, 64, 130, false}, Shape{200, 3, 700, 90, 17, true},
                         Shape{12, 3, 1500, 520, 64, true}, Shape{3, 3, 3000, 100, 130, false},
                         Shape{8, 4, 4096 + 17, 100, 40, false},  // rank split, x streamed
                         // one row, whole chunks: the chunk-major walk (ShrinkOneRowNz), with
                         // an odd chunk count, two rank groups, and (B=6 W=8) the rank split
                         Shape{1, 1, 4096, 300, 128, false}, Shape{1, 1, 1040, 200, 200, false},
                         Shape{6, 8, 2064, 100, 40, true},
                         // rank-split groups of 64, 128 and 256 ranks (dispatch.cc)
                         Shape{16, 8, 900, 100, 40, false}, Shape{16, 8, 800, 96, 100, false},
                         Shape{24, 8, 600, 80, 130, false},
                         // one row per adapter: the NZ expand's skewed rank groups
                         // (expand_nz-inl.h) with a ragged last one; the ring wrapping with 4
                         // groups; R > 512 in 8 groups wider than 64 ranks
                         Shape{2, 2, 300, 200, 500, true}, Shape{1, 1, 300, 512, 200, false},
                         Shape{1, 1, 300, 1000, 600, false},
                         // groups of 64 rows and more: ND keeps the A its first row block widens
                         // (shrink-inl.h, kKeepA), NZ reads A as it is
                         Shape{300, 2, 1024, 64, 40, true}, Shape{200, 1, 2048, 64, 64, false},
                         // 32-128 rows per task over whole 64-rank panels (AVX-512: the
                         // outer-product shrink), a ragged K and rank 128
                         Shape{300, 1, 1000 + 9, 64, 128, false}, Shape{260, 2, 600, 64, 64, false}})
    for (auto prec : {addlora::Precision::exact, addlora::Precision::fast}) {
      SCOPED_TRACE("B=" + std::to_string(sh.B) + " H1=" + std::to_string(sh.H1) + " R=" + std::to_string(sh.R) +
                   (prec == addlora::Precision::fast ? " fast" : " exact"));
      Rng rng(sh.B * 7 + sh.R);
      std::vector<uint16_t> x = random_f16(rng, sh.B * sh.H1), y = random_f16(rng, sh.B * sh.H2);
      std::vector<uint16_t> a = random_f16(rng, sh.W * sh.R * sh.H1), b = random_f16(rng, sh.W * sh.H2 * sh.R);
      std::vector<int32_t> idx(sh.B), ranks(sh.W);
      for (int64_t i = 0; i < sh.B; ++i) idx[i] = static_cast<int32_t>(rng.below(sh.W + 1)) - (i % 5 == 4);
      for (int64_t w = 0; w < sh.W; ++w) ranks[w] = static_cast<int32_t>(rng.below(sh.R + 1));
      using addlora::TensorView;
      addlora::Arguments nd;
      set_rows(&nd, x, y, idx, sh.B, sh.H1, sh.H2);
      nd.weight_a = TensorView::contiguous(a.data(), DType::f16, {sh.W, 1, sh.R, sh.H1});
      nd.weight_b = TensorView::contiguous(b.data(), DType::f16, {sh.W, 1, sh.H2, sh.R});
      if (sh.ranks) nd.ranks = TensorView::contiguous(ranks.data(), DType::i32, {sh.W});
      nd.scale = 0.75;
      nd.precision = prec;
      addlora::Arguments nz = nd;
      std::vector<uint16_t> a_nz(addlora::nz_elements(nd.weight_a.dims, 4)), b_nz(addlora::nz_elements(nd.weight_b.dims, 4));
      ASSERT_EQ(addlora::nd_to_nz(nd.weight_a, a_nz.data(), static_cast<int64_t>(a_nz.size())), addlora::Status::ok);
      ASSERT_EQ(addlora::nd_to_nz(nd.weight_b, b_nz.data(), static_cast<int64_t>(b_nz.size())), addlora::Status::ok);
      nz.weight_a.data = a_nz.data();
      nz.weight_a.layout = Layout::fractal_nz;
      nz.weight_b.data = b_nz.data();
      nz.weight_b.layout = Layout::fractal_nz;
      for_each_target([&] {
        std::vector<uint16_t> o_nd(y.size()), o_nz(y.size());
        nd.out = TensorView::contiguous(o_nd.data(), DType::f16, {sh.B, sh.H2});
        nz.out = TensorView::contiguous(o_nz.data(), DType::f16, {sh.B, sh.H2});
        ASSERT_EQ(addlora::add_lora(nd, addlora::Rules::general), addlora::Status::ok);
        ASSERT_EQ(addlora::add_lora(nz, addlora::Rules::general), addlora::Status::ok);
        EXPECT_TRUE(o_nd == o_nz);
        EXPECT_FALSE(o_nd == y);  // the deltas were added
      });
    }
}

// A row's expand sums do not depend on the tile around it in the column form (AVX-512: 13-16
// rows at ranks 48 and 64) or the outer product (17 rows and more): both run one fp32 chain per
// output over the ranks in order.  So rows 0..g-1 of an
// adapter's g-row group (column form) equal the same rows in a group of g + 4 (outer product)
// bit for bit, on every target: ND and FRACTAL_NZ B, fp16, bf16 and fp32 B and y, a ragged last
// column block and a column offset.  Values against the oracle: ExpandFormsByRowsPerAdapter.
TEST_F(PerTarget, ColumnFormEqualsOuterProductBitwise) {
  using addlora::TensorView;
  int64_t seed = 0;
  for (int64_t R : {48, 64})
    for (int64_t g : {13, 15, 16})
      for (DType yd : {DType::f32, DType::f16, DType::bf16}) {  // fp32 y: no final rounding to hide a change
        const int64_t c = seed++;  // B's dtype cycles against y's, so every pair occurs
        const int64_t bi = (c % 3 + c / 3) % 3;
        const DType bd = bi == 0 ? DType::f32 : bi == 1 ? DType::bf16 : DType::f16;
        const bool nz = bd != DType::f32 && c % 2 == 0;
        SCOPED_TRACE("R=" + std::to_string(R) + " rows=" + std::to_string(g) + (nz ? " NZ" : " ND") + " y dtype " +
                     std::to_string(static_cast<int>(yd)));
        const int64_t G = g + 4, H2 = 16 * 9 + 5, H3 = H2 + 3, off = 3;
        Rng rng(3100 + seed);
        std::vector<float> z(static_cast<size_t>(G * R));
        for (auto& e : z) e = static_cast<float>(rng.uniform(-1, 1));
        TestTensor bt = nz ? TestTensor::nz(bd, {1, 1, H2, R}) : TestTensor::nd(bd, {1, 1, H2, R});
        TestTensor yt = TestTensor::nd(yd, {G, H3});
        bt.fill_uniform(rng, -1, 1);
        yt.fill_uniform(rng, -1, 1);
        addlora::ExpandArguments e;
        e.weight_b = bt.view();
        e.scale = -0.625;
        e.y_offset = off;
        std::vector<int32_t> idx(static_cast<size_t>(G), 0);
        const auto y0 = yt.image_bytes().begin() + static_cast<std::ptrdiff_t>(yt.guard_bytes());  // y's rows
        const int64_t yes = yd == DType::f32 ? 4 : 2;
        const size_t first_rows = static_cast<size_t>(g * H3 * yes);  // rows 0..g-1
        for_each_target([&] {
          auto run = [&](int64_t rows) {  // y's first `rows` rows, updated in a copy
            std::vector<uint8_t> y(y0, y0 + static_cast<std::ptrdiff_t>(rows * H3 * yes));
            e.z = TensorView::contiguous(z.data(), DType::f32, {rows, R});
            e.indices = TensorView::contiguous(idx.data(), DType::i32, {rows});
            e.out = TensorView::contiguous(y.data(), yd, {rows, H3});
            EXPECT_EQ(addlora::expand(e), addlora::Status::ok);
            y.resize(first_rows);
            return y;
          };
          const std::vector<uint8_t> column = run(g), outer = run(G);
          const auto diff = std::mismatch(column.begin(), column.end(), outer.begin());
          EXPECT_TRUE(diff.first == column.end()) << "first differing byte " << (diff.first - column.begin());
          EXPECT_FALSE(column == std::vector<uint8_t>(y0, y0 + static_cast<std::ptrdiff_t>(first_rows)));
        });
      }
}

// The row-lane expand feeds a single row group over ND B in one of two ways, chosen by the CPU
// (work.h): each quad widened as it is read, or each block of B widened into a buffer once.  Both
// give the same bits, on every target, and the values stay within the bound of the oracle: 7
// and 8 rows per adapter at ranks 32 to 128 (and 100, which pads and takes the buffer either
// way), fp16, bf16 and fp32 B, 16-bit and fp32 y, row-padded B, in place and not, a ragged
// last column block and a column offset.
TEST_F(PerTarget, RowLaneFeedsAgreeBitwise) {
  std::vector<Spec> specs;
  uint64_t seed = 700;
  for (int64_t group : {7, 8})
    for (int64_t R : {32, 48, 64, 100, 128}) {
      Spec s = group_spec(group, R, seed++);
      s.row_pad = s.seed % 3 == 0;
      s.in_place = s.seed % 2 == 0;
      s.wd = s.seed % 3 == 1 ? DType::bf16 : s.seed % 4 == 0 ? DType::f32 : DType::f16;
      s.yd = s.seed % 5 == 0 ? DType::f32 : s.seed % 3 == 2 ? DType::bf16 : DType::f16;
      s.xd = s.wd;
      specs.push_back(s);
    }
  struct Restore {
    ~Restore() { addlora::kernels::internal::force_row_lane_feed(std::nullopt); }
  } restore;
  for_each_target([&] {
    for (const Spec& s : specs) {
      SCOPED_TRACE(s.str());
      std::vector<uint8_t> img[2];
      for (int f = 0; f < 2; ++f) {
        addlora::kernels::internal::force_row_lane_feed(f == 1);
        Case c(s);
        const addlora::ref::Expected e = addlora::ref::compute(c.args());  // before y may be overwritten
        std::string failure;
        img[f] = run(c, &failure);
        ASSERT_EQ(failure, "");
        const auto res = addlora::ref::check_out(e, c.out_tensor().view(), 8);
        EXPECT_TRUE(res.ok) << "feed " << f << ": " << res.bad << " bad elements\n" << res.report;
      }
      EXPECT_TRUE(img[0] == img[1]);
    }
  });
}

// A shrink task of 64 rows or more keeps the A its first row block widens in the thread's
// scratch (shrink-inl.h, kKeepA); without scratch it reads A as it is.  Both give the same bits,
// on every target, at 1 and 2 threads, for fp16 and bf16 weights, fp16 and fp32 x, per-adapter
// ranks, and groups whose last row block has 1, 2, 4 or 6 rows (73, 128 + 2, 100, 200 / 2).
TEST_F(PerTarget, KeptAEqualsUnkeptBitwise) {
  struct Shape { int64_t B, W, H1, R; DType wd; bool ranks; bool x32; };
  for (const Shape sh : {Shape{130, 1, 4096, 64, DType::f16, false, false}, Shape{200, 2, 1024, 40, DType::f16, true, false},
                         Shape{100, 1, 512, 17, DType::bf16, false, false}, Shape{73, 1, 768, 24, DType::f16, false, true}}) {
    SCOPED_TRACE("B=" + std::to_string(sh.B) + " H1=" + std::to_string(sh.H1) + " R=" + std::to_string(sh.R));
    const int64_t H2 = 96;
    Rng rng(sh.B + sh.R);
    std::vector<uint16_t> x = random_f16(rng, sh.B * sh.H1), y = random_f16(rng, sh.B * H2);
    std::vector<uint16_t> a(sh.W * sh.R * sh.H1), b = random_f16(rng, sh.W * H2 * sh.R);
    for (auto& e : a)
      e = static_cast<uint16_t>(addlora::ref::encode(rng.uniform(-1, 1), sh.wd));
    std::vector<int32_t> idx(sh.B), ranks(sh.W);
    for (int64_t i = 0; i < sh.B; ++i) idx[i] = static_cast<int32_t>(i % sh.W);
    for (int64_t w = 0; w < sh.W; ++w) ranks[w] = static_cast<int32_t>(sh.R - 3 * w);
    addlora::Arguments g;
    set_rows(&g, x, y, idx, sh.B, sh.H1, H2);
    std::vector<float> x32(x.size());
    for (auto& e : x32) e = static_cast<float>(rng.uniform(-1, 1));
    if (sh.x32) g.x = addlora::TensorView::contiguous(x32.data(), DType::f32, {sh.B, sh.H1});
    g.weight_a = addlora::TensorView::contiguous(a.data(), sh.wd, {sh.W, 1, sh.R, sh.H1});
    g.weight_b = addlora::TensorView::contiguous(b.data(), DType::f16, {sh.W, 1, H2, sh.R});
    if (sh.ranks) g.ranks = addlora::TensorView::contiguous(ranks.data(), DType::i32, {sh.W});
    g.scale = 0.5;
    const int saved = addlora::num_threads();
    for_each_target([&] {
      auto run = [&](bool refuse, int threads) {
        std::vector<uint16_t> o(y.size());
        g.out = addlora::TensorView::contiguous(o.data(), DType::f16, {sh.B, H2});
        addlora::set_num_threads(threads);
        addlora::kernels::internal::refuse_thread_scratch(refuse);
        const addlora::Status st = addlora::add_lora(g, addlora::Rules::general);
        addlora::kernels::internal::refuse_thread_scratch(false);
        EXPECT_EQ(st, addlora::Status::ok);
        return o;
      };
      const std::vector<uint16_t> kept = run(false, 1);
      EXPECT_FALSE(kept == y);  // the deltas were added
      EXPECT_TRUE(run(true, 1) == kept);
      EXPECT_TRUE(run(true, 2) == kept);
      EXPECT_TRUE(run(false, 2) == kept);
    });
    addlora::set_num_threads(saved);
  }
}

// Adapters of rank 16, 32 and 64 with one to three rows: the expand's run forms (rank 16 row
// by row, ND B of pitch 16 or FRACTAL_NZ; two rows at once over ND B whose pitch is the rank),
// the pointer chains (ND B of twice the pitch, ranks limited; NZ at 32 and 64), and the outer
// product (three rows at rank 16) must give the same bits, and the fp64 oracle's values, on
// every target.
TEST_F(PerTarget, SmallRankRowsAgreeAcrossPitchesAndLayouts) {
  for (int64_t rank : {16, 32, 64}) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    const int64_t B = 12, W = 5, H1 = 300, H2 = 2 * 16 * 16 + 7;  // a ragged last column block
    const int64_t R2 = 2 * rank;
    Rng rng(1600 + rank);
    std::vector<uint16_t> x = random_f16(rng, B * H1), y = random_f16(rng, B * H2);
    std::vector<int32_t> idx = {0, 1, 1, 2, 2, 2, 3, 3, -1, 4, 0, 4};  // 1-3 rows per adapter
    std::vector<uint16_t> a2 = random_f16(rng, W * R2 * H1), b2 = random_f16(rng, W * H2 * R2);
    std::vector<uint16_t> a1(W * rank * H1), b1(W * H2 * rank);
    for (int64_t w = 0; w < W; ++w) {  // the rank-wide tensors: the first ranks of the wider ones
      for (int64_t r = 0; r < rank; ++r)
        for (int64_t h = 0; h < H1; ++h) a1[(w * rank + r) * H1 + h] = a2[(w * R2 + r) * H1 + h];
      for (int64_t n = 0; n < H2; ++n)
        for (int64_t r = 0; r < rank; ++r) b1[(w * H2 + n) * rank + r] = b2[(w * H2 + n) * R2 + r];
    }
    std::vector<int32_t> ranks(W, static_cast<int32_t>(rank));
    using addlora::TensorView;
    auto args = [&](std::vector<uint16_t>& a, std::vector<uint16_t>& b, int64_t R) {
      addlora::Arguments g;
      set_rows(&g, x, y, idx, B, H1, H2);
      g.weight_a = TensorView::contiguous(a.data(), DType::f16, {W, 1, R, H1});
      g.weight_b = TensorView::contiguous(b.data(), DType::f16, {W, 1, H2, R});
      if (R != rank) g.ranks = TensorView::contiguous(ranks.data(), DType::i32, {W});
      g.scale = 0.5;
      return g;
    };
    std::vector<addlora::Arguments> forms = {args(a1, b1, rank), args(a2, b2, R2)};
    std::vector<std::vector<uint16_t>> nz_store;
    nz_store.reserve(4);
    for (int k = 0; k < 2; ++k) {  // both again with NZ weights
      addlora::Arguments g = forms[k];
      for (TensorView* t : {&g.weight_a, &g.weight_b}) {
        nz_store.emplace_back(addlora::nz_elements(t->dims, 4));
        ASSERT_EQ(addlora::nd_to_nz(*t, nz_store.back().data(), static_cast<int64_t>(nz_store.back().size())),
                  addlora::Status::ok);
        t->data = nz_store.back().data();
        t->layout = Layout::fractal_nz;
      }
      forms.push_back(g);
    }
    for_each_target([&] {
      std::vector<std::vector<uint16_t>> outs;
      for (addlora::Arguments& g : forms) {
        outs.emplace_back(y.size());
        g.out = TensorView::contiguous(outs.back().data(), DType::f16, {B, H2});
        ASSERT_EQ(addlora::add_lora(g, addlora::Rules::general), addlora::Status::ok);
      }
      const auto res = addlora::ref::check_out(addlora::ref::compute(forms[0]), forms[0].out);  // the fp64 oracle
      EXPECT_TRUE(res.ok) << res.report;
      for (size_t k = 1; k < outs.size(); ++k) EXPECT_TRUE(outs[k] == outs[0]) << "form " << k;
    });
  }
}

// The fp64 oracle of a shrink without scale: exact[b * R + r] = sum over h of x[b, h] *
// a[idx[b], 0, r, h], and magnitude the same sum of |products| (the contract's M).
void shrink_oracle(const addlora::TensorView& x, const addlora::TensorView& a, const std::vector<int32_t>& idx,
                   std::vector<double>* exact, std::vector<double>* magnitude) {
  const int64_t B = static_cast<int64_t>(idx.size()), R = a.dims[2], H1 = a.dims[3];
  exact->assign(B * R, 0.0);
  magnitude->assign(B * R, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t h = 0; h < H1; ++h) {
        const double p = addlora::ref::load(x, {b, h}) * addlora::ref::load(a, {idx[b], 0, r, h});
        (*exact)[b * R + r] += p;
        (*magnitude)[b * R + r] += std::fabs(p);
      }
}

// One adapter's group of 1 to 16 rows takes different shrink blocks by its size (on AVX-512:
// one row widens x first, two rows in address order read it as it is; three to six convert x
// in the FMA loop; seven or eight run as
// one block of eight rows by three ranks, the last with one or two ranks; more, blocks of six;
// AVX2 converts from two rows on and has no 8 x 3 block), over ND and FRACTAL_NZ A, with K a
// whole number of fold segments, an odd number of vectors, or ragged.  Each row's z must equal,
// bit for bit, the z of that row alone, and the fp64 sum within the contract's bound.  A row
// alone over ND A of whole fold segments reads A in address order (ShrinkRowsNd; H1 of 2048,
// 3072 and 4096: two, three and four segments on AVX-512); at H1 = 4096 and R <= 16 (two K
// chunks) one or two rows take half the ranks over both chunks per task, where more rows take
// one chunk of every rank.  (Up to 16 rows are one row tile: the K chunks, and so the fold
// boundaries, do not depend on the rows.)
TEST_F(PerTarget, ShrinkBlocksAgreeAcrossGroupSizes) {
  using addlora::TensorView;
  for (int64_t H1 : {2048, 1008, 1000, 3072, 4096})
    for (int64_t R : {14, 16, 20, 64}) {
      SCOPED_TRACE("H1 " + std::to_string(H1) + " R " + std::to_string(R));
      const int64_t W = 2, kMaxRows = 16;
      Rng rng(1700 + H1 + R);
      std::vector<uint16_t> x = random_f16(rng, kMaxRows * H1), a = random_f16(rng, W * R * H1);
      const TensorView a_nd_view = TensorView::contiguous(a.data(), DType::f16, {W, 1, R, H1});
      const TensorView x_view = TensorView::contiguous(x.data(), DType::f16, {kMaxRows, H1});
      std::vector<uint16_t> a_nz(addlora::nz_elements(a_nd_view.dims, 4));
      ASSERT_EQ(addlora::nd_to_nz(a_nd_view, a_nz.data(), static_cast<int64_t>(a_nz.size())), addlora::Status::ok);
      std::vector<int32_t> idx(kMaxRows, 1);
      std::vector<double> exact, magnitude;
      shrink_oracle(x_view, a_nd_view, idx, &exact, &magnitude);
      auto run = [&](int64_t row0, int64_t rows, bool nz, float* z) {
        addlora::ShrinkArguments s;
        s.x = TensorView::contiguous(x.data() + row0 * H1, DType::f16, {rows, H1});
        s.weight_a = a_nd_view;
        if (nz) {
          s.weight_a.data = a_nz.data();
          s.weight_a.layout = Layout::fractal_nz;
        }
        s.indices = TensorView::contiguous(idx.data(), DType::i32, {rows});
        s.z = TensorView::contiguous(z, DType::f32, {rows, R});
        std::string msg;
        ASSERT_EQ(addlora::shrink(s, &msg), addlora::Status::ok) << msg;
      };
      for_each_target([&] {
        std::vector<float> alone(kMaxRows * R);
        for (int64_t b = 0; b < kMaxRows; ++b) run(b, 1, false, &alone[b * R]);
        for (int64_t n = 0; n < kMaxRows * R; ++n)
          ASSERT_TRUE(addlora::ref::within_target(alone[n], exact[n], magnitude[n], DType::f32))
              << "row " << n / R << " rank " << n % R << ": " << alone[n] << " vs " << exact[n];
        for (int64_t rows = 1; rows <= kMaxRows; ++rows)
          for (bool nz : {false, true}) {
            std::vector<float> z(rows * R);
            run(0, rows, nz, z.data());
            EXPECT_EQ(std::memcmp(z.data(), alone.data(), z.size() * sizeof(float)), 0) << rows << " rows, nz " << nz;
          }
      });
    }
}

// Two rows per adapter over ND A of whole fold segments read the caller's 16-bit x rows in the
// address-order shrink (ShrinkRowsNd on AVX-512; bf16 there takes vdpbf16ps where the CPU has
// it, whose two-row walk is in bf16_dot_test), here rows padded past H1 (a row stride that is
// not H1): one adapter (at rank 16 and H1 = 4096 split-K with shares of the ranks over both
// chunks; at H1 = 8192 chunk tasks that start past column 0) and four (the rank split), fp16
// and bf16, within the contract's bound of the fp64 oracle on every target.
TEST_F(PerTarget, TwoRowShrinkOverPaddedRows) {
  std::vector<Spec> specs;
  uint64_t seed = 900;
  for (int64_t H1 : {2048, 4096, 8192})
    for (int64_t R : {16, 64})
      for (int64_t W : {1, 4})
        for (DType d : {DType::f16, DType::bf16}) {
          if (H1 == 8192 && (R != 16 || W != 1)) continue;  // the chunk tasks only
          Spec s;
          s.group = 2; s.W = W; s.B = 2 * W; s.none_fraction = 0;
          s.R = R; s.H1 = H1; s.H2 = 40; s.H3 = 44; s.y_offset = 3;
          s.row_pad = true;
          s.xd = s.wd = s.yd = d;
          s.seed = seed++;
          specs.push_back(s);
        }
  for_each_target([&] {
    for (const Spec& s : specs) check_case(s);
  });
}

// On AVX-512, groups of 7 or 8 rows run as 8 x 3 blocks (elsewhere as 6 + 1-2 rows; over 3k + 1
// ranks, R = 16 and 64, the last four ranks as two 8 x 2 blocks); over 64
// ranks or more and x rows a multiple of 4 KiB apart (H1 = 2048, 4096) such a block first
// copies the rows' columns into padded rows (ShrinkTask).  Two forms reach it: eight adapters
// of 7-8 rows each, rows interleaved (rank split: each task all of K, its ranks whole), and one
// 8-row adapter beside a 16-row one (split-K: a task's K chunk starts at column 2048 when H1 =
// 4096); and one 8-row adapter alone (rank split into groups that start past rank 0).  Each
// row's z must equal, bit for bit, that row's z alone, and the fp64 sum within the contract's
// bound.  H1 = 1000 takes no copy.
TEST_F(PerTarget, ShrinkEightRowGroupsOverManyAdapters) {
  using addlora::TensorView;
  for (int64_t H1 : {2048, 4096, 1000})
    for (int64_t R : {16, 64, 128})
      for (int64_t form : {8, 7, 0, 1}) {  // the last of 8 adapters has 8 or 7 rows; 0: 8 + 16 rows over 2; 1: 8 rows
        SCOPED_TRACE("H1 " + std::to_string(H1) + " R " + std::to_string(R) + " form " + std::to_string(form));
        const int64_t W = form == 1 ? 1 : form ? 8 : 2, B = form == 1 ? 8 : form ? 7 * W + form : 24;
        Rng rng(1900 + H1 + R + form);
        std::vector<uint16_t> x = random_f16(rng, B * H1), a = random_f16(rng, W * R * H1);
        const TensorView a_view = TensorView::contiguous(a.data(), DType::f16, {W, 1, R, H1});
        const TensorView x_view = TensorView::contiguous(x.data(), DType::f16, {B, H1});
        std::vector<int32_t> idx(B);
        for (int64_t b = 0; b < B; ++b) idx[b] = static_cast<int32_t>(form ? b % W : b % 3 == 0);  // form 0: 8 rows on adapter 1
        std::vector<double> exact, magnitude;
        shrink_oracle(x_view, a_view, idx, &exact, &magnitude);
        auto run = [&](int64_t row0, int64_t rows, const int32_t* ix, float* z) {
          addlora::ShrinkArguments s;
          s.x = TensorView::contiguous(x.data() + row0 * H1, DType::f16, {rows, H1});
          s.weight_a = a_view;
          s.indices = TensorView::contiguous(const_cast<int32_t*>(ix), DType::i32, {rows});
          s.z = TensorView::contiguous(z, DType::f32, {rows, R});
          std::string msg;
          ASSERT_EQ(addlora::shrink(s, &msg), addlora::Status::ok) << msg;
        };
        for_each_target([&] {
          std::vector<float> all(B * R), alone(B * R);
          run(0, B, idx.data(), all.data());
          for (int64_t b = 0; b < B; ++b) run(b, 1, &idx[b], &alone[b * R]);
          for (int64_t n = 0; n < B * R; ++n) {
            ASSERT_TRUE(addlora::ref::within_target(all[n], exact[n], magnitude[n], DType::f32))
                << "row " << n / R << " rank " << n % R << ": " << all[n] << " vs " << exact[n];
            ASSERT_EQ(std::memcmp(&all[n], &alone[n], sizeof(float)), 0) << "row " << n / R << " rank " << n % R;
          }
        });
      }
}

// Multi-slice (one call, rows grouped once, the slices' tasks in shared parallel regions)
// gives the same bits as consecutive single calls, when the slices differ in everything they
// may: adapter count W (an index can be valid for one slice and not another), rank, per-adapter
// ranks and scales, weight A or none, NZ or ND, widths.  Also with more slices than run in one
// fused batch, with a column-strided slice (the portable path), and with 1 and 2 threads.
TEST_F(PerTarget, MultiSliceEqualsConsecutiveCalls) {
  struct SliceSpec { int64_t W, R, H2; bool has_a, nz, ranks; };
  const std::vector<std::vector<SliceSpec>> calls = {
      {{4, 16, 64, true, false, false}, {2, 16, 32, true, false, false}, {3, 24, 40, true, true, true}},
      {{1, 130, 300, true, false, true}, {5, 8, 20, true, true, false}, {3, 0, 17, false, false, false}},
      {{2, 16, 16, true, false, false}, {2, 32, 16, true, false, false}, {4, 16, 16, true, true, false},
       {1, 4, 16, true, false, false},  {3, 16, 16, true, false, true},  {2, 16, 16, false, false, false},
       {2, 64, 16, true, false, false}, {5, 16, 16, true, true, true},   {2, 20, 16, true, false, false},
       {3, 16, 33, true, false, false}}};  // 10 slices: two fused batches
  const int saved = addlora::num_threads();
  int combo = 0;
  for (size_t call_no = 0; call_no < calls.size(); ++call_no)
    for (const int64_t B : {1, 9, 150})
      for (auto prec : {addlora::Precision::exact, addlora::Precision::fast})
        for (const bool strided : {false, true}) {
          const auto& call = calls[call_no];
          SCOPED_TRACE("call " + std::to_string(call_no) + " B=" + std::to_string(B) + (strided ? " strided" : "") +
                       (prec == addlora::Precision::fast ? " fast" : " exact"));
          const int64_t H1 = 4200, n = static_cast<int64_t>(call.size());  // two K chunks
          int64_t H3 = 5;
          for (const SliceSpec& c : call) H3 += c.H2;
          Rng rng(B * 31 + combo);
          std::vector<uint16_t> x = random_f16(rng, B * H1), y = random_f16(rng, B * H3);
          std::vector<int32_t> idx(B);
          // -1 .. 5, valid for some slices only; adapter 0 only on row 0, so a slice with W = 1
          // has one small group (split-K, one adapter) while at B = 9 the others have several
          // small ones (rank split) and at B = 150 large ones (split-K).
          for (auto& i : idx) i = std::max<int32_t>(1, static_cast<int32_t>(rng.below(6))) - (rng.below(6) == 0 ? 2 : 0);
          idx[0] = 0;
          std::vector<std::vector<uint16_t>> a(n), b(n), a_nz(n), b_nz(n);
          std::vector<std::vector<int32_t>> ranks(n);
          std::vector<std::vector<float>> scales(n);
          std::vector<addlora::Arguments> slices(n);
          using addlora::TensorView;
          int64_t off = 2;
          for (int64_t k = 0; k < n; ++k) {
            const SliceSpec& c = call[k];
            const int64_t R = c.has_a ? c.R : H1;
            addlora::Arguments& g = slices[k];
            set_rows(&g, x, y, idx, B, H1, H3);
            b[k] = random_f16(rng, c.W * c.H2 * R);
            g.weight_b = TensorView::contiguous(b[k].data(), DType::f16, {c.W, 1, c.H2, R});
            if (c.has_a) {
              a[k] = random_f16(rng, c.W * R * H1);
              g.weight_a = TensorView::contiguous(a[k].data(), DType::f16, {c.W, 1, R, H1});
            }
            if (c.nz) {
              a_nz[k].resize(addlora::nz_elements(g.weight_a.dims, 4));
              b_nz[k].resize(addlora::nz_elements(g.weight_b.dims, 4));
              ASSERT_EQ(addlora::nd_to_nz(g.weight_a, a_nz[k].data(), a_nz[k].size()), addlora::Status::ok);
              ASSERT_EQ(addlora::nd_to_nz(g.weight_b, b_nz[k].data(), b_nz[k].size()), addlora::Status::ok);
              g.weight_a.data = a_nz[k].data();
              g.weight_a.layout = g.weight_b.layout = Layout::fractal_nz;
              g.weight_b.data = b_nz[k].data();
            }
            if (c.ranks) {
              for (int64_t w = 0; w < c.W; ++w) {
                ranks[k].push_back(static_cast<int32_t>(rng.below(R + 1)));
                scales[k].push_back(static_cast<float>(rng.uniform(-2, 2)));
              }
              g.ranks = TensorView::contiguous(ranks[k].data(), DType::i32, {c.W});
              g.scales = TensorView::contiguous(scales[k].data(), DType::f32, {c.W});
            }
            if (strided && k == 1) {  // every other element of a doubled B: column stride 2
              b[k].resize(2 * b[k].size());
              for (int64_t i = c.W * c.H2 * R - 1; i >= 0; --i) b[k][2 * i] = b[k][i];
              g.weight_b = TensorView::contiguous(b[k].data(), DType::f16, {c.W, 1, c.H2, R});
              for (int d = 0; d < 4; ++d) g.weight_b.strides[d] *= 2;
              g.weight_b.strides[3] = 2;
              g.weight_b.storage_elems = static_cast<int64_t>(b[k].size());
              g.weight_b.layout = Layout::nd;
            }
            g.scale = 0.1 * (k + 1);
            g.precision = prec;
            g.y_offset = off;
            off += c.H2;
          }
          for_each_target([&] {
            for (int threads : {1, 2}) {
              addlora::set_num_threads(threads);
              std::vector<uint16_t> o_multi(y.size()), o_single(y.size());
              for (auto& g : slices) g.out = TensorView::contiguous(o_multi.data(), DType::f16, {B, H3});
              std::string msg;
              ASSERT_EQ(addlora::add_lora(slices.data(), slices.size(), addlora::Rules::general, &msg),
                        addlora::Status::ok) << msg;
              for (int64_t k = 0; k < n; ++k) {
                addlora::Arguments g = slices[k];
                g.out = TensorView::contiguous(o_single.data(), DType::f16, {B, H3});
                if (k > 0) g.y = g.out;  // later calls update the first one's output
                ASSERT_EQ(addlora::add_lora(g, addlora::Rules::general, &msg), addlora::Status::ok) << msg;
              }
              EXPECT_TRUE(o_multi == o_single) << "threads " << threads;
              EXPECT_FALSE(o_multi == y);
            }
          });
          ++combo;
        }
  addlora::set_num_threads(saved);
}

// The result does not depend on the thread count (split-K partials combine in a fixed order).
TEST(Threads, BitwiseIdenticalAcrossThreadCounts) {
  const int saved = addlora::num_threads();
  std::vector<Spec> specs;
  { Spec s; s.B = 1; s.H1 = 4096; s.H2 = 1024; s.H3 = 1024; s.R = 64; s.W = 1; s.none_fraction = 0; specs.push_back(s); }
  { Spec s; s.B = 1; s.H1 = 4096; s.H2 = 512; s.H3 = 512; s.R = 16; s.W = 1; s.none_fraction = 0; s.seed = 6; specs.push_back(s); }  // split-K decode
  { Spec s; s.B = 300; s.H1 = 1000; s.H2 = 700; s.H3 = 720; s.y_offset = 7; s.R = 48; s.W = 5; s.seed = 3; specs.push_back(s); }
  { Spec s; s.B = 37; s.H1 = 4200; s.H2 = 333; s.H3 = 333; s.R = 130; s.W = 4; s.in_place = true; s.seed = 4;
    s.xd = DType::bf16; s.yd = DType::f32; specs.push_back(s); }
  { Spec s; s.B = 16; s.H1 = 3000; s.H2 = 500; s.H3 = 500; s.R = 64; s.W = 8; s.seed = 5; specs.push_back(s); }  // rank split
  // 32-128 rows per task over rank 64 and 128 (ragged K): the outer-product shrink on AVX-512
  { Spec s; s.B = 330; s.H1 = 1000; s.H2 = 200; s.H3 = 200; s.R = 64; s.W = 2; s.none_fraction = 0.05; s.seed = 8;
    specs.push_back(s); }
  { Spec s; s.B = 100; s.H1 = 4200; s.H2 = 100; s.H3 = 100; s.R = 128; s.W = 2; s.none_fraction = 0; s.seed = 9;
    s.xd = DType::bf16; s.wd = DType::bf16; specs.push_back(s); }
  for (size_t i = 0, n = specs.size(); i < n; ++i) {
    specs.push_back(specs[i]);
    specs.back().precision = addlora::Precision::fast;
  }
  for (const Spec& s : specs) {
    SCOPED_TRACE(s.str());
    std::vector<uint8_t> first;
    for (int t : {1, 2, 3, 7}) {
      addlora::set_num_threads(t);
      EXPECT_EQ(addlora::num_threads(), t);
      Case c(s);  // same seed: identical inputs
      std::string failure;
      const std::vector<uint8_t> img = run(c, &failure);
      ASSERT_EQ(failure, "");
      if (first.empty()) first = img;
      else EXPECT_TRUE(img == first) << "threads=" << t << " differs from threads=1";
      // and repeatable: a second run on the same inputs gives the same bits (out of place)
      if (!s.in_place) {
        const std::vector<uint8_t> again = run(c, &failure);
        EXPECT_TRUE(again == img) << "second run differs, threads=" << t;
      }
    }
  }
  addlora::set_num_threads(saved);
}

// Several callers at once while the pool is resized: every result still equals the
// single-threaded one bit for bit (the pool serialises jobs; resizing waits for them).
TEST(Threads, ConcurrentCallersWhileResizing) {
  const int saved = addlora::num_threads();
  Spec s;
  s.B = 40; s.H1 = 1500; s.H2 = 300; s.H3 = 310; s.R = 24; s.W = 3; s.seed = 9;
  addlora::set_num_threads(1);
  std::string failure;
  Case ref_case(s);
  const std::vector<uint8_t> expected = run(ref_case, &failure);
  ASSERT_EQ(failure, "");
  std::atomic<bool> stop{false};
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 2; ++t)
    callers.emplace_back([&] {
      Case c(s);
      for (int i = 0; i < 15; ++i) {
        std::string f;
        if (run(c, &f) != expected) ++mismatches;
        if (!f.empty()) ++failures;
      }
    });
  std::thread resizer([&] {
    for (int n = 0; !stop; ++n) addlora::set_num_threads(1 + n % 3);
  });
  for (auto& t : callers) t.join();
  stop = true;
  resizer.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  addlora::set_num_threads(saved);
}

TEST(Dispatch, ReportsACompiledTarget) {
  const auto targets = addlora::kernels::internal::available_simd_targets();
  const std::string chosen = addlora::simd_target();
  bool found = false;
  for (const auto& t : targets) found |= t == chosen;
  EXPECT_TRUE(found) << chosen;
  // Unknown names are refused and leave the choice alone.
  EXPECT_FALSE(addlora::kernels::internal::force_simd_target("NOT_A_TARGET"));
  EXPECT_EQ(std::string(addlora::simd_target()), chosen);
  // The baseline is always there, under either name.
  EXPECT_TRUE(addlora::kernels::internal::force_simd_target("EMU128"));
  EXPECT_EQ(std::string(addlora::simd_target()), targets.back());
  addlora::kernels::internal::force_simd_target(nullptr);
}

}  // namespace

namespace {
// Run by ctest with ADDLORA_SIMD_TARGET set (see CMakeLists.txt); a no-op otherwise.
TEST(Dispatch, EnvironmentForcesTarget) {
  const char* want = std::getenv("ADDLORA_EXPECT_TARGET");
  if (!want) GTEST_SKIP() << "ADDLORA_EXPECT_TARGET not set";
  // BASELINE: the portable target of this build (SCALAR with GCC < 12.3, EMU128 otherwise).
  const std::string expected =
      std::string(want) == "BASELINE" ? addlora::kernels::internal::available_simd_targets().back() : want;
  EXPECT_EQ(std::string(addlora::simd_target()), expected);
}
}  // namespace
