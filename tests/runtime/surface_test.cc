// Runtime calls added for the CANN client surface (docs/cann-surface.md): the calls the
// public aclnn examples make beyond docs/contract.md §4.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "runtime_test_util.h"

TEST_F(RuntimeTest, SynchronizeStreamWithTimeout) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(s, 0), ACL_SUCCESS);  // idle: at once
  Gate gate;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(s, 0), ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
  EXPECT_TRUE(contains(last_message(), "still has work queued after 0 ms"));
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(s, 20), ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(s, -2), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "timeout -2 ms is invalid"));
  gate.open();
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(s, -1), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(nullptr, 1000), ACL_SUCCESS);  // the default stream
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(s, 10), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "not a live stream"));
}

TEST_F(RuntimeTest, SynchronizeStreamWithTimeoutReportsAFailedTask) {
  ASSERT_EQ(addlora_rt::enqueue(nullptr, [] { throw std::runtime_error("boom"); }), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(nullptr, 5000), ACL_ERROR_INTERNAL_ERROR);
  EXPECT_TRUE(contains(last_message(), "boom"));
}

TEST(Surface, SynchronizeStreamWithTimeoutNeedsInit) {
  EXPECT_EQ(aclrtSynchronizeStreamWithTimeout(nullptr, 0), ACL_ERROR_UNINITIALIZE);
  EXPECT_TRUE(contains(last_message(), "aclInit"));
}

TEST(Surface, SocNameIsNoAscendSoc) {
  const char* name = aclrtGetSocName();
  ASSERT_NE(name, nullptr);
  EXPECT_STREQ(name, "AddLoraCPU");
  EXPECT_EQ(std::strstr(name, "Ascend"), nullptr);
}

TEST(Surface, InitTensorReinitialisesInPlace) {
  const int64_t dims[2] = {2, 3};
  float a[6], b[12];
  aclTensor* t = aclCreateTensor(dims, 2, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, dims, 2, a);
  ASSERT_NE(t, nullptr);
  const int64_t view[2] = {3, 2}, strides[2] = {1, 3}, storage[1] = {12};
  ASSERT_EQ(aclInitTensor(t, view, 2, ACL_FLOAT16, strides, 1, ACL_FORMAT_ND, storage, 1, b), ACLNN_SUCCESS)
      << aclGetRecentErrMsg();
  aclDataType dt;
  EXPECT_EQ(aclGetDataType(t, &dt), ACLNN_SUCCESS);
  EXPECT_EQ(dt, ACL_FLOAT16);
  int64_t off = -1;
  EXPECT_EQ(aclGetViewOffset(t, &off), ACLNN_SUCCESS);
  EXPECT_EQ(off, 1);
  void* addr = nullptr;
  EXPECT_EQ(aclGetRawTensorAddr(t, &addr), ACLNN_SUCCESS);
  EXPECT_EQ(addr, b);
  // Invalid arguments leave the tensor as it was.
  const int64_t bad[1] = {-4};
  EXPECT_EQ(aclInitTensor(t, bad, 1, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, nullptr, 0, a), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "negative"));
  EXPECT_EQ(aclGetDataType(t, &dt), ACLNN_SUCCESS);
  EXPECT_EQ(dt, ACL_FLOAT16);
  EXPECT_EQ(aclInitTensor(nullptr, dims, 2, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, dims, 2, a), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
  EXPECT_EQ(aclInitTensor(t, dims, 2, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, dims, 2, a), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "was destroyed"));
}

TEST_F(RuntimeTest, SynchronizeDeviceWithTimeout) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeDeviceWithTimeout(0), ACL_SUCCESS);
  Gate gate;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeDeviceWithTimeout(10), ACL_ERROR_RT_STREAM_SYNC_TIMEOUT);
  EXPECT_TRUE(contains(last_message(), "aclrtSynchronizeDeviceWithTimeout: stream"));
  EXPECT_EQ(aclrtSynchronizeDeviceWithTimeout(-7), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "timeout -7 ms is invalid"));
  gate.open();
  EXPECT_EQ(aclrtSynchronizeDeviceWithTimeout(-1), ACL_SUCCESS);
  ASSERT_EQ(addlora_rt::enqueue(nullptr, [] { throw std::runtime_error("device boom"); }), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeDeviceWithTimeout(5000), ACL_ERROR_INTERNAL_ERROR);
  EXPECT_TRUE(contains(last_message(), "device boom"));
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST_F(RuntimeTest, SynchronizeEventWithTimeout) {
  aclrtStream s = nullptr;
  aclrtEvent e = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateEvent(&e), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeEventWithTimeout(e, 0), ACL_SUCCESS);  // never recorded: at once
  Gate gate;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  ASSERT_EQ(aclrtRecordEvent(e, s), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeEventWithTimeout(e, 10), ACL_ERROR_RT_EVENT_SYNC_TIMEOUT);
  EXPECT_TRUE(contains(last_message(), "was not reached within 10 ms"));
  EXPECT_EQ(aclrtSynchronizeEventWithTimeout(e, -2), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtSynchronizeEventWithTimeout(nullptr, 10), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "event is null"));
  gate.open();
  EXPECT_EQ(aclrtSynchronizeEventWithTimeout(e, -1), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeEventWithTimeout(e, 0), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyEvent(e), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeEventWithTimeout(e, 0), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
}

TEST(Surface, WithTimeoutFunctionsNeedInit) {
  EXPECT_EQ(aclrtSynchronizeDeviceWithTimeout(0), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtSynchronizeEventWithTimeout(reinterpret_cast<aclrtEvent>(0x1000), 0), ACL_ERROR_UNINITIALIZE);
  EXPECT_TRUE(contains(last_message(), "aclInit"));
}
