// Private to libnnopbase: the tensor registry's side of aclTensorList ownership (tensor.cc),
// used by the scalar/array/list objects of meta.cc.
#pragma once
#include <cstdint>
#include <vector>

#include "aclnn/acl_meta.h"

namespace addlora_rt {

// Checks that tensors[0..n) are non-null, live, distinct and held by no list, then records
// `owner` as the list holding each of them (all or none).  On failure returns 161001/161002
// with the message set (naming `fn`) and changes nothing.
aclnnStatus adopt_tensors(const char* fn, const aclTensor* const* tensors, uint64_t n, const void* owner);

// Destroys the tensors `owner` holds (those still recorded as owned by it).
void destroy_owned_tensors(const std::vector<const aclTensor*>& tensors, const void* owner);

}  // namespace addlora_rt
