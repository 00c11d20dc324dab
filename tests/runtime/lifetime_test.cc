// aclInit / aclFinalize ordering, calls outside an initialised runtime, the single device,
// contexts, and the pure helpers.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime_test_util.h"

TEST(Lifetime, InitTwiceThenFinalizeTwice) {
  ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
  EXPECT_EQ(aclInit("ignored.json"), ACL_ERROR_REPEAT_INITIALIZE);
  EXPECT_TRUE(contains(last_message(), "already initialized"));
  EXPECT_EQ(aclFinalize(), ACL_SUCCESS);
  EXPECT_EQ(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
  EXPECT_TRUE(contains(last_message(), "aclFinalize"));
}

TEST(Lifetime, FinalizeWithoutInitIsRepeatFinalize) {
  EXPECT_EQ(aclFinalize(), ACL_ERROR_REPEAT_FINALIZE);
  EXPECT_FALSE(last_message().empty());
}

TEST(Lifetime, ReinitAfterFinalizeGivesAFreshRuntime) {
  ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  ASSERT_EQ(aclFinalize(), ACL_SUCCESS);
  ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
  EXPECT_EQ(aclrtSynchronizeStream(s), ACL_ERROR_INVALID_PARAM);  // handles do not survive
  EXPECT_TRUE(contains(last_message(), "not a live stream"));
  EXPECT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(aclFinalize(), ACL_SUCCESS);
}

TEST(Lifetime, EveryRuntimeCallBeforeInitIsUninitialize) {
  void* p = nullptr;
  aclrtStream s = nullptr;
  aclrtEvent e = nullptr;
  int32_t dev = -1;
  char buf[8] = {};
  EXPECT_EQ(aclrtSetDevice(0), ACL_ERROR_UNINITIALIZE);
  EXPECT_TRUE(contains(last_message(), "aclInit"));
  EXPECT_EQ(aclrtGetDevice(&dev), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtMalloc(&p, 64, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(aclrtMallocHost(&p, 64), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtMemcpy(buf, 8, buf + 4, 4, ACL_MEMCPY_HOST_TO_HOST), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtMemset(buf, 8, 1, 8), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtCreateStream(&s), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtSynchronizeStream(nullptr), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtCreateEvent(&e), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtSynchronizeDevice(), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(addlora_rt::enqueue(nullptr, [] {}), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(buf[0], 0);
}

TEST(Lifetime, CallsAfterFinalizeFailCleanly) {
  ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
  void* dev = nullptr;
  aclrtStream s = nullptr;
  aclrtEvent e = nullptr;
  ASSERT_EQ(aclrtMalloc(&dev, 256, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  ASSERT_EQ(aclrtCreateEvent(&e), ACL_SUCCESS);
  ASSERT_EQ(aclFinalize(), ACL_SUCCESS);
  EXPECT_EQ(aclrtFree(dev), ACL_ERROR_UNINITIALIZE);  // aclFinalize already released it
  EXPECT_EQ(aclrtDestroyStream(s), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtDestroyEvent(e), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtRecordEvent(e, s), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(aclrtSynchronizeStream(s), ACL_ERROR_UNINITIALIZE);
  EXPECT_EQ(addlora_rt::enqueue(s, [] {}), ACL_ERROR_UNINITIALIZE);
  EXPECT_TRUE(contains(last_message(), "not initialized"));
}

TEST(Lifetime, FinalizeDrainsQueuedWork) {
  ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  int ran = 0;  // written by the worker only; read after aclFinalize joined it
  for (int i = 0; i < 100; ++i) ASSERT_EQ(addlora_rt::enqueue(i % 2 ? s : nullptr, [&ran, i] {
    if (i % 2) ++ran;
  }), ACL_SUCCESS);
  ASSERT_EQ(aclFinalize(), ACL_SUCCESS);
  EXPECT_EQ(ran, 50);
}

TEST_F(RuntimeTest, SingleDevice) {
  int32_t dev = -1;
  EXPECT_EQ(aclrtGetDevice(&dev), ACL_ERROR_RT_CONTEXT_NULL);
  EXPECT_TRUE(contains(last_message(), "aclrtSetDevice"));
  EXPECT_EQ(aclrtSetDevice(1), ACL_ERROR_INVALID_DEVICE);
  EXPECT_TRUE(contains(last_message(), "device 1"));
  EXPECT_EQ(aclrtSetDevice(-1), ACL_ERROR_INVALID_DEVICE);
  EXPECT_EQ(aclrtResetDevice(7), ACL_ERROR_INVALID_DEVICE);
  ASSERT_EQ(aclrtSetDevice(0), ACL_SUCCESS);
  EXPECT_EQ(aclrtGetDevice(nullptr), ACL_ERROR_INVALID_PARAM);
  ASSERT_EQ(aclrtGetDevice(&dev), ACL_SUCCESS);
  EXPECT_EQ(dev, 0);
  uint32_t count = 0;
  ASSERT_EQ(aclrtGetDeviceCount(&count), ACL_SUCCESS);
  EXPECT_EQ(count, 1u);
  aclrtRunMode mode = ACL_DEVICE;
  ASSERT_EQ(aclrtGetRunMode(&mode), ACL_SUCCESS);
  EXPECT_EQ(mode, ACL_HOST);
  EXPECT_EQ(aclrtResetDevice(0), ACL_SUCCESS);
  EXPECT_EQ(aclrtGetDevice(&dev), ACL_ERROR_RT_CONTEXT_NULL);
  EXPECT_EQ(aclrtResetDevice(0), ACL_SUCCESS);  // resetting an unset device is harmless
}

TEST_F(RuntimeTest, Contexts) {
  aclrtContext ctx = nullptr, cur = nullptr;
  EXPECT_EQ(aclrtGetCurrentContext(&cur), ACL_ERROR_RT_CONTEXT_NULL);
  EXPECT_EQ(aclrtCreateContext(nullptr, 0), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtCreateContext(&ctx, 3), ACL_ERROR_INVALID_DEVICE);
  ASSERT_EQ(aclrtCreateContext(&ctx, 0), ACL_SUCCESS);
  ASSERT_NE(ctx, nullptr);
  ASSERT_EQ(aclrtGetCurrentContext(&cur), ACL_SUCCESS);
  EXPECT_EQ(cur, ctx);
  EXPECT_EQ(aclrtSetCurrentContext(ctx), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyContext(ctx), ACL_SUCCESS);
  EXPECT_EQ(aclrtDestroyContext(ctx), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtSetCurrentContext(ctx), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "not a live context"));
}

TEST(Helpers, Float16Conversions) {
  EXPECT_EQ(aclFloatToFloat16(1.0f), 0x3c00);
  EXPECT_EQ(aclFloatToFloat16(-2.0f), 0xc000);
  EXPECT_EQ(aclFloatToFloat16(65504.0f), 0x7bff);
  EXPECT_EQ(aclFloatToFloat16(1e6f), 0x7c00);                 // overflow -> inf
  EXPECT_EQ(aclFloatToFloat16(1.0f + 1.0f / 2048), 0x3c00);  // tie rounds to even
  EXPECT_EQ(aclFloatToFloat16(1.0f + 3.0f / 2048), 0x3c02);  // tie rounds to even (up)
  EXPECT_EQ(aclFloat16ToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(aclFloat16ToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_TRUE(std::isnan(aclFloat16ToFloat(0x7e00)));
  for (uint32_t h = 0; h < 0x7c00; h += 7) EXPECT_EQ(aclFloatToFloat16(aclFloat16ToFloat(static_cast<aclFloat16>(h))), h);
}

TEST(Helpers, DataTypeSize) {
  EXPECT_EQ(aclDataTypeSize(ACL_FLOAT), 4u);
  EXPECT_EQ(aclDataTypeSize(ACL_FLOAT16), 2u);
  EXPECT_EQ(aclDataTypeSize(ACL_BF16), 2u);
  EXPECT_EQ(aclDataTypeSize(ACL_INT8), 1u);
  EXPECT_EQ(aclDataTypeSize(ACL_INT32), 4u);
  EXPECT_EQ(aclDataTypeSize(ACL_INT64), 8u);
  EXPECT_EQ(aclDataTypeSize(ACL_DOUBLE), 8u);
  EXPECT_EQ(aclDataTypeSize(ACL_BOOL), 1u);
  EXPECT_EQ(aclDataTypeSize(ACL_COMPLEX128), 16u);
  EXPECT_EQ(aclDataTypeSize(ACL_DT_UNDEFINED), 0u);
  EXPECT_EQ(aclDataTypeSize(static_cast<aclDataType>(31)), 0u);
}
