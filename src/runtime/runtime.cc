// libascendcl: lifetime, the single "device", memory, streams and events of the CANN ACL
// C API, on the host.  One process-wide registry (mutex-protected) maps handle tokens to
// objects, so every handle a client passes is checked and a stale one is an error code.
#include <atomic>
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/numeric.h"
#include "runtime/guard.h"
#include "runtime/internal.h"
#include "runtime/stream.h"

namespace addlora_rt {
namespace {

constexpr size_t kAlignment = 64;  // CANN promises 32; cache lines and AVX-512 like 64
constexpr uintptr_t kDefaultContext = 0x10;
constexpr size_t kMaxAllocation = size_t{1} << 46;  // 64 TiB

// Event state.  A record issued as generation g completes when its stream reaches it;
// `reached` keeps the highest generation reached, so the event reflects its latest record.
struct Event {
  std::mutex m;
  std::condition_variable cv;
  uint64_t recorded = 0;
  uint64_t reached = 0;
};

struct Runtime {
  std::mutex m;  // guards everything below; held while pushing so aclFinalize sees all work
  bool initialized = false;
  int device_refs = 0;                   // aclrtSetDevice minus aclrtResetDevice
  uintptr_t next_token = 0x1000;         // handles are never reused
  std::shared_ptr<Stream> default_stream;  // created on first use
  std::unordered_map<uintptr_t, std::shared_ptr<Stream>> streams;
  std::unordered_map<uintptr_t, std::shared_ptr<Event>> events;
  std::unordered_set<uintptr_t> contexts;
  std::unordered_map<void*, size_t> device_blocks, host_blocks;  // pointer -> bytes

