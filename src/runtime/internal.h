// Contract between the host ACL runtime (libascendcl, libnnopbase) and the operator
// libraries (libopapi_math).  Not installed.  The runtime owns: per-thread error messages,
// streams (ordered queues executed off the caller's thread), tensors and the executor
// registry; an operator only describes its work as an aclOpExecutor subclass.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "acl/acl.h"
#include "aclnn/aclnn_base.h"

// The tensor handle of aclCreateTensor.  Dims/strides/offset in elements.
struct aclTensor {
  std::vector<int64_t> view_dims;
  std::vector<int64_t> strides;        // always filled (contiguous strides when null was passed)
  int64_t offset = 0;
  std::vector<int64_t> storage_dims;
  aclDataType dtype = ACL_DT_UNDEFINED;
  aclFormat format = ACL_FORMAT_ND;
  void* data = nullptr;
};

// Scalars, arrays and lists of acl_meta.h (meta.cc).  Values are copies made at creation.
struct aclScalar {
  aclDataType dtype = ACL_DT_UNDEFINED;
  alignas(16) unsigned char bytes[16] = {};  // the first aclDataTypeSize(dtype) bytes hold the value
};
struct aclIntArray {
  std::vector<int64_t> values;
};
struct aclFloatArray {
  std::vector<float> values;
};
struct aclBoolArray {
  std::vector<unsigned char> values;  // 0 or 1
};
// A list owns its elements: destroying it destroys them.
struct aclTensorList {
  std::vector<const aclTensor*> tensors;
};
struct aclScalarList {
  std::vector<const aclScalar*> scalars;
};

// Base of every operator's executor.  Created by phase one, registered with the runtime,
// consumed by phase two unless made repeatable.
struct aclOpExecutor {
  virtual ~aclOpExecutor() = default;
  // Scratch bytes phase one reported.
  uint64_t workspace_size = 0;
  // Runs the operator now, on the stream's worker thread or the launching thread.  Must not
  // fail: everything was validated in phase one.
  virtual void run(void* workspace) = 0;
  // Called by phase two under the registry lock: captures the executor's arguments as they
  // are now (as the device captures them at launch) and returns the task the stream runs.
  // Later re-pointing (aclSetInputTensorAddr) affects only later launches; `last` says there
  // are none (a single-use executor), so the task may use the executor's state as it is.  An
  // empty function means the current arguments are invalid (the executor has set the
  // message): phase two then returns 161002 and the executor is not consumed.  The default
  // runs the executor as it is when the stream gets to it.
  virtual std::function<void()> bind(void* workspace, bool last) {
    (void)last;
    return [this, workspace] { run(workspace); };
  }
  // Re-point buffers (aclSetInputTensorAddr / aclSetOutputTensorAddr).  false = bad index.
  // The new addresses are validated at the next launch (bind), so a client may re-point
  // several buffers in any order.
  virtual bool set_input_addr(uint64_t index, void* addr) = 0;
  virtual bool set_output_addr(uint64_t index, void* addr) = 0;
};

namespace addlora_rt {

// Sets the calling thread's message for aclGetRecentErrMsg (printf-style).  Exported by
// libascendcl.
__attribute__((visibility("default"), format(printf, 1, 2))) void set_error(const char* fmt, ...);
__attribute__((visibility("default"))) void clear_error();

// Enqueues `task` on `stream` (nullptr = the default stream).  Tasks of one stream run in
// order on a thread other than the caller's.  Returns ACL_SUCCESS, or an error (invalid
// stream, runtime not initialised) with the message set.  Exported by libascendcl.
__attribute__((visibility("default"))) aclError enqueue(aclrtStream stream, std::function<void()> task);
// As enqueue, except that on an idle stream (nothing queued or running) `task` runs at once on
// the calling thread, which then returns -- what a device does with a kernel launched on an
// idle stream, minus the hop to the worker (several microseconds per call).  For operator
// tasks, which never call the runtime; a task that throws is reported by the next
// synchronize, as from the worker.  Exported by libascendcl.
__attribute__((visibility("default"))) aclError run_or_enqueue(aclrtStream stream, std::function<void()> task);

// Takes ownership of a new executor and returns the handle given to the client.  Exported by
// libnnopbase.
__attribute__((visibility("default"))) aclOpExecutor* register_executor(std::unique_ptr<aclOpExecutor> e);

// Phase two for any operator: checks the executor is live (null -> 161001, consumed or
// destroyed -> 161002), the workspace (size > 0 with null pointer -> 161001, smaller than
// reported -> 161002, executor not consumed), launches run() on the stream (run_or_enqueue) and,
// unless the executor is repeatable, consumes it (freed once the stream has run it).  Sets the message
// on failure.  Exported by libnnopbase.
__attribute__((visibility("default"))) aclnnStatus launch_executor(aclOpExecutor* e, void* workspace,
                                                                  uint64_t workspace_size, aclrtStream stream);

// True while `t` is a tensor made by aclCreateTensor and not yet destroyed (tensors built
// any other way are unknown to the runtime's getters and to aclDestroyTensor).  Lets an
// operator reject a stale handle with 161002 instead of reading freed memory.  Exported by
// libnnopbase.  (Added by the runtime helper.)
__attribute__((visibility("default"))) bool is_live_tensor(const aclTensor* t);
// The index of the first non-null tensor of ts[0, n) that is not live, or -1, under one lock.
// Also prefetches each tensor's structure and, once it is known live, its shape and stride
// arrays, which the caller reads next (tensor.cc says why).  Exported by libnnopbase.
__attribute__((visibility("default"))) int first_dead_tensor(const aclTensor* const* ts, int n);
// Sets a live tensor's data pointer under the tensor registry's lock; false if not live.
__attribute__((visibility("default"))) bool set_tensor_data(aclTensor* t, void* addr);

// Test hook: the `nth` next aclrtMalloc / aclrtMallocHost (0 = the very next) fails with
// ACL_ERROR_BAD_ALLOC; -1 disables.  Exported by libascendcl.
__attribute__((visibility("default"))) void test_fail_allocation(int64_t nth);

}  // namespace addlora_rt
