/* Basic types of the CANN "ACL" C API as AddLora provides them: error codes, data types,
 * formats, handle typedefs, fp16 conversion and library initialisation.
 *
 * Names and values are CANN's, taken from the public headers of CANN 8.5.0
 * (include/external/acl/acl_base.h, acl_base_rt.h and error_codes/ of that release); see
 * docs/cann-surface.md.  The values docs/contract.md §4 lists are among them and never change:
 * programs store them as integers.  Where a later release (9.x) adds to an enum, the
 * addition is marked "9.x".  The runtime error codes ACL_ERROR_RT_* live in
 * acl/error_codes/rt_error_codes.h and the graph-engine codes in ge_error_codes.h, both
 * included here as CANN's acl_base.h includes them.
 *
 * Compiles as C (C99 or later) and as C++11 or later.  Enum names work plain and qualified
 * (aclDataType::ACL_FLOAT16) because the enums are named, unscoped C enums. */
#ifndef ADDLORA_ACL_BASE_H_
#define ADDLORA_ACL_BASE_H_

#include <stddef.h>
#include <stdint.h>

#include "error_codes/rt_error_codes.h"
#include "error_codes/ge_error_codes.h"

#ifndef ACL_FUNC_VISIBILITY
#if defined(_WIN32)
#define ACL_FUNC_VISIBILITY __declspec(dllexport)
#else
#define ACL_FUNC_VISIBILITY __attribute__((visibility("default")))
#endif
#endif

#ifndef ACL_DEPRECATED
#if defined(__GNUC__) || defined(__clang__)
#define ACL_DEPRECATED __attribute__((deprecated))
#define ACL_DEPRECATED_MESSAGE(message) __attribute__((deprecated(message)))
#elif defined(_MSC_VER)
#define ACL_DEPRECATED __declspec(deprecated)
#define ACL_DEPRECATED_MESSAGE(message) __declspec(deprecated(message))
#else
#define ACL_DEPRECATED
#define ACL_DEPRECATED_MESSAGE(message)
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef int aclError;
typedef uint16_t aclFloat16;

/* Opaque handles.  AddLora hands out registry tokens for streams, events and contexts, so a
 * stale handle is an error code, never a dangling dereference.  The other handle types
 * exist for source compatibility; no AddLora function takes or returns them. */
typedef void *aclrtStream;
typedef void *aclrtEvent;
typedef void *aclrtContext;
typedef void *aclrtNotify;
typedef void *aclrtCntNotify;
typedef void *aclrtLabel;
typedef void *aclrtLabelList;
typedef void *aclrtMbuf;
typedef void *aclrtAllocatorDesc;
typedef void *aclrtAllocator;
typedef void *aclrtAllocatorBlock;
typedef void *aclrtAllocatorAddr;
typedef void *aclrtTaskGrp;
typedef void *aclmdlRITask; /* 9.x */
typedef struct aclDataBuffer aclDataBuffer;

/* Error codes: CANN's complete public ACL_ERROR_* list (CANN declares them as static const
 * int, so do we: usable as values in C and C++, as constant expressions in C++).  The codes
 * this runtime returns are listed in docs/cann-surface.md; the others exist so client code
 * that names them compiles. */
static const int ACL_ERROR_NONE                            = 0;
static const int ACL_SUCCESS                               = 0;

