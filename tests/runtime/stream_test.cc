// Streams: ordered execution off the caller's thread, the default stream, destroy semantics,
// stale handles, task failures.
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime_test_util.h"

using StreamTest = RuntimeTest;

TEST_F(StreamTest, TasksRunInOrderOffTheCallersThread) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  ASSERT_NE(s, nullptr);
  std::vector<int> order;                       // touched by the worker only until sync
  std::vector<std::thread::id> threads;
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(addlora_rt::enqueue(s, [&, i] {
      order.push_back(i);
      threads.push_back(std::this_thread::get_id());
    }), ACL_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  ASSERT_EQ(order.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(order[i], i);
  for (auto id : threads) EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(StreamTest, EnqueueReturnsBeforeTheTaskRuns) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  Gate gate;
  std::atomic<bool> done{false};
  ASSERT_EQ(addlora_rt::enqueue(s, [&] {
    gate.wait();
    done = true;
  }), ACL_SUCCESS);
  EXPECT_FALSE(done.load());  // the caller was not blocked by the task
  gate.open();
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  EXPECT_TRUE(done.load());
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(StreamTest, DefaultStreamIsAsynchronousAndSynchronizable) {
  std::atomic<int> steps{0};
  std::thread::id worker;
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(addlora_rt::enqueue(nullptr, [&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      worker = std::this_thread::get_id();
      ++steps;
    }), ACL_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(steps.load(), 3);
  EXPECT_NE(worker, std::this_thread::get_id());
  ASSERT_EQ(addlora_rt::enqueue(nullptr, [&] { ++steps; }), ACL_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeDevice(), ACL_SUCCESS);
  EXPECT_EQ(steps.load(), 4);
}

TEST_F(StreamTest, DestroyFinishesQueuedWorkThenHandleIsStale) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  Gate gate;
  std::atomic<int> ran{0};
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(addlora_rt::enqueue(s, [&] { ++ran; }), ACL_SUCCESS);
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    gate.open();
  });
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);  // blocks until the queue drained
  EXPECT_EQ(ran.load(), 10);
  opener.join();
  EXPECT_EQ(aclrtSynchronizeStream(s), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "not a live stream"));
  EXPECT_EQ(aclrtDestroyStream(s), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(addlora_rt::enqueue(s, [] {}), ACL_ERROR_INVALID_PARAM);
}

TEST_F(StreamTest, NullAndForeignHandles) {
  EXPECT_EQ(aclrtCreateStream(nullptr), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "null"));
  EXPECT_EQ(aclrtDestroyStream(nullptr), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "default stream"));
  int not_a_stream = 0;
  EXPECT_EQ(aclrtSynchronizeStream(&not_a_stream), ACL_ERROR_INVALID_PARAM);
  aclrtEvent e = nullptr;
  ASSERT_EQ(aclrtCreateEvent(&e), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStream(e), ACL_ERROR_INVALID_PARAM);  // an event is not a stream
  EXPECT_EQ(addlora_rt::enqueue(nullptr, std::function<void()>()), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtDestroyEvent(e), ACL_SUCCESS);
}

TEST_F(StreamTest, AFailingTaskIsReportedBySynchronizeOnce) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  std::atomic<int> after{0};
  ASSERT_EQ(addlora_rt::enqueue(s, [] { throw std::runtime_error("kernel exploded"); }), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { ++after; }), ACL_SUCCESS);  // the stream survives
  EXPECT_EQ(aclrtSynchronizeStream(s), ACL_ERROR_INTERNAL_ERROR);
  EXPECT_TRUE(contains(last_message(), "kernel exploded"));
  EXPECT_EQ(after.load(), 1);
  EXPECT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(StreamTest, ATaskCannotWaitForOrDestroyItsOwnStream) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  aclError sync_result = ACL_SUCCESS, destroy_result = ACL_SUCCESS, finalize_result = ACL_SUCCESS;
  std::string message;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] {
    sync_result = aclrtSynchronizeStream(s);
    message = aclGetRecentErrMsg();
    destroy_result = aclrtDestroyStream(s);
    finalize_result = aclFinalize();
  }), ACL_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  EXPECT_EQ(sync_result, ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(message, "wait for itself"));
  EXPECT_EQ(destroy_result, ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(finalize_result, ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(StreamTest, TasksMayEnqueueFurtherWork) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  std::vector<int> order;
  Gate gate;  // holds the stream until 1 and 2 are both queued
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::enqueue(s, [&] {
    order.push_back(1);
    addlora_rt::enqueue(s, [&] { order.push_back(3); });
  }), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { order.push_back(2); }), ACL_SUCCESS);
  gate.open();
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);  // covers work queued before the call
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);  // and the nested task
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

// run_or_enqueue (operator launches): on an idle stream the task runs before the call returns,
// on the caller's thread; on a busy one it queues behind, and order holds either way.
TEST_F(StreamTest, OperatorLaunchRunsInlineOnlyWhenTheStreamIsIdle) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  std::vector<int> order;
  std::thread::id ran_on;
  ASSERT_EQ(addlora_rt::run_or_enqueue(s, [&] {
    order.push_back(0);
    ran_on = std::this_thread::get_id();
  }), ACL_SUCCESS);
  ASSERT_EQ(order.size(), 1u);  // already done: the stream was idle
  EXPECT_EQ(ran_on, std::this_thread::get_id());

  Gate gate;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); order.push_back(1); }), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::run_or_enqueue(s, [&] {
    order.push_back(2);
    ran_on = std::this_thread::get_id();
  }), ACL_SUCCESS);
  EXPECT_EQ(order.size(), 1u);  // queued behind the gated task, not run
  gate.open();
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  ASSERT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_NE(ran_on, std::this_thread::get_id());
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

// A task pushed while an inline task runs waits for it; a synchronize from another thread
// waits for the inline task too.
TEST_F(StreamTest, WorkPushedDuringAnInlineTaskWaitsForIt) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  Gate started, release;
  std::atomic<int> step{0};
  std::atomic<int> seen_by_second{-1}, seen_by_sync{-1};
  std::thread launcher([&] {
    EXPECT_EQ(addlora_rt::run_or_enqueue(s, [&] {
      started.open();
      release.wait();
      step = 1;
    }), ACL_SUCCESS);
  });
  started.wait();
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { seen_by_second = step.load(); step = 2; }), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::run_or_enqueue(s, [&] { step = 3; }), ACL_SUCCESS);  // busy: queued
  std::thread syncer([&] {
    EXPECT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
    seen_by_sync = step.load();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(step.load(), 0);  // nothing ran past the inline task
  EXPECT_EQ(seen_by_sync.load(), -1);
  release.open();
  launcher.join();
  syncer.join();
  EXPECT_EQ(seen_by_second.load(), 1);
  EXPECT_EQ(seen_by_sync.load(), 3);
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(StreamTest, AnInlineTaskThatThrowsIsReportedBySynchronize) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::run_or_enqueue(s, [] { throw std::runtime_error("inline boom"); }), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStream(s), ACL_ERROR_INTERNAL_ERROR);
  EXPECT_NE(std::string(aclGetRecentErrMsg()).find("inline boom"), std::string::npos);
  EXPECT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);  // reported once
  EXPECT_EQ(addlora_rt::run_or_enqueue(reinterpret_cast<aclrtStream>(0x5), [] {}), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}
