// Compiled as C++11 with -Wall -Wextra -Wpedantic -Werror, as CANN samples are: the headers
// work in C++11, enum names work plain and qualified, and the values are docs/contract.md §4's.
#include "acl/acl.h"
#include "aclnn/aclnn_base.h"

#include <type_traits>

static_assert(aclDataType::ACL_FLOAT16 == 1 && ACL_FLOAT16 == 1, "qualified and plain names");
static_assert(aclDataType::ACL_DT_UNDEFINED == -1 && aclDataType::ACL_FLOAT == 0 && ACL_INT8 == 2 &&
                  ACL_INT32 == 3 && ACL_UINT8 == 4 && ACL_INT16 == 6 && ACL_UINT16 == 7 && ACL_UINT32 == 8 &&
                  ACL_INT64 == 9 && ACL_UINT64 == 10 && ACL_DOUBLE == 11 && ACL_BOOL == 12 && ACL_STRING == 13 &&
                  ACL_COMPLEX64 == 16 && ACL_COMPLEX128 == 17 && ACL_BF16 == 27,
              "aclDataType values");
static_assert(aclFormat::ACL_FORMAT_UNDEFINED == -1 && ACL_FORMAT_NCHW == 0 && ACL_FORMAT_NHWC == 1 &&
                  aclFormat::ACL_FORMAT_ND == 2 && ACL_FORMAT_NC1HWC0 == 3 && ACL_FORMAT_FRACTAL_Z == 4 &&
                  ACL_FORMAT_NC1HWC0_C04 == 12 && ACL_FORMAT_HWCN == 16 && ACL_FORMAT_NDHWC == 27 &&
                  aclFormat::ACL_FORMAT_FRACTAL_NZ == 29 && ACL_FORMAT_NCDHW == 30,
              "aclFormat values");
static_assert(aclrtMemcpyKind::ACL_MEMCPY_HOST_TO_HOST == 0 && ACL_MEMCPY_HOST_TO_DEVICE == 1 &&
                  ACL_MEMCPY_DEVICE_TO_HOST == 2 && ACL_MEMCPY_DEVICE_TO_DEVICE == 3 && ACL_MEMCPY_DEFAULT == 4 &&
                  ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE == 5 && ACL_MEMCPY_INNER_DEVICE_TO_DEVICE == 6 &&
                  aclrtMemcpyKind::ACL_MEMCPY_INTER_DEVICE_TO_DEVICE == 7,
              "aclrtMemcpyKind values");
static_assert(aclrtMemMallocPolicy::ACL_MEM_MALLOC_HUGE_FIRST == 0 && ACL_MEM_MALLOC_HUGE_ONLY == 1 &&
                  ACL_MEM_MALLOC_NORMAL_ONLY == 2 && ACL_MEM_MALLOC_HUGE1G_ONLY == 6 &&
                  ACL_MEM_MALLOC_HUGE1G_ONLY_P2P == 7 && ACL_MEM_ACCESS_USER_SPACE_READONLY == 0x100000,
              "aclrtMemMallocPolicy values");
static_assert(aclrtEventRecordedStatus::ACL_EVENT_RECORDED_STATUS_NOT_READY == 0 &&
                  ACL_EVENT_RECORDED_STATUS_COMPLETE == 1,
              "aclrtEventRecordedStatus values");
static_assert(ACL_SUCCESS == 0 && ACL_ERROR_INVALID_PARAM == 100000 && ACL_ERROR_UNINITIALIZE == 100001 &&
                  ACL_ERROR_REPEAT_INITIALIZE == 100002 && ACL_ERROR_REPEAT_FINALIZE == 100037 &&
                  ACL_ERROR_BAD_ALLOC == 200000 && ACL_ERROR_INVALID_DEVICE == 200002 &&
                  ACL_ERROR_INTERNAL_ERROR == 500000 && ACL_ERROR_RT_PARAM_INVALID == 107000,
              "aclError values");
static_assert(ACLNN_SUCCESS == 0 && ACLNN_ERR_PARAM_NULLPTR == 161001 && ACLNN_ERR_PARAM_INVALID == 161002 &&
                  ACLNN_ERR_RUNTIME_ERROR == 361001 && ACLNN_ERR_INNER == 561000 &&
                  ACLNN_ERR_INNER_TILING_ERROR == 561002 && ACLNN_ERR_INNER_NULLPTR == 561103,
              "aclnnStatus values");
