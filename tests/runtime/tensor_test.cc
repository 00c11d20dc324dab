// aclCreateTensor / aclDestroyTensor and the getters.
#include <cstdint>
#include <limits>
#include <vector>

#include "runtime_test_util.h"

namespace {

std::vector<int64_t> take(int64_t* values, uint64_t n) {
  std::vector<int64_t> v(values, values + n);
  delete[] values;
  return v;
}

struct Got {
  std::vector<int64_t> view, strides, storage;
  int64_t offset = -1;
  aclFormat format = ACL_FORMAT_UNDEFINED;
  aclDataType dtype = ACL_DT_UNDEFINED;
};

Got get_all(const aclTensor* t) {
  Got g;
  int64_t* v = nullptr;
  uint64_t n = 99;
  EXPECT_EQ(aclGetViewShape(t, &v, &n), ACLNN_SUCCESS);
  g.view = take(v, n);
  EXPECT_EQ(aclGetViewStrides(t, &v, &n), ACLNN_SUCCESS);
  g.strides = take(v, n);
  EXPECT_EQ(aclGetStorageShape(t, &v, &n), ACLNN_SUCCESS);
  g.storage = take(v, n);
  EXPECT_EQ(aclGetViewOffset(t, &g.offset), ACLNN_SUCCESS);
  EXPECT_EQ(aclGetFormat(t, &g.format), ACLNN_SUCCESS);
  EXPECT_EQ(aclGetDataType(t, &g.dtype), ACLNN_SUCCESS);
  return g;
}

using V = std::vector<int64_t>;

}  // namespace

TEST(Tensor, ContiguousStridesAreComputedAndArraysCopied) {
  V dims = {2, 3, 4}, storage = {24};
  float data[24];
  aclTensor* t = aclCreateTensor(dims.data(), 3, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, storage.data(), 1, data);
  ASSERT_NE(t, nullptr) << aclGetRecentErrMsg();
  dims[0] = 100;  // the tensor keeps its own copy
  storage[0] = 1;
  const Got g = get_all(t);
  EXPECT_EQ(g.view, (V{2, 3, 4}));
  EXPECT_EQ(g.strides, (V{12, 4, 1}));
  EXPECT_EQ(g.storage, (V{24}));
  EXPECT_EQ(g.offset, 0);
  EXPECT_EQ(g.format, ACL_FORMAT_ND);
  EXPECT_EQ(g.dtype, ACL_FLOAT);
  EXPECT_TRUE(addlora_rt::is_live_tensor(t));
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
  EXPECT_FALSE(addlora_rt::is_live_tensor(t));
}

TEST(Tensor, StridedViewWithOffsetAndNzStorage) {
  const V dims = {4, 32}, strides = {1, 4}, storage = {2, 1, 16, 16};
  aclTensor* t = aclCreateTensor(dims.data(), 2, ACL_FLOAT16, strides.data(), 5, ACL_FORMAT_FRACTAL_NZ,
                                 storage.data(), 4, nullptr);
  ASSERT_NE(t, nullptr) << aclGetRecentErrMsg();
  const Got g = get_all(t);
  EXPECT_EQ(g.view, dims);
  EXPECT_EQ(g.strides, strides);
  EXPECT_EQ(g.storage, storage);
  EXPECT_EQ(g.offset, 5);
  EXPECT_EQ(g.format, ACL_FORMAT_FRACTAL_NZ);
  EXPECT_EQ(g.dtype, ACL_FLOAT16);
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
}

TEST(Tensor, DefaultStorageIsTheViewExtent) {
  const V dims = {3, 5}, strides = {10, 2};
  aclTensor* t = aclCreateTensor(dims.data(), 2, ACL_INT32, strides.data(), 7, ACL_FORMAT_ND, nullptr, 0, nullptr);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(get_all(t).storage, (V{7 + 2 * 10 + 4 * 2 + 1}));
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
  // zero-size dims: contiguous strides still follow the other dims, extent is 0
  const V empty = {0, 3};
  t = aclCreateTensor(empty.data(), 2, ACL_FLOAT, nullptr, 2, ACL_FORMAT_ND, nullptr, 0, nullptr);
  ASSERT_NE(t, nullptr);
  Got g = get_all(t);
  EXPECT_EQ(g.strides, (V{3, 1}));
  EXPECT_EQ(g.storage, (V{2}));
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
  // a scalar (0-d) tensor
  t = aclCreateTensor(nullptr, 0, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, nullptr, 0, nullptr);
  ASSERT_NE(t, nullptr);
  g = get_all(t);
  EXPECT_TRUE(g.view.empty());
  EXPECT_TRUE(g.strides.empty());
  EXPECT_EQ(g.storage, (V{1}));
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
}

