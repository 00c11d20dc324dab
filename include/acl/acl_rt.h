/* Runtime part of the CANN "ACL" C API as AddLora provides it on the CPU: one "device"
 * (id 0) whose memory is host memory, streams (ordered task queues, each executed by its own
 * worker thread, never the caller's), events, and memory copies.  All functions are
 * thread-safe, return ACL_SUCCESS (0) or an error code, and set a message for
 * aclGetRecentErrMsg() on every failure.  Everything except the pure helpers requires
 * aclInit() first (else ACL_ERROR_UNINITIALIZE). */
#ifndef ADDLORA_ACL_RT_H_
#define ADDLORA_ACL_RT_H_

#include "acl_base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aclrtRunMode { ACL_DEVICE = 0, ACL_HOST = 1 } aclrtRunMode;

/* Enums with CANN 8.5.0's values (acl_rt.h of that release). */

/* All memory is host memory, so every kind is the same copy (memmove). */
typedef enum aclrtMemcpyKind {
  ACL_MEMCPY_HOST_TO_HOST = 0,
  ACL_MEMCPY_HOST_TO_DEVICE = 1,
  ACL_MEMCPY_DEVICE_TO_HOST = 2,
  ACL_MEMCPY_DEVICE_TO_DEVICE = 3,
  ACL_MEMCPY_DEFAULT = 4,
  ACL_MEMCPY_HOST_TO_BUF_TO_DEVICE = 5,
  ACL_MEMCPY_INNER_DEVICE_TO_DEVICE = 6,
  ACL_MEMCPY_INTER_DEVICE_TO_DEVICE = 7
} aclrtMemcpyKind;

/* Allocation hints; every value is accepted and all memory is ordinary host memory. */
typedef enum aclrtMemMallocPolicy {
  ACL_MEM_MALLOC_HUGE_FIRST = 0,
  ACL_MEM_MALLOC_HUGE_ONLY = 1,
  ACL_MEM_MALLOC_NORMAL_ONLY = 2,
  ACL_MEM_MALLOC_HUGE_FIRST_P2P = 3,
  ACL_MEM_MALLOC_HUGE_ONLY_P2P = 4,
  ACL_MEM_MALLOC_NORMAL_ONLY_P2P = 5,
  ACL_MEM_MALLOC_HUGE1G_ONLY = 6,
  ACL_MEM_MALLOC_HUGE1G_ONLY_P2P = 7,
  ACL_MEM_TYPE_LOW_BAND_WIDTH = 0x0100,
  ACL_MEM_TYPE_HIGH_BAND_WIDTH = 0x1000,
  ACL_MEM_ACCESS_USER_SPACE_READONLY = 0x100000
} aclrtMemMallocPolicy;

typedef enum aclrtEventRecordedStatus {
  ACL_EVENT_RECORDED_STATUS_NOT_READY = 0,
  ACL_EVENT_RECORDED_STATUS_COMPLETE = 1
} aclrtEventRecordedStatus;

/* ---- device and context (a single device, id 0) ---------------------------------------- */
/* Other ids -> ACL_ERROR_INVALID_DEVICE.  aclrtGetDevice before any aclrtSetDevice (or
 * aclrtCreateContext) -> ACL_ERROR_RT_CONTEXT_NULL. */
ACL_FUNC_VISIBILITY aclError aclrtSetDevice(int32_t deviceId);
ACL_FUNC_VISIBILITY aclError aclrtResetDevice(int32_t deviceId);
ACL_FUNC_VISIBILITY aclError aclrtGetDevice(int32_t *deviceId);
ACL_FUNC_VISIBILITY aclError aclrtGetDeviceCount(uint32_t *count);
ACL_FUNC_VISIBILITY aclError aclrtGetRunMode(aclrtRunMode *runMode);
/* Waits for every stream, the default one included. */
ACL_FUNC_VISIBILITY aclError aclrtSynchronizeDevice(void);
/* The same within `timeout` ms for all streams together (-1 no limit, 0 only checks); work
 * still queued then -> ACL_ERROR_RT_STREAM_SYNC_TIMEOUT; timeout < -1 -> ACL_ERROR_INVALID_PARAM. */
ACL_FUNC_VISIBILITY aclError aclrtSynchronizeDeviceWithTimeout(int32_t timeout);
/* Contexts are tokens (there is nothing per context); they exist so CANN samples run. */
ACL_FUNC_VISIBILITY aclError aclrtCreateContext(aclrtContext *context, int32_t deviceId);
ACL_FUNC_VISIBILITY aclError aclrtDestroyContext(aclrtContext context);
ACL_FUNC_VISIBILITY aclError aclrtSetCurrentContext(aclrtContext context);
ACL_FUNC_VISIBILITY aclError aclrtGetCurrentContext(aclrtContext *context);