// The additions of the full CANN surface (CANN 8.5.0 values).
static_assert(ACL_ERROR_FAILURE == 500001 && ACL_ERROR_GE_FAILURE == 500002 && ACL_ERROR_RT_FAILURE == 500003 &&
                  ACL_ERROR_DRV_FAILURE == 500004 && ACL_ERROR_PROFILING_FAILURE == 500005 &&
                  ACL_ERROR_STORAGE_OVER_LIMIT == 300000 && ACL_ERROR_INVALID_OPP_PATH == 148049 &&
                  ACL_ERROR_FEATURE_UNSUPPORTED == 200006 && ACL_RT_SUCCESS == 0 &&
                  ACL_ERROR_RT_CONTEXT_NULL == 107002 && ACL_ERROR_RT_MEMORY_ALLOCATION == 207001 &&
                  ACL_ERROR_RT_INTERNAL_ERROR == 507000 && ACL_ERROR_GE_PARAM_INVALID == 145000u,
              "error codes");
static_assert(aclDataType::ACL_INT4 == 29 && ACL_UINT1 == 30 && ACL_COMPLEX32 == 33 && ACL_HIFLOAT8 == 34 &&
                  ACL_FLOAT8_E5M2 == 35 && ACL_FLOAT8_E4M3FN == 36 && ACL_FLOAT8_E8M0 == 37 &&
                  ACL_FLOAT6_E3M2 == 38 && ACL_FLOAT6_E2M3 == 39 && ACL_FLOAT4_E2M1 == 40 &&
                  aclDataType::ACL_FLOAT4_E1M2 == 41,
              "aclDataType additions");
static_assert(aclFormat::ACL_FORMAT_NDC1HWC0 == 32 && ACL_FRACTAL_Z_3D == 33 && ACL_FORMAT_NC == 35 &&
                  ACL_FORMAT_NCL == 47 && ACL_FORMAT_FRACTAL_NZ_C0_16 == 50 && ACL_FORMAT_FRACTAL_NZ_C0_32 == 51 &&
                  ACL_FORMAT_FRACTAL_NZ_C0_2 == 52 && ACL_FORMAT_FRACTAL_NZ_C0_4 == 53 &&
                  aclFormat::ACL_FORMAT_FRACTAL_NZ_C0_8 == 54,
              "aclFormat additions");
static_assert(std::is_same<decltype(&aclCreateTensorList), aclTensorList* (*)(const aclTensor* const*, uint64_t)>::value &&
                  std::is_same<decltype(&aclCreateScalar), aclScalar* (*)(void*, aclDataType)>::value &&
                  std::is_same<decltype(&aclDestroyTensorList), aclnnStatus (*)(const aclTensorList*)>::value &&
                  std::is_same<decltype(&aclGetBoolArraySize), aclnnStatus (*)(const aclBoolArray*, uint64_t*)>::value,
              "acl_meta.h prototypes");

static_assert(std::is_same<aclError, int>::value && std::is_same<aclnnStatus, int32_t>::value &&
                  std::is_same<aclFloat16, uint16_t>::value && std::is_same<aclrtStream, void*>::value &&
                  std::is_same<aclrtEvent, void*>::value && std::is_same<aclrtContext, void*>::value,
              "typedefs");
static_assert(std::is_same<decltype(&aclrtMemcpyAsync),
                           aclError (*)(void*, size_t, const void*, size_t, aclrtMemcpyKind, aclrtStream)>::value,
              "aclrtMemcpyAsync prototype");
static_assert(std::is_same<decltype(&aclSetInputTensorAddr),
                           aclnnStatus (*)(aclOpExecutor*, size_t, aclTensor*, void*)>::value,
              "aclSetInputTensorAddr prototype");

int addlora_header_check_cxx11() {
  // What a CANN sample writes: qualified enum arguments, nullptr strides.
  const int64_t dims[2] = {2, 3};
  aclTensor* t = aclCreateTensor(dims, 2, aclDataType::ACL_FLOAT16, nullptr, 0, aclFormat::ACL_FORMAT_ND, dims, 2,
                                 nullptr);
  if (t == nullptr) return 0;
  aclDataType dt = ACL_DT_UNDEFINED;
  const bool ok = aclGetDataType(t, &dt) == ACLNN_SUCCESS && dt == aclDataType::ACL_FLOAT16;
  return aclDestroyTensor(t) == ACLNN_SUCCESS && ok ? 1 : 0;
}
