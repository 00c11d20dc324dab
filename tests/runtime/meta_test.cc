// acl_meta.h objects beyond aclTensor: scalars, int/float/bool arrays, tensor and scalar
// lists, raw tensor addresses.  What acl_meta.h documents: copies at creation, empty objects
// for size 0, NULL handles with a message for bad input, list ownership without double frees.
#include <cstdint>
#include <cstring>
#include <limits>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "runtime_test_util.h"

namespace {

aclTensor* make_tensor(void* data = nullptr) {
  const int64_t dims[2] = {2, 3};
  return aclCreateTensor(dims, 2, ACL_FLOAT, nullptr, 0, ACL_FORMAT_ND, dims, 2, data);
}

uint64_t int_size(const aclIntArray* a) {
  uint64_t n = 12345;
  EXPECT_EQ(aclGetIntArraySize(a, &n), ACLNN_SUCCESS) << aclGetRecentErrMsg();
  return n;
}

}  // namespace

TEST(Meta, ScalarCopiesItsValue) {
  float f = 2.5f;
  aclScalar* s = aclCreateScalar(&f, ACL_FLOAT);
  ASSERT_NE(s, nullptr) << aclGetRecentErrMsg();
  f = 7.0f;
  float kept;
  std::memcpy(&kept, s->bytes, sizeof kept);  // the runtime's view (internal.h)
  EXPECT_EQ(kept, 2.5f);
  EXPECT_EQ(s->dtype, ACL_FLOAT);
  EXPECT_EQ(aclDestroyScalar(s), ACLNN_SUCCESS);

  double d = -1.25;
  int64_t i = -5;
  aclFloat16 h = aclFloatToFloat16(0.5f);
  for (auto* p : {aclCreateScalar(&d, ACL_DOUBLE), aclCreateScalar(&i, aclDataType::ACL_INT64),
                  aclCreateScalar(&h, ACL_FLOAT16)}) {
    ASSERT_NE(p, nullptr) << aclGetRecentErrMsg();
    EXPECT_EQ(aclDestroyScalar(p), ACLNN_SUCCESS);
  }
}

TEST(Meta, ScalarBadInputIsNullWithMessage) {
  float f = 1.0f;
  EXPECT_EQ(aclCreateScalar(nullptr, ACL_FLOAT), nullptr);
  EXPECT_TRUE(contains(last_message(), "aclCreateScalar: value is null"));
  EXPECT_EQ(aclCreateScalar(&f, ACL_DT_UNDEFINED), nullptr);
  EXPECT_TRUE(contains(last_message(), "dataType -1"));
  EXPECT_EQ(aclCreateScalar(&f, ACL_STRING), nullptr);
  EXPECT_TRUE(contains(last_message(), "dataType 13"));
  EXPECT_EQ(aclCreateScalar(&f, ACL_INT4), nullptr);  // sub-byte: no whole-byte value
  EXPECT_FALSE(last_message().empty());
}

