/* Status codes of CANN's aclnn operator API (docs/contract.md §2-3) plus the tensor/executor
 * declarations of acl_meta.h.  Compiles as C and as C++11 or later. */
#ifndef ADDLORA_ACLNN_BASE_H_
#define ADDLORA_ACLNN_BASE_H_

#include "acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef ACLNN_SUCCESS
#define ACLNN_SUCCESS 0
#endif
#ifndef ACLNN_ERR_PARAM_NULLPTR
#define ACLNN_ERR_PARAM_NULLPTR 161001
#endif
#ifndef ACLNN_ERR_PARAM_INVALID
#define ACLNN_ERR_PARAM_INVALID 161002
#endif
#ifndef ACLNN_ERR_RUNTIME_ERROR
#define ACLNN_ERR_RUNTIME_ERROR 361001
#endif
#ifndef ACLNN_ERR_INNER
#define ACLNN_ERR_INNER 561000
#endif
#ifndef ACLNN_ERR_INNER_TILING_ERROR
#define ACLNN_ERR_INNER_TILING_ERROR 561002
#endif
#ifndef ACLNN_ERR_INNER_NULLPTR
#define ACLNN_ERR_INNER_NULLPTR 561103
#endif

#ifdef __cplusplus
}
#endif

#endif /* ADDLORA_ACLNN_BASE_H_ */
