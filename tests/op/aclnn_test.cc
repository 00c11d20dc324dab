// aclnnAddLora through the CANN client flow (aclInit .. aclFinalize) against the fp64 oracle:
// vendor-style shapes, strided and in-place views, NZ weights (NZ-shaped and flat storage
// dims); executor semantics (single use, repeatable, re-pointing, workspace errors).
// Streams and threads: aclnn_concurrency_test.cc.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "acl_case.h"
#include "reference/check.h"
#include "reference/reference.h"

using namespace optest;
using addlora::ref::Rng;
namespace ref = addlora::ref;

namespace {

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new AclEnvironment);


// Runs `spec` through the aclnn flow on `stream` and checks out, gaps, guards and inputs.
void run_and_check(const CaseSpec& spec, aclrtStream stream, NzStorage nz = NzStorage::flat) {
  auto d = make_case(spec);
  const ref::Expected e = ref::compute(d->args());
  const Snapshot snap = snapshot(*d);
  DeviceCase dc(*d, nz);
  const std::string err = run_on_stream(*d, dc, stream);
  ASSERT_EQ(err, "");
  dc.copy_back_all();
  const ref::CheckResult r = ref::check_out(e, d->args().out);
  EXPECT_TRUE(r.ok) << r.report << "max error " << r.max_err_ulps << " ulp";
  const std::string mem = memory_changes(*d, snap);
  EXPECT_TRUE(mem.empty()) << mem;
}

int64_t pick(Rng& rng, std::initializer_list<int64_t> v) { return *(v.begin() + rng.below(int64_t(v.size()))); }

// Shapes like the vendor's test matrix: B 1-283, H up to 29728, W up to 29, L up to 30,
// R 16-256 without weight A (then H1 = R), R <= 128 with it.
std::vector<CaseSpec> vendor_cases() {
  std::vector<CaseSpec> v;
  Rng rng(4242);
  for (int k = 0; k < 250; ++k) {
    CaseSpec c;
    c.seed = 100 + k;
    c.B = pick(rng, {1, 2, 3, 4, 7, 8, 16, 23, 47, 64, 100, 128, 199, 256, 283});
    c.has_a = rng.below(2);
    c.R = c.has_a ? pick(rng, {16, 32, 64, 128}) : pick(rng, {16, 32, 64, 128, 256});
    c.H1 = c.has_a ? pick(rng, {16, 64, 128, 512, 1024, 2048, 4096}) : c.R;
    c.H2 = pick(rng, {16, 32, 128, 256, 512, 1024, 2048, 4096});
    c.H3 = c.H2 * pick(rng, {1, 1, 2, 3});
    c.W = pick(rng, {1, 2, 4, 8, 16, 29});
    c.L = pick(rng, {1, 2, 8, 30});
    // Bounded work: the oracle is fp64 and every layer's weights are generated.
    while (c.B * (c.H1 + c.H2) * c.R > 16'000'000 && c.B > 1) c.B = (c.B + 1) / 2;
    while (c.W * c.L * (c.H1 + c.H2) * c.R > 2'000'000 && c.W * c.L > 1) (c.L > 1 ? c.L : c.W) /= 2;
    const int64_t room = c.H3 - c.H2;
    c.y_offset = pick(rng, {0, room, room / 2, room ? rng.below(room + 1) : 0});
    c.y_slice = pick(rng, {-1, -1, c.H2, rng.below(c.H2 + 1), 0});
    c.layer = rng.below(2) ? c.L - 1 : rng.below(c.L);
    c.pattern = static_cast<Pattern>(rng.below(4));
    c.strided = rng.below(3) == 0;
    c.in_place = rng.below(2);
    if (rng.below(4) == 0) { c.b_layout = Layout::fractal_nz; if (c.has_a) c.a_layout = Layout::fractal_nz; }
    v.push_back(c);
  }
  // The largest hidden size of the vendor matrix, a few times.
  CaseSpec big;
  big.B = 3; big.has_a = false; big.R = 64; big.H1 = 64; big.H2 = 29728; big.H3 = 29728; big.W = 2; big.L = 1;
  big.seed = 1; big.pattern = Pattern::mixed;
  v.push_back(big);
  big.B = 2; big.has_a = true; big.R = 16; big.H1 = 29728; big.H2 = 16; big.H3 = 29728; big.y_offset = 29712;
  big.seed = 2; big.in_place = true;
  v.push_back(big);
  big.B = 1; big.H2 = 29728; big.y_offset = 0; big.b_layout = Layout::fractal_nz; big.a_layout = Layout::fractal_nz;
  big.seed = 3; big.in_place = false; big.strided = true;
  v.push_back(big);
  return v;
}

class VendorShapes : public ::testing::TestWithParam<CaseSpec> {};
std::string spec_name(const ::testing::TestParamInfo<CaseSpec>& info) { return info.param.name(); }

}  // namespace

