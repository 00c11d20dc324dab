#include "acl_case.h"

#include <cstdio>

namespace optest {

using addlora::ref::TestTensor;

void AclEnvironment::SetUp() {
  ASSERT_EQ(aclInit(nullptr), 0) << aclGetRecentErrMsg();
  ASSERT_EQ(aclrtSetDevice(0), 0) << aclGetRecentErrMsg();
}

void AclEnvironment::TearDown() {
  EXPECT_EQ(aclrtResetDevice(0), 0) << aclGetRecentErrMsg();
  EXPECT_EQ(aclFinalize(), 0) << aclGetRecentErrMsg();
}

DeviceTensor::DeviceTensor(TestTensor* host, NzStorage nz) : host_(host) {
  const size_t bytes = host->image_size();
  if (aclrtMalloc(&dev_, bytes, ACL_MEM_MALLOC_HUGE_FIRST) != 0) return;
  if (aclrtMemcpy(dev_, bytes, host->image(), bytes, ACL_MEMCPY_HOST_TO_DEVICE) != 0) return;
  const std::vector<int64_t>& dims = host->dims();
  std::vector<int64_t> strides = host->strides();
  std::vector<int64_t> sdims = {host->storage_elems()};
  const bool is_nz = host->layout() == addlora::Layout::fractal_nz;
  if (is_nz) {
    // Clients pass contiguous strides for the logical view of an NZ tensor.
    int64_t s = 1;
    for (size_t k = dims.size(); k-- > 0;) { strides[k] = s; s *= dims[k]; }
    if (nz == NzStorage::nz_shape && host->offset() == 0) {
      const size_t n = dims.size();
      sdims.assign(dims.begin(), dims.end() - 2);
      sdims.push_back((dims[n - 1] + 15) / 16);
      sdims.push_back((dims[n - 2] + 15) / 16);
      sdims.push_back(16);
      sdims.push_back(16);
    }
  }
  tensor_ = aclCreateTensor(dims.data(), dims.size(), static_cast<aclDataType>(host->dtype()), strides.data(),
                            host->offset(), is_nz ? ACL_FORMAT_FRACTAL_NZ : ACL_FORMAT_ND, sdims.data(),
                            sdims.size(), storage());
}

DeviceTensor::~DeviceTensor() {
  if (tensor_) aclDestroyTensor(tensor_);
  if (dev_) aclrtFree(dev_);
}

void DeviceTensor::copy_back() {
  const size_t bytes = host_->image_size();
  ASSERT_EQ(aclrtMemcpy(host_->image(), bytes, dev_, bytes, ACL_MEMCPY_DEVICE_TO_HOST), 0) << aclGetRecentErrMsg();
}

void DeviceTensor::upload() {
  const size_t bytes = host_->image_size();
  ASSERT_EQ(aclrtMemcpy(dev_, bytes, host_->image(), bytes, ACL_MEMCPY_HOST_TO_DEVICE), 0) << aclGetRecentErrMsg();
}

DeviceCase::DeviceCase(CaseData& d, NzStorage nz) : data(d) {
  y = std::make_unique<DeviceTensor>(d.y.get(), nz);
  x = std::make_unique<DeviceTensor>(d.x.get(), nz);
  wb = std::make_unique<DeviceTensor>(d.wb.get(), nz);
  if (d.wa) wa = std::make_unique<DeviceTensor>(d.wa.get(), nz);
  idx = std::make_unique<DeviceTensor>(d.idx.get(), nz);
  if (d.out) out = std::make_unique<DeviceTensor>(d.out.get(), nz);
}

void DeviceCase::copy_back_all() {
  for (auto* t : {&y, &x, &wa, &wb, &idx, &out})
    if (*t) (*t)->copy_back();
}

aclOpExecutor* plan(const CaseData& d, const DeviceCase& dc, uint64_t* ws_size) {
  aclOpExecutor* exec = nullptr;
  const aclnnStatus st = aclnnAddLoraGetWorkspaceSize(
      dc.y->tensor(), dc.x->tensor(), dc.wb->tensor(), dc.idx->tensor(), dc.wa ? dc.wa->tensor() : nullptr,
      d.spec.layer, d.scale, d.spec.y_offset, d.spec.y_slice, dc.out_tensor(), ws_size, &exec);
  EXPECT_EQ(st, 0) << aclGetRecentErrMsg();
  return exec;
}

CaseSpec small_case(uint64_t seed) {
  CaseSpec c;
  c.B = 37; c.H1 = 64; c.R = 32; c.H2 = 48; c.H3 = 96; c.W = 5; c.L = 3; c.layer = 2; c.y_offset = 17;
  c.pattern = Pattern::mixed; c.strided = true; c.seed = seed;
  return c;
}

std::string run_on_stream(CaseData& d, DeviceCase& dc, aclrtStream stream) {
  for (auto* t : {&dc.y, &dc.x, &dc.wa, &dc.wb, &dc.idx, &dc.out})
    if (*t && !(*t)->ok()) return std::string("device tensor setup failed: ") + aclGetRecentErrMsg();
  uint64_t ws_size = 0;
  aclOpExecutor* exec = nullptr;
  const CaseSpec& c = d.spec;
  aclnnStatus st = aclnnAddLoraGetWorkspaceSize(dc.y->tensor(), dc.x->tensor(), dc.wb->tensor(), dc.idx->tensor(),
                                                dc.wa ? dc.wa->tensor() : nullptr, c.layer, d.scale, c.y_offset,
                                                c.y_slice, dc.out_tensor(), &ws_size, &exec);
  if (st != 0) return "aclnnAddLoraGetWorkspaceSize -> " + std::to_string(st) + ": " + aclGetRecentErrMsg();
  if (exec == nullptr) return "GetWorkspaceSize succeeded with a null executor";
  void* ws = nullptr;
  if (ws_size > 0 && aclrtMalloc(&ws, ws_size, ACL_MEM_MALLOC_HUGE_FIRST) != 0)
    return std::string("workspace aclrtMalloc failed: ") + aclGetRecentErrMsg();
  std::string err;
  st = aclnnAddLora(ws, ws_size, exec, stream);
  if (st != 0) err = "aclnnAddLora -> " + std::to_string(st) + ": " + aclGetRecentErrMsg();
  const aclError se = aclrtSynchronizeStream(stream);
  if (err.empty() && se != 0) err = "aclrtSynchronizeStream -> " + std::to_string(se) + ": " + aclGetRecentErrMsg();
  if (ws) aclrtFree(ws);
  return err;
}

}  // namespace optest
