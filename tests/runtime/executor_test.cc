// The executor registry: register_executor / launch_executor (phase two of every aclnn
// operator), repeatable executors, destroy, re-pointing buffers, workspace checks.
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "runtime_test_util.h"

namespace {

struct Counters {
  std::atomic<int> runs{0};
  std::atomic<int> destroyed{0};
  std::atomic<void*> last_workspace{nullptr};
};

// A stand-in operator: out[i] = 2 * in[i] for n floats, through re-pointable buffers.
struct DoubleExecutor final : aclOpExecutor {
  DoubleExecutor(Counters* counters, const float* src, float* dst, size_t count, uint64_t ws)
      : c(counters), in(src), out(dst), n(count) {
    workspace_size = ws;
  }
  ~DoubleExecutor() override { ++c->destroyed; }
  void run(void* workspace) override {
    c->last_workspace = workspace;
    if (workspace_size > 0) std::memset(workspace, 0x11, workspace_size);  // must be writable
    for (size_t i = 0; i < n; ++i) out[i] = 2 * in[i];
    ++c->runs;
  }
  bool set_input_addr(uint64_t index, void* addr) override {
    if (index != 0) return false;
    in = static_cast<const float*>(addr);
    return true;
  }
  bool set_output_addr(uint64_t index, void* addr) override {
    if (index != 0) return false;
    out = static_cast<float*>(addr);
    return true;
  }
  Counters* c;
  const float* in;
  float* out;
  size_t n;
};

aclOpExecutor* make(Counters* c, const float* in, float* out, size_t n, uint64_t ws = 0) {
  return addlora_rt::register_executor(std::unique_ptr<aclOpExecutor>(new DoubleExecutor(c, in, out, n, ws)));
}

using ExecutorTest = RuntimeTest;

}  // namespace

TEST_F(ExecutorTest, SingleUseRunsOnceAndIsConsumed) {
  Counters c;
  std::vector<float> in = {1, 2, 3}, out(3, 0);
  aclOpExecutor* e = make(&c, in.data(), out.data(), 3);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_SUCCESS) << aclGetRecentErrMsg();
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(out, (std::vector<float>{2, 4, 6}));
  EXPECT_EQ(c.runs.load(), 1);
  EXPECT_EQ(c.destroyed.load(), 1);  // freed once the stream ran it
  EXPECT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "not live"));
  EXPECT_EQ(aclSetAclOpExecutorRepeatable(e), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclDestroyAclOpExecutor(e), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(c.runs.load(), 1);
}

TEST_F(ExecutorTest, SingleUseIsConsumedAtLaunchEvenWhileQueued) {
  Counters c;
  std::vector<float> in = {5}, out = {0};
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  Gate gate;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  aclOpExecutor* e = make(&c, in.data(), out.data(), 1);
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, s), ACLNN_SUCCESS);
  EXPECT_EQ(addlora_rt::launch_executor(e, nullptr, 0, s), ACLNN_ERR_PARAM_INVALID);  // second run
  EXPECT_EQ(c.destroyed.load(), 0);  // the queued task still owns it
  gate.open();
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  EXPECT_EQ(out[0], 10);
  EXPECT_EQ(c.runs.load(), 1);
  EXPECT_EQ(c.destroyed.load(), 1);
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(ExecutorTest, RepeatableRunsUntilDestroyed) {
  Counters c;
  std::vector<float> in = {1, -1}, out(2, 0);
  aclOpExecutor* e = make(&c, in.data(), out.data(), 2);
  ASSERT_EQ(aclSetAclOpExecutorRepeatable(e), ACLNN_SUCCESS);
  ASSERT_EQ(aclSetAclOpExecutorRepeatable(e), ACLNN_SUCCESS);  // idempotent
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(out, (std::vector<float>{2, -2}));
  in = {3, 4};
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(out, (std::vector<float>{6, 8}));  // data read when the stream runs
  EXPECT_EQ(c.runs.load(), 2);
  EXPECT_EQ(c.destroyed.load(), 0);
  EXPECT_EQ(aclDestroyAclOpExecutor(e), ACLNN_SUCCESS);
  EXPECT_EQ(c.destroyed.load(), 1);
  EXPECT_EQ(aclDestroyAclOpExecutor(e), ACLNN_ERR_PARAM_INVALID);  // double destroy
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "destroyed"));
  EXPECT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_ERR_PARAM_INVALID);
}

TEST_F(ExecutorTest, DestroyWhileRunsAreQueuedIsSafe) {
  Counters c;
  std::vector<float> in = {1}, out = {0};
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  Gate gate;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  aclOpExecutor* e = make(&c, in.data(), out.data(), 1);
  ASSERT_EQ(aclSetAclOpExecutorRepeatable(e), ACLNN_SUCCESS);
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, s), ACLNN_SUCCESS);
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, s), ACLNN_SUCCESS);
  ASSERT_EQ(aclDestroyAclOpExecutor(e), ACLNN_SUCCESS);
  EXPECT_EQ(c.destroyed.load(), 0);
  gate.open();
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  EXPECT_EQ(c.runs.load(), 2);
  EXPECT_EQ(c.destroyed.load(), 1);
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(ExecutorTest, NullHandles) {
  EXPECT_EQ(addlora_rt::launch_executor(nullptr, nullptr, 0, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "executor is null"));
  EXPECT_EQ(aclSetAclOpExecutorRepeatable(nullptr), ACLNN_ERR_INNER_NULLPTR);
  EXPECT_EQ(aclDestroyAclOpExecutor(nullptr), ACLNN_ERR_INNER_NULLPTR);
  EXPECT_EQ(addlora_rt::register_executor(nullptr), nullptr);
  int not_an_executor = 0;
  EXPECT_EQ(aclDestroyAclOpExecutor(reinterpret_cast<aclOpExecutor*>(&not_an_executor)), ACLNN_ERR_PARAM_INVALID);
}

