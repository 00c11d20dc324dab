// The C++ API (make_plan / Plan::run / add_lora) against the fp64 oracle.
// Sweeps under Rules::cann (fp16, NPU-legal shapes) and Rules::general (bf16 / fp32 / mixed,
// odd sizes, large R, int64 indices), strided views, in place and out of place, FRACTAL_NZ
// weights.  Every run also checks that nothing outside out's view changed and that every
// input byte (gaps and guards included) is untouched.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <thread>
#include <vector>

#include "addlora/addlora.h"
#include "op_case.h"
#include "reference/check.h"
#include "reference/reference.h"

using namespace addlora;
using addlora::ref::Rng;
using optest::CaseSpec;
using optest::Pattern;

namespace {

// Runs one case through the C++ API and checks it completely.  With `use_plan` the workspace
// is guarded by sentinel bytes that must survive.
void run_and_check(const CaseSpec& spec, Rules rules, bool use_plan) {
  auto d = optest::make_case(spec);
  const Arguments args = d->args();
  const ref::Expected e = ref::compute(args);  // before the run: in place overwrites y
  const optest::Snapshot snap = optest::snapshot(*d);
  std::string msg;
  if (use_plan) {
    Plan plan;
    ASSERT_EQ(make_plan(args, rules, &plan, &msg), Status::ok) << msg;
    ASSERT_TRUE(plan.valid());
    const uint64_t bytes = plan.workspace_bytes();
    std::vector<uint8_t> ws(bytes + 128, 0xa5);  // 64 guard bytes either side
    void* base = ws.data() + 64;
    plan.run(bytes ? base : nullptr);
    for (size_t i = 0; i < 64; ++i) {
      ASSERT_EQ(ws[i], 0xa5) << "workspace underrun at byte " << i;
      ASSERT_EQ(ws[64 + bytes + i], 0xa5) << "workspace overrun at byte " << i << " past " << bytes;
    }
  } else {
    ASSERT_EQ(add_lora(args, rules, &msg), Status::ok) << msg;
  }
  const ref::CheckResult r = ref::check_out(e, args.out);
  EXPECT_TRUE(r.ok) << r.report << "max error " << r.max_err_ulps << " ulp, rows with adapter "
                    << e.rows_with_adapter;
  const std::string mem = optest::memory_changes(*d, snap);
  EXPECT_TRUE(mem.empty()) << mem;
}

int64_t pick(Rng& rng, std::initializer_list<int64_t> v) { return *(v.begin() + rng.below(int64_t(v.size()))); }

// Fills y_offset / y_slice / layer with one of the interesting values.
void pick_attributes(Rng& rng, CaseSpec& c) {
  const int64_t room = c.H3 - c.H2;
  switch (rng.below(4)) {
    case 0: c.y_offset = 0; break;
    case 1: c.y_offset = room; break;
    case 2: c.y_offset = room / 2; break;
    default: c.y_offset = room ? rng.below(room + 1) : 0; break;
  }
  switch (rng.below(4)) {
    case 0: c.y_slice = -1; break;
    case 1: c.y_slice = 0; break;
    case 2: c.y_slice = c.H2; break;
    default: c.y_slice = rng.below(c.H2 + 1); break;
  }
  c.layer = rng.below(2) ? c.L - 1 : rng.below(c.L);
  c.pattern = static_cast<Pattern>(rng.below(4));
  c.strided = rng.below(2);
  c.in_place = rng.below(2);
  if (rng.below(5) == 0) c.scale_factor = -0.5;
}

std::vector<CaseSpec> cann_cases() {
  std::vector<CaseSpec> v;
  Rng rng(20261125);
  const std::initializer_list<int64_t> Bs = {1, 2, 3, 5, 7, 13, 16, 17, 31, 32, 61, 64, 97, 127, 128, 131, 251, 256, 283};
  const std::initializer_list<int64_t> Hs = {16, 32, 48, 64, 80, 112, 128, 144, 240, 256, 272, 496, 512, 1008, 1024};
  for (int k = 0; k < 90; ++k) {
    CaseSpec c;
    c.seed = 1000 + k;
    c.B = pick(rng, Bs);
    c.has_a = rng.below(3) != 0;
    c.R = c.has_a ? pick(rng, {16, 32, 48, 64, 96, 112, 128}) : pick(rng, {16, 32, 64, 128, 144, 192, 240, 256});
    c.H1 = c.has_a ? pick(rng, Hs) : c.R;
    c.H2 = pick(rng, Hs);
    c.H3 = c.H2 + pick(rng, {0, 0, 16, 32, 48, 256});
    c.W = pick(rng, {1, 2, 3, 8, 17, 31, 32});
    c.L = pick(rng, {1, 2, 5, 30, 32});
    // Keep the sweep fast: the weights of every layer and adapter are generated.
    if (c.B * (c.H1 + c.H2) * c.R > 40'000'000) c.B = 7;
    while (c.W * c.L * (c.H1 + c.H2) * c.R > 3'000'000) (c.L > 2 ? c.L : c.W) /= 2;
    pick_attributes(rng, c);
    if (c.B <= c.W && rng.below(2)) c.pattern = Pattern::distinct;
    // NZ weights in about a quarter of the cases.
    if (rng.below(4) == 0) { c.b_layout = Layout::fractal_nz; if (c.has_a && rng.below(2)) c.a_layout = Layout::fractal_nz; }
    v.push_back(c);
  }
  // A few big hidden sizes at and around 4096 (one each: they dominate the runtime).
  CaseSpec big;
  big.B = 5; big.H1 = 4096; big.H2 = 4096; big.H3 = 4112; big.R = 128; big.W = 4; big.L = 2; big.layer = 1;
  big.y_offset = 16; big.pattern = Pattern::mixed; big.seed = 1;
  v.push_back(big);
  big.H1 = 4112; big.H2 = 4080; big.H3 = 4096; big.y_offset = 0; big.R = 64; big.strided = true; big.seed = 2;
  v.push_back(big);
  big.H1 = 256; big.R = 256; big.has_a = false; big.H2 = 4128; big.H3 = 4160; big.y_offset = 32; big.in_place = true;
  big.strided = false; big.B = 11; big.seed = 3;
  v.push_back(big);
  big.B = 3; big.H1 = 8192; big.R = 16; big.has_a = true; big.H2 = 8192; big.H3 = 8192; big.y_offset = 0;
  big.b_layout = Layout::fractal_nz; big.a_layout = Layout::fractal_nz; big.seed = 4;
  v.push_back(big);
  return v;
}

std::vector<CaseSpec> general_cases() {
  std::vector<CaseSpec> v;
  Rng rng(77);
  for (int k = 0; k < 70; ++k) {
    CaseSpec c;
    c.seed = 5000 + k;
    c.all(static_cast<DType>(pick(rng, {int64_t(DType::f16), int64_t(DType::bf16), int64_t(DType::f32)})));
    if (k % 10 == 9) {  // mixed dtypes
      c.w_dtype = DType::bf16; c.dtype = DType::f16; c.y_dtype = DType::f32;
    }
    c.B = pick(rng, {1, 2, 3, 9, 17, 40, 101});
    c.has_a = rng.below(4) != 0;
    c.R = pick(rng, {1, 2, 3, 7, 15, 17, 33, 100, 129, 200, 256, 512});
    c.H1 = c.has_a ? pick(rng, {1, 2, 5, 17, 31, 33, 64, 100, 129}) : c.R;
    c.H2 = pick(rng, {1, 2, 3, 5, 15, 17, 31, 33, 100, 129});
    c.H3 = c.H2 + pick(rng, {0, 1, 3, 7, 20});
    c.W = pick(rng, {1, 2, 5, 33, 40});
    c.L = pick(rng, {1, 2, 33});
    c.index_dtype = rng.below(3) == 0 ? DType::i64 : DType::i32;
    pick_attributes(rng, c);
    const bool nz_ok = c.w_dtype != DType::f32;
    if (nz_ok && rng.below(4) == 0) { c.b_layout = Layout::fractal_nz; if (c.has_a) c.a_layout = Layout::fractal_nz; }
    v.push_back(c);
  }
  CaseSpec big;  // odd H around 4096 with fp32 and bf16
  big.all(DType::f32); big.B = 4; big.H1 = 4099; big.H2 = 4097; big.H3 = 4100; big.R = 19; big.W = 3; big.L = 1;
  big.y_offset = 3; big.seed = 9;
  v.push_back(big);
  big.all(DType::bf16); big.H1 = 33; big.R = 512; big.H2 = 4095; big.H3 = 4095; big.y_offset = 0; big.strided = true;
  big.seed = 10;
  v.push_back(big);
  return v;
}

std::string spec_name(const ::testing::TestParamInfo<CaseSpec>& info) { return info.param.name(); }

class CannSweep : public ::testing::TestWithParam<CaseSpec> {};
class GeneralSweep : public ::testing::TestWithParam<CaseSpec> {};

}  // namespace