TEST(Meta, ArraysCopyAndReportTheirSize) {
  std::vector<int64_t> iv = {1, -2, 3};
  aclIntArray* ia = aclCreateIntArray(iv.data(), iv.size());
  ASSERT_NE(ia, nullptr) << aclGetRecentErrMsg();
  iv[0] = 100;
  EXPECT_EQ(int_size(ia), 3u);
  EXPECT_EQ(ia->values, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(aclDestroyIntArray(ia), ACLNN_SUCCESS);

  const float fv[2] = {0.5f, -0.25f};
  aclFloatArray* fa = aclCreateFloatArray(fv, 2);
  ASSERT_NE(fa, nullptr);
  uint64_t n = 0;
  EXPECT_EQ(aclGetFloatArraySize(fa, &n), ACLNN_SUCCESS);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(fa->values, (std::vector<float>{0.5f, -0.25f}));
  EXPECT_EQ(aclDestroyFloatArray(fa), ACLNN_SUCCESS);

  const bool bv[3] = {true, false, true};
  aclBoolArray* ba = aclCreateBoolArray(bv, 3);
  ASSERT_NE(ba, nullptr);
  EXPECT_EQ(aclGetBoolArraySize(ba, &n), ACLNN_SUCCESS);
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(ba->values, (std::vector<unsigned char>{1, 0, 1}));
  EXPECT_EQ(aclDestroyBoolArray(ba), ACLNN_SUCCESS);
}

TEST(Meta, SizeZeroGivesAValidEmptyObjectEvenFromNull) {
  std::vector<int64_t> empty;  // data() may be null
  aclIntArray* a = aclCreateIntArray(empty.data(), empty.size());
  aclIntArray* b = aclCreateIntArray(nullptr, 0);
  aclFloatArray* f = aclCreateFloatArray(nullptr, 0);
  aclBoolArray* bo = aclCreateBoolArray(nullptr, 0);
  aclTensorList* tl = aclCreateTensorList(nullptr, 0);
  aclScalarList* sl = aclCreateScalarList(nullptr, 0);
  ASSERT_TRUE(a && b && f && bo && tl && sl) << aclGetRecentErrMsg();
  EXPECT_NE(a, b);  // distinct handles
  EXPECT_EQ(int_size(a), 0u);
  EXPECT_EQ(int_size(b), 0u);
  uint64_t n = 9;
  EXPECT_EQ(aclGetTensorListSize(tl, &n), ACLNN_SUCCESS);
  EXPECT_EQ(n, 0u);
  n = 9;
  EXPECT_EQ(aclGetScalarListSize(sl, &n), ACLNN_SUCCESS);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(aclDestroyIntArray(a), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyIntArray(b), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyFloatArray(f), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyBoolArray(bo), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyTensorList(tl), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyScalarList(sl), ACLNN_SUCCESS);
}

TEST(Meta, NullValueWithSizeOrHugeSizeIsNullWithMessage) {
  EXPECT_EQ(aclCreateIntArray(nullptr, 3), nullptr);
  EXPECT_TRUE(contains(last_message(), "aclCreateIntArray: value is null but size is 3"));
  EXPECT_EQ(aclCreateFloatArray(nullptr, 1), nullptr);
  EXPECT_TRUE(contains(last_message(), "aclCreateFloatArray"));
  EXPECT_EQ(aclCreateBoolArray(nullptr, 2), nullptr);
  EXPECT_TRUE(contains(last_message(), "aclCreateBoolArray"));
  EXPECT_EQ(aclCreateTensorList(nullptr, 1), nullptr);
  EXPECT_TRUE(contains(last_message(), "aclCreateTensorList"));
  EXPECT_EQ(aclCreateScalarList(nullptr, 1), nullptr);
  EXPECT_TRUE(contains(last_message(), "aclCreateScalarList"));
  // A negative count converted to uint64_t, and sizes past 2^31: refused before any read.
  const int64_t one = 1;
  EXPECT_EQ(aclCreateIntArray(&one, static_cast<uint64_t>(int64_t{-1})), nullptr);
  EXPECT_TRUE(contains(last_message(), "too large"));
  EXPECT_EQ(aclCreateFloatArray(reinterpret_cast<const float*>(&one), std::numeric_limits<uint64_t>::max()), nullptr);
  EXPECT_TRUE(contains(last_message(), "too large"));
  const aclTensor* none[1] = {nullptr};
  EXPECT_EQ(aclCreateTensorList(none, (uint64_t{1} << 31) + 1), nullptr);
  EXPECT_TRUE(contains(last_message(), "too large"));
}

TEST(Meta, DestroyNullIsNoOpAndGettersRejectNull) {
  EXPECT_EQ(aclDestroyScalar(nullptr), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyIntArray(nullptr), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyFloatArray(nullptr), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyBoolArray(nullptr), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyTensorList(nullptr), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyScalarList(nullptr), ACLNN_SUCCESS);
  uint64_t n;
  EXPECT_EQ(aclGetIntArraySize(nullptr, &n), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_TRUE(contains(last_message(), "aclGetIntArraySize: aclIntArray is null"));
  aclIntArray* a = aclCreateIntArray(nullptr, 0);
  EXPECT_EQ(aclGetIntArraySize(a, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_TRUE(contains(last_message(), "size is null"));
  EXPECT_EQ(aclGetFloatArraySize(nullptr, &n), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetBoolArraySize(nullptr, &n), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetTensorListSize(nullptr, &n), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclGetScalarListSize(nullptr, &n), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclDestroyIntArray(a), ACLNN_SUCCESS);
}

TEST(Meta, UseAfterDestroyAndWrongKindAreErrors) {
  const int64_t v[2] = {4, 5};
  aclIntArray* a = aclCreateIntArray(v, 2);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(aclDestroyIntArray(a), ACLNN_SUCCESS);
  uint64_t n = 77;
  EXPECT_EQ(aclGetIntArraySize(a, &n), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(n, 77u);
  EXPECT_TRUE(contains(last_message(), "not a live aclIntArray"));
  EXPECT_EQ(aclDestroyIntArray(a), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "aclDestroyIntArray"));

  // A handle of another kind, and a pointer the runtime never handed out.
  const float f[1] = {1.0f};
  aclFloatArray* fa = aclCreateFloatArray(f, 1);
  EXPECT_EQ(aclGetIntArraySize(reinterpret_cast<aclIntArray*>(fa), &n), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "is an aclFloatArray, not an aclIntArray"));
  EXPECT_EQ(aclDestroyBoolArray(reinterpret_cast<aclBoolArray*>(fa)), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclDestroyFloatArray(fa), ACLNN_SUCCESS);
  int64_t not_a_handle[4] = {};
  EXPECT_EQ(aclDestroyScalar(reinterpret_cast<aclScalar*>(not_a_handle)), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclGetTensorListSize(reinterpret_cast<aclTensorList*>(not_a_handle), &n), ACLNN_ERR_PARAM_INVALID);
  EXPECT_FALSE(last_message().empty());
}

TEST(Meta, TensorListOwnsAndDestroysItsTensors) {
  aclTensor* t[3] = {make_tensor(), make_tensor(), make_tensor()};
  aclTensorList* list = aclCreateTensorList(t, 3);
  ASSERT_NE(list, nullptr) << aclGetRecentErrMsg();
  uint64_t n = 0;
  EXPECT_EQ(aclGetTensorListSize(list, &n), ACLNN_SUCCESS);
  EXPECT_EQ(n, 3u);
  // Held tensors stay usable (getters) but cannot be destroyed on their own.
  aclDataType dt;
  EXPECT_EQ(aclGetDataType(t[1], &dt), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyTensor(t[1]), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "is held by tensor list"));
  EXPECT_TRUE(addlora_rt::is_live_tensor(t[1]));

  EXPECT_EQ(aclDestroyTensorList(list), ACLNN_SUCCESS);
  for (aclTensor* x : t) EXPECT_FALSE(addlora_rt::is_live_tensor(x));
  // Destroyed again after its list: detected, not a double free.
  EXPECT_EQ(aclDestroyTensor(t[0]), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "already destroyed"));
  EXPECT_EQ(aclDestroyTensorList(list), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "not a live aclTensorList"));
  EXPECT_EQ(aclGetTensorListSize(list, &n), ACLNN_ERR_PARAM_INVALID);
}

