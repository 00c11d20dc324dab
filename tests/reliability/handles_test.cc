// Handles a client can misuse: destroyed tensors passed to aclSetInputTensorAddr, executor
// handles after consumption, buffers re-pointed through an invalid intermediate state.
#define ACLNN_SUCCESS 0  // clients may define the status macros themselves (CANN's op_errno.h does)
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"

namespace {

class Handles : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
    ASSERT_EQ(aclrtSetDevice(0), ACL_SUCCESS);
  }
  void TearDown() override {
    for (aclTensor* t : tensors_) aclDestroyTensor(t);
    aclrtResetDevice(0);
    aclFinalize();
  }
  // Contiguous fp16/int32 tensor over host memory ("device" memory is host memory here).
  aclTensor* tensor(std::vector<int64_t> dims, aclDataType dt, void* data) {
    std::vector<int64_t> strides(dims.size(), 1);
    for (size_t k = dims.size() - 1; k-- > 0;) strides[k] = strides[k + 1] * dims[k + 1];
    aclTensor* t = aclCreateTensor(dims.data(), dims.size(), dt, strides.data(), 0, ACL_FORMAT_ND, dims.data(),
                                   dims.size(), data);
    tensors_.push_back(t);
    return t;
  }
  // y[2,16] ones, x[2,16] ones, B [1,1,16,16] with 1.0 (0x3c00), no A, indices {0, 0}:
  // d = scale * sum_r x_r * 1 = scale * 16 per element.
  void make(void* out_data) {
    y_.assign(32, 0x3c00);
    x_.assign(32, 0x3c00);
    b_.assign(256, 0x3c00);
    idx_.assign(2, 0);
    ty_ = tensor({2, 16}, ACL_FLOAT16, y_.data());
    tx_ = tensor({2, 16}, ACL_FLOAT16, x_.data());
    tb_ = tensor({1, 1, 16, 16}, ACL_FLOAT16, b_.data());
    ti_ = tensor({2}, ACL_INT32, idx_.data());
    to_ = tensor({2, 16}, ACL_FLOAT16, out_data);
  }
  aclOpExecutor* plan(uint64_t* ws) {
    aclOpExecutor* e = nullptr;
    EXPECT_EQ(aclnnAddLoraGetWorkspaceSize(ty_, tx_, tb_, ti_, nullptr, 0, 0.0625, 0, -1, to_, ws, &e), ACLNN_SUCCESS)
        << aclGetRecentErrMsg();
    return e;
  }

  std::vector<aclTensor*> tensors_;
  std::vector<uint16_t> y_, x_, b_;
  std::vector<int32_t> idx_;
  aclTensor *ty_ = nullptr, *tx_ = nullptr, *tb_ = nullptr, *ti_ = nullptr, *to_ = nullptr;
};

TEST_F(Handles, DestroyedTensorCannotBeRepointed) {
  std::vector<uint16_t> out(32, 0), other(32, 0);
  make(out.data());
  uint64_t ws_size = 0;
  aclOpExecutor* e = plan(&ws_size);
  ASSERT_EQ(aclSetAclOpExecutorRepeatable(e), ACLNN_SUCCESS);
  std::vector<int64_t> d{2, 16};
  aclTensor* gone = aclCreateTensor(d.data(), 2, ACL_FLOAT16, nullptr, 0, ACL_FORMAT_ND, d.data(), 2, out.data());
  ASSERT_EQ(aclDestroyTensor(gone), ACLNN_SUCCESS);
  EXPECT_EQ(aclSetOutputTensorAddr(e, 0, gone, other.data()), ACLNN_ERR_PARAM_INVALID);
  EXPECT_NE(std::string(aclGetRecentErrMsg()).find("not live"), std::string::npos);
  EXPECT_EQ(aclDestroyAclOpExecutor(e), ACLNN_SUCCESS);
}

TEST_F(Handles, ConsumedExecutorHandleIsNeverReused) {
  std::vector<uint16_t> out(32, 0);
  make(out.data());
  std::vector<uint8_t> ws(1 << 16);
  uint64_t ws_size = 0;
  aclOpExecutor* first = plan(&ws_size);
  ASSERT_LE(ws_size, ws.size());
  ASSERT_EQ(aclnnAddLora(ws.data(), ws_size, first, nullptr), ACLNN_SUCCESS);
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  std::set<aclOpExecutor*> later;
  for (int i = 0; i < 50; ++i) {
    aclOpExecutor* e = plan(&ws_size);
    later.insert(e);
    ASSERT_EQ(aclnnAddLora(ws.data(), ws_size, e, nullptr), ACLNN_SUCCESS);  // consumed too
  }
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  EXPECT_EQ(later.count(first), 0u) << "a consumed handle was handed out again";
  EXPECT_EQ(aclnnAddLora(ws.data(), ws_size, first, nullptr), ACLNN_ERR_PARAM_INVALID);
}

TEST_F(Handles, RepointingMayPassThroughAnInvalidState) {
  std::vector<uint16_t> out(32, 0), out2(32, 0), x2(32, 0x4000);  // x2 = 2.0
  make(out.data());
  std::vector<uint8_t> ws(1 << 16);
  uint64_t ws_size = 0;
  aclOpExecutor* e = plan(&ws_size);
  ASSERT_EQ(aclSetAclOpExecutorRepeatable(e), ACLNN_SUCCESS);
  // Move x onto out's buffer first (x would alias out), then move out away: legal at launch.
  ASSERT_EQ(aclSetInputTensorAddr(e, 1, tx_, out.data()), ACLNN_SUCCESS);
  // Launching in that state is refused, and the executor survives.
  EXPECT_EQ(aclnnAddLora(ws.data(), ws_size, e, nullptr), ACLNN_ERR_PARAM_INVALID);
  EXPECT_NE(std::string(aclGetRecentErrMsg()).find("out overlaps x"), std::string::npos);
  ASSERT_EQ(aclSetOutputTensorAddr(e, 0, to_, out2.data()), ACLNN_SUCCESS);
  std::copy(x2.begin(), x2.end(), out.begin());  // x now reads 2.0 from `out`
  ASSERT_EQ(aclnnAddLora(ws.data(), ws_size, e, nullptr), ACLNN_SUCCESS) << aclGetRecentErrMsg();
  ASSERT_EQ(aclrtSynchronizeStream(nullptr), ACL_SUCCESS);
  // out2 = 1 + 0.0625 * 16 * 2 = 3.0 (0x4200)
  for (uint16_t v : out2) ASSERT_EQ(v, 0x4200);
  EXPECT_EQ(aclDestroyAclOpExecutor(e), ACLNN_SUCCESS);
}

}  // namespace