TEST(Tensor, InvalidArgumentsGiveNullAndAMessage) {
  const V two = {2, 3}, neg = {2, -3}, nine(9, 1), neg_stride = {3, -1}, huge = {int64_t{1} << 40, int64_t{1} << 40};
  aclGetRecentErrMsg();
  auto expect_rejected = [](aclTensor* t, const char* part) {
    EXPECT_EQ(t, nullptr);
    const std::string m = aclGetRecentErrMsg();
    EXPECT_TRUE(contains(m, part)) << m;
    if (t != nullptr) aclDestroyTensor(t);
  };
  expect_rejected(aclCreateTensor(nullptr, 2, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, two.data(), 2, nullptr),
                  "viewDims is null");
  expect_rejected(aclCreateTensor(neg.data(), 2, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, two.data(), 2, nullptr),
                  "viewDims[1] = -3");
  expect_rejected(aclCreateTensor(nine.data(), 9, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, nine.data(), 9, nullptr),
                  "at most 8");
  expect_rejected(aclCreateTensor(two.data(), 2, ACL_FLOAT, neg_stride.data(), 0, ACL_FORMAT_ND, two.data(), 2, nullptr),
                  "stride[1] = -1");
  expect_rejected(aclCreateTensor(two.data(), 2, ACL_FLOAT, nullptr, -1, ACL_FORMAT_ND, two.data(), 2, nullptr),
                  "offset = -1");
  expect_rejected(aclCreateTensor(two.data(), 2, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, nullptr, 2, nullptr),
                  "storageDims is null");
  expect_rejected(aclCreateTensor(two.data(), 2, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, neg.data(), 2, nullptr),
                  "storageDims[1] = -3");
  expect_rejected(aclCreateTensor(huge.data(), 2, ACL_FLOAT, huge.data(), 0, ACL_FORMAT_ND, nullptr, 0, nullptr),
                  "overflows");
  const V big3 = {int64_t{1} << 30, int64_t{1} << 30, int64_t{1} << 30};
  expect_rejected(aclCreateTensor(big3.data(), 3, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, nullptr, 0, nullptr),
                  "overflows");
}

TEST(Tensor, GetterAndDestroyErrors) {
  const V dims = {4};
  aclTensor* t = aclCreateTensor(dims.data(), 1, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, dims.data(), 1, nullptr);
  ASSERT_NE(t, nullptr);
  int64_t* values = nullptr;
  uint64_t n = 0;
  int64_t offset = 0;
  aclFormat format;
  aclDataType dtype;
  EXPECT_EQ(aclGetViewShape(nullptr, &values, &n), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "tensor is null"));
  EXPECT_EQ(aclGetViewShape(t, nullptr, &n), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetViewShape(t, &values, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetStorageShape(t, nullptr, &n), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetViewStrides(t, &values, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetViewOffset(t, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetViewOffset(nullptr, &offset), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetFormat(t, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetDataType(nullptr, &dtype), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclDestroyTensor(nullptr), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_ERR_PARAM_INVALID);  // double destroy is caught
  EXPECT_TRUE(contains(aclGetRecentErrMsg(), "already destroyed"));
  EXPECT_EQ(aclGetFormat(t, &format), ACLNN_ERR_PARAM_INVALID);
  aclTensor not_from_create;
  EXPECT_EQ(aclGetDataType(&not_from_create, &dtype), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclDestroyTensor(&not_from_create), ACLNN_ERR_PARAM_INVALID);
  EXPECT_FALSE(addlora_rt::is_live_tensor(nullptr));
}