/* ---- memory ---------------------------------------------------------------------------- */
/* 64-byte aligned.  size 0 or devPtr NULL -> ACL_ERROR_INVALID_PARAM; out of memory ->
 * ACL_ERROR_BAD_ALLOC.  aclrtFree of NULL, of a pointer aclrtMalloc did not return, or of
 * one already freed -> ACL_ERROR_INVALID_PARAM (blocks are tracked).  Same for the Host
 * pair; the two pools are separate. */
ACL_FUNC_VISIBILITY aclError aclrtMalloc(void **devPtr, size_t size, aclrtMemMallocPolicy policy);
ACL_FUNC_VISIBILITY aclError aclrtFree(void *devPtr);
ACL_FUNC_VISIBILITY aclError aclrtMallocHost(void **hostPtr, size_t size);
ACL_FUNC_VISIBILITY aclError aclrtFreeHost(void *hostPtr);

/* NULL dst/src -> ACL_ERROR_INVALID_PARAM (even when count is 0); kind outside 0..7 ->
 * ACL_ERROR_INVALID_PARAM; count > destMax -> ACL_ERROR_RT_PARAM_INVALID; count 0 -> success.
 * Overlapping ranges are copied as by memmove.  The synchronous forms copy immediately;
 * they do not wait for streams (synchronize first, as on the NPU). */
ACL_FUNC_VISIBILITY aclError aclrtMemcpy(void *dst, size_t destMax, const void *src, size_t count,
                                         aclrtMemcpyKind kind);
ACL_FUNC_VISIBILITY aclError aclrtMemcpyAsync(void *dst, size_t destMax, const void *src, size_t count,
                                              aclrtMemcpyKind kind, aclrtStream stream);
/* Sets count bytes to (unsigned char)value. */
ACL_FUNC_VISIBILITY aclError aclrtMemset(void *devPtr, size_t maxCount, int32_t value, size_t count);
ACL_FUNC_VISIBILITY aclError aclrtMemsetAsync(void *devPtr, size_t maxCount, int32_t value, size_t count,
                                              aclrtStream stream);

/* ---- streams ----------------------------------------------------------------------------- */
/* NULL stream argument = the default stream (except for Create/Destroy, where NULL ->
 * ACL_ERROR_INVALID_PARAM).  Unknown or destroyed handle -> ACL_ERROR_INVALID_PARAM.
 * aclrtDestroyStream finishes the work already queued on the stream, then releases it.
 * aclrtSynchronizeStream returns ACL_ERROR_INTERNAL_ERROR (with the message) if a task on
 * the stream failed since the previous synchronisation. */
ACL_FUNC_VISIBILITY aclError aclrtCreateStream(aclrtStream *stream);
ACL_FUNC_VISIBILITY aclError aclrtDestroyStream(aclrtStream stream);
ACL_FUNC_VISIBILITY aclError aclrtSynchronizeStream(aclrtStream stream);
/* As aclrtSynchronizeStream, waiting at most `timeout` ms: -1 waits without limit, 0 only
 * checks.  Work still queued when the time is up -> ACL_ERROR_RT_STREAM_SYNC_TIMEOUT (507046;
 * the work keeps running); timeout < -1 -> ACL_ERROR_INVALID_PARAM. */
ACL_FUNC_VISIBILITY aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout);

/* ---- events ------------------------------------------------------------------------------ */
/* aclrtRecordEvent enqueues a marker; the event completes when the stream reaches it (a new
 * record supersedes the previous one).  aclrtSynchronizeEvent waits for the latest record
 * made before the call (returns at once if never recorded).  aclrtStreamWaitEvent makes
 * later work on `stream` wait for the latest record made before the call.
 * aclrtQueryEventStatus: COMPLETE once the latest record has been reached; NOT_READY while
 * it is pending and for an event never recorded. */
ACL_FUNC_VISIBILITY aclError aclrtCreateEvent(aclrtEvent *event);
ACL_FUNC_VISIBILITY aclError aclrtDestroyEvent(aclrtEvent event);
ACL_FUNC_VISIBILITY aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream);
ACL_FUNC_VISIBILITY aclError aclrtSynchronizeEvent(aclrtEvent event);
/* As aclrtSynchronizeEvent within `timeout` ms (-1 no limit, 0 only checks); not reached then
 * -> ACL_ERROR_RT_EVENT_SYNC_TIMEOUT (507047); timeout < -1 -> ACL_ERROR_INVALID_PARAM. */
ACL_FUNC_VISIBILITY aclError aclrtSynchronizeEventWithTimeout(aclrtEvent event, int32_t timeout);
ACL_FUNC_VISIBILITY aclError aclrtStreamWaitEvent(aclrtStream stream, aclrtEvent event);
ACL_FUNC_VISIBILITY aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus *status);

#ifdef __cplusplus
}
#endif

#endif /* ADDLORA_ACL_RT_H_ */
