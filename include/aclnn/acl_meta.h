/* Tensor, scalar, array, list and executor handles of CANN's aclnn operator API as AddLora
 * provides them (libnnopbase).  Signatures are CANN's (8.5.0, aclnn/acl_meta.h).  Compiles
 * as C and as C++11 or later (unlike CANN's, which is C++ only). */
#ifndef ADDLORA_ACL_META_H_
#define ADDLORA_ACL_META_H_

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h> /* CANN's acl_meta.h includes <cstdlib>; clients may rely on it */
#ifndef __cplusplus
#include <stdbool.h>
#endif

#include "acl/acl_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t aclnnStatus;

/* Opaque to clients. */
typedef struct aclTensor aclTensor;
typedef struct aclOpExecutor aclOpExecutor;
typedef struct aclScalar aclScalar;
typedef struct aclIntArray aclIntArray;
typedef struct aclFloatArray aclFloatArray;
typedef struct aclBoolArray aclBoolArray;
typedef struct aclTensorList aclTensorList;
typedef struct aclScalarList aclScalarList;

/* A view of viewDimsNum (<= 8) dims with the given strides (elements; NULL = contiguous)
 * starting `offset` elements into a storage of storageDims, whose data is at tensorData.
 * The arrays are copied.  storageDims may be NULL with storageDimsNum 0: the storage is then
 * the 1-D extent the view needs.  Returns NULL, with a message for aclGetRecentErrMsg(), for
 * NULL arrays with a non-zero count, more than 8 dims, negative dims, strides or offset, or
 * a shape whose element count overflows. */
ACL_FUNC_VISIBILITY aclTensor *aclCreateTensor(const int64_t *viewDims, uint64_t viewDimsNum,
                                               aclDataType dataType, const int64_t *stride, int64_t offset,
                                               aclFormat format, const int64_t *storageDims,
                                               uint64_t storageDimsNum, void *tensorData);
/* Re-initialises a live tensor in place with the arguments of aclCreateTensor (same rules);
 * the handle stays the same.  NULL tensor -> 161001; tensor not live, or invalid arguments
 * -> 161002 (the tensor is then unchanged). */
ACL_FUNC_VISIBILITY aclnnStatus aclInitTensor(aclTensor *tensor, const int64_t *viewDims, uint64_t viewDimsNum,
                                              aclDataType dataType, const int64_t *stride, int64_t offset,
                                              aclFormat format, const int64_t *storageDims, uint64_t storageDimsNum,
                                              void *tensorDataAddr);
/* NULL -> 0.  A pointer aclCreateTensor did not return (or already destroyed), or a tensor
 * held by a live aclTensorList (which destroys it) -> 161002. */
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyTensor(const aclTensor *tensor);

/* Getters.  The arrays are allocated with new int64_t[] and the caller releases them with
 * delete[].  NULL arguments -> 161001; a tensor not from aclCreateTensor -> 161002. */
ACL_FUNC_VISIBILITY aclnnStatus aclGetViewShape(const aclTensor *tensor, int64_t **viewDims, uint64_t *viewDimsNum);
ACL_FUNC_VISIBILITY aclnnStatus aclGetStorageShape(const aclTensor *tensor, int64_t **storageDims,
                                                   uint64_t *storageDimsNum);
ACL_FUNC_VISIBILITY aclnnStatus aclGetViewStrides(const aclTensor *tensor, int64_t **stridesValue,
                                                  uint64_t *stridesNum);
ACL_FUNC_VISIBILITY aclnnStatus aclGetViewOffset(const aclTensor *tensor, int64_t *offset);
ACL_FUNC_VISIBILITY aclnnStatus aclGetFormat(const aclTensor *tensor, aclFormat *format);
ACL_FUNC_VISIBILITY aclnnStatus aclGetDataType(const aclTensor *tensor, aclDataType *dataType);

/* Raw data address of a live tensor (the tensorData it was created with, or as re-pointed).
 * NULL tensor or addr -> 161001; a tensor not live -> 161002. */
ACL_FUNC_VISIBILITY aclnnStatus aclSetRawTensorAddr(aclTensor *tensor, void *addr);
ACL_FUNC_VISIBILITY aclnnStatus aclGetRawTensorAddr(const aclTensor *tensor, void **addr);