TEST_P(CannSweep, MatchesReference) { run_and_check(GetParam(), Rules::cann, GetParam().seed % 2 == 0); }
TEST_P(GeneralSweep, MatchesReference) { run_and_check(GetParam(), Rules::general, GetParam().seed % 2 == 1); }
INSTANTIATE_TEST_SUITE_P(Fp16, CannSweep, ::testing::ValuesIn(cann_cases()), spec_name);
INSTANTIATE_TEST_SUITE_P(AnyDtype, GeneralSweep, ::testing::ValuesIn(general_cases()), spec_name);

// Hand-picked corners, each under both rule sets where legal.
TEST(CppApi, Corners) {
  std::vector<CaseSpec> cs;
  CaseSpec c;
  c.B = 1; c.H1 = 16; c.H2 = 16; c.H3 = 16; c.R = 16; c.W = 1; c.L = 1; c.pattern = Pattern::same; c.seed = 11;
  cs.push_back(c);                                                   // smallest legal problem
  c.pattern = Pattern::none; c.seed = 12; cs.push_back(c);           // no adapter at all
  c.B = 64; c.W = 32; c.L = 32; c.layer = 31; c.pattern = Pattern::distinct; c.seed = 13; cs.push_back(c);
  c.layer = 0; c.in_place = true; c.strided = true; c.seed = 14; cs.push_back(c);
  c.H3 = 64; c.y_offset = 48; c.y_slice = 7; c.seed = 15; cs.push_back(c);   // slice at the right edge
  c.y_offset = 0; c.y_slice = 0; c.in_place = false; c.seed = 16; cs.push_back(c);  // empty slice: out == y
  c.has_a = false; c.R = 256; c.H1 = 256; c.H2 = 32; c.y_slice = -1; c.seed = 17; cs.push_back(c);
  for (const CaseSpec& s : cs) {
    SCOPED_TRACE(s.name());
    run_and_check(s, Rules::cann, true);
    run_and_check(s, Rules::general, false);
  }
}

