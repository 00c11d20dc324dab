// The bf16 x bf16 shrink through vdpbf16ps (src/kernels/shrink_bf16.h), on CPUs with
// AVX512_BF16 and the AVX3 target (skipped elsewhere; turned on where the CPU's default is the
// FMA path): against the fp64 oracle with the
// contract's bound over ragged shapes (H1 up to 131072, R up to 512, ND and FRACTAL_NZ A),
// subnormal and tiny bf16 inputs (which vdpbf16ps would flush: the path must screen them out),
// NZ A bitwise equal to ND A, bitwise identical for 1/2/3 threads, and proof that the path ran.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "addlora/addlora.h"
#include "kernels/shrink_bf16.h"
#include "kernels/work.h"
#include "reference/check.h"
#include "reference/reference.h"
#include "reference/testdata.h"

namespace {

using addlora::DType;
using addlora::Layout;
using addlora::TensorView;
using addlora::ref::Rng;
namespace internal = addlora::kernels::internal;

struct Shape {
  int64_t B, W, H1, H2, R;
  bool per_adapter_ranks = false;
};

uint16_t bf16(double v) { return static_cast<uint16_t>(addlora::ref::encode(v, DType::bf16)); }

// One problem: bf16 x, A and B, y/out of dtype yd; A as ND and as FRACTAL_NZ (same values).
struct Problem {
  Shape s;
  DType yd;
  std::vector<uint16_t> x, a, a_nz, b;
  std::vector<uint8_t> y;
  std::vector<int32_t> idx, ranks;
  explicit Problem(const Shape& sh, DType ydt, uint64_t seed) : s(sh), yd(ydt) {
    Rng rng(seed);
    auto fill = [&](std::vector<uint16_t>& v, int64_t n) {
      v.resize(static_cast<size_t>(n));
      for (auto& e : v) e = bf16(rng.uniform(-1, 1));
    };
    fill(x, s.B * s.H1);
    fill(a, s.W * s.R * s.H1);
    fill(b, s.W * s.H2 * s.R);
    const size_t yes = yd == DType::f32 ? 4 : 2;
    y.resize(static_cast<size_t>(s.B * s.H2) * yes);
    for (int64_t i = 0; i < s.B * s.H2; ++i) {
      const uint64_t bits = addlora::ref::encode(rng.uniform(-1, 1), yd);
      std::memcpy(&y[static_cast<size_t>(i) * yes], &bits, yes);  // little endian
    }
    idx.resize(static_cast<size_t>(s.B));
    for (int64_t i = 0; i < s.B; ++i) idx[i] = static_cast<int32_t>(rng.below(s.W + 1)) - (i % 7 == 6);
    idx[0] = 0;  // at least one row with an adapter
    ranks.resize(static_cast<size_t>(s.W));
    for (auto& r : ranks) r = static_cast<int32_t>(rng.below(s.R + 1));
    ranks[0] = static_cast<int32_t>(s.R);
  }
  void pack_nz() {
    const TensorView nd = TensorView::contiguous(a.data(), DType::bf16, {s.W, 1, s.R, s.H1});
    a_nz.assign(static_cast<size_t>(addlora::nz_elements(nd.dims, 4)), 0);
    ASSERT_EQ(addlora::nd_to_nz(nd, a_nz.data(), static_cast<int64_t>(a_nz.size())), addlora::Status::ok);
  }
  addlora::Arguments args(bool nz, void* out) {
    addlora::Arguments g;
    g.x = TensorView::contiguous(x.data(), DType::bf16, {s.B, s.H1});
    g.y = TensorView::contiguous(y.data(), yd, {s.B, s.H2});
    g.indices = TensorView::contiguous(idx.data(), DType::i32, {s.B});
    g.weight_a = TensorView::contiguous(a.data(), DType::bf16, {s.W, 1, s.R, s.H1});
    if (nz) {
      if (a_nz.empty()) pack_nz();
      g.weight_a.data = a_nz.data();
      g.weight_a.layout = Layout::fractal_nz;
    }
    g.weight_b = TensorView::contiguous(b.data(), DType::bf16, {s.W, 1, s.H2, s.R});
    if (s.per_adapter_ranks) g.ranks = TensorView::contiguous(ranks.data(), DType::i32, {s.W});
    g.scale = addlora::ref::balanced_scale(s.H1, s.R, true);
    g.out = TensorView::contiguous(out, yd, {s.B, s.H2});
    g.precision = addlora::Precision::exact;
    return g;
  }
  // Runs the problem; returns out's bytes and checks them against the oracle.
  std::vector<uint8_t> run_and_check(bool nz) {
    std::vector<uint8_t> out(y.size(), 0xcd);
    addlora::Arguments g = args(nz, out.data());
    const addlora::ref::Expected e = addlora::ref::compute(g);
    EXPECT_EQ(addlora::add_lora(g, addlora::Rules::general), addlora::Status::ok);
    const auto res = addlora::ref::check_out(e, g.out, 8);
    EXPECT_TRUE(res.ok) << res.bad << " bad elements, max " << res.max_err_ulps << " ulp\n" << res.report;
    return out;
  }
};

std::string name(const Shape& s, bool nz) {
  return "B=" + std::to_string(s.B) + " W=" + std::to_string(s.W) + " H1=" + std::to_string(s.H1) +
         " H2=" + std::to_string(s.H2) + " R=" + std::to_string(s.R) + (s.per_adapter_ranks ? " ranks" : "") +
         (nz ? " NZ" : " ND");
}

class Bf16Dot : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_threads_ = addlora::num_threads();
    if (!internal::force_simd_target("AVX3")) GTEST_SKIP() << "no AVX3 target on this CPU";
    if (!internal::bf16_dot_supported()) GTEST_SKIP() << "no AVX512_BF16 on this CPU";
    internal::set_bf16_dot_enabled(true);  // also where the CPU's default is the FMA path
  }
  void TearDown() override {
    internal::force_simd_target(nullptr);
    internal::reset_bf16_dot();
    addlora::set_num_threads(saved_threads_);
  }
  int saved_threads_ = 1;
};

