// Private to the validation (validate.cc: the rule groups up to per-adapter inputs and
// validate() itself; validate_memory.cc: memory and overlap): the failure reporter and the
// list of named tensors every per-tensor check walks.
#pragma once
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>

#include "core/status.h"
#include "core/validate.h"

namespace addlora::detail::validation {

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();
using ll = long long;

// Reports the first failed rule into an Error (see core/status.h).
class Failure {
 public:
  Failure(Error* error, const std::string& context) : error_(error), context_(context) {}
  __attribute__((format(printf, 4, 5))) Status operator()(Status s, ErrorKind kind, const char* fmt, ...) const {
    if (!error_) return s;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return fail(error_, s, kind, context_, buf);
  }
  Status text(Status s, ErrorKind kind, const std::string& message) const {
    return fail(error_, s, kind, context_, message);
  }

 private:
  Error* error_;
  const std::string& context_;
};

// A tensor of the call and its name in messages (the aclnn parameter name).
struct Named {
  const char* name;
  const TensorView* v;
};

// The call's tensors in check order: at most y, x, weightB, indices, out, weightA, ranks,
// scales.  Fixed capacity, so validating allocates nothing (it runs on every call).
class NamedList {
 public:
  void push_back(const Named& t) { items_[size_++] = t; }  // callers stay within kCapacity
  const Named* begin() const { return items_; }
  const Named* end() const { return items_ + size_; }
  static constexpr int kCapacity = 8;

 private:
  Named items_[kCapacity];
  int size_ = 0;
};

// ---- memory and overlap (validate_memory.cc) ------------------------------------------------

// Every view's own memory, the workspace size, then out against itself and every input (only
// out == y, the identical view, may alias).  Sets s->in_place.
Status check_memory(const Arguments& a, const NamedList& tensors, Shape* s, const Failure& fail);

}  // namespace addlora::detail::validation