TEST(Meta, TensorInTwoListsOrTwiceOrStaleIsRefused) {
  aclTensor* a = make_tensor();
  aclTensor* b = make_tensor();
  const aclTensor* first[2] = {a, b};
  aclTensorList* l1 = aclCreateTensorList(first, 2);
  ASSERT_NE(l1, nullptr);
  const aclTensor* second[1] = {b};
  EXPECT_EQ(aclCreateTensorList(second, 1), nullptr);
  EXPECT_TRUE(contains(last_message(), "already held by tensor list"));

  aclTensor* c = make_tensor();
  const aclTensor* dup[2] = {c, c};
  EXPECT_EQ(aclCreateTensorList(dup, 2), nullptr);
  EXPECT_TRUE(contains(last_message(), "appears twice"));
  const aclTensor* with_null[2] = {c, nullptr};
  EXPECT_EQ(aclCreateTensorList(with_null, 2), nullptr);
  EXPECT_TRUE(contains(last_message(), "value[1] is null"));
  // A refused list changes nothing: c is still the client's.
  EXPECT_EQ(aclDestroyTensor(c), ACLNN_SUCCESS);
  const aclTensor* stale[1] = {c};
  EXPECT_EQ(aclCreateTensorList(stale, 1), nullptr);
  EXPECT_TRUE(contains(last_message(), "not a live tensor"));

  EXPECT_EQ(aclDestroyTensorList(l1), ACLNN_SUCCESS);
  EXPECT_FALSE(addlora_rt::is_live_tensor(a));
  EXPECT_FALSE(addlora_rt::is_live_tensor(b));
}

TEST(Meta, ScalarListOwnsItsScalars) {
  int32_t v1 = 1, v2 = 2;
  aclScalar* s1 = aclCreateScalar(&v1, ACL_INT32);
  aclScalar* s2 = aclCreateScalar(&v2, ACL_INT32);
  const aclScalar* both[2] = {s1, s2};
  aclScalarList* list = aclCreateScalarList(both, 2);
  ASSERT_NE(list, nullptr) << aclGetRecentErrMsg();
  uint64_t n = 0;
  EXPECT_EQ(aclGetScalarListSize(list, &n), ACLNN_SUCCESS);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(aclDestroyScalar(s1), ACLNN_ERR_PARAM_INVALID);
  EXPECT_TRUE(contains(last_message(), "held by scalar list"));
  const aclScalar* again[1] = {s2};
  EXPECT_EQ(aclCreateScalarList(again, 1), nullptr);
  EXPECT_TRUE(contains(last_message(), "already held by scalar list"));
  EXPECT_EQ(aclDestroyScalarList(list), ACLNN_SUCCESS);
  EXPECT_EQ(aclDestroyScalar(s2), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclDestroyScalarList(list), ACLNN_ERR_PARAM_INVALID);
}