TEST_P(VendorShapes, MatchesReference) {
  Stream s;
  // NZ weights alternate between NZ-shaped and flat storage dims.
  run_and_check(GetParam(), s.s, GetParam().seed % 2 ? NzStorage::nz_shape : NzStorage::flat);
}
INSTANTIATE_TEST_SUITE_P(Aclnn, VendorShapes, ::testing::ValuesIn(vendor_cases()), spec_name);

TEST(AclnnFlow, DefaultStreamAndNzShapedStorage) {
  CaseSpec c = small_case(7);
  c.strided = false;
  c.b_layout = c.a_layout = Layout::fractal_nz;
  run_and_check(c, nullptr, NzStorage::nz_shape);
}

// A single-use executor runs once; running it again is an error, not a crash.
TEST(AclnnExecutor, SingleUseSecondRunIsAnError) {
  Stream s;
  auto d = make_case(small_case(11));
  DeviceCase dc(*d);
  uint64_t ws_size = 0;
  aclOpExecutor* exec = plan(*d, dc, &ws_size);
  ASSERT_NE(exec, nullptr);
  std::vector<char> ws(ws_size + 64);
  ACL_OK(aclnnAddLora(ws_size ? ws.data() : nullptr, ws_size, exec, s.s));
  ACL_OK(aclrtSynchronizeStream(s.s));
  EXPECT_EQ(aclnnAddLora(ws_size ? ws.data() : nullptr, ws_size, exec, s.s), ACLNN_ERR_PARAM_INVALID);
  EXPECT_STRNE(aclGetRecentErrMsg(), "");
  ACL_OK(aclrtSynchronizeStream(s.s));
}

// Repeatable: runs twice (same result each time), then aclDestroyAclOpExecutor; after that the
// handle is dead.
TEST(AclnnExecutor, RepeatableRunsTwiceThenDestroy) {
  Stream s;
  auto d = make_case(small_case(12));
  const ref::Expected e = ref::compute(d->args());
  DeviceCase dc(*d);
  uint64_t ws_size = 0;
  aclOpExecutor* exec = plan(*d, dc, &ws_size);
  ASSERT_NE(exec, nullptr);
  ACL_OK(aclSetAclOpExecutorRepeatable(exec));
  void* ws = nullptr;
  if (ws_size) ACL_OK(aclrtMalloc(&ws, ws_size, ACL_MEM_MALLOC_HUGE_FIRST));
  std::vector<uint8_t> first;
  for (int run = 0; run < 2; ++run) {
    ACL_OK(aclnnAddLora(ws, ws_size, exec, s.s));
    ACL_OK(aclrtSynchronizeStream(s.s));
    dc.out->copy_back();
    const ref::CheckResult r = ref::check_out(e, d->args().out);
    EXPECT_TRUE(r.ok) << "run " << run << ": " << r.report;
    if (run == 0) first = d->out->image_bytes();
    else EXPECT_TRUE(first == d->out->image_bytes()) << "second run differs bitwise";
  }
  ACL_OK(aclDestroyAclOpExecutor(exec));
  EXPECT_EQ(aclnnAddLora(ws, ws_size, exec, s.s), ACLNN_ERR_PARAM_INVALID);
  ACL_OK(aclrtSynchronizeStream(s.s));
  if (ws) aclrtFree(ws);
}

// aclSetInputTensorAddr / aclSetOutputTensorAddr on a repeatable executor: the next run reads
// the new x and writes the new out.
TEST(AclnnExecutor, SetInputAndOutputTensorAddr) {
  Stream s;
  auto d = make_case(small_case(13));
  DeviceCase dc(*d);
  uint64_t ws_size = 0;
  aclOpExecutor* exec = plan(*d, dc, &ws_size);
  ASSERT_NE(exec, nullptr);
  ACL_OK(aclSetAclOpExecutorRepeatable(exec));
  std::vector<char> ws(ws_size + 64);
  ACL_OK(aclnnAddLora(ws.data(), ws_size, exec, s.s));
  ACL_OK(aclrtSynchronizeStream(s.s));

  // A second x (same layout, new values) and a second out buffer on the device.
  ref::TestTensor x2 = *d->x, out2 = *d->out;
  Rng rng(5);
  x2.fill_uniform(rng, -1, 1);
  DeviceTensor dx2(&x2), dout2(&out2);
  ASSERT_TRUE(dx2.ok() && dout2.ok());
  const std::vector<uint8_t> out2_before = out2.image_bytes();
  ACL_OK(aclSetInputTensorAddr(exec, 1, dc.x->tensor(), dx2.storage()));
  ACL_OK(aclSetOutputTensorAddr(exec, 0, dc.out->tensor(), dout2.storage()));
  ACL_OK(aclnnAddLora(ws.data(), ws_size, exec, s.s));
  ACL_OK(aclrtSynchronizeStream(s.s));
  dout2.copy_back();
  addlora::Arguments a2 = d->args();
  a2.x = x2.view();
  a2.out = out2.view();
  const ref::CheckResult r = ref::check_out(ref::compute(a2), a2.out);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(out2.changes_outside_view(out2_before), "");

  // Bad indices: 5 inputs (y, x, weightB, indices, weightA), 1 output.
  EXPECT_EQ(aclSetInputTensorAddr(exec, 5, dc.x->tensor(), dx2.storage()), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclSetOutputTensorAddr(exec, 1, dc.out->tensor(), dout2.storage()), ACLNN_ERR_PARAM_INVALID);
  ACL_OK(aclDestroyAclOpExecutor(exec));
}

