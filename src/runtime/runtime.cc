// libascendcl: the registry shared by every chapter (runtime_state.h), library lifetime, the
// single "device" (id 0), contexts and the pure helpers of the CANN ACL C API, on the host.
// Memory, streams and events are in memory.cc, streams.cc and events.cc.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/numeric.h"
#include "runtime/runtime_state.h"

namespace addlora_rt {

Runtime& rt() {
  static Runtime* r = new Runtime;
  return *r;
}

aclError not_initialized(const char* fn) {
  set_error("%s: the runtime is not initialized (call aclInit first; after aclFinalize it must be called again)", fn);
  return ACL_ERROR_UNINITIALIZE;
}

aclError check_initialized(const char* fn) {
  std::lock_guard<std::mutex> lock(rt().m);
  return rt().initialized ? ACL_SUCCESS : not_initialized(fn);
}

aclError check_not_null(const char* fn, const char* name, const void* p) {
  if (p != nullptr) return ACL_SUCCESS;
  set_error("%s: %s is null", fn, name);
  return ACL_ERROR_INVALID_PARAM;
}

namespace {

// Caller holds rt().m.  The object behind a live handle of `map` (`kind` and `creator` name it
// in the message).
template <class T>
aclError find_live_locked(const char* fn, const std::unordered_map<uintptr_t, std::shared_ptr<T>>& map,
                          const void* handle, const char* kind, const char* creator, std::shared_ptr<T>* out) {
  auto it = map.find(reinterpret_cast<uintptr_t>(handle));
  if (it == map.end()) {
    set_error("%s: %s %p is not a live %s (never created by %s, or destroyed)", fn, kind, handle, kind, creator);
    return ACL_ERROR_INVALID_PARAM;
  }
  *out = it->second;
  return ACL_SUCCESS;
}

}  // namespace

aclError find_stream_locked(const char* fn, aclrtStream s, std::shared_ptr<Stream>* out) {
  Runtime& r = rt();
  if (!r.initialized) return not_initialized(fn);
  if (s == nullptr) {
    if (!r.default_stream) r.default_stream = std::make_shared<Stream>();
    *out = r.default_stream;
    return ACL_SUCCESS;
  }
  return find_live_locked(fn, r.streams, s, "stream", "aclrtCreateStream", out);
}

aclError find_event_locked(const char* fn, aclrtEvent e, std::shared_ptr<Event>* out) {
  if (!rt().initialized) return not_initialized(fn);
  if (aclError err = check_not_null(fn, "event", e)) return err;
  return find_live_locked(fn, rt().events, e, "event", "aclrtCreateEvent", out);
}

aclError find_event(const char* fn, aclrtEvent e, std::shared_ptr<Event>* out) {
  std::lock_guard<std::mutex> lock(rt().m);
  return find_event_locked(fn, e, out);
}

aclError submit(const char* fn, aclrtStream s, std::function<void()> task) {
  std::lock_guard<std::mutex> lock(rt().m);
  std::shared_ptr<Stream> stream;
  if (aclError err = find_stream_locked(fn, s, &stream)) return err;
  stream->push(std::move(task));
  return ACL_SUCCESS;
}

aclError wait_stream(const char* fn, aclrtStream handle, Stream& s) {
  if (s.on_worker_thread()) {
    set_error("%s: called from a task of stream %p itself (it would wait for itself forever)", fn, handle);
    return ACL_ERROR_INVALID_PARAM;
  }
  s.wait_idle();
  std::string failure = s.take_failure();
  if (!failure.empty()) {
    set_error("%s: a task on stream %p failed: %s", fn, handle, failure.c_str());
    return ACL_ERROR_INTERNAL_ERROR;
  }
  return ACL_SUCCESS;
}

aclError check_timeout(const char* fn, int32_t timeout) {
  if (timeout < -1) {
    set_error("%s: timeout %d ms is invalid (-1 waits without limit, 0 only checks, > 0 waits that long)", fn,
              static_cast<int>(timeout));
    return ACL_ERROR_INVALID_PARAM;
  }
  return ACL_SUCCESS;
}

namespace {

constexpr uintptr_t kDefaultContext = 0x10;

thread_local uintptr_t t_current_context = 0;

aclError check_device_id(const char* fn, int32_t id) {
  if (id != 0) {
    set_error("%s: device %d does not exist (this runtime has one device, id 0)", fn, static_cast<int>(id));
    return ACL_ERROR_INVALID_DEVICE;
  }
  return ACL_SUCCESS;
}

}  // namespace
}  // namespace addlora_rt

using namespace addlora_rt;

