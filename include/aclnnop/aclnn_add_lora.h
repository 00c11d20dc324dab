/* aclnnAddLora: multi-LoRA batch gather matmul (CANN operator API, host CPU implementation).
 * Two-phase call: aclnnAddLoraGetWorkspaceSize validates and plans, aclnnAddLora enqueues the
 * computation on a stream.  Semantics, rules and codes: README.md and docs/contract.md §1-3. */
#ifndef OP_API_INC_ADD_LORA_H_
#define OP_API_INC_ADD_LORA_H_

#include "aclnn/aclnn_base.h"

#ifndef ACLNN_API
#define ACLNN_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* y[B,H3], x[B,H1], weightB[W,L,H2,R], indices[B] int32, weightAOptional[W,L,R,H1] or NULL,
 * out[B,H3] (may be y).  Returns ACLNN_SUCCESS and the scratch size and executor, or an error
 * code with a message for aclGetRecentErrMsg(). */
ACLNN_API aclnnStatus aclnnAddLoraGetWorkspaceSize(const aclTensor *y, const aclTensor *x, const aclTensor *weightB,
                                                   const aclTensor *indices, const aclTensor *weightAOptional,
                                                   int64_t layerIdx, double scale, int64_t yOffset,
                                                   int64_t ySliceSize, const aclTensor *out,
                                                   uint64_t *workspaceSize, aclOpExecutor **executor);

/* Enqueues the planned computation on `stream` (NULL = default stream). */
ACLNN_API aclnnStatus aclnnAddLora(void *workspace, uint64_t workspaceSize, aclOpExecutor *executor,
                                   aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* OP_API_INC_ADD_LORA_H_ */