// Phase-two errors: workspace too small (161002, executor kept), null workspace with a size
// (161001), null executor (161001); null handles to the executor functions (561103).
TEST(AclnnExecutor, PhaseTwoErrors) {
  Stream s;
  auto d = make_case(small_case(14));
  const ref::Expected e = ref::compute(d->args());
  DeviceCase dc(*d);
  uint64_t ws_size = 0;
  aclOpExecutor* exec = plan(*d, dc, &ws_size);
  ASSERT_NE(exec, nullptr);
  ASSERT_GT(ws_size, 0u) << "this test needs a non-empty workspace (B=37, R=32)";
  std::vector<char> ws(ws_size);
  EXPECT_EQ(aclnnAddLora(ws.data(), ws_size - 1, exec, s.s), ACLNN_ERR_PARAM_INVALID);
  EXPECT_STRNE(aclGetRecentErrMsg(), "");
  EXPECT_EQ(aclnnAddLora(nullptr, ws_size, exec, s.s), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_STRNE(aclGetRecentErrMsg(), "");
  // The single-use executor was not consumed by the too-small workspace: it still runs.
  ACL_OK(aclnnAddLora(ws.data(), ws_size, exec, s.s));
  ACL_OK(aclrtSynchronizeStream(s.s));
  dc.out->copy_back();
  const ref::CheckResult r = ref::check_out(e, d->args().out);
  EXPECT_TRUE(r.ok) << r.report;

  EXPECT_EQ(aclnnAddLora(ws.data(), ws_size, nullptr, s.s), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_STRNE(aclGetRecentErrMsg(), "");
  EXPECT_EQ(aclSetAclOpExecutorRepeatable(nullptr), ACLNN_ERR_INNER_NULLPTR);
  EXPECT_EQ(aclDestroyAclOpExecutor(nullptr), ACLNN_ERR_INNER_NULLPTR);
}

// Tensor data is read when the stream runs, not at phase one (like the device).
TEST(AclnnExecutor, DataIsReadAtExecutionNotAtPhaseOne) {
  Stream s;
  auto d = make_case(small_case(15));
  DeviceCase dc(*d);
  uint64_t ws_size = 0;
  aclOpExecutor* exec = plan(*d, dc, &ws_size);
  ASSERT_NE(exec, nullptr);
  Rng rng(6);
  d->x->fill_uniform(rng, -1, 1);  // new x values after phase one
  dc.x->upload();
  const ref::Expected e = ref::compute(d->args());
  std::vector<char> ws(ws_size + 1);
  ACL_OK(aclnnAddLora(ws.data(), ws_size, exec, s.s));
  ACL_OK(aclrtSynchronizeStream(s.s));
  dc.out->copy_back();
  const ref::CheckResult r = ref::check_out(e, d->args().out);
  EXPECT_TRUE(r.ok) << r.report;
}


// torch_npu-style in place: out is a second aclTensor handle with exactly y's view of y's
// memory.  Only the slice changes; everything else of y (gaps and guards too) stays.
TEST(AclnnFlow, InPlaceThroughASecondTensorHandle) {
  Stream s;
  CaseSpec c = small_case(16);
  c.in_place = true;
  auto d = make_case(c);
  const ref::Expected e = ref::compute(d->args());
  const Snapshot snap = snapshot(*d);
  DeviceCase dc(*d);
  const auto& yv = *d->y;
  const int64_t sdims[1] = {yv.storage_elems()};
  aclTensor* out = aclCreateTensor(yv.dims().data(), 2, ACL_FLOAT16, yv.strides().data(), yv.offset(), ACL_FORMAT_ND,
                                   sdims, 1, dc.y->storage());
  ASSERT_NE(out, nullptr) << aclGetRecentErrMsg();
  uint64_t ws_size = 0;
  aclOpExecutor* exec = nullptr;
  ACL_OK(aclnnAddLoraGetWorkspaceSize(dc.y->tensor(), dc.x->tensor(), dc.wb->tensor(), dc.idx->tensor(),
                                      dc.wa->tensor(), c.layer, d->scale, c.y_offset, c.y_slice, out, &ws_size, &exec));
  std::vector<char> ws(ws_size + 1);
  ACL_OK(aclnnAddLora(ws.data(), ws_size, exec, s.s));
  ACL_OK(aclrtSynchronizeStream(s.s));
  dc.copy_back_all();
  const ref::CheckResult r = ref::check_out(e, d->y->view());
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_EQ(memory_changes(*d, snap), "");
  aclDestroyTensor(out);
}
