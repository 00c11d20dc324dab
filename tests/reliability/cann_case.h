// A small CANN-flow problem for the reliability tests: device buffers, tensors, and the
// expected result computed once by the fp64 oracle.
#pragma once
#include <gtest/gtest.h>

#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"

namespace reliability {

struct DeviceTensor {
  void* dev = nullptr;
  aclTensor* tensor = nullptr;
  size_t bytes = 0;
};

// B=5, H1=32, H2=16, H3=48, R=16, W=3, L=2, indices {0, 2, -1, 1, 7}, yOffset 16, out of place.
class CannCase {
 public:
  // Allocates and fills; returns the first ACL error (0 when all succeeded).  Every resource
  // acquired before a failure is recorded and released by release().
  aclError create();
  void release();
  // Runs phase one + two on `stream`, returns the first non-zero status.
  int run(aclrtStream stream, void** workspace_out);
  // out read back and compared with the oracle; true when within the precision contract (docs/contract.md §1.2).
  bool out_matches();
  // out read back equals its initial contents (no half-written result).
  bool out_untouched();

  static constexpr int64_t B = 5, H1 = 32, H2 = 16, H3 = 48, R = 16, W = 3, L = 2;

 private:
  aclError make(DeviceTensor* t, const std::vector<int64_t>& dims, aclDataType dtype, const void* host, size_t bytes);
  DeviceTensor x_, y_, a_, b_, idx_, out_;
  std::vector<uint16_t> hx_, hy_, ha_, hb_, hout_;
  std::vector<int32_t> hidx_;
};

}  // namespace reliability