// Ragged shapes: K chunks not a multiple of 32 columns (a lone 16-column step), ragged H1 ends,
// split-K and the rank split, rows 1..6 in the last block, R up to 512, H1 up to 131072; and
// decode-sized groups over whole fold segments.
const std::vector<Shape>& Shapes() {
  static const std::vector<Shape> v = {
      {1, 1, 16, 20, 1},        {1, 1, 17, 33, 5},        {3, 2, 31, 40, 7},       {7, 3, 33, 64, 16},
      {13, 2, 1000, 100, 33},   {5, 1, 1024, 64, 4},      {40, 3, 1040, 90, 64},   {300, 4, 4200, 130, 48},
      {64, 2, 4096, 256, 128},  {130, 1, 4096 + 17, 70, 130}, {17, 5, 3000, 100, 512, true},
      {2, 2, 5000, 64, 130, true}, {16, 8, 900, 100, 40},  {24, 8, 600, 80, 130},   // rank split
      {1, 1, 131072, 40, 24},   {6, 2, 65536 + 48, 50, 20}, {3, 1, 131072 - 5, 30, 64},
      {9, 1, 100, 16, 4100},  // more ranks than a task keeps screening bits for
      // one or two rows per adapter over whole fold segments: A in address order (two, three
      // and four segments per task; at H1 = 8192 and rank 16, split-K chunks past column 0)
      {2, 1, 4096, 64, 40},     {8, 4, 2048, 64, 24},    {5, 3, 3072, 50, 130},  {2, 1, 8192, 40, 16},
  };
  return v;
}

TEST_F(Bf16Dot, AgainstOracleNdAndNzAndPathRan) {
  int n = 0;
  for (const Shape& s : Shapes())
    for (bool nz : {false, true}) {
      SCOPED_TRACE(name(s, nz));
      Problem p(s, n % 3 == 0 ? DType::bf16 : n % 3 == 1 ? DType::f32 : DType::f16, 100 + n);
      ++n;
      const uint64_t before = internal::bf16_dot_tasks();
      p.run_and_check(nz);
      EXPECT_GT(internal::bf16_dot_tasks(), before) << "the vdpbf16ps shrink did not run";
    }
}

