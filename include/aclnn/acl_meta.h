/* Tensor and executor handles of CANN's aclnn operator API as AddLora provides them
 * (libnnopbase).  Compiles as C and as C++11 or later. */
#ifndef ADDLORA_ACL_META_H_
#define ADDLORA_ACL_META_H_

#include <stddef.h>
#include <stdint.h>

#include "acl/acl_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t aclnnStatus;

/* Opaque to clients. */
typedef struct aclTensor aclTensor;
typedef struct aclOpExecutor aclOpExecutor;

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
/* NULL -> 0.  A pointer aclCreateTensor did not return (or already destroyed) -> 161002. */
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