// Results are bitwise identical across runs and thread counts (docs/contract.md §1).
TEST(CppApi, BitwiseIdenticalAcrossThreadCountsAndRuns) {
  CaseSpec c;
  c.B = 283; c.H1 = 512; c.H2 = 1024; c.H3 = 1040; c.R = 64; c.W = 7; c.L = 3; c.layer = 2; c.y_offset = 5;
  c.pattern = Pattern::mixed; c.seed = 31;
  auto d = optest::make_case(c);
  const Arguments args = d->args();
  const int saved = num_threads();
  std::vector<uint8_t> first;
  for (int threads : {1, 2, 3, 8, 1}) {
    set_num_threads(threads);
    std::string msg;
    ASSERT_EQ(add_lora(args, Rules::cann, &msg), Status::ok) << msg;
    if (first.empty()) first = d->out->image_bytes();
    else EXPECT_TRUE(first == d->out->image_bytes()) << "out differs with " << threads << " threads";
  }
  set_num_threads(saved);
  const ref::CheckResult r = ref::check_out(ref::compute(args), args.out);
  EXPECT_TRUE(r.ok) << r.report;
}

// add_lora takes its workspace from a buffer the calling thread keeps (up to 1 MiB) or, for a
// larger one, a buffer of the call's own: a large call, a small one (reusing the kept buffer
// with a previous call's bytes in it) and the large one again all match the oracle, and the two
// large calls give the same bits.
TEST(CppApi, OneShotWorkspaceKeptOrOwnedAcrossCalls) {
  CaseSpec big;
  big.B = 2048; big.H1 = 256; big.H2 = 256; big.H3 = 256; big.R = 64; big.W = 4; big.L = 1;
  big.pattern = Pattern::mixed; big.seed = 41;
  CaseSpec small;
  small.B = 9; small.H1 = 64; small.H2 = 48; small.H3 = 48; small.R = 16; small.W = 3; small.L = 2; small.layer = 1;
  small.pattern = Pattern::mixed; small.seed = 42;
  auto d = optest::make_case(big);
  const Arguments args = d->args();
  {
    Plan plan;
    std::string msg;
    ASSERT_EQ(make_plan(args, Rules::general, &plan, &msg), Status::ok) << msg;
    ASSERT_GT(plan.workspace_bytes(), uint64_t{1} << 20) << "the large case must not fit the kept buffer";
  }
  const ref::Expected e = ref::compute(args);
  std::vector<uint8_t> first;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    run_and_check(small, Rules::general, false);  // the kept buffer, dirty from earlier calls
    std::string msg;
    ASSERT_EQ(add_lora(args, Rules::general, &msg), Status::ok) << msg;
    const ref::CheckResult r = ref::check_out(e, args.out);
    EXPECT_TRUE(r.ok) << r.report;
    if (first.empty()) first = d->out->image_bytes();
    else EXPECT_TRUE(first == d->out->image_bytes()) << "the large call's bits changed";
  }
}