// Disabled (the hook), the FMA path runs instead and meets the same bound; the counter stays.
// The second shape is two rows of one adapter: the FMA path's address-order walk over bf16 x.
TEST_F(Bf16Dot, DisabledTakesTheFmaPath) {
  internal::set_bf16_dot_enabled(false);
  for (const Shape& s : {Shape{40, 3, 2100, 90, 64}, Shape{2, 1, 4096, 90, 40}}) {
    SCOPED_TRACE(name(s, false));
    Problem p(s, DType::bf16, 7);
    if (s.B == 2) p.idx = {0, 0};
    const uint64_t before = internal::bf16_dot_tasks();
    p.run_and_check(false);
    EXPECT_EQ(internal::bf16_dot_tasks(), before);
  }
}

// By default the path is on only on AMD CPUs (ADDLORA_BF16_DOT overrides; unset here unless
// the environment sets it), and the hooks turn it on and off and back to that default.
TEST_F(Bf16Dot, DefaultFollowsTheVendorAndHooksReset) {
  const char* env = std::getenv("ADDLORA_BF16_DOT");
  __builtin_cpu_init();
  const bool env_valid = env && (std::strcmp(env, "0") == 0 || std::strcmp(env, "1") == 0);
  const bool expected = env_valid ? env[0] == '1' : __builtin_cpu_is("amd") != 0;
  EXPECT_EQ(internal::bf16_dot_default(), expected);
  internal::set_bf16_dot_enabled(!expected);
  EXPECT_EQ(internal::bf16_dot_usable(), !expected);
  internal::reset_bf16_dot();
  EXPECT_EQ(internal::bf16_dot_usable(), expected);
  // The default decides which path a bf16 call takes.
  Problem p(Shape{12, 2, 2048, 64, 32}, DType::bf16, 9);
  const uint64_t before = internal::bf16_dot_tasks();
  p.run_and_check(false);
  EXPECT_EQ(internal::bf16_dot_tasks() > before, expected);
}

// FRACTAL_NZ A gives the bits of ND A (the same lane pairing), and the bits do not depend on
// the thread count; a second run repeats them.
TEST_F(Bf16Dot, NzEqualsNdAndThreadsBitwise) {
  int n = 0;
  for (const Shape& s : Shapes()) {
    if (s.H1 > 70000) continue;  // the oracle sweep covers those
    SCOPED_TRACE(name(s, false));
    Problem p(s, n % 2 ? DType::f32 : DType::bf16, 200 + n);
    ++n;
    std::vector<uint8_t> first;
    for (int t : {1, 2, 3}) {
      addlora::set_num_threads(t);
      for (bool nz : {false, true}) {
        std::vector<uint8_t> out(p.y.size(), 0xcd);
        addlora::Arguments g = p.args(nz, out.data());
        ASSERT_EQ(addlora::add_lora(g, addlora::Rules::general), addlora::Status::ok);
        if (first.empty()) first = out;
        else EXPECT_TRUE(out == first) << "threads=" << t << (nz ? " NZ" : " ND") << " differs";
      }
    }
  }
}

// A row's bits do not depend on its register block (6, 3 or 1 rows, walked segment-major or
// rank-major): identical x rows with one adapter give identical output rows.
TEST_F(Bf16Dot, RowBitsIndependentOfBlocking) {
  for (int64_t B : {7, 9, 10}) {
    for (bool nz : {false, true}) {
      const Shape s{B, 1, 3000, 70, 37};
      SCOPED_TRACE(name(s, nz));
      Problem p(s, DType::f32, 400 + B);
      for (int64_t i = 0; i < B; ++i) {
        p.idx[i] = 0;
        std::copy(p.x.begin(), p.x.begin() + s.H1, p.x.begin() + i * s.H1);
        std::copy(p.y.begin(), p.y.begin() + s.H2 * 4, p.y.begin() + i * s.H2 * 4);
      }
      const std::vector<uint8_t> out = p.run_and_check(nz);
      for (int64_t i = 1; i < B; ++i)
        EXPECT_TRUE(std::equal(out.begin(), out.begin() + s.H2 * 4, out.begin() + i * s.H2 * 4)) << "row " << i;
    }
  }
}

