// Exception barrier for the C entry points of libascendcl and libnnopbase: nothing may
// escape a C function, so every body runs inside guarded(), which turns std::bad_alloc and
// any other exception into an error code plus a message.  Private to src/runtime.
#pragma once
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "runtime/internal.h"

namespace addlora_rt {

template <class F>
auto guarded(const char* fn, int oom_code, int internal_code, F&& body) noexcept -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    set_error("%s: out of host memory", fn);
    return static_cast<decltype(body())>(oom_code);
  } catch (const std::exception& e) {
    set_error("%s: internal error: %s", fn, e.what());
    return static_cast<decltype(body())>(internal_code);
  } catch (...) {
    set_error("%s: internal error (unknown exception)", fn);
    return static_cast<decltype(body())>(internal_code);
  }
}

// The barrier of libnnopbase's status-returning functions: out of memory and internal errors
// are both 561000 (ACLNN_ERR_INNER).
template <class F>
aclnnStatus nn_entry(const char* fn, F&& body) noexcept {
  return guarded(fn, ACLNN_ERR_INNER, ACLNN_ERR_INNER, std::forward<F>(body));
}

// The integer a C client stored in an enum parameter.  Read through memcpy: a value outside
// the enum's range (legal in C) must not be loaded as the C++ enum type, which is undefined.
template <class E>
int64_t enum_bits(const E& e) {
  typename std::underlying_type<E>::type raw;
  std::memcpy(&raw, &e, sizeof raw);
  return static_cast<int64_t>(raw);
}

}  // namespace addlora_rt
