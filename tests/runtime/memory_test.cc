// aclrtMalloc / Free / MallocHost / FreeHost / Memcpy(Async) / Memset(Async) edge cases.
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime_test_util.h"

using MemoryTest = RuntimeTest;

TEST_F(MemoryTest, MallocIsAlignedUsableAndTracked) {
  std::vector<void*> blocks;
  for (size_t size : {1u, 3u, 64u, 100u, 4096u, 1000000u}) {
    void* p = nullptr;
    ASSERT_EQ(aclrtMalloc(&p, size, ACL_MEM_MALLOC_NORMAL_ONLY), ACL_SUCCESS);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << size;
    std::memset(p, 0x5a, size);
    EXPECT_EQ(static_cast<unsigned char*>(p)[size - 1], 0x5a);
    blocks.push_back(p);
  }
  for (void* p : blocks) EXPECT_EQ(aclrtFree(p), ACL_SUCCESS);
  EXPECT_EQ(aclrtFree(blocks[0]), ACL_ERROR_INVALID_PARAM);  // double free
  EXPECT_TRUE(contains(last_message(), "already freed"));
}

TEST_F(MemoryTest, MallocBadArguments) {
  void* p = nullptr;
  EXPECT_EQ(aclrtMalloc(&p, 0, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "size"));
  EXPECT_EQ(aclrtMalloc(nullptr, 64, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtMalloc(&p, std::numeric_limits<size_t>::max(), ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_BAD_ALLOC);
  EXPECT_TRUE(contains(last_message(), "cannot allocate"));
  EXPECT_EQ(aclrtMalloc(&p, std::numeric_limits<size_t>::max() / 2, ACL_MEM_MALLOC_HUGE_FIRST), ACL_ERROR_BAD_ALLOC);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(aclrtMallocHost(&p, 0), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtMallocHost(nullptr, 8), ACL_ERROR_INVALID_PARAM);
}

TEST_F(MemoryTest, FreeRejectsForeignPointers) {
  int local = 0;
  EXPECT_EQ(aclrtFree(nullptr), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtFreeHost(nullptr), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtFree(&local), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "aclrtMalloc"));
  void* dev = nullptr;
  void* host = nullptr;
  ASSERT_EQ(aclrtMalloc(&dev, 128, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
  ASSERT_EQ(aclrtMallocHost(&host, 128), ACL_SUCCESS);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(host) % 64, 0u);
  EXPECT_EQ(aclrtFree(host), ACL_ERROR_INVALID_PARAM);      // the pools are separate
  EXPECT_EQ(aclrtFreeHost(dev), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtFree(static_cast<char*>(dev) + 64), ACL_ERROR_INVALID_PARAM);  // interior pointer
  EXPECT_EQ(aclrtFree(dev), ACL_SUCCESS);
  EXPECT_EQ(aclrtFreeHost(host), ACL_SUCCESS);
  EXPECT_EQ(aclrtFreeHost(host), ACL_ERROR_INVALID_PARAM);
}

TEST_F(MemoryTest, MemcpyCopiesAndValidates) {
  std::vector<int32_t> src(64), dst(64, -1);
  for (int i = 0; i < 64; ++i) src[i] = i * 3;
  void* dev = nullptr;
  ASSERT_EQ(aclrtMalloc(&dev, 256, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
  ASSERT_EQ(aclrtMemcpy(dev, 256, src.data(), 256, ACL_MEMCPY_HOST_TO_DEVICE), ACL_SUCCESS);
  ASSERT_EQ(aclrtMemcpy(dst.data(), 256, dev, 256, ACL_MEMCPY_DEVICE_TO_HOST), ACL_SUCCESS);
  EXPECT_EQ(dst, src);
  // count 0 succeeds and touches nothing
  EXPECT_EQ(aclrtMemcpy(dst.data(), 0, src.data(), 0, ACL_MEMCPY_DEFAULT), ACL_SUCCESS);
  // count > destMax: the runtime's parameter error, and nothing is copied
  std::vector<int32_t> small(4, 7);
  EXPECT_EQ(aclrtMemcpy(small.data(), 8, src.data(), 16, ACL_MEMCPY_HOST_TO_HOST), ACL_ERROR_RT_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "destMax"));
  EXPECT_EQ(small, std::vector<int32_t>(4, 7));
  EXPECT_EQ(aclrtMemcpy(nullptr, 8, src.data(), 8, ACL_MEMCPY_HOST_TO_HOST), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "destination"));
  EXPECT_EQ(aclrtMemcpy(dst.data(), 8, nullptr, 8, ACL_MEMCPY_HOST_TO_HOST), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "source"));
  EXPECT_EQ(aclrtMemcpy(nullptr, 0, nullptr, 0, ACL_MEMCPY_HOST_TO_HOST), ACL_ERROR_INVALID_PARAM);
  // Every kind CANN 8.5.0 defines is a plain copy here (kinds outside the enum, which only a C
  // client can pass, are rejected: header_check.c).
  for (int k = ACL_MEMCPY_HOST_TO_HOST; k <= ACL_MEMCPY_INTER_DEVICE_TO_DEVICE; ++k)
    EXPECT_EQ(aclrtMemcpy(dst.data(), 4, src.data(), 4, static_cast<aclrtMemcpyKind>(k)), ACL_SUCCESS) << k;
  // overlapping ranges behave like memmove
  ASSERT_EQ(aclrtMemcpy(src.data() + 1, 252, src.data(), 252, ACL_MEMCPY_HOST_TO_HOST), ACL_SUCCESS);
  EXPECT_EQ(src[1], 0);
  EXPECT_EQ(src[63], 62 * 3);
  EXPECT_EQ(aclrtFree(dev), ACL_SUCCESS);
}

TEST_F(MemoryTest, MemsetSetsBytesAndValidates) {
  std::vector<unsigned char> buf(100, 1);
  ASSERT_EQ(aclrtMemset(buf.data(), 100, 0x1ff, 60), ACL_SUCCESS);  // (unsigned char)value
  EXPECT_EQ(buf[0], 0xff);
  EXPECT_EQ(buf[59], 0xff);
  EXPECT_EQ(buf[60], 1);
  EXPECT_EQ(aclrtMemset(buf.data(), 100, 0, 0), ACL_SUCCESS);
  EXPECT_EQ(aclrtMemset(buf.data(), 10, 0, 11), ACL_ERROR_RT_PARAM_INVALID);
  EXPECT_EQ(buf[0], 0xff);
  EXPECT_EQ(aclrtMemset(nullptr, 10, 0, 1), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "null"));
}