// A single row (the decode walks: NZ in address order, ND in address order over whole fold
// segments or rank block by rank block, all screening as they go) gives the z the same row gets inside a row block.  B is the identity
// (H2 = R), so out = y + scale * z_n in any expand path and equal outputs mean equal z.
TEST_F(Bf16Dot, OneRowEqualsRowInBlock) {
  for (const Shape s : {Shape{7, 1, 3000, 37, 37}, Shape{7, 1, 1024 + 40, 130, 130}, Shape{7, 1, 3072, 37, 37}}) {
    for (bool nz : {false, true}) {
      SCOPED_TRACE(name(s, nz));
      Problem many(s, DType::f32, 500);
      for (auto& i : many.idx) i = 0;
      for (int64_t n = 0; n < s.H2; ++n)
        for (int64_t r = 0; r < s.R; ++r) many.b[n * s.R + r] = bf16(n == r ? 1.0 : 0.0);
      Shape s1 = s;
      s1.B = 1;
      Problem one(s1, DType::f32, 501);
      one.x.assign(many.x.begin() + 3 * s.H1, many.x.begin() + 4 * s.H1);  // row 3 of the block
      one.y.assign(many.y.begin() + 3 * s.H2 * 4, many.y.begin() + 4 * s.H2 * 4);
      one.a = many.a;
      one.b = many.b;
      one.idx[0] = 0;
      const std::vector<uint8_t> out_many = many.run_and_check(nz), out_one = one.run_and_check(nz);
      EXPECT_TRUE(std::equal(out_one.begin(), out_one.end(), out_many.begin() + 3 * s.H2 * 4));
    }
  }
}

// Subnormal (and other tiny, < 2^-56) bf16 values in x or A, paired with large partners so
// that their products are ordinary numbers carrying most of z: vdpbf16ps would read them as
// zero and miss the bound by far.  The screened (row, rank, chunk) results take the FMA path.
TEST_F(Bf16Dot, SubnormalInputsAreNotFlushed) {
  for (const Shape& s : {Shape{9, 2, 3000, 64, 20}, Shape{1, 1, 1000, 40, 7}, Shape{16, 8, 900, 50, 40},
                         Shape{9, 1, 200, 16, 4100}, Shape{2, 1, 4096, 50, 20}, Shape{8, 4, 2048, 50, 24}}) {
    for (int where : {0, 1, 2}) {  // tiny values in x, in A, in both
      for (bool nz : {false, true}) {
        SCOPED_TRACE(name(s, nz) + " where=" + std::to_string(where));
        Problem p(s, DType::f32, 300 + where);
        Rng rng(where + 11);
        // Rows b and ranks r even: in every 3rd column a subnormal (2^-127 .. 2^-126) or a tiny
        // normal (2^-100) times a partner of 2^120 .. 2^127 (or 2^96 .. 2^103): products of
        // 2^-7 .. 2^3, all of one sign, that a flush would drop.  The other rows and ranks
        // hold 0 in those columns (no huge products).  where 0: tiny in x (columns 0 mod 3);
        // 1: tiny in A (columns 1 mod 3); 2: both.
        auto tiny = [&] {
          return rng.below(4) ? std::ldexp(1 + static_cast<double>(rng.below(8)) / 8, -127) : std::ldexp(1.5, -100);
        };
        auto big = [&](double t) { return std::ldexp(1.0, (t < 0x1p-120 ? 120 : 96) + static_cast<int>(rng.below(8))); };
        for (int64_t h = 0; h < s.H1; ++h) {
          const bool tiny_x = h % 3 == 0 && where != 1, tiny_a = h % 3 == 1 && where != 0;
          if (!tiny_x && !tiny_a) continue;
          const double t = tiny(), g = big(t);
          for (int64_t i = 0; i < s.B; ++i) p.x[i * s.H1 + h] = i % 2 ? 0 : bf16(tiny_x ? t : g);
          for (int64_t w = 0; w < s.W; ++w)
            for (int64_t r = 0; r < s.R; ++r) p.a[(w * s.R + r) * s.H1 + h] = r % 2 ? 0 : bf16(tiny_x ? g : t);
        }
        const uint64_t before = internal::bf16_dot_fallbacks();
        p.run_and_check(nz);
        EXPECT_GT(internal::bf16_dot_fallbacks(), before) << "tiny inputs were not screened out";
      }
    }
  }
}

}  // namespace
