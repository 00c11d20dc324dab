/* Basic types of the CANN "ACL" C API as AddLora provides them: error codes, data types,
 * formats, handle typedefs, fp16 conversion and library initialisation.  Values are those
 * CANN programs store as integers (SPEC section 4), so they must never change.
 * Compiles as C (C99 or later) and as C++11 or later.  Enum names work plain and
 * qualified (aclDataType::ACL_FLOAT16) because the enums are named, unscoped C enums. */
#ifndef ADDLORA_ACL_BASE_H_
#define ADDLORA_ACL_BASE_H_

#include <stddef.h>
#include <stdint.h>

#ifndef ACL_FUNC_VISIBILITY
#if defined(_WIN32)
#define ACL_FUNC_VISIBILITY __declspec(dllexport)
#else
#define ACL_FUNC_VISIBILITY __attribute__((visibility("default")))
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef int aclError;
typedef uint16_t aclFloat16;

/* Opaque handles.  AddLora hands out registry tokens, so a stale handle is an error code,
 * never a dangling dereference. */
typedef void *aclrtStream;
typedef void *aclrtEvent;
typedef void *aclrtContext;

/* Error codes (CANN declares them as static const int, so do we: usable as values in C and
 * C++, as constant expressions in C++). */
static const int ACL_SUCCESS = 0;
static const int ACL_ERROR_NONE = 0;
static const int ACL_ERROR_INVALID_PARAM = 100000;
static const int ACL_ERROR_UNINITIALIZE = 100001;
static const int ACL_ERROR_REPEAT_INITIALIZE = 100002;
static const int ACL_ERROR_REPEAT_FINALIZE = 100037;
static const int ACL_ERROR_RT_PARAM_INVALID = 107000;
static const int ACL_ERROR_RT_CONTEXT_NULL = 107002;
static const int ACL_ERROR_BAD_ALLOC = 200000;
static const int ACL_ERROR_API_NOT_SUPPORT = 200001;
static const int ACL_ERROR_INVALID_DEVICE = 200002;
static const int ACL_ERROR_INTERNAL_ERROR = 500000;

typedef enum aclDataType {
  ACL_DT_UNDEFINED = -1,
  ACL_FLOAT = 0,
  ACL_FLOAT16 = 1,
  ACL_INT8 = 2,
  ACL_INT32 = 3,
  ACL_UINT8 = 4,
  ACL_INT16 = 6,
  ACL_UINT16 = 7,
  ACL_UINT32 = 8,
  ACL_INT64 = 9,
  ACL_UINT64 = 10,
  ACL_DOUBLE = 11,
  ACL_BOOL = 12,
  ACL_STRING = 13,
  ACL_COMPLEX64 = 16,
  ACL_COMPLEX128 = 17,
  ACL_BF16 = 27
} aclDataType;

typedef enum aclFormat {
  ACL_FORMAT_UNDEFINED = -1,
  ACL_FORMAT_NCHW = 0,
  ACL_FORMAT_NHWC = 1,
  ACL_FORMAT_ND = 2,
  ACL_FORMAT_NC1HWC0 = 3,
  ACL_FORMAT_FRACTAL_Z = 4,
  ACL_FORMAT_NC1HWC0_C04 = 12,
  ACL_FORMAT_HWCN = 16,
  ACL_FORMAT_NDHWC = 27,
  ACL_FORMAT_FRACTAL_NZ = 29,
  ACL_FORMAT_NCDHW = 30
} aclFormat;

/* Library lifetime.  configPath is accepted and ignored (there is nothing to configure).
 * aclInit twice -> ACL_ERROR_REPEAT_INITIALIZE; aclFinalize without a matching aclInit
 * (never initialised, or already finalised) -> ACL_ERROR_REPEAT_FINALIZE.  aclInit after
 * aclFinalize starts a fresh runtime.  aclFinalize finishes all queued stream work, stops
 * the stream threads and releases every stream, event and aclrtMalloc/aclrtMallocHost block. */
ACL_FUNC_VISIBILITY aclError aclInit(const char *configPath);
ACL_FUNC_VISIBILITY aclError aclFinalize(void);

/* The calling thread's most recent error message, then cleared (CANN: "obtain and clear").
 * Returns "" (never NULL) when there is none.  The pointer stays valid until the next call
 * on the same thread. */
ACL_FUNC_VISIBILITY const char *aclGetRecentErrMsg(void);

/* IEEE binary16 <-> binary32, round to nearest even. */
ACL_FUNC_VISIBILITY float aclFloat16ToFloat(aclFloat16 value);
ACL_FUNC_VISIBILITY aclFloat16 aclFloatToFloat16(float value);

/* Bytes per element; 0 for ACL_DT_UNDEFINED, ACL_STRING and unknown values. */
ACL_FUNC_VISIBILITY size_t aclDataTypeSize(aclDataType dataType);

#ifdef __cplusplus
}
#endif

#endif /* ADDLORA_ACL_BASE_H_ */