TEST(Meta, RawTensorAddress) {
  float buf[6];
  aclTensor* t = make_tensor(buf);
  void* addr = nullptr;
  EXPECT_EQ(aclGetRawTensorAddr(t, &addr), ACLNN_SUCCESS);
  EXPECT_EQ(addr, buf);
  float other[6];
  EXPECT_EQ(aclSetRawTensorAddr(t, other), ACLNN_SUCCESS);
  EXPECT_EQ(aclGetRawTensorAddr(t, &addr), ACLNN_SUCCESS);
  EXPECT_EQ(addr, other);
  EXPECT_EQ(aclGetRawTensorAddr(t, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclSetRawTensorAddr(nullptr, other), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_EQ(aclSetRawTensorAddr(t, nullptr), ACLNN_ERR_PARAM_NULLPTR);
  EXPECT_TRUE(contains(last_message(), "addr is null"));
  EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
  EXPECT_EQ(aclGetRawTensorAddr(t, &addr), ACLNN_ERR_PARAM_INVALID);
  EXPECT_EQ(aclSetRawTensorAddr(t, other), ACLNN_ERR_PARAM_INVALID);
  EXPECT_FALSE(last_message().empty());
}

TEST(Meta, ErrorConstantsHaveCannValues) {
  EXPECT_EQ(ACL_ERROR_FAILURE, 500001);
  EXPECT_EQ(ACL_ERROR_RT_FAILURE, 500003);
  EXPECT_EQ(ACL_ERROR_STORAGE_OVER_LIMIT, 300000);
  EXPECT_EQ(ACL_ERROR_RT_CONTEXT_NULL, 107002);
  EXPECT_EQ(ACL_ERROR_RT_MEMORY_ALLOCATION, 207001);
  EXPECT_EQ(ACL_ERROR_RT_INTERNAL_ERROR, 507000);
  EXPECT_EQ(ACL_ERROR_GE_PARAM_INVALID, 145000u);
  EXPECT_EQ(aclDataTypeSize(ACL_COMPLEX32), 4u);
  EXPECT_EQ(aclDataTypeSize(ACL_FLOAT8_E4M3FN), 1u);
  EXPECT_EQ(aclDataTypeSize(ACL_INT4), 0u);
}

// Threads race to put the same tensors into lists: each tensor ends up in exactly one list
// (or none), and destroying every list destroys each tensor once (ASan and TSan watch).
TEST(Meta, ConcurrentListsClaimEachTensorOnce) {
  constexpr int kTensors = 16, kThreads = 4, kRounds = 200;
  for (int round = 0; round < 10; ++round) {
    std::vector<aclTensor*> pool;
    for (int i = 0; i < kTensors; ++i) pool.push_back(make_tensor());
    std::vector<std::vector<aclTensorList*>> lists(kThreads);
    std::atomic<int> claimed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int r = 0; r < kRounds; ++r) {
          const aclTensor* pick[2] = {pool[(t * 7 + r) % kTensors], pool[(t * 3 + r * 5 + 1) % kTensors]};
          aclTensorList* l = aclCreateTensorList(pick, pick[0] == pick[1] ? 1 : 2);
          if (l != nullptr) {
            uint64_t n = 0;
            aclGetTensorListSize(l, &n);
            claimed += static_cast<int>(n);
            lists[t].push_back(l);
          } else {
            aclGetRecentErrMsg();
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_LE(claimed.load(), kTensors);
    int destroyed_with_lists = 0;
    for (auto& v : lists)
      for (aclTensorList* l : v) {
        uint64_t n = 0;
        EXPECT_EQ(aclGetTensorListSize(l, &n), ACLNN_SUCCESS);
        destroyed_with_lists += static_cast<int>(n);
        EXPECT_EQ(aclDestroyTensorList(l), ACLNN_SUCCESS);
      }
    EXPECT_EQ(destroyed_with_lists, claimed.load());
    int left = 0;
    for (aclTensor* t : pool)
      if (addlora_rt::is_live_tensor(t)) {
        ++left;
        EXPECT_EQ(aclDestroyTensor(t), ACLNN_SUCCESS);
      }
    EXPECT_EQ(left + claimed.load(), kTensors);
  }
}
