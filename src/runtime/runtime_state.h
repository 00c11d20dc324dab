// Private to libascendcl: the process-wide registry of the host runtime and the helpers every
// chapter of the ACL C API shares (runtime.cc: registry, lifetime, device, contexts;
// memory.cc; streams.cc; events.cc).  One registry (mutex-protected) maps handle tokens to
// objects, so every handle a client passes is checked and a stale one is an error code.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <unordered_set>

#include "runtime/guard.h"
#include "runtime/internal.h"
#include "runtime/stream.h"

namespace addlora_rt {

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

// The registry.  Never destroyed: if a client exits without aclFinalize, its stream threads
// are still alive, and destroying a joinable std::thread at exit would abort the process.
Runtime& rt();

// Sets the "call aclInit first" message and returns ACL_ERROR_UNINITIALIZE.
aclError not_initialized(const char* fn);
// ACL_SUCCESS if initialised (takes the registry lock), else as not_initialized.
aclError check_initialized(const char* fn);
// ACL_ERROR_INVALID_PARAM with "<fn>: <name> is null" when `p` is null, else ACL_SUCCESS.
aclError check_not_null(const char* fn, const char* name, const void* p);
// Caller holds rt().m.  nullptr is the default stream (created on first use).
aclError find_stream_locked(const char* fn, aclrtStream s, std::shared_ptr<Stream>* out);
// Caller holds rt().m.
aclError find_event_locked(const char* fn, aclrtEvent e, std::shared_ptr<Event>* out);
// find_event_locked taking the registry lock itself (released on return).
aclError find_event(const char* fn, aclrtEvent e, std::shared_ptr<Event>* out);

// The body of the create functions: checks `out`, then the initialised state, and registers a
// new T in `map` under a new token, which becomes the client's handle.
template <class T, class Handle>
aclError create_handle(const char* fn, const char* name, Handle* out,
                       std::unordered_map<uintptr_t, std::shared_ptr<T>> Runtime::*map) {
  if (aclError err = check_not_null(fn, name, out)) return err;
  std::lock_guard<std::mutex> lock(rt().m);
  if (!rt().initialized) return not_initialized(fn);
  auto obj = std::make_shared<T>();
  const uintptr_t token = rt().new_token();
  (rt().*map).emplace(token, std::move(obj));
  *out = reinterpret_cast<Handle>(token);
  return ACL_SUCCESS;
}
// Enqueues under the registry lock, so aclFinalize (which flips `initialized` under the
// same lock) never misses work it must drain.
aclError submit(const char* fn, aclrtStream s, std::function<void()> task);
// Waits for `s` (not from its own worker) and reports a task that failed since the last wait.
aclError wait_stream(const char* fn, aclrtStream handle, Stream& s);

// The timeout argument of the *WithTimeout functions: -1 waits without limit, 0 only checks,
// > 0 waits that many milliseconds.  < -1 -> ACL_ERROR_INVALID_PARAM with the message.
aclError check_timeout(const char* fn, int32_t timeout);

// init: the initialised check first; init_locked: the same, and the body runs holding rt().m.
enum class Needs { nothing, init, init_locked };

// The entry of every C function of libascendcl: `body(fn)` runs inside the exception barrier
// (out of memory -> ACL_ERROR_BAD_ALLOC, anything else -> ACL_ERROR_INTERNAL_ERROR, with a
// message naming `fn`), after the initialised check that `needs` asks for.  Callers pass
// __func__, so every message names the C function the client called.
template <class F>
aclError acl_entry(const char* fn, Needs needs, F&& body) noexcept {
  return guarded(fn, ACL_ERROR_BAD_ALLOC, ACL_ERROR_INTERNAL_ERROR, [&]() -> aclError {
    if (needs == Needs::init_locked) {
      std::lock_guard<std::mutex> lock(rt().m);
      if (!rt().initialized) return not_initialized(fn);
      return body(fn);
    }
    if (needs == Needs::init) {
      if (aclError err = check_initialized(fn)) return err;
    }
    return body(fn);
  });
}
template <class F>
aclError acl_entry(const char* fn, F&& body) noexcept {
  return acl_entry(fn, Needs::nothing, std::forward<F>(body));
}

}  // namespace addlora_rt
