// C++ API modes beyond the single call: both precision names (aliases of the one contract),
// multi-slice calls (fused QKV-style slices of one y) and Plan::clone, all against the fp64
// oracle.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "addlora/addlora.h"
#include "op_case.h"
#include "reference/check.h"
#include "reference/reference.h"

using namespace addlora;
using addlora::ref::Rng;
using addlora::ref::TestTensor;
using optest::CaseSpec;
using optest::Pattern;

namespace {

CaseSpec mode_case(uint64_t seed, int64_t B, int64_t H1, int64_t R, int64_t H2, int64_t H3) {
  CaseSpec c;
  c.B = B; c.H1 = H1; c.R = R; c.H2 = H2; c.H3 = H3; c.W = 6; c.L = 2; c.layer = 1;
  c.pattern = Pattern::mixed; c.seed = seed;
  return c;
}

void check_mode(const CaseSpec& c, Precision precision, Rules rules) {
  SCOPED_TRACE(precision == Precision::fast ? "Precision::fast" : "Precision::exact");
  auto d = optest::make_case(c);
  Arguments a = d->args();
  a.precision = precision;
  const ref::Expected e = ref::compute(a);
  const optest::Snapshot snap = optest::snapshot(*d);
  std::string msg;
  ASSERT_EQ(add_lora(a, rules, &msg), Status::ok) << msg;
  const ref::CheckResult r = ref::check_out(e, a.out, 8);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(optest::memory_changes(*d, snap), "");
}

}  // namespace

// Precision::fast and Precision::exact name the one contract: both meet its bound.
TEST(CppApiModes, BothPrecisionNamesMeetTheContract) {
  const struct { int64_t B, H1, R, H2, H3; bool a; DType t; bool strided, in_place; } shapes[] = {
      {283, 512, 64, 1024, 1040, true, DType::f16, false, false},
      {97, 4096, 16, 256, 512, true, DType::f16, true, true},
      {64, 256, 256, 2048, 2048, false, DType::f16, false, true},
      {31, 1000, 100, 300, 333, true, DType::f32, true, false},
      {17, 129, 512, 77, 90, true, DType::bf16, false, false},
  };
  uint64_t seed = 300;
  for (const auto& s : shapes) {
    CaseSpec c = mode_case(seed++, s.B, s.a ? s.H1 : s.R, s.R, s.H2, s.H3);
    c.has_a = s.a;
    c.all(s.t);
    c.strided = s.strided;
    c.in_place = s.in_place;
    SCOPED_TRACE(c.name());
    check_mode(c, Precision::fast, Rules::general);
    check_mode(c, Precision::exact, Rules::general);
  }
}

// Three slices (q, k, v) of one y in one call: each slice's columns get its own LoRA pair,
// the rest of out equals y.
TEST(CppApiModes, MultiSliceMatchesPerSliceOracle) {
  for (bool in_place : {false, true}) {
    CaseSpec c = mode_case(400 + in_place, 45, 64, 16, 64, 3 * 64 + 16);
    c.strided = true;
    c.in_place = in_place;
    SCOPED_TRACE(c.name());
    auto d = optest::make_case(c);
    Rng rng(401);
    // Slices: [0, 64) all of H2; [64, 64 + 40) partial; [144, 144 + 48) with its own H2 = 48.
    std::vector<std::unique_ptr<TestTensor>> wa, wb;
    const int64_t h2[3] = {64, 64, 48}, off[3] = {0, 64, 144}, slice[3] = {-1, 40, -1};
    std::vector<Arguments> slices;
    for (int k = 0; k < 3; ++k) {
      wa.push_back(std::make_unique<TestTensor>(TestTensor::nd(DType::f16, {c.W, c.L, c.R, c.H1})));
      wb.push_back(std::make_unique<TestTensor>(TestTensor::nz(DType::f16, {c.W, c.L, h2[k], c.R}, 3 * k)));
      wa[k]->fill_uniform(rng, -1, 1);
      wb[k]->fill_uniform(rng, -1, 1);
      Arguments a = d->args();
      a.weight_a = wa[k]->view();
      a.weight_b = wb[k]->view();
      a.scale = d->scale * (k + 1) * (k == 1 ? -1 : 1);
      a.y_offset = off[k];
      a.y_slice_size = slice[k];
      slices.push_back(a);
    }
    // Oracle: every slice against the original y, merged (the column ranges are disjoint).
    std::vector<ref::Expected> es;
    for (const Arguments& a : slices) es.push_back(ref::compute(a));
    ref::Expected e = es[0];
    for (size_t k = 1; k < es.size(); ++k)
      for (size_t i = 0; i < e.value.size(); ++i)
        if (es[k].written[i]) {
          e.value[i] = es[k].value[i];
          e.magnitude[i] = es[k].magnitude[i];
          e.condition[i] = es[k].condition[i];
          e.written[i] = 1;
        }
    const optest::Snapshot snap = optest::snapshot(*d);
    std::string msg;
    ASSERT_EQ(add_lora(slices.data(), slices.size(), Rules::cann, &msg), Status::ok) << msg;
    const ref::CheckResult r = ref::check_out(e, slices[0].out);
    EXPECT_TRUE(r.ok) << r.report;
    EXPECT_EQ(optest::memory_changes(*d, snap), "");

    // Overlapping column ranges are rejected, naming the slices.
    slices[1].y_offset = 60;
    EXPECT_NE(add_lora(slices.data(), slices.size(), Rules::cann, &msg), Status::ok);
    EXPECT_NE(msg, "");
  }
}

// A clone keeps the buffers it was cloned with when the original is re-pointed.
TEST(CppApiModes, CloneKeepsItsBuffers) {
  CaseSpec c = mode_case(500, 23, 32, 16, 32, 48);
  auto d1 = optest::make_case(c);
  Plan plan;
  std::string msg;
  ASSERT_EQ(make_plan(d1->args(), Rules::cann, &plan, &msg), Status::ok) << msg;
  Plan copy = plan.clone();
  ASSERT_TRUE(copy.valid());
  TestTensor out2 = *d1->out;  // same layout, separate memory
  const std::vector<uint8_t> out2_before = out2.image_bytes();
  ASSERT_TRUE(plan.set_output_data(0, out2.storage()));
  std::vector<uint8_t> ws(copy.workspace_bytes() + 1);
  copy.run(ws.data());  // writes d1's out, not out2
  const ref::CheckResult r = ref::check_out(ref::compute(d1->args()), d1->args().out);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_TRUE(out2.image_bytes() == out2_before) << "the clone wrote the re-pointed buffer";
  plan.run(ws.data());  // now out2
  Arguments a2 = d1->args();
  a2.out = out2.view();
  const ref::CheckResult r2 = ref::check_out(ref::compute(a2), a2.out);
  EXPECT_TRUE(r2.ok) << r2.report;
}