// A call from a thread_local object's destructor, after the thread's kept workspace buffer has
// been released (that object was made before the thread's first call, so it is destroyed
// after the release): the call gets a buffer of its own and is right.  (Under ASan a reuse of
// the released buffer would be reported.)
struct CallAtThreadExit {
  const Arguments* args = nullptr;
  Status* status = nullptr;
  ~CallAtThreadExit() {
    if (args) *status = add_lora(*args, Rules::general, nullptr);
  }
};
thread_local CallAtThreadExit t_call_at_exit;

TEST(CppApi, OneShotCallFromAThreadLocalDestructor) {
  CaseSpec c;
  c.B = 37; c.H1 = 128; c.H2 = 96; c.H3 = 96; c.R = 32; c.W = 5; c.L = 1; c.pattern = Pattern::mixed; c.seed = 43;
  auto d = optest::make_case(c);
  const Arguments args = d->args();
  const ref::Expected e = ref::compute(args);
  Status at_exit = Status::internal;
  std::thread t([&] {
    t_call_at_exit.args = &args;  // made first: destroyed after the workspace buffer's release
    t_call_at_exit.status = &at_exit;
    std::string msg;
    EXPECT_EQ(add_lora(args, Rules::general, &msg), Status::ok) << msg;  // the thread's buffer
    // The exit call must write out again.
    std::memset(d->out->storage(), 0, static_cast<size_t>(d->out->storage_elems()) * dtype_size(d->out->dtype()));
  });
  t.join();
  ASSERT_EQ(at_exit, Status::ok);
  const ref::CheckResult r = ref::check_out(e, args.out);
  EXPECT_TRUE(r.ok) << r.report;
}