extern "C" {

// ---- lifetime ---------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclInit(const char* /*configPath: nothing to configure*/) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (rt().initialized) {
      set_error("%s: the runtime is already initialized (aclInit may be called again only after aclFinalize)", fn);
      return ACL_ERROR_REPEAT_INITIALIZE;
    }
    rt().initialized = true;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclFinalize(void) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    std::vector<std::shared_ptr<Stream>> streams;
    std::unordered_map<void*, size_t> device_blocks, host_blocks;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      Runtime& r = rt();
      if (!r.initialized) {
        set_error("%s: the runtime is not initialized (aclFinalize already called, or aclInit never called)", fn);
        return ACL_ERROR_REPEAT_FINALIZE;
      }
      streams.reserve(r.streams.size() + 1);
      if (r.default_stream) streams.push_back(r.default_stream);
      for (auto& kv : r.streams) streams.push_back(kv.second);
      for (auto& s : streams) {
        if (s->on_worker_thread()) {
          set_error("%s: called from a stream task (the stream cannot drain itself)", fn);
          return ACL_ERROR_INVALID_PARAM;
        }
      }
      // From here on no new work can be queued: submit() checks `initialized` under this lock.
      r.initialized = false;
      r.device_refs = 0;
      r.default_stream.reset();
      r.streams.clear();
      r.events.clear();  // pending records and waits keep their events alive
      r.contexts.clear();
      device_blocks.swap(r.device_blocks);
      host_blocks.swap(r.host_blocks);
    }
    // Drain every stream before releasing memory its tasks may still use.  Another thread
    // may briefly hold a stream too; the queue is empty either way once wait_idle returns.
    for (auto& s : streams) s->wait_idle();
    streams.clear();  // joins the workers
    for (auto& kv : device_blocks) std::free(kv.first);
    for (auto& kv : host_blocks) std::free(kv.first);
    return ACL_SUCCESS;
  });
}