static const int ACL_ERROR_INVALID_PARAM                   = 100000;
static const int ACL_ERROR_UNINITIALIZE                    = 100001;
static const int ACL_ERROR_REPEAT_INITIALIZE               = 100002;
static const int ACL_ERROR_INVALID_FILE                    = 100003;
static const int ACL_ERROR_WRITE_FILE                      = 100004;
static const int ACL_ERROR_INVALID_FILE_SIZE               = 100005;
static const int ACL_ERROR_PARSE_FILE                      = 100006;
static const int ACL_ERROR_FILE_MISSING_ATTR               = 100007;
static const int ACL_ERROR_FILE_ATTR_INVALID               = 100008;
static const int ACL_ERROR_INVALID_DUMP_CONFIG             = 100009;
static const int ACL_ERROR_INVALID_PROFILING_CONFIG        = 100010;
static const int ACL_ERROR_INVALID_MODEL_ID                = 100011;
static const int ACL_ERROR_DESERIALIZE_MODEL               = 100012;
static const int ACL_ERROR_PARSE_MODEL                     = 100013;
static const int ACL_ERROR_READ_MODEL_FAILURE              = 100014;
static const int ACL_ERROR_MODEL_SIZE_INVALID              = 100015;
static const int ACL_ERROR_MODEL_MISSING_ATTR              = 100016;
static const int ACL_ERROR_MODEL_INPUT_NOT_MATCH           = 100017;
static const int ACL_ERROR_MODEL_OUTPUT_NOT_MATCH          = 100018;
static const int ACL_ERROR_MODEL_NOT_DYNAMIC               = 100019;
static const int ACL_ERROR_OP_TYPE_NOT_MATCH               = 100020;
static const int ACL_ERROR_OP_INPUT_NOT_MATCH              = 100021;
static const int ACL_ERROR_OP_OUTPUT_NOT_MATCH             = 100022;
static const int ACL_ERROR_OP_ATTR_NOT_MATCH               = 100023;
static const int ACL_ERROR_OP_NOT_FOUND                    = 100024;
static const int ACL_ERROR_OP_LOAD_FAILED                  = 100025;
static const int ACL_ERROR_UNSUPPORTED_DATA_TYPE           = 100026;
static const int ACL_ERROR_FORMAT_NOT_MATCH                = 100027;
static const int ACL_ERROR_BIN_SELECTOR_NOT_REGISTERED     = 100028;
static const int ACL_ERROR_KERNEL_NOT_FOUND                = 100029;
static const int ACL_ERROR_BIN_SELECTOR_ALREADY_REGISTERED = 100030;
static const int ACL_ERROR_KERNEL_ALREADY_REGISTERED       = 100031;
static const int ACL_ERROR_INVALID_QUEUE_ID                = 100032;
static const int ACL_ERROR_REPEAT_SUBSCRIBE                = 100033;
static const int ACL_ERROR_STREAM_NOT_SUBSCRIBE            = 100034;
static const int ACL_ERROR_THREAD_NOT_SUBSCRIBE            = 100035;
static const int ACL_ERROR_WAIT_CALLBACK_TIMEOUT           = 100036;
static const int ACL_ERROR_REPEAT_FINALIZE                 = 100037;
static const int ACL_ERROR_NOT_STATIC_AIPP                 = 100038;
static const int ACL_ERROR_COMPILING_STUB_MODE             = 100039;
static const int ACL_ERROR_GROUP_NOT_SET                   = 100040;
static const int ACL_ERROR_GROUP_NOT_CREATE                = 100041;
static const int ACL_ERROR_PROF_ALREADY_RUN                = 100042;
static const int ACL_ERROR_PROF_NOT_RUN                    = 100043;
static const int ACL_ERROR_DUMP_ALREADY_RUN                = 100044;
static const int ACL_ERROR_DUMP_NOT_RUN                    = 100045;
static const int ACL_ERROR_PROF_REPEAT_SUBSCRIBE           = 148046;
static const int ACL_ERROR_PROF_API_CONFLICT               = 148047;
static const int ACL_ERROR_INVALID_MAX_OPQUEUE_NUM_CONFIG  = 148048;
static const int ACL_ERROR_INVALID_OPP_PATH                = 148049;
static const int ACL_ERROR_OP_UNSUPPORTED_DYNAMIC          = 148050;
static const int ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED   = 148051;
static const int ACL_ERROR_UNSUPPORTED_JPEG                = 148052;
static const int ACL_ERROR_INVALID_BUNDLE_MODEL_ID         = 148053;

static const int ACL_ERROR_BAD_ALLOC                       = 200000;
static const int ACL_ERROR_API_NOT_SUPPORT                 = 200001;
static const int ACL_ERROR_INVALID_DEVICE                  = 200002;
static const int ACL_ERROR_MEMORY_ADDRESS_UNALIGNED        = 200003;
static const int ACL_ERROR_RESOURCE_NOT_MATCH              = 200004;
static const int ACL_ERROR_INVALID_RESOURCE_HANDLE         = 200005;
static const int ACL_ERROR_FEATURE_UNSUPPORTED             = 200006;
static const int ACL_ERROR_PROF_MODULES_UNSUPPORTED        = 200007;

static const int ACL_ERROR_STORAGE_OVER_LIMIT              = 300000;