// NZ and ND weights holding the same logical values both match the oracle.
TEST(CppApi, FractalNzMatchesNdForTheSameValues) {
  for (bool has_a : {true, false}) {
    CaseSpec c;
    c.B = 37; c.H1 = has_a ? 80 : 48; c.R = 48; c.H2 = 112; c.H3 = 128; c.W = 3; c.L = 2; c.layer = 1;
    c.has_a = has_a; c.pattern = Pattern::mixed; c.seed = 41;
    auto nd = optest::make_case(c);
    c.b_layout = Layout::fractal_nz; c.a_layout = Layout::fractal_nz;
    auto nz = optest::make_case(c);  // same seed: same logical values, packed NZ
    const ref::Expected e_nd = ref::compute(nd->args()), e_nz = ref::compute(nz->args());
    ASSERT_EQ(e_nd.value, e_nz.value);  // the packer and the oracle agree on the layout
    for (auto* d : {nd.get(), nz.get()}) {
      std::string msg;
      ASSERT_EQ(add_lora(d->args(), Rules::cann, &msg), Status::ok) << msg;
      const ref::CheckResult r = ref::check_out(e_nd, d->args().out);
      EXPECT_TRUE(r.ok) << (d == nz.get() ? "NZ: " : "ND: ") << r.report;
    }
  }
}

// Re-pointing x and out on a plan gives the result for the new buffers.
TEST(CppApi, PlanSetInputAndOutputData) {
  CaseSpec c;
  c.B = 19; c.H1 = 64; c.R = 32; c.H2 = 48; c.H3 = 64; c.W = 4; c.L = 1; c.strided = true; c.pattern = Pattern::mixed;
  c.seed = 51;
  auto d1 = optest::make_case(c);
  Plan plan;
  std::string msg;
  ASSERT_EQ(make_plan(d1->args(), Rules::cann, &plan, &msg), Status::ok) << msg;
  std::vector<uint8_t> ws(plan.workspace_bytes() + 1);
  plan.run(ws.data());
  EXPECT_TRUE(ref::check_out(ref::compute(d1->args()), d1->args().out).ok);

  // New x values in a buffer with d1's x layout: copy d1's image, refill the view.
  addlora::ref::TestTensor x2 = *d1->x;
  Rng rng(99);
  x2.fill_uniform(rng, -1, 1);
  ASSERT_TRUE(plan.set_input_data(kInputX, x2.storage()));
  addlora::ref::TestTensor out2 = *d1->out;
  ASSERT_TRUE(plan.set_output_data(0, out2.storage()));
  plan.run(ws.data());
  Arguments a2 = d1->args();
  a2.x = x2.view();
  a2.out = out2.view();
  const ref::CheckResult r = ref::check_out(ref::compute(a2), a2.out);
  EXPECT_TRUE(r.ok) << r.report;

  EXPECT_FALSE(plan.set_input_data(5, x2.storage()));
  EXPECT_FALSE(plan.set_input_data(-1, x2.storage()));
  EXPECT_FALSE(plan.set_output_data(1, out2.storage()));
}

// Rules::general lifts the NPU limits; Rules::cann rejects the same arguments exactly.
TEST(CppApi, CannRulesRejectWhatGeneralAccepts) {
  struct Variant { const char* what; CaseSpec spec; Status cann; const char* word; };
  std::vector<Variant> vs;
  CaseSpec base;
  base.B = 3; base.H1 = 32; base.H2 = 32; base.H3 = 48; base.R = 16; base.W = 2; base.L = 2; base.seed = 61;
  CaseSpec c = base; c.H1 = 17; vs.push_back({"H1 % 16", c, Status::invalid_shape, "H1"});
  c = base; c.R = 160; vs.push_back({"R > 128 with A", c, Status::invalid_shape, "R"});
  c = base; c.R = 8; vs.push_back({"R % 16", c, Status::invalid_shape, "R"});
  c = base; c.W = 33; vs.push_back({"W > 32", c, Status::invalid_shape, "W"});
  c = base; c.L = 33; vs.push_back({"L > 32", c, Status::invalid_shape, "L"});
  c = base; c.all(DType::bf16); vs.push_back({"bf16", c, Status::invalid_param, "dtype"});
  c = base; c.all(DType::f32); vs.push_back({"fp32", c, Status::invalid_param, "dtype"});
  c = base; c.index_dtype = DType::i64; vs.push_back({"int64 indices", c, Status::invalid_param, "indices"});
  for (const Variant& v : vs) {
    SCOPED_TRACE(v.what);
    auto d = optest::make_case(v.spec);
    Plan plan;
    std::string msg;
    EXPECT_EQ(make_plan(d->args(), Rules::cann, &plan, &msg), v.cann);
    EXPECT_NE(msg.find(v.word), std::string::npos) << msg;
    EXPECT_FALSE(plan.valid());
    run_and_check(v.spec, Rules::general, true);
  }
}