// ---- device and contexts ----------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclrtSetDevice(int32_t deviceId) {
  return acl_entry(__func__, Needs::init_locked, [&](const char* fn) -> aclError {
    if (aclError err = check_device_id(fn, deviceId)) return err;
    ++rt().device_refs;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtResetDevice(int32_t deviceId) {
  return acl_entry(__func__, Needs::init_locked, [&](const char* fn) -> aclError {
    if (aclError err = check_device_id(fn, deviceId)) return err;
    if (rt().device_refs > 0) --rt().device_refs;  // resetting an unset device is harmless
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtGetDevice(int32_t* deviceId) {
  return acl_entry(__func__, Needs::init_locked, [&](const char* fn) -> aclError {
    if (aclError err = check_not_null(fn, "deviceId", deviceId)) return err;
    if (rt().device_refs == 0 && rt().contexts.empty()) {
      set_error("%s: no device is set (call aclrtSetDevice(0) first)", fn);
      return ACL_ERROR_RT_CONTEXT_NULL;
    }
    *deviceId = 0;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtGetDeviceCount(uint32_t* count) {
  return acl_entry(__func__, Needs::init, [&](const char* fn) -> aclError {
    if (aclError err = check_not_null(fn, "count", count)) return err;
    *count = 1;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtGetRunMode(aclrtRunMode* runMode) {
  return acl_entry(__func__, Needs::init, [&](const char* fn) -> aclError {
    if (aclError err = check_not_null(fn, "runMode", runMode)) return err;
    *runMode = ACL_HOST;  // the program runs on the host and uses separate "device" buffers
    return ACL_SUCCESS;
  });
}

// The default stream and every created stream, taken under the registry lock (waiting
// happens outside it).
using StreamList = std::vector<std::pair<uintptr_t, std::shared_ptr<Stream>>>;
static aclError snapshot_streams(const char* fn, StreamList* streams) {
  std::lock_guard<std::mutex> lock(rt().m);
  if (!rt().initialized) return not_initialized(fn);
  if (rt().default_stream) streams->emplace_back(0, rt().default_stream);
  for (auto& kv : rt().streams) streams->emplace_back(kv.first, kv.second);
  return ACL_SUCCESS;
}

// Waits for every stream of the list; the first failure is the result.
static aclError wait_all(const char* fn, const StreamList& streams) {
  aclError result = ACL_SUCCESS;
  for (auto& s : streams) {
    aclError err = wait_stream(fn, reinterpret_cast<aclrtStream>(s.first), *s.second);
    if (result == ACL_SUCCESS) result = err;
  }
  return result;
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeDevice(void) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    StreamList streams;
    if (aclError err = snapshot_streams(fn, &streams)) return err;
    return wait_all(fn, streams);
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeDeviceWithTimeout(int32_t timeout) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    StreamList streams;
    if (aclError err = snapshot_streams(fn, &streams)) return err;
    if (aclError err = check_timeout(fn, timeout)) return err;
    if (timeout >= 0) {  // one deadline for all streams
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout);
      for (auto& s : streams) {
        const auto handle = reinterpret_cast<aclrtStream>(s.first);
        if (s.second->on_worker_thread()) {
          set_error("%s: called from a task of stream %p (it would wait for itself)", fn, handle);
          return ACL_ERROR_INVALID_PARAM;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (!s.second->wait_idle_for(std::max(left, std::chrono::milliseconds(0)))) {
          set_error("%s: stream %p still has work queued after %d ms", fn, handle, static_cast<int>(timeout));
          return ACL_ERROR_RT_STREAM_SYNC_TIMEOUT;
        }
      }
    }
    return wait_all(fn, streams);  // every stream idle (or no limit): collect failed tasks
  });
}

ACL_FUNC_VISIBILITY aclError aclrtCreateContext(aclrtContext* context, int32_t deviceId) {
  return acl_entry(__func__, Needs::init_locked, [&](const char* fn) -> aclError {
    if (aclError err = check_not_null(fn, "context", context)) return err;
    if (aclError err = check_device_id(fn, deviceId)) return err;
    const uintptr_t token = rt().new_token();
    rt().contexts.insert(token);
    t_current_context = token;  // CANN: a new context becomes the thread's current one
    *context = reinterpret_cast<aclrtContext>(token);
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtDestroyContext(aclrtContext context) {
  return acl_entry(__func__, Needs::init_locked, [&](const char* fn) -> aclError {
    const uintptr_t token = reinterpret_cast<uintptr_t>(context);
    if (rt().contexts.erase(token) == 0) {
      set_error("%s: context %p is not a live context", fn, context);
      return ACL_ERROR_INVALID_PARAM;
    }
    if (t_current_context == token) t_current_context = 0;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSetCurrentContext(aclrtContext context) {
  return acl_entry(__func__, Needs::init_locked, [&](const char* fn) -> aclError {
    const uintptr_t token = reinterpret_cast<uintptr_t>(context);
    if (token != kDefaultContext && rt().contexts.count(token) == 0) {
      set_error("%s: context %p is not a live context", fn, context);
      return ACL_ERROR_INVALID_PARAM;
    }
    t_current_context = token;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtGetCurrentContext(aclrtContext* context) {
  return acl_entry(__func__, Needs::init_locked, [&](const char* fn) -> aclError {
    if (aclError err = check_not_null(fn, "context", context)) return err;
    uintptr_t token = t_current_context;
    if (token != 0 && token != kDefaultContext && rt().contexts.count(token) == 0) token = 0;  // from an old init
    if (token == 0 && rt().device_refs > 0) token = kDefaultContext;  // the device's default context
    if (token == 0) {
      set_error("%s: no current context (call aclrtSetDevice or aclrtCreateContext first)", fn);
      return ACL_ERROR_RT_CONTEXT_NULL;
    }
    *context = reinterpret_cast<aclrtContext>(token);
    return ACL_SUCCESS;
  });
}

// ---- pure helpers -----------------------------------------------------------------------

// There is no Ascend SoC: a name no SoC check of a client matches (they test for "Ascend...").
ACL_FUNC_VISIBILITY const char* aclrtGetSocName(void) { return "AddLoraCPU"; }

ACL_FUNC_VISIBILITY float aclFloat16ToFloat(aclFloat16 value) { return addlora::numeric::half_to_float(value); }
ACL_FUNC_VISIBILITY aclFloat16 aclFloatToFloat16(float value) { return addlora::numeric::float_to_half(value); }

ACL_FUNC_VISIBILITY size_t aclDataTypeSize(aclDataType dataType) {
  switch (enum_bits(dataType)) {
    case ACL_BOOL: case ACL_INT8: case ACL_UINT8: return 1;
    case ACL_HIFLOAT8: case ACL_FLOAT8_E5M2: case ACL_FLOAT8_E4M3FN: case ACL_FLOAT8_E8M0: return 1;
    case ACL_FLOAT16: case ACL_BF16: case ACL_INT16: case ACL_UINT16: return 2;
    case ACL_FLOAT: case ACL_INT32: case ACL_UINT32: case ACL_COMPLEX32: return 4;
    case ACL_INT64: case ACL_UINT64: case ACL_DOUBLE: case ACL_COMPLEX64: return 8;
    case ACL_COMPLEX128: return 16;
    default: return 0;  // ACL_DT_UNDEFINED, ACL_STRING, sub-byte types (INT4, UINT1, FLOAT6/4), unknown
  }
}

}  // extern "C"