static const int ACL_ERROR_INTERNAL_ERROR                  = 500000;
static const int ACL_ERROR_FAILURE                         = 500001;
static const int ACL_ERROR_GE_FAILURE                      = 500002;
static const int ACL_ERROR_RT_FAILURE                      = 500003;
static const int ACL_ERROR_DRV_FAILURE                     = 500004;
static const int ACL_ERROR_PROFILING_FAILURE               = 500005;

/* From the model part of CANN's acl_base.h (acl_base_mdl.h); no AddLora function uses them. */
#define ACL_TENSOR_SHAPE_RANGE_NUM 2
#define ACL_UNKNOWN_RANK 0xFFFFFFFFFFFFFFFE

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
  ACL_BF16 = 27,
  ACL_INT4 = 29,
  ACL_UINT1 = 30,
  ACL_COMPLEX32 = 33,
  ACL_HIFLOAT8 = 34,
  ACL_FLOAT8_E5M2 = 35,
  ACL_FLOAT8_E4M3FN = 36,
  ACL_FLOAT8_E8M0 = 37,
  ACL_FLOAT6_E3M2 = 38,
  ACL_FLOAT6_E2M3 = 39,
  ACL_FLOAT4_E2M1 = 40,
  ACL_FLOAT4_E1M2 = 41
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
  ACL_FORMAT_NCDHW = 30,
  ACL_FORMAT_NDC1HWC0 = 32,
  ACL_FRACTAL_Z_3D = 33,
  ACL_FORMAT_NC = 35,
  ACL_FORMAT_NCL = 47,
  ACL_FORMAT_FRACTAL_NZ_C0_16 = 50,
  ACL_FORMAT_FRACTAL_NZ_C0_32 = 51,
  ACL_FORMAT_FRACTAL_NZ_C0_2 = 52,
  ACL_FORMAT_FRACTAL_NZ_C0_4 = 53,
  ACL_FORMAT_FRACTAL_NZ_C0_8 = 54
} aclFormat;

typedef enum aclLogLevel { ACL_DEBUG = 0, ACL_INFO = 1, ACL_WARNING = 2, ACL_ERROR = 3 } aclLogLevel;

typedef enum aclMemType {
  ACL_MEMTYPE_DEVICE = 0,
  ACL_MEMTYPE_HOST = 1,
  ACL_MEMTYPE_HOST_COMPILE_INDEPENDENT = 2
} aclMemType;

/* 9.x adds ACL_OPT_ENABLE_KERNEL_EARLY_START = 3 and deprecates ACL_OPT_STRONG_CONSISTENCY. */
typedef enum aclSysParamOpt {
  ACL_OPT_DETERMINISTIC = 0,
  ACL_OPT_ENABLE_DEBUG_KERNEL = 1,
  ACL_OPT_STRONG_CONSISTENCY = 2,
  ACL_OPT_ENABLE_KERNEL_EARLY_START = 3
} aclSysParamOpt;

typedef enum aclCannAttr {
  ACL_CANN_ATTR_UNDEFINED = -1,
  ACL_CANN_ATTR_INF_NAN = 0,
  ACL_CANN_ATTR_BF16 = 1,
  ACL_CANN_ATTR_JIT_COMPILE = 2
} aclCannAttr;

typedef enum aclDeviceInfo {
  ACL_DEVICE_INFO_UNDEFINED = -1,
  ACL_DEVICE_INFO_AI_CORE_NUM = 0,
  ACL_DEVICE_INFO_VECTOR_CORE_NUM = 1,
  ACL_DEVICE_INFO_L2_SIZE = 2
} aclDeviceInfo;

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

/* The SoC name.  There is none on a host: always "AddLoraCPU" (never NULL), which no client
 * check for an Ascend SoC ("Ascend910B...", "Ascend950...") matches.  Needs no aclInit. */
ACL_FUNC_VISIBILITY const char *aclrtGetSocName(void);

/* Bytes per element; 0 for ACL_DT_UNDEFINED, ACL_STRING, the sub-byte types (ACL_INT4,
 * ACL_UINT1, the 6- and 4-bit floats) and unknown values. */
ACL_FUNC_VISIBILITY size_t aclDataTypeSize(aclDataType dataType);

#ifdef __cplusplus
}
#endif

#endif /* ADDLORA_ACL_BASE_H_ */