  uintptr_t new_token() { return next_token += 0x10; }
};

// Never destroyed: if a client exits without aclFinalize, its stream threads are still
// alive, and destroying a joinable std::thread at exit would abort the process.
Runtime& rt() {
  static Runtime* r = new Runtime;
  return *r;
}

thread_local uintptr_t t_current_context = 0;

template <class F>
aclError acl_guarded(const char* fn, F&& body) noexcept {
  return guarded(fn, ACL_ERROR_BAD_ALLOC, ACL_ERROR_INTERNAL_ERROR, std::forward<F>(body));
}

aclError not_initialized(const char* fn) {
  set_error("%s: the runtime is not initialized (call aclInit first; after aclFinalize it must be called again)", fn);
  return ACL_ERROR_UNINITIALIZE;
}

// Caller holds rt().m.  nullptr is the default stream.
aclError find_stream_locked(const char* fn, aclrtStream s, std::shared_ptr<Stream>* out) {
  Runtime& r = rt();
  if (!r.initialized) return not_initialized(fn);
  if (s == nullptr) {
    if (!r.default_stream) r.default_stream = std::make_shared<Stream>();
    *out = r.default_stream;
    return ACL_SUCCESS;
  }
  auto it = r.streams.find(reinterpret_cast<uintptr_t>(s));
  if (it == r.streams.end()) {
    set_error("%s: stream %p is not a live stream (never created by aclrtCreateStream, or destroyed)", fn, s);
    return ACL_ERROR_INVALID_PARAM;
  }
  *out = it->second;
  return ACL_SUCCESS;
}

// Caller holds rt().m.
aclError find_event_locked(const char* fn, aclrtEvent e, std::shared_ptr<Event>* out) {
  Runtime& r = rt();
  if (!r.initialized) return not_initialized(fn);
  if (e == nullptr) {
    set_error("%s: event is null", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  auto it = r.events.find(reinterpret_cast<uintptr_t>(e));
  if (it == r.events.end()) {
    set_error("%s: event %p is not a live event (never created by aclrtCreateEvent, or destroyed)", fn, e);
    return ACL_ERROR_INVALID_PARAM;
  }
  *out = it->second;
  return ACL_SUCCESS;
}

// Enqueues under the registry lock, so aclFinalize (which flips `initialized` under the
// same lock) never misses work it must drain.
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

aclError check_device_id(const char* fn, int32_t id) {
  if (id != 0) {
    set_error("%s: device %d does not exist (this runtime has one device, id 0)", fn, static_cast<int>(id));
    return ACL_ERROR_INVALID_DEVICE;
  }
  return ACL_SUCCESS;
}

aclError check_initialized(const char* fn) {
  std::lock_guard<std::mutex> lock(rt().m);
  return rt().initialized ? ACL_SUCCESS : not_initialized(fn);
}

std::atomic<int64_t> g_fail_countdown{-1};

bool injected_failure() {
  int64_t n = g_fail_countdown.load(std::memory_order_relaxed);
  while (n >= 0)
    if (g_fail_countdown.compare_exchange_weak(n, n - 1)) return n == 0;
  return false;
}

aclError allocate(const char* fn, void** ptr, size_t size, bool host) {
  if (ptr == nullptr) {
    set_error("%s: the output pointer is null", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  if (size == 0) {
    set_error("%s: size must be > 0", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  if (aclError err = check_initialized(fn)) return err;
  // Absurd sizes fail here, not in the allocator (sanitizer allocators abort on them).
  if (size > kMaxAllocation) {
    set_error("%s: cannot allocate %zu bytes (more than any host can provide)", fn, size);
    return ACL_ERROR_BAD_ALLOC;
  }
  const size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;  // aligned_alloc rule
  void* p = injected_failure() ? nullptr : std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) {
    set_error("%s: cannot allocate %zu bytes", fn, size);
    return ACL_ERROR_BAD_ALLOC;
  }
  std::lock_guard<std::mutex> lock(rt().m);
  if (!rt().initialized) {  // aclFinalize ran meanwhile
    std::free(p);
    return not_initialized(fn);
  }
  try {
    (host ? rt().host_blocks : rt().device_blocks).emplace(p, size);
  } catch (...) {
    std::free(p);
    throw;
  }
  *ptr = p;
  return ACL_SUCCESS;
}

aclError release(const char* fn, void* p, bool host) {
  if (p == nullptr) {
    set_error("%s: pointer is null", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized(fn);
    auto& blocks = host ? rt().host_blocks : rt().device_blocks;
    auto it = blocks.find(p);
    if (it == blocks.end()) {
      set_error("%s: %p was not returned by %s, or was already freed", fn, p,
                host ? "aclrtMallocHost" : "aclrtMalloc");
      return ACL_ERROR_INVALID_PARAM;
    }
    blocks.erase(it);
  }
  std::free(p);
  return ACL_SUCCESS;
}

aclError check_copy(const char* fn, const void* dst, size_t dest_max, const void* src, size_t count,
                    int64_t kind) {
  if (dst == nullptr || src == nullptr) {
    set_error("%s: %s pointer is null", fn, dst == nullptr ? "destination" : "source");
    return ACL_ERROR_INVALID_PARAM;
  }
  if (kind < ACL_MEMCPY_HOST_TO_HOST || kind > ACL_MEMCPY_DEFAULT) {
    set_error("%s: kind %lld is not an aclrtMemcpyKind (0..4)", fn, static_cast<long long>(kind));
    return ACL_ERROR_INVALID_PARAM;
  }
  if (count > dest_max) {
    set_error("%s: count (%zu bytes) exceeds destMax (%zu bytes)", fn, count, dest_max);
    return ACL_ERROR_RT_PARAM_INVALID;
  }
  return ACL_SUCCESS;
}

aclError check_set(const char* fn, const void* dst, size_t max_count, size_t count) {
  if (dst == nullptr) {
    set_error("%s: pointer is null", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  if (count > max_count) {
    set_error("%s: count (%zu bytes) exceeds maxCount (%zu bytes)", fn, count, max_count);
    return ACL_ERROR_RT_PARAM_INVALID;
  }
  return ACL_SUCCESS;
}

}  // namespace

aclError enqueue(aclrtStream stream, std::function<void()> task) {
  return acl_guarded("enqueue", [&]() -> aclError {
    if (!task) {
      set_error("enqueue: empty task");
      return ACL_ERROR_INVALID_PARAM;
    }
    return submit("enqueue", stream, std::move(task));
  });
}

void test_fail_allocation(int64_t nth) { g_fail_countdown.store(nth < 0 ? -1 : nth); }

}  // namespace addlora_rt

using namespace addlora_rt;

extern "C" {

// ---- lifetime ---------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclInit(const char* /*configPath: nothing to configure*/) {
  return acl_guarded("aclInit", []() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (rt().initialized) {
      set_error("aclInit: the runtime is already initialized (aclInit may be called again only after aclFinalize)");
      return ACL_ERROR_REPEAT_INITIALIZE;
    }
    rt().initialized = true;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclFinalize(void) {
  return acl_guarded("aclFinalize", []() -> aclError {
    std::vector<std::shared_ptr<Stream>> streams;
    std::unordered_map<void*, size_t> device_blocks, host_blocks;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      Runtime& r = rt();
      if (!r.initialized) {
        set_error("aclFinalize: the runtime is not initialized (aclFinalize already called, or aclInit never called)");
        return ACL_ERROR_REPEAT_FINALIZE;
      }
      streams.reserve(r.streams.size() + 1);
      if (r.default_stream) streams.push_back(r.default_stream);
      for (auto& kv : r.streams) streams.push_back(kv.second);
      for (auto& s : streams) {
        if (s->on_worker_thread()) {
          set_error("aclFinalize: called from a stream task (the stream cannot drain itself)");
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
  return acl_guarded("aclrtSetDevice", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtSetDevice");
    if (aclError err = check_device_id("aclrtSetDevice", deviceId)) return err;
    ++rt().device_refs;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtResetDevice(int32_t deviceId) {
  return acl_guarded("aclrtResetDevice", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtResetDevice");
    if (aclError err = check_device_id("aclrtResetDevice", deviceId)) return err;
    if (rt().device_refs > 0) --rt().device_refs;  // resetting an unset device is harmless
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtGetDevice(int32_t* deviceId) {
  return acl_guarded("aclrtGetDevice", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtGetDevice");
    if (deviceId == nullptr) {
      set_error("aclrtGetDevice: deviceId is null");
      return ACL_ERROR_INVALID_PARAM;
    }
    if (rt().device_refs == 0 && rt().contexts.empty()) {
      set_error("aclrtGetDevice: no device is set (call aclrtSetDevice(0) first)");
      return ACL_ERROR_RT_CONTEXT_NULL;
    }
    *deviceId = 0;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtGetDeviceCount(uint32_t* count) {
  return acl_guarded("aclrtGetDeviceCount", [&]() -> aclError {
    if (aclError err = check_initialized("aclrtGetDeviceCount")) return err;
    if (count == nullptr) {
      set_error("aclrtGetDeviceCount: count is null");
      return ACL_ERROR_INVALID_PARAM;
    }
    *count = 1;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtGetRunMode(aclrtRunMode* runMode) {
  return acl_guarded("aclrtGetRunMode", [&]() -> aclError {
    if (aclError err = check_initialized("aclrtGetRunMode")) return err;
    if (runMode == nullptr) {
      set_error("aclrtGetRunMode: runMode is null");
      return ACL_ERROR_INVALID_PARAM;
    }
    *runMode = ACL_HOST;  // the program runs on the host and uses separate "device" buffers
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeDevice(void) {
  return acl_guarded("aclrtSynchronizeDevice", []() -> aclError {
    std::vector<std::pair<uintptr_t, std::shared_ptr<Stream>>> streams;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      if (!rt().initialized) return not_initialized("aclrtSynchronizeDevice");
      if (rt().default_stream) streams.emplace_back(0, rt().default_stream);
      for (auto& kv : rt().streams) streams.emplace_back(kv.first, kv.second);
    }
    aclError result = ACL_SUCCESS;
    for (auto& s : streams) {
      aclError err = wait_stream("aclrtSynchronizeDevice", reinterpret_cast<aclrtStream>(s.first), *s.second);
      if (result == ACL_SUCCESS) result = err;
    }
    return result;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtCreateContext(aclrtContext* context, int32_t deviceId) {
  return acl_guarded("aclrtCreateContext", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtCreateContext");
    if (context == nullptr) {
      set_error("aclrtCreateContext: context is null");
      return ACL_ERROR_INVALID_PARAM;
    }
    if (aclError err = check_device_id("aclrtCreateContext", deviceId)) return err;
    const uintptr_t token = rt().new_token();
    rt().contexts.insert(token);
    t_current_context = token;  // CANN: a new context becomes the thread's current one
    *context = reinterpret_cast<aclrtContext>(token);
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtDestroyContext(aclrtContext context) {
  return acl_guarded("aclrtDestroyContext", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtDestroyContext");
    const uintptr_t token = reinterpret_cast<uintptr_t>(context);
    if (rt().contexts.erase(token) == 0) {
      set_error("aclrtDestroyContext: context %p is not a live context", context);
      return ACL_ERROR_INVALID_PARAM;
    }
    if (t_current_context == token) t_current_context = 0;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSetCurrentContext(aclrtContext context) {
  return acl_guarded("aclrtSetCurrentContext", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtSetCurrentContext");
    const uintptr_t token = reinterpret_cast<uintptr_t>(context);
    if (token != kDefaultContext && rt().contexts.count(token) == 0) {
      set_error("aclrtSetCurrentContext: context %p is not a live context", context);
      return ACL_ERROR_INVALID_PARAM;
    }
    t_current_context = token;
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtGetCurrentContext(aclrtContext* context) {
  return acl_guarded("aclrtGetCurrentContext", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtGetCurrentContext");
    if (context == nullptr) {
      set_error("aclrtGetCurrentContext: context is null");
      return ACL_ERROR_INVALID_PARAM;
    }
    uintptr_t token = t_current_context;
    if (token != 0 && token != kDefaultContext && rt().contexts.count(token) == 0) token = 0;  // from an old init
    if (token == 0 && rt().device_refs > 0) token = kDefaultContext;  // the device's default context
    if (token == 0) {
      set_error("aclrtGetCurrentContext: no current context (call aclrtSetDevice or aclrtCreateContext first)");
      return ACL_ERROR_RT_CONTEXT_NULL;
    }
    *context = reinterpret_cast<aclrtContext>(token);
    return ACL_SUCCESS;
  });
}

// ---- memory -----------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclrtMalloc(void** devPtr, size_t size, aclrtMemMallocPolicy /*hint only*/) {
  return acl_guarded("aclrtMalloc", [&] { return allocate("aclrtMalloc", devPtr, size, false); });
}
ACL_FUNC_VISIBILITY aclError aclrtFree(void* devPtr) {
  return acl_guarded("aclrtFree", [&] { return release("aclrtFree", devPtr, false); });
}
ACL_FUNC_VISIBILITY aclError aclrtMallocHost(void** hostPtr, size_t size) {
  return acl_guarded("aclrtMallocHost", [&] { return allocate("aclrtMallocHost", hostPtr, size, true); });
}
ACL_FUNC_VISIBILITY aclError aclrtFreeHost(void* hostPtr) {
  return acl_guarded("aclrtFreeHost", [&] { return release("aclrtFreeHost", hostPtr, true); });
}

ACL_FUNC_VISIBILITY aclError aclrtMemcpy(void* dst, size_t destMax, const void* src, size_t count,
                                         aclrtMemcpyKind kind) {
  return acl_guarded("aclrtMemcpy", [&]() -> aclError {
    if (aclError err = check_initialized("aclrtMemcpy")) return err;
    if (aclError err = check_copy("aclrtMemcpy", dst, destMax, src, count, enum_bits(kind))) return err;
    if (count > 0) std::memmove(dst, src, count);
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtMemcpyAsync(void* dst, size_t destMax, const void* src, size_t count,
                                              aclrtMemcpyKind kind, aclrtStream stream) {
  return acl_guarded("aclrtMemcpyAsync", [&]() -> aclError {
    if (aclError err = check_initialized("aclrtMemcpyAsync")) return err;
    if (aclError err = check_copy("aclrtMemcpyAsync", dst, destMax, src, count, enum_bits(kind))) return err;
    return submit("aclrtMemcpyAsync", stream, [dst, src, count] {
      if (count > 0) std::memmove(dst, src, count);
    });
  });
}

ACL_FUNC_VISIBILITY aclError aclrtMemset(void* devPtr, size_t maxCount, int32_t value, size_t count) {
  return acl_guarded("aclrtMemset", [&]() -> aclError {
    if (aclError err = check_initialized("aclrtMemset")) return err;
    if (aclError err = check_set("aclrtMemset", devPtr, maxCount, count)) return err;
    if (count > 0) std::memset(devPtr, static_cast<unsigned char>(value), count);
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtMemsetAsync(void* devPtr, size_t maxCount, int32_t value, size_t count,
                                              aclrtStream stream) {
  return acl_guarded("aclrtMemsetAsync", [&]() -> aclError {
    if (aclError err = check_initialized("aclrtMemsetAsync")) return err;
    if (aclError err = check_set("aclrtMemsetAsync", devPtr, maxCount, count)) return err;
    return submit("aclrtMemsetAsync", stream, [devPtr, value, count] {
      if (count > 0) std::memset(devPtr, static_cast<unsigned char>(value), count);
    });
  });
}

// ---- streams ----------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclrtCreateStream(aclrtStream* stream) {
  return acl_guarded("aclrtCreateStream", [&]() -> aclError {
    if (stream == nullptr) {
      set_error("aclrtCreateStream: stream is null");
      return ACL_ERROR_INVALID_PARAM;
    }
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtCreateStream");
    auto s = std::make_shared<Stream>();
    const uintptr_t token = rt().new_token();
    rt().streams.emplace(token, std::move(s));
    *stream = reinterpret_cast<aclrtStream>(token);
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtDestroyStream(aclrtStream stream) {
  return acl_guarded("aclrtDestroyStream", [&]() -> aclError {
    if (stream == nullptr) {
      set_error("aclrtDestroyStream: stream is null (the default stream cannot be destroyed)");
      return ACL_ERROR_INVALID_PARAM;
    }
    std::shared_ptr<Stream> s;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      if (aclError err = find_stream_locked("aclrtDestroyStream", stream, &s)) return err;
      if (s->on_worker_thread()) {
        set_error("aclrtDestroyStream: stream %p cannot be destroyed by one of its own tasks", stream);
        return ACL_ERROR_INVALID_PARAM;
      }
      rt().streams.erase(reinterpret_cast<uintptr_t>(stream));
    }
    s->wait_idle();  // documented: queued work finishes first
    return ACL_SUCCESS;  // the worker is joined when the last reference goes
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeStream(aclrtStream stream) {
  return acl_guarded("aclrtSynchronizeStream", [&]() -> aclError {
    std::shared_ptr<Stream> s;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      if (aclError err = find_stream_locked("aclrtSynchronizeStream", stream, &s)) return err;
    }
    return wait_stream("aclrtSynchronizeStream", stream, *s);
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout) {
  return acl_guarded("aclrtSynchronizeStreamWithTimeout", [&]() -> aclError {
    const char* fn = "aclrtSynchronizeStreamWithTimeout";
    std::shared_ptr<Stream> s;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      if (aclError err = find_stream_locked(fn, stream, &s)) return err;
    }
    if (timeout < -1) {
      set_error("%s: timeout %d ms is invalid (-1 waits without limit, 0 only checks, > 0 waits that long)", fn,
                static_cast<int>(timeout));
      return ACL_ERROR_INVALID_PARAM;
    }
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

// ---- events -----------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclrtCreateEvent(aclrtEvent* event) {
  return acl_guarded("aclrtCreateEvent", [&]() -> aclError {
    if (event == nullptr) {
      set_error("aclrtCreateEvent: event is null");
      return ACL_ERROR_INVALID_PARAM;
    }
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized("aclrtCreateEvent");
    auto e = std::make_shared<Event>();
    const uintptr_t token = rt().new_token();
    rt().events.emplace(token, std::move(e));
    *event = reinterpret_cast<aclrtEvent>(token);
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtDestroyEvent(aclrtEvent event) {
  return acl_guarded("aclrtDestroyEvent", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    std::shared_ptr<Event> e;
    if (aclError err = find_event_locked("aclrtDestroyEvent", event, &e)) return err;
    rt().events.erase(reinterpret_cast<uintptr_t>(event));  // queued records/waits keep it alive
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream) {
  return acl_guarded("aclrtRecordEvent", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    std::shared_ptr<Event> e;
    std::shared_ptr<Stream> s;
    if (aclError err = find_event_locked("aclrtRecordEvent", event, &e)) return err;
    if (aclError err = find_stream_locked("aclrtRecordEvent", stream, &s)) return err;
    // Lock order: registry -> event -> stream queue.  Tasks take only the event lock.
    std::lock_guard<std::mutex> event_lock(e->m);
    const uint64_t generation = e->recorded + 1;
    s->push([e, generation] {
      std::lock_guard<std::mutex> l(e->m);
      e->reached = std::max(e->reached, generation);
      e->cv.notify_all();
    });
    e->recorded = generation;  // only once the marker is safely queued
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeEvent(aclrtEvent event) {
  return acl_guarded("aclrtSynchronizeEvent", [&]() -> aclError {
    std::shared_ptr<Event> e;
    {
      std::lock_guard<std::mutex> lock(rt().m);
      if (aclError err = find_event_locked("aclrtSynchronizeEvent", event, &e)) return err;
    }
    std::unique_lock<std::mutex> l(e->m);
    const uint64_t target = e->recorded;
    e->cv.wait(l, [&] { return e->reached >= target; });
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtStreamWaitEvent(aclrtStream stream, aclrtEvent event) {
  return acl_guarded("aclrtStreamWaitEvent", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    std::shared_ptr<Event> e;
    std::shared_ptr<Stream> s;
    if (aclError err = find_event_locked("aclrtStreamWaitEvent", event, &e)) return err;
    if (aclError err = find_stream_locked("aclrtStreamWaitEvent", stream, &s)) return err;
    uint64_t target;
    {
      std::lock_guard<std::mutex> event_lock(e->m);
      target = e->recorded;
    }
    if (target == 0) return ACL_SUCCESS;  // never recorded: nothing to wait for
    // The awaited record is already queued on some stream, so this wait always ends.
    s->push([e, target] {
      std::unique_lock<std::mutex> l(e->m);
      e->cv.wait(l, [&] { return e->reached >= target; });
    });
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus* status) {
  return acl_guarded("aclrtQueryEventStatus", [&]() -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    std::shared_ptr<Event> e;
    if (aclError err = find_event_locked("aclrtQueryEventStatus", event, &e)) return err;
    if (status == nullptr) {
      set_error("aclrtQueryEventStatus: status is null");
      return ACL_ERROR_INVALID_PARAM;
    }
    std::lock_guard<std::mutex> l(e->m);
    *status = (e->recorded > 0 && e->reached >= e->recorded) ? ACL_EVENT_RECORDED_STATUS_COMPLETE
                                                             : ACL_EVENT_RECORDED_STATUS_NOT_READY;
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