TEST_F(MemoryTest, AsyncCopiesRunInStreamOrder) {
  aclrtStream s = nullptr;
  ASSERT_EQ(aclrtCreateStream(&s), ACL_SUCCESS);
  const size_t n = 1 << 16;
  void* a = nullptr;
  void* b = nullptr;
  ASSERT_EQ(aclrtMalloc(&a, n, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
  ASSERT_EQ(aclrtMalloc(&b, n, ACL_MEM_MALLOC_HUGE_FIRST), ACL_SUCCESS);
  std::vector<unsigned char> host(n, 0);
  Gate gate;
  ASSERT_EQ(addlora_rt::enqueue(s, [&] { gate.wait(); }), ACL_SUCCESS);
  ASSERT_EQ(aclrtMemsetAsync(a, n, 0xab, n, s), ACL_SUCCESS);
  ASSERT_EQ(aclrtMemcpyAsync(b, n, a, n, ACL_MEMCPY_DEVICE_TO_DEVICE, s), ACL_SUCCESS);
  ASSERT_EQ(aclrtMemcpyAsync(host.data(), n, b, n, ACL_MEMCPY_DEVICE_TO_HOST, s), ACL_SUCCESS);
  EXPECT_EQ(host[0], 0);  // nothing ran yet: the stream is blocked
  gate.open();
  ASSERT_EQ(aclrtSynchronizeStream(s), ACL_SUCCESS);
  EXPECT_EQ(host, std::vector<unsigned char>(n, 0xab));
  // validation happens at the call, before anything is queued
  EXPECT_EQ(aclrtMemcpyAsync(host.data(), 8, b, 16, ACL_MEMCPY_DEVICE_TO_HOST, s), ACL_ERROR_RT_PARAM_INVALID);
  EXPECT_EQ(aclrtMemcpyAsync(nullptr, 8, b, 8, ACL_MEMCPY_DEVICE_TO_HOST, s), ACL_ERROR_INVALID_PARAM);
  EXPECT_EQ(aclrtMemcpyAsync(host.data(), 8, b, 0, ACL_MEMCPY_INNER_DEVICE_TO_DEVICE, s), ACL_SUCCESS);
  EXPECT_EQ(aclrtMemsetAsync(a, 8, 0, 9, s), ACL_ERROR_RT_PARAM_INVALID);
  EXPECT_EQ(aclrtMemcpyAsync(host.data(), 0, b, 0, ACL_MEMCPY_DEVICE_TO_HOST, nullptr), ACL_SUCCESS);
  ASSERT_EQ(aclrtDestroyStream(s), ACL_SUCCESS);
  EXPECT_EQ(aclrtMemcpyAsync(host.data(), 8, b, 8, ACL_MEMCPY_DEVICE_TO_HOST, s), ACL_ERROR_INVALID_PARAM);
  EXPECT_TRUE(contains(last_message(), "not a live stream"));
  EXPECT_EQ(aclrtFree(a), ACL_SUCCESS);
  EXPECT_EQ(aclrtFree(b), ACL_SUCCESS);
}
