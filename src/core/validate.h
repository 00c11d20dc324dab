// Validation of Arguments: every rule of docs/contract.md §2 (Rules::cann) or the lifted
// general rules, one precise message per failed check.  Runs once, in planning.
#pragma once
#include <string>

#include "addlora/addlora.h"

namespace addlora::detail {

// Sizes derived from a valid Arguments.
struct Shape {
  int64_t B = 0, H1 = 0, H2 = 0, H3 = 0, R = 0, W = 0, L = 0, S = 0;
  bool has_a = false;
  bool in_place = false;   // out is exactly the y view
};

bool has_weight_a(const Arguments& a);

// The two views address the same elements in the same way (e.g. out is y: in place).
bool same_view(const TensorView& a, const TensorView& b);

// Returns Status::ok and fills `shape`, or the status of the first failed rule; `error` (when
// non-null) then holds the status, the kind and the message "AddLora: <context><rule>
// (<values>)".  `context` names the slice of a multi-slice call ("slice 1: "), else "".
Status validate(const Arguments& a, Rules rules, Shape* shape, Error* error, const std::string& context = "");

}  // namespace addlora::detail
