// Events: record / query / synchronize, cross-stream waits, destroy with pending records.
#include <atomic>
#include <chrono>
#include <thread>

#include "runtime_test_util.h"

using EventTest = RuntimeTest;

TEST_F(EventTest, RecordQuerySynchronize) {
  aclrtStream s = nullptr;
  aclrtEvent e = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateEvent(&e), ACL_SUCCESS);
  aclrtEventRecordedStatus st = ACL_EVENT_RECORDED_STATUS_COMPLETE;
  ASSERT_EQ(aclrtQueryEventStatus(e, &st), ACL_SUCCESS);
  EXPECT_EQ(st, ACL_EVENT_RECORDED_STATUS_NOT_READY);  // never recorded
  EXPECT_EQ(aclrtSynchronizeEvent(e), ACL_SUCCESS);      // returns at once

  Gate gate;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  ASSERT_EQ(aclrtRecordEvent(e, s), ACL_SUCCESS);
  ASSERT_EQ(aclrtQueryEventStatus(e, &st), ACL_SUCCESS);
  EXPECT_EQ(st, ACL_EVENT_RECORDED_STATUS_NOT_READY);  // the stream has not reached it
  gate.open();
  ASSERT_EQ(aclrtSynchronizeEvent(e), ACL_SUCCESS);
  ASSERT_EQ(aclrtQueryEventStatus(e, &st), ACL_SUCCESS);
  EXPECT_EQ(st, ACL_EVENT_RECORDED_STATUS_COMPLETE);

  // A new record supersedes the old one.
  Gate gate2;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate2.wait(); }), ACL_SUCCESS);
  ASSERT_EQ(aclrtRecordEvent(e, s), ACL_SUCCESS);
  ASSERT_EQ(aclrtQueryEventStatus(e, &st), ACL_SUCCESS);
  EXPECT_EQ(st, ACL_EVENT_RECORDED_STATUS_NOT_READY);
  gate2.open();
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  ASSERT_EQ(aclrtQueryEventStatus(e, &st), ACL_SUCCESS);
  EXPECT_EQ(st, ACL_EVENT_RECORDED_STATUS_COMPLETE);
  EXPECT_EQ(aclrtDestroyEvent(e), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(EventTest, StreamWaitEventOrdersTwoStreams) {
  aclrtStream producer = nullptr, consumer = nullptr;
  aclrtEvent ready = nullptr;
  ASSERT_EQ(aclrtCreateStream(&producer), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateStream(&consumer), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateEvent(&ready), ACL_SUCCESS);
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> value{0};
    int seen = -1;
    Gate gate;
    ASSERT_EQ(addlora_rt::enqueue(producer, [&] {
      gate.wait();
      std::this_thread::sleep_for(std::chrono::milliseconds(round == 0 ? 20 : 0));
      value = round + 1;
    }), ACL_SUCCESS);
    ASSERT_EQ(aclrtRecordEvent(ready, producer), ACL_SUCCESS);
    ASSERT_EQ(aclrtStreamWaitEvent(consumer, ready), ACL_SUCCESS);
    ASSERT_EQ(addlora_rt::enqueue(consumer, [&] { seen = value.load(); }), ACL_SUCCESS);
    gate.open();
    ASSERT_EQ(aclrtSynchronizeStream(consumer), ACL_SUCCESS);
    EXPECT_EQ(seen, round + 1) << "round " << round;
    ASSERT_EQ(aclrtSynchronizeStream(producer), ACL_SUCCESS);
  }
  // The default stream can wait too, and waiting on a never-recorded event is a no-op.
  aclrtEvent fresh = nullptr;
  ASSERT_EQ(aclrtCreateEvent(&fresh), ACL_SUCCESS);
  EXPECT_EQ(aclrtStreamWaitEvent(nullptr, fresh), ACL_SUCCESS);
  EXPECT_EQ(aclrtStreamWaitEvent(nullptr, ready), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyEvent(fresh), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyEvent(ready), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyStream(producer), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyStream(consumer), ACL_SUCCESS);
}

TEST_F(EventTest, DestroyWithPendingRecordAndWaitIsSafe) {
  aclrtStream a = nullptr, b = nullptr;
  aclrtEvent e = nullptr;
  ASSERT_EQ(aclrtCreateStream(&a), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateStream(&b), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateEvent(&e), ACL_SUCCESS);
  Gate gate;
  std::atomic<int> after_wait{0};
  ASSERT_EQ(addlora_rt::enqueue(a, [&] { gate.wait(); }), ACL_SUCCESS);
  ASSERT_EQ(aclrtRecordEvent(e, a), ACL_SUCCESS);
  ASSERT_EQ(aclrtStreamWaitEvent(b, e), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::enqueue(b, [&] { ++after_wait; }), ACL_SUCCESS);
  ASSERT_EQ(aclrtDestroyEvent(e), ACL_SUCCESS);  // record and wait still queued
  EXPECT_EQ(after_wait.load(), 0);
  gate.open();
  ASSERT_EQ(aclrtSynchronizeStream(b), ACL_SUCCESS);
  EXPECT_EQ(after_wait.load(), 1);
  aclrtEventRecordedStatus st;
  EXPECT_EQ(aclrtQueryEventStatus(e, &st), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "not a live event"));
  EXPECT_EQ(aclrtRecordEvent(e, a), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtSynchronizeEvent(e), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtStreamWaitEvent(a, e), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtDestroyEvent(e), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtDestroyStream(a), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyStream(b), ACL_SUCCESS);
}

TEST_F(EventTest, BadArguments) {
  aclrtEvent e = nullptr;
  aclrtStream s = nullptr;
  EXPECT_EQ(aclrtCreateEvent(nullptr), ACL_ERROR_INVALID_PARAM);
  ASSERT_EQ(aclrtCreateEvent(&e), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  EXPECT_EQ(aclrtQueryEventStatus(e, nullptr), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtQueryEventStatus(nullptr, nullptr), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtRecordEvent(nullptr, s), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "event is null"));
  EXPECT_EQ(aclrtRecordEvent(s, s), ACL_ERROR_INVALID_PARAM);  // a stream is not an event
  EXPECT_EQ(aclrtStreamWaitEvent(e, e), ACL_ERROR_INVALID_PARAM);  // an event is not a stream
  EXPECT_EQ(aclrtDestroyEvent(nullptr), ACL_ERROR_INVALID_PARAM);
  ASSERT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
  EXPECT_EQ(aclrtRecordEvent(e, s), ACL_ERROR_INVALID_PARAM);  // stale stream
  EXPECT_EQ(aclrtDestroyEvent(e), ACL_SUCCESS);
}
