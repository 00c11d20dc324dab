// The CANN client flow for one optest case: every TestTensor image (guards and gaps
// included) is copied to "device" memory with aclrtMalloc/aclrtMemcpy, wrapped in an
// aclTensor (view dims, strides, offset, format, storage dims), and copied back after the
// run so the host-side oracle, checker and sentinel checks apply unchanged.
#pragma once
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"
#include "op_case.h"

namespace optest {

#define ACL_OK(expr)                                                                  \
  do {                                                                                \
    const int acl_ok_status_ = static_cast<int>(expr);                                \
    ASSERT_EQ(acl_ok_status_, 0) << #expr << ": " << aclGetRecentErrMsg();            \
  } while (0)

// aclInit + aclrtSetDevice(0) once per test program; aclrtResetDevice + aclFinalize at exit.
class AclEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override;
};

// How NZ weights describe their storage: the NZ shape, or flat [numel] (docs/contract.md §5).
enum class NzStorage { nz_shape, flat };

// One TestTensor on the device.
class DeviceTensor {
 public:
  DeviceTensor(addlora::ref::TestTensor* host, NzStorage nz = NzStorage::flat);
  ~DeviceTensor();
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  aclTensor* tensor() const { return tensor_; }
  void* storage() const { return static_cast<char*>(dev_) + host_->guard_bytes(); }  // tensorData
  // Device image -> host image (so the host views show what the operator did).
  void copy_back();
  // Host image -> device image.
  void upload();
  bool ok() const { return tensor_ != nullptr; }

 private:
  addlora::ref::TestTensor* host_;
  void* dev_ = nullptr;
  aclTensor* tensor_ = nullptr;
};

// Device tensors for every tensor of a case (out is y's tensor when in place).
struct DeviceCase {
  explicit DeviceCase(CaseData& d, NzStorage nz = NzStorage::flat);
  std::unique_ptr<DeviceTensor> y, x, wa, wb, idx, out;
  aclTensor* out_tensor() const { return out ? out->tensor() : y->tensor(); }
  void copy_back_all();
  CaseData& data;
};

// A stream for the scope of a test.
struct Stream {
  aclrtStream s = nullptr;
  Stream() { EXPECT_EQ(aclrtCreateStream(&s), 0) << aclGetRecentErrMsg(); }
  ~Stream() { EXPECT_EQ(aclrtDestroyStream(s), 0) << aclGetRecentErrMsg(); }
};

// Phase one for `dc` (single-use executor; null on failure, with a test failure recorded).
aclOpExecutor* plan(const CaseData& d, const DeviceCase& dc, uint64_t* ws_size);

// A small strided problem (B 37, H1 64, R 32, H2 48, H3 96, W 5, L 3) for semantics tests.
CaseSpec small_case(uint64_t seed);

// Phase one + workspace + phase two + synchronize for one case; returns "" or what failed.
std::string run_on_stream(CaseData& d, DeviceCase& dc, aclrtStream stream);

}  // namespace optest
