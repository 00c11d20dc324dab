// libascendcl: events of the CANN ACL C API on the host.  A record is a marker task in a
// stream queue; the event completes when the stream reaches its latest record.
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>

#include "runtime/runtime_state.h"

namespace addlora_rt {
namespace {

// The entry of record and wait: body(event, stream) runs under the registry lock once both
// handles are found live (the event first, so its message wins).
template <class F>
aclError event_stream_entry(const char* fn, aclrtEvent event, aclrtStream stream, F&& body) noexcept {
  return acl_entry(fn, [&](const char* name) -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    std::shared_ptr<Event> e;
    std::shared_ptr<Stream> s;
    if (aclError err = find_event_locked(name, event, &e)) return err;
    if (aclError err = find_stream_locked(name, stream, &s)) return err;
    return body(e, *s);
  });
}

}  // namespace
}  // namespace addlora_rt

using namespace addlora_rt;

extern "C" {

// ---- events -----------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclrtCreateEvent(aclrtEvent* event) {
  return acl_entry(__func__, [&](const char* fn) { return create_handle(fn, "event", event, &Runtime::events); });
}

ACL_FUNC_VISIBILITY aclError aclrtDestroyEvent(aclrtEvent event) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    std::shared_ptr<Event> e;
    if (aclError err = find_event_locked(fn, event, &e)) return err;
    rt().events.erase(reinterpret_cast<uintptr_t>(event));  // queued records/waits keep it alive
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtRecordEvent(aclrtEvent event, aclrtStream stream) {
  return event_stream_entry(__func__, event, stream, [](const std::shared_ptr<Event>& e, Stream& s) -> aclError {
    // Lock order: registry -> event -> stream queue.  Tasks take only the event lock.
    std::lock_guard<std::mutex> event_lock(e->m);
    const uint64_t generation = e->recorded + 1;
    s.push([e, generation] {
      std::lock_guard<std::mutex> l(e->m);
      e->reached = std::max(e->reached, generation);
      e->cv.notify_all();
    });
    e->recorded = generation;  // only once the marker is safely queued
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeEvent(aclrtEvent event) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    std::shared_ptr<Event> e;
    if (aclError err = find_event(fn, event, &e)) return err;
    std::unique_lock<std::mutex> l(e->m);
    const uint64_t target = e->recorded;
    e->cv.wait(l, [&] { return e->reached >= target; });
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtSynchronizeEventWithTimeout(aclrtEvent event, int32_t timeout) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    std::shared_ptr<Event> e;
    if (aclError err = find_event(fn, event, &e)) return err;
    if (aclError err = check_timeout(fn, timeout)) return err;
    std::unique_lock<std::mutex> l(e->m);
    const uint64_t target = e->recorded;
    auto reached = [&] { return e->reached >= target; };
    if (timeout == -1) {
      e->cv.wait(l, reached);
    } else if (!e->cv.wait_for(l, std::chrono::milliseconds(timeout), reached)) {
      set_error("%s: event %p was not reached within %d ms", fn, event, static_cast<int>(timeout));
      return ACL_ERROR_RT_EVENT_SYNC_TIMEOUT;
    }
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtStreamWaitEvent(aclrtStream stream, aclrtEvent event) {
  return event_stream_entry(__func__, event, stream, [](const std::shared_ptr<Event>& e, Stream& s) -> aclError {
    uint64_t target;
    {
      std::lock_guard<std::mutex> event_lock(e->m);
      target = e->recorded;
    }
    if (target == 0) return ACL_SUCCESS;  // never recorded: nothing to wait for
    // The awaited record is already queued on some stream, so this wait always ends.
    s.push([e, target] {
      std::unique_lock<std::mutex> l(e->m);
      e->cv.wait(l, [&] { return e->reached >= target; });
    });
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtQueryEventStatus(aclrtEvent event, aclrtEventRecordedStatus* status) {
  return acl_entry(__func__, [&](const char* fn) -> aclError {
    std::lock_guard<std::mutex> lock(rt().m);
    std::shared_ptr<Event> e;
    if (aclError err = find_event_locked(fn, event, &e)) return err;
    if (aclError err = check_not_null(fn, "status", status)) return err;
    std::lock_guard<std::mutex> l(e->m);
    *status = (e->recorded > 0 && e->reached >= e->recorded) ? ACL_EVENT_RECORDED_STATUS_COMPLETE
                                                             : ACL_EVENT_RECORDED_STATUS_NOT_READY;
    return ACL_SUCCESS;
  });
}

}  // extern "C"
