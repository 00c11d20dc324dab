// libascendcl: streams of the CANN ACL C API on the host.  Each stream is an ordered task
// queue run by a worker thread of its own (stream.h), or, for an operator launched on an
// idle stream, by the launching thread; the default stream (NULL) is created on first use.
#include <chrono>
#include <memory>
#include <mutex>
#include <utility>

#include "runtime/runtime_state.h"

namespace addlora_rt {

aclError enqueue(aclrtStream stream, std::function<void()> task) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    if (!task) {
      set_error("%s: empty task", fn);
      return ACL_ERROR_INVALID_PARAM;
    }
    return submit(fn, stream, std::move(task));
  });
}

aclError run_or_enqueue(aclrtStream stream, std::function<void()> task) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    if (!task) {
      set_error("%s: empty task", fn);
      return ACL_ERROR_INVALID_PARAM;
    }
    std::shared_ptr<Stream> s;
    {
      std::lock_guard<std::mutex> lock(rt().m);  // as submit(): aclFinalize sees the claim
      if (aclError err = find_stream_locked(fn, stream, &s)) return err;
      if (!s->claim()) {
        s->push(std::move(task));
        return ACL_SUCCESS;
      }
    }
    s->finish_claimed(Stream::run_task(task));
    return ACL_SUCCESS;
  });
}

}  // namespace addlora_rt

using namespace addlora_rt;

extern "C" {

// ---- streams ----------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclrtCreateStream(aclrtStream* stream) {
  return acl_entry(__func__, [&](const char* fn) { return create_handle(fn, "stream", stream, &Runtime::streams); });
}

ACL_FUNC_VISIBILITY aclError aclrtDestroyStream(aclrtStream stream) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    if (stream == nullptr) {
      set_error("%s: stream is null (the default stream cannot be destroyed)", fn);
      return ACL_ERROR_INVALID_PARAM;
    }
    std::shared_ptr<Stream> s;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      if (aclError err = find_stream_locked(fn, stream, &s)) return err;
      if (s->on_worker_thread()) {
        set_error("%s: stream %p cannot be destroyed by one of its own tasks", fn, stream);
        return ACL_ERROR_INVALID_PARAM;
      }
      rt().streams.erase(reinterpret_cast<uintptr_t>(stream));
    }
    s->wait_idle();  // documented: queued work finishes first
    return ACL_SUCCESS;  // the worker is joined when the last reference goes
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeStream(aclrtStream stream) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    std::shared_ptr<Stream> s;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      if (aclError err = find_stream_locked(fn, stream, &s)) return err;
    }
    return wait_stream(fn, stream, *s);
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    std::shared_ptr<Stream> s;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      if (aclError err = find_stream_locked(fn, stream, &s)) return err;
    }
    if (aclError err = check_timeout(fn, timeout)) return err;
    if (timeout == -1) return wait_stream(fn, stream, *s);
    if (s->on_worker_thread()) {
      set_error("%s: called from a task of stream %p itself (it would wait for itself)", fn, stream);
      return ACL_ERROR_INVALID_PARAM;
    }
    if (!s->wait_idle_for(std::chrono::milliseconds(timeout))) {
      set_error("%s: stream %p still has work queued after %d ms", fn, stream, static_cast<int>(timeout));
      return ACL_ERROR_RT_STREAM_SYNC_TIMEOUT;
    }
    return wait_stream(fn, stream, *s);  // idle now: returns at once, reporting a failed task
  });
}

}  // extern "C"
