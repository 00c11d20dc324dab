// Several host threads, each with several streams (plus the shared default stream), issue
// memory work, tasks, events and executors at once; every result is checked.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "runtime_test_util.h"

namespace {

// out[i] = in[i] + 1 over n int32 values.
struct IncrementExecutor final : aclOpExecutor {
  IncrementExecutor(const int32_t* src, int32_t* dst, size_t count) : in(src), out(dst), n(count) {}
  void run(void*) override {
    for (size_t i = 0; i < n; ++i) out[i] = in[i] + 1;
  }
  bool set_input_addr(uint64_t, void*) override { return false; }
  bool set_output_addr(uint64_t, void*) override { return false; }
  const int32_t* in;
  int32_t* out;
  size_t n;
};

}  // namespace

TEST_F(RuntimeTest, ManyThreadsManyStreams) {
  constexpr int kThreads = 4, kStreams = 3, kRounds = 25;
  constexpr size_t kN = 1024;
  std::atomic<int> failures{0};
  auto worker = [&](int tid) {
    auto check = [&](bool ok) {
      if (!ok) ++failures;
    };
    aclrtStream streams[kStreams];
    aclrtEvent done[kStreams];
    for (int s = 0; s < kStreams; ++s) {
      check(aclrtCreateStream(&streams[s]) == ACL_SUCCESS);
      check(aclrtCreateEvent(&done[s]) == ACL_SUCCESS);
    }
    void* dev[kStreams];
    for (int s = 0; s < kStreams; ++s) check(aclrtMalloc(&dev[s], kN * 4, ACL_MEM_MALLOC_HUGE_FIRST) == ACL_SUCCESS);
    std::vector<int32_t> host(kN), result(kN), stage(kN);
    for (int round = 0; round < kRounds; ++round) {
      // Per stream: upload, transform with an executor, then a final stream sums the three
      // buffers after waiting on each stream's event.
      std::vector<std::vector<int32_t>> inputs(kStreams, std::vector<int32_t>(kN));
      for (int s = 0; s < kStreams; ++s) {
        for (size_t i = 0; i < kN; ++i) inputs[s][i] = static_cast<int32_t>(tid * 100000 + round * 100 + s * 10 + i % 7);
        check(aclrtMemcpyAsync(dev[s], kN * 4, inputs[s].data(), kN * 4, ACL_MEMCPY_HOST_TO_DEVICE, streams[s]) ==
              ACL_SUCCESS);
        auto* d = static_cast<int32_t*>(dev[s]);
        aclOpExecutor* e = addlora_rt::register_executor(std::unique_ptr<aclOpExecutor>(new IncrementExecutor(d, d, kN)));
        check(e != nullptr);
        check(addlora_rt::launch_executor(e, nullptr, 0, streams[s]) == ACLNN_SUCCESS);
        check(aclrtRecordEvent(done[s], streams[s]) == ACL_SUCCESS);
      }
      aclrtStream sum_stream = streams[round % kStreams];
      for (int s = 0; s < kStreams; ++s) check(aclrtStreamWaitEvent(sum_stream, done[s]) == ACL_SUCCESS);
      check(addlora_rt::enqueue(sum_stream, [&, dev] {
        for (size_t i = 0; i < kN; ++i) {
          int32_t acc = 0;
          for (int s = 0; s < kStreams; ++s) acc += static_cast<int32_t*>(dev[s])[i];
          stage[i] = acc;
        }
      }) == ACL_SUCCESS);
      check(aclrtMemcpyAsync(result.data(), kN * 4, stage.data(), kN * 4, ACL_MEMCPY_DEVICE_TO_HOST, sum_stream) ==
            ACL_SUCCESS);
      // Some traffic on the shared default stream as well.
      int32_t marker = -1;
      const int32_t value = tid * 1000 + round;
      check(aclrtMemcpyAsync(&marker, 4, &value, 4, ACL_MEMCPY_HOST_TO_HOST, nullptr) == ACL_SUCCESS);
      check(aclrtSynchronizeStream(sum_stream) == ACL_SUCCESS);
      check(aclrtSynchronizeStream(nullptr) == ACL_SUCCESS);
      check(marker == value);
      for (size_t i = 0; i < kN; ++i) {
        int32_t expected = 0;
        for (int s = 0; s < kStreams; ++s) expected += inputs[s][i] + 1;
        if (result[i] != expected) {
          ++failures;
          break;
        }
      }
      for (int s = 0; s < kStreams; ++s) check(aclrtSynchronizeStream(streams[s]) == ACL_SUCCESS);
    }
    for (int s = 0; s < kStreams; ++s) {
      check(aclrtFree(dev[s]) == ACL_SUCCESS);
      check(aclrtDestroyEvent(done[s]) == ACL_SUCCESS);
      check(aclrtDestroyStream(streams[s]) == ACL_SUCCESS);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(RuntimeTest, ConcurrentCreateDestroyAndStaleUse) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 30; ++i) {
        aclrtStream s = nullptr;
        aclrtEvent e = nullptr;
        void* p = nullptr;
        if (aclrtCreateStream(&s) != ACL_SUCCESS || aclrtCreateEvent(&e) != ACL_SUCCESS ||
            aclrtMalloc(&p, 4096, ACL_MEM_MALLOC_HUGE_FIRST) != ACL_SUCCESS) {
          ++failures;
          continue;
        }
        if (aclrtMemsetAsync(p, 4096, i, 4096, s) != ACL_SUCCESS) ++failures;
        if (aclrtRecordEvent(e, s) != ACL_SUCCESS) ++failures;
        if (aclrtSynchronizeEvent(e) != ACL_SUCCESS) ++failures;
        if (static_cast<unsigned char*>(p)[4095] != static_cast<unsigned char>(i)) ++failures;
        if (aclrtDestroyStream(s) != ACL_SUCCESS || aclrtDestroyEvent(e) != ACL_SUCCESS) ++failures;
        if (aclrtFree(p) != ACL_SUCCESS) ++failures;
        // Stale handles stay errors even while other threads create new ones.
        if (aclrtSynchronizeStream(s) != ACL_ERROR_INVALID_PARAM) ++failures;
        if (aclrtDestroyEvent(e) != ACL_ERROR_INVALID_PARAM) ++failures;
        aclGetRecentErrMsg();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}
