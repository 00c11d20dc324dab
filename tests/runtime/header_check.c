/* Compiled as C11 with -Wall -Wextra -Wpedantic -Werror: the public headers are valid C. */
#include "acl/acl.h"
#include "aclnn/aclnn_base.h"

int addlora_header_check_c(void);

int addlora_header_check_c(void) {
  aclDataType dt = ACL_BF16;
  aclFormat fmt = ACL_FORMAT_FRACTAL_NZ;
  aclrtMemcpyKind kind = ACL_MEMCPY_DEFAULT;
  aclrtMemMallocPolicy policy = ACL_MEM_MALLOC_NORMAL_ONLY;
  aclrtEventRecordedStatus status = ACL_EVENT_RECORDED_STATUS_COMPLETE;
  aclrtStream stream = 0;
  aclrtEvent event = 0;
  aclrtContext context = 0;
  aclTensor *tensor = 0;
  aclOpExecutor *executor = 0;
  aclFloat16 half = 0x3c00;
  aclError err = ACL_ERROR_RT_PARAM_INVALID;
  unsigned long long unknown_rank = ACL_UNKNOWN_RANK;
  aclnnStatus st = ACLNN_ERR_INNER_NULLPTR;
  /* Function types as declared (assigning to exact pointer types checks the prototypes). */
  aclError (*memcpy_fn)(void *, size_t, const void *, size_t, aclrtMemcpyKind) = aclrtMemcpy;
  aclTensor *(*create_fn)(const int64_t *, uint64_t, aclDataType, const int64_t *, int64_t, aclFormat,
                          const int64_t *, uint64_t, void *) = aclCreateTensor;
  aclnnStatus (*shape_fn)(const aclTensor *, int64_t **, uint64_t *) = aclGetViewShape;
  const char *(*msg_fn)(void) = aclGetRecentErrMsg;
  aclIntArray *(*int_array_fn)(const int64_t *, uint64_t) = aclCreateIntArray;
  aclBoolArray *(*bool_array_fn)(const bool *, uint64_t) = aclCreateBoolArray;
  aclTensorList *(*list_fn)(const aclTensor *const *, uint64_t) = aclCreateTensorList;
  aclnnStatus (*list_size_fn)(const aclTensorList *, uint64_t *) = aclGetTensorListSize;
  aclScalar *(*scalar_fn)(void *, aclDataType) = aclCreateScalar;
  int ok = dt == 27 && fmt == 29 && kind == 4 && policy == 2 && status == 1 && stream == 0 && event == 0 &&
           context == 0 && tensor == 0 && executor == 0 && half == 0x3c00 && err == 107000 && st == 561103 &&
           memcpy_fn != 0 && create_fn != 0 && shape_fn != 0 && msg_fn != 0 && sizeof(aclFloat16) == 2 &&
           ACL_DT_UNDEFINED == -1 && ACL_FORMAT_UNDEFINED == -1 && ACL_FORMAT_NCDHW == 30 &&
           ACL_ERROR_REPEAT_FINALIZE == 100037 && ACLNN_ERR_INNER_TILING_ERROR == 561002 &&
           ACL_ERROR_FAILURE == 500001 && ACL_ERROR_RT_CONTEXT_NULL == 107002 && ACL_FLOAT4_E1M2 == 41 &&
           unknown_rank == 0xFFFFFFFFFFFFFFFEull && ACL_TENSOR_SHAPE_RANGE_NUM == 2 &&
           ACL_FORMAT_FRACTAL_NZ_C0_8 == 54 && ACL_ERROR_GE_PARAM_INVALID == 145000u && int_array_fn != 0 &&
           bool_array_fn != 0 && list_fn != 0 && list_size_fn != 0 && scalar_fn != 0;
  return ok;
}

/* What only a C client can do: pass integers outside the enums' ranges.  The runtime must
 * answer with an error, not undefined behaviour (the C++ side runs under UBSan in CI).
 * Requires an initialised runtime.  Returns 1 when every call was rejected as expected. */
int addlora_c_client_out_of_range_enums(void);

int addlora_c_client_out_of_range_enums(void) {
  const int64_t dims[1] = {4};
  char a[4] = {0}, b[4] = {1, 2, 3, 4};
  aclTensor *bad_dtype = aclCreateTensor(dims, 1, (aclDataType)1000, 0, 0, ACL_FORMAT_ND, dims, 1, 0);
  aclTensor *bad_format = aclCreateTensor(dims, 1, ACL_FLOAT, 0, 0, (aclFormat)-77, dims, 1, 0);
  aclError neg_kind = aclrtMemcpy(a, 4, b, 4, (aclrtMemcpyKind)-1);
  aclError big_kind = aclrtMemcpyAsync(a, 4, b, 4, (aclrtMemcpyKind)100, 0);
  return bad_dtype == 0 && bad_format == 0 && neg_kind == ACL_ERROR_INVALID_PARAM &&
         big_kind == ACL_ERROR_INVALID_PARAM && a[0] == 0 && aclDataTypeSize((aclDataType)5000) == 0;
}
