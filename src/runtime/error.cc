// Per-thread error messages behind aclGetRecentErrMsg().  CANN's contract is "obtain and
// clear": the message is handed out once, and the returned pointer stays valid until the
// thread's next call.  Two thread_local strings give exactly that without locks.
#include <cstdarg>
#include <cstdio>
#include <string>

#include "runtime/internal.h"

namespace {
thread_local std::string t_pending;   // set by the last failing call, not yet read
thread_local std::string t_returned;  // storage behind the last pointer handed out
}  // namespace

namespace addlora_rt {

void set_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list again;
  va_copy(again, ap);
  try {
    char buf[512];
    const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    if (n < 0) {
      t_pending = "(error message could not be formatted)";
    } else if (static_cast<size_t>(n) < sizeof buf) {
      t_pending.assign(buf, static_cast<size_t>(n));
    } else {
      std::string long_msg(static_cast<size_t>(n), '\0');
      std::vsnprintf(&long_msg[0], long_msg.size() + 1, fmt, again);
      t_pending = std::move(long_msg);
    }
  } catch (...) {
    // Out of memory while recording a message: keep whatever was there; never throw.
  }
  va_end(again);
  va_end(ap);
}

void clear_error() { t_pending.clear(); }

}  // namespace addlora_rt

extern "C" ACL_FUNC_VISIBILITY const char* aclGetRecentErrMsg(void) {
  t_returned.swap(t_pending);  // no allocation: cannot throw
  t_pending.clear();
  return t_returned.c_str();
}