TEST_F(ExecutorTest, WorkspaceChecks) {
  Counters c;
  std::vector<float> in = {1}, out = {0};
  aclOpExecutor* e = make(&c, in.data(), out.data(), 1, 256);
  std::vector<unsigned char> ws(256);
  EXPECT_EQ(addlora_rt::launch_executor(e, nullptr, 256, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "workspace is null"));
  // docs/contract.md §3: 161001 is for workspaceSize > 0 with a null workspace; a size (here 0) below what
  // phase one reported is 161002.
  EXPECT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_ERR_PARAM_INVALID);  // needs 256
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "smaller than the 256 bytes"));
  EXPECT_EQ(addlora_rt::launch_executor(e, ws.data(), 128, nullptr), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "smaller than the 256 bytes"));
  EXPECT_EQ(c.destroyed.load(), 0);  // failed launches do not consume
  ASSERT_EQ(addlora_rt::launch_executor(e, ws.data(), 256, nullptr), ACLNN_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(c.last_workspace.load(), ws.data());
  EXPECT_EQ(ws[255], 0x11);
  EXPECT_EQ(out[0], 2);
  // workspaceSize > 0 with a null workspace fails even if the operator needs none
  Counters c2;
  aclOpExecutor* e2 = make(&c2, in.data(), out.data(), 1, 0);
  EXPECT_EQ(addlora_rt::launch_executor(e2, nullptr, 64, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(addlora_rt::launch_executor(e2, ws.data(), 1000, nullptr), ACLNN_SUCCESS);  // larger is fine
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(c2.runs.load(), 1);
}

TEST_F(ExecutorTest, RuntimeFailuresLeaveTheExecutorLive) {
  Counters c;
  std::vector<float> in = {4}, out = {0};
  aclOpExecutor* e = make(&c, in.data(), out.data(), 1);
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  ASSERT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
  EXPECT_EQ(addlora_rt::launch_executor(e, nullptr, 0, s), ACLNN_ERR_RUNTIME_ERROR);  // stale stream
  const std::string m = aclGetRecentErrMsg();
  EXPECT_TRUE(contains(m, "cannot launch")) << m;
  EXPECT_TRUE(contains(m, "not a live stream")) << m;
  ASSERT_EQ(aclFinalize(), ACL_SUCCESS);
  EXPECT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_ERR_RUNTIME_ERROR);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "not initialized"));
  ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(out[0], 8);
}

TEST_F(ExecutorTest, RepointBuffers) {
  Counters c;
  std::vector<float> in1 = {1, 2}, in2 = {10, 20}, out1(2, 0), out2(2, 0);
  aclOpExecutor* e = make(&c, in1.data(), out1.data(), 2);
  ASSERT_EQ(aclSetAclOpExecutorRepeatable(e), ACLNN_SUCCESS);
  const int64_t dims[] = {2};
  aclTensor* tin = aclCreateTensor(dims, 1, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, dims, 1, in1.data());
  aclTensor* tout = aclCreateTensor(dims, 1, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, dims, 1, out1.data());
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(out1, (std::vector<float>{2, 4}));
  ASSERT_EQ(aclSetInputTensorAddr(e, 0, tin, in2.data()), ACLNN_SUCCESS);
  ASSERT_EQ(aclSetOutputTensorAddr(e, 0, tout, out2.data()), ACLNN_SUCCESS);
  EXPECT_EQ(tin->data, in2.data());
  EXPECT_EQ(tout->data, out2.data());
  ASSERT_EQ(addlora_rt::launch_executor(e, nullptr, 0, nullptr), ACLNN_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(out2, (std::vector<float>{20, 40}));
  EXPECT_EQ(out1, (std::vector<float>{2, 4}));

  EXPECT_EQ(aclSetInputTensorAddr(e, 1, tin, in1.data()), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "index 1 is out of range"));
  EXPECT_EQ(tin->data, in2.data());  // unchanged on failure
  EXPECT_EQ(aclSetOutputTensorAddr(e, 7, tout, out1.data()), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclSetInputTensorAddr(nullptr, 0, tin, in1.data()), ACLNN_ERR_INNER_NULLPTR);
  EXPECT_EQ(aclSetInputTensorAddr(e, 0, nullptr, in1.data()), ACLNN_ERR_INNER_NULLPTR);
  EXPECT_EQ(aclSetOutputTensorAddr(e, 0, nullptr, out1.data()), ACLNN_ERR_INNER_NULLPTR);
  ASSERT_EQ(aclDestroyAclOpExecutor(e), ACLNN_SUCCESS);
  EXPECT_EQ(aclSetInputTensorAddr(e, 0, tin, in1.data()), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclDestroyTensor(tin), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyTensor(tout), ACLNN_SUCCESS);
}

TEST_F(ExecutorTest, ConcurrentLaunchesOfOneSingleUseExecutorRunItOnce) {
  for (int round = 0; round < 20; ++round) {
    Counters c;
    std::vector<float> in = {1}, out = {0};
    aclOpExecutor* e = make(&c, in.data(), out.data(), 1);
    std::atomic<int> ok{0}, rejected{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        const aclnnStatus st = addlora_rt::launch_executor(e, nullptr, 0, nullptr);
        (st == ACLNN_SUCCESS ? ok : rejected)++;
      });
    for (auto& t : threads) t.join();
    ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
    EXPECT_EQ(ok.load(), 1);
    EXPECT_EQ(rejected.load(), 3);
    EXPECT_EQ(c.runs.load(), 1);
    EXPECT_EQ(c.destroyed.load(), 1);
  }
}
