// Several streams driven from several host threads, each running and checking its own
// problems against the oracle; bitwise identical results across streams; stream order.
// (Labelled "concurrency": the TSan stage runs it.)
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "acl_case.h"
#include "reference/check.h"
#include "reference/reference.h"

using namespace optest;
namespace ref = addlora::ref;

namespace {
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new AclEnvironment);
}  // namespace

// Several host threads, each with its own stream and problem, several runs each.  Also checks
// the same problem gives bitwise identical results on every stream.
TEST(AclnnConcurrency, ThreadsAndStreams) {
  constexpr int kThreads = 4, kRuns = 5;
  std::vector<std::string> failures(kThreads);
  std::vector<std::vector<uint8_t>> common_out(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t, &failures, &common_out] {
      aclrtStream stream = nullptr;
      if (aclrtCreateStream(&stream) != 0) { failures[t] = "aclrtCreateStream failed"; return; }
      for (int run = 0; run < kRuns && failures[t].empty(); ++run) {
        CaseSpec c = small_case(1000 + 10 * t + run);
        c.B = 20 + 30 * t + run;
        c.in_place = (t + run) % 2;
        auto d = make_case(c);
        const ref::Expected e = ref::compute(d->args());
        DeviceCase dc(*d);
        const std::string err = run_on_stream(*d, dc, stream);
        if (!err.empty()) { failures[t] = err; break; }
        dc.copy_back_all();
        const ref::CheckResult r = ref::check_out(e, d->args().out);
        if (!r.ok) failures[t] = "thread " + std::to_string(t) + " run " + std::to_string(run) + ": " + r.report;
      }
      // The same problem on every thread's stream.
      auto d = make_case(small_case(77));
      DeviceCase dc(*d);
      const std::string err = run_on_stream(*d, dc, stream);
      if (!err.empty() && failures[t].empty()) failures[t] = err;
      dc.out->copy_back();
      common_out[t] = d->out->image_bytes();
      if (aclrtDestroyStream(stream) != 0 && failures[t].empty()) failures[t] = "aclrtDestroyStream failed";
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], "") << "thread " << t;
    EXPECT_TRUE(common_out[t] == common_out[0]) << "thread " << t << " differs bitwise from thread 0";
  }
}

// Work queued on one stream runs in order: the second operator reads (as its x) the out the
// first one writes; run before it, it would read stale data.
TEST(AclnnConcurrency, StreamRunsOperatorsInOrder) {
  Stream s;
  CaseSpec c1 = small_case(21);
  c1.strided = false; c1.H3 = 64; c1.H2 = 48; c1.y_offset = 16;
  CaseSpec c2 = small_case(22);
  c2.strided = false; c2.H1 = c1.H3;  // x of the second = out of the first
  auto d1 = make_case(c1);
  auto d2 = make_case(c2);
  DeviceCase dc1(*d1), dc2(*d2);
  // c2's x tensor over c1's out device storage.
  const int64_t xdims[2] = {c2.B, c2.H1};
  aclTensor* x2 = aclCreateTensor(xdims, 2, ACL_FLOAT16, nullptr, 0, ACL_FORMAT_ND, xdims, 2, dc1.out->storage());
  ASSERT_NE(x2, nullptr) << aclGetRecentErrMsg();
  uint64_t ws1 = 0, ws2 = 0;
  aclOpExecutor* e1 = plan(*d1, dc1, &ws1);
  aclOpExecutor* e2 = nullptr;
  ACL_OK(aclnnAddLoraGetWorkspaceSize(dc2.y->tensor(), x2, dc2.wb->tensor(), dc2.idx->tensor(), dc2.wa->tensor(),
                                      c2.layer, d2->scale, c2.y_offset, c2.y_slice, dc2.out->tensor(), &ws2, &e2));
  std::vector<char> w1(ws1 + 1), w2(ws2 + 1);
  ACL_OK(aclnnAddLora(w1.data(), ws1, e1, s.s));
  ACL_OK(aclnnAddLora(w2.data(), ws2, e2, s.s));
  ACL_OK(aclrtSynchronizeStream(s.s));
  dc1.out->copy_back();
  dc2.out->copy_back();
  ASSERT_TRUE(ref::check_out(ref::compute(d1->args()), d1->args().out).ok);
  addlora::Arguments a2 = d2->args();
  a2.x = d1->out->view();
  const ref::CheckResult r = ref::check_out(ref::compute(a2), a2.out);
  EXPECT_TRUE(r.ok) << r.report;
  aclDestroyTensor(x2);
}
