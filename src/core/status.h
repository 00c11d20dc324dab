// Failures as data: every rule check fills an addlora::Error (status code, kind, message) and
// each surface maps it once -- aclnn status (src/aclnn), C++ status + message (api.cc),
// C status + last error (c_api.cc).  No code reads a message to decide anything.
#pragma once
#include <string>

#include "addlora/addlora.h"

namespace addlora::detail {

// The message prefix every surface shows.
inline constexpr const char kPrefix[] = "AddLora: ";

// Fills `error` (when non-null) with the status, the kind and "AddLora: " + context + text;
// returns the status.  `context` names the slice of a multi-slice call ("" otherwise).
inline Status fail(Error* error, Status status, ErrorKind kind, const std::string& context, const std::string& text) {
  if (error) {
    error->status = status;
    error->kind = kind;
    error->message = kPrefix + context + text;
  }
  return status;
}

inline Status out_of_memory(Error* error, const char* while_doing = "while planning") {
  return fail(error, Status::internal, ErrorKind::internal, "", std::string("out of memory ") + while_doing);
}

}  // namespace addlora::detail