/* ---- scalars, arrays and lists -------------------------------------------------------------
 * Common rules (every function below):
 * - Values are copied at creation; the caller's buffer may be reused at once.
 * - size 0 gives a valid, empty object whatever `value` is (NULL included), so
 *   aclCreateIntArray(v.data(), v.size()) works for an empty std::vector.
 * - value NULL with size > 0, or size > 2^31 (a negative count converted to uint64_t, say),
 *   gives NULL with a message for aclGetRecentErrMsg(); nothing is read from value then.
 * - Destroy of NULL -> 0 (no-op).  Destroy or size getter on a handle that is not live (never
 *   created, already destroyed, or of another kind) -> 161002 with a message, never a crash.
 *   Size getters: NULL handle or NULL size -> 161001.
 * Handles are tracked like tensors, so use after destroy is an error code, not a dangling
 * dereference. */

/* A copy of the aclDataTypeSize(dataType) bytes at value.  dataType must have a whole-byte
 * size (not ACL_DT_UNDEFINED, ACL_STRING or a sub-byte type) and value must not be NULL;
 * else NULL with a message. */
ACL_FUNC_VISIBILITY aclScalar *aclCreateScalar(void *value, aclDataType dataType);
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyScalar(const aclScalar *scalar);

ACL_FUNC_VISIBILITY aclIntArray *aclCreateIntArray(const int64_t *value, uint64_t size);
ACL_FUNC_VISIBILITY aclFloatArray *aclCreateFloatArray(const float *value, uint64_t size);
ACL_FUNC_VISIBILITY aclBoolArray *aclCreateBoolArray(const bool *value, uint64_t size);
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyIntArray(const aclIntArray *array);
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyFloatArray(const aclFloatArray *array);
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyBoolArray(const aclBoolArray *array);
ACL_FUNC_VISIBILITY aclnnStatus aclGetIntArraySize(const aclIntArray *array, uint64_t *size);
ACL_FUNC_VISIBILITY aclnnStatus aclGetFloatArraySize(const aclFloatArray *array, uint64_t *size);
ACL_FUNC_VISIBILITY aclnnStatus aclGetBoolArraySize(const aclBoolArray *array, uint64_t *size);

/* A list takes ownership of its elements: aclDestroyTensorList / aclDestroyScalarList also
 * destroy the tensors / scalars it holds (CANN's samples rely on this).  Every element must
 * be live, non-NULL, appear once, and not be held by another list; else NULL with a message
 * (and no element changes hands).  While a list holds an element, destroying the element on
 * its own -> 161002 (the list still owns it); after the list is destroyed the element is gone,
 * and destroying it again -> 161002.  No sequence of calls frees an element twice. */
ACL_FUNC_VISIBILITY aclTensorList *aclCreateTensorList(const aclTensor *const *value, uint64_t size);
ACL_FUNC_VISIBILITY aclScalarList *aclCreateScalarList(const aclScalar *const *value, uint64_t size);
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyTensorList(const aclTensorList *array);
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyScalarList(const aclScalarList *array);
ACL_FUNC_VISIBILITY aclnnStatus aclGetTensorListSize(const aclTensorList *tensorList, uint64_t *size);
ACL_FUNC_VISIBILITY aclnnStatus aclGetScalarListSize(const aclScalarList *scalarList, uint64_t *size);

/* Executors (returned by an operator's phase one).  A single-use executor is released after
 * its run; a repeatable one may run any number of times until aclDestroyAclOpExecutor.
 * NULL executor -> 561103; an executor already consumed or destroyed -> 161002. */
ACL_FUNC_VISIBILITY aclnnStatus aclSetAclOpExecutorRepeatable(aclOpExecutor *executor);
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyAclOpExecutor(aclOpExecutor *executor);
/* Re-point input / output `index` of a live executor to addr (and record addr in tensor).
 * NULL executor or tensor -> 561103; index out of range or executor not live -> 161002.
 * Call it only when no run of the executor is still queued (synchronize the stream first). */
ACL_FUNC_VISIBILITY aclnnStatus aclSetInputTensorAddr(aclOpExecutor *executor, const size_t index,
                                                      aclTensor *tensor, void *addr);
ACL_FUNC_VISIBILITY aclnnStatus aclSetOutputTensorAddr(aclOpExecutor *executor, const size_t index,
                                                       aclTensor *tensor, void *addr);

#ifdef __cplusplus
}
#endif

#endif /* ADDLORA_ACL_META_H_ */