TEST(CppApi, GeneralAcceptsEmptyBatchAndWritesNothing) {
  uint16_t y[16], x[16], wb[16 * 16], out[16];
  int32_t idx[1] = {0};
  std::fill(std::begin(out), std::end(out), uint16_t{0x1234});
  Arguments a;
  a.y = TensorView::contiguous(y, DType::f16, {0, 16});
  a.x = TensorView::contiguous(x, DType::f16, {0, 16});
  a.weight_b = TensorView::contiguous(wb, DType::f16, {1, 1, 16, 16});
  a.indices = TensorView::contiguous(idx, DType::i32, {0});
  a.out = TensorView::contiguous(out, DType::f16, {0, 16});
  std::string msg;
  EXPECT_EQ(add_lora(a, Rules::general, &msg), Status::ok) << msg;
  for (uint16_t o : out) EXPECT_EQ(o, 0x1234);
  EXPECT_EQ(add_lora(a, Rules::cann, &msg), Status::invalid_shape);
}

// out may alias y only as the identical view; any other overlap with an input is rejected.
TEST(CppApi, OverlappingOutIsRejected) {
  CaseSpec c;
  c.B = 4; c.H1 = 32; c.R = 16; c.H2 = 32; c.H3 = 32; c.W = 2; c.seed = 71;
  auto d = optest::make_case(c);
  const auto before = optest::snapshot(*d);
  struct { const char* what; TensorView out; } cases[] = {
      {"out is x", d->x->view()},
      {"out is y shifted by one element", [&] { TensorView v = d->y->view(); v.offset += 1; return v; }()},
      {"out overlaps weightB", [&] { TensorView v = d->out->view(); v.data = d->wb->storage(); return v; }()},
  };
  for (auto& k : cases) {
    SCOPED_TRACE(k.what);
    Arguments a = d->args();
    a.out = k.out;
    std::string msg;
    const Status s = add_lora(a, Rules::general, &msg);
    EXPECT_NE(s, Status::ok);
    EXPECT_NE(msg.find("out"), std::string::npos) << msg;
  }
  EXPECT_EQ(optest::memory_changes(*d, before), "");
}

// y + d cancelling: the 1e-6 * (|y| + |d|) branch of the target, and large magnitudes.
TEST(CppApi, CancellationAndLargeMagnitudes) {
  CaseSpec c;
  c.B = 8; c.H1 = 16; c.R = 16; c.H2 = 16; c.H3 = 16; c.W = 1; c.has_a = false; c.pattern = Pattern::same; c.seed = 81;
  auto d = optest::make_case(c);
  Arguments a = d->args();
  // y = -d rounded to fp16 (so y + d nearly cancels), rows b > 0 off by a relative b * 1e-3.
  ref::Expected e0 = ref::compute(a);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t n = 0; n < c.H3; ++n) {
      const double dv = e0.at(b, n) - ref::load(a.y, {b, n});
      d->y->set({b, n}, -dv * (b == 0 ? 1.0 : 1.0 + 1e-3 * b));
    }
  a = d->args();
  const ref::Expected e = ref::compute(a);
  std::string msg;
  ASSERT_EQ(add_lora(a, Rules::cann, &msg), Status::ok) << msg;
  const ref::CheckResult r = ref::check_out(e, a.out);
  EXPECT_TRUE(r.ok) << r.report;
}
