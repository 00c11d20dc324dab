// Hostile sizes and views: dims near 2^31 and 2^63, overflowing products, storage too small
// for the view, negative strides and offsets, out aliasing an input.  Each is a clear error
// (status + message naming the tensor), never a crash and never a write.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"
#include "addlora/addlora.h"

namespace {

using addlora::Arguments;
using addlora::DType;
using addlora::Rules;
using addlora::Status;
using addlora::TensorView;

constexpr int64_t kBig = std::numeric_limits<int64_t>::max();

// A valid fp16 problem over small real buffers (B=2, H1=H2=H3=R=16, W=L=1).
struct Small {
  std::vector<uint16_t> x = std::vector<uint16_t>(2 * 16, 0x3c00), y = x, out = x, a = std::vector<uint16_t>(256, 0x3c00),
                        b = a;
  std::vector<int32_t> idx{0, 0};
  Arguments args() {
    Arguments g;
    g.x = TensorView::contiguous(x.data(), DType::f16, {2, 16});
    g.y = TensorView::contiguous(y.data(), DType::f16, {2, 16});
    g.out = TensorView::contiguous(out.data(), DType::f16, {2, 16});
    g.weight_a = TensorView::contiguous(a.data(), DType::f16, {1, 1, 16, 16});
    g.weight_b = TensorView::contiguous(b.data(), DType::f16, {1, 1, 16, 16});
    g.indices = TensorView::contiguous(idx.data(), DType::i32, {2});
    for (TensorView* v : {&g.x, &g.y, &g.out, &g.weight_a, &g.weight_b, &g.indices}) {
      int64_t n = 1;
      for (int i = 0; i < v->ndim; ++i) n *= v->dims[i];
      v->storage_elems = n;
    }
    return g;
  }
};

void expect_rejected(Small& s, const Arguments& g, Rules rules, Status want, const std::string& needle) {
  const std::vector<uint16_t> before = s.out;
  std::string msg;
  EXPECT_EQ(addlora::add_lora(g, rules, &msg), want) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg;
  EXPECT_EQ(s.out, before) << "a rejected call wrote out";
}

TEST(Limits, HugeDimsAreErrorsUnderBothRuleSets) {
  Small s;
  for (const int64_t big : {int64_t{1} << 31, (int64_t{1} << 31) + 16, int64_t{1} << 62, kBig}) {
    Arguments g = s.args();
    g.x.dims[0] = g.y.dims[0] = g.out.dims[0] = g.indices.dims[0] = big;
    expect_rejected(s, g, Rules::cann, Status::invalid_shape, "B must be");
    expect_rejected(s, g, Rules::general, big > INT32_MAX ? Status::invalid_shape : Status::invalid_param, "B must be");
  }
  for (const int64_t big : {int64_t{1} << 31, int64_t{1} << 62}) {  // W beyond the kernels' int32 adapter numbers
    Arguments g = s.args();
    g.weight_a.dims[0] = g.weight_b.dims[0] = big;
    expect_rejected(s, g, Rules::cann, Status::invalid_shape, "W (adapters) must be <= 32");
    expect_rejected(s, g, Rules::general, Status::invalid_shape, "W (adapters) must be < 2^31");
  }
  Arguments g = s.args();
  g.weight_b.dims[2] = kBig;  // H2 larger than H3
  expect_rejected(s, g, Rules::general, Status::invalid_shape, "H2");
}

TEST(Limits, ExtentsThatOverflow64Bits) {
  Small s;
  Arguments g = s.args();
  // A legal shape whose strides put the last element past 2^63.
  g.x.strides[0] = kBig / 2 + 1;
  expect_rejected(s, g, Rules::general, Status::invalid_param, "x view is too large");
  g = s.args();
  g.weight_a.dims[0] = g.weight_b.dims[0] = int64_t{1} << 30;  // W * adapter stride overflows bytes
  g.weight_a.strides[0] = int64_t{1} << 40;
  expect_rejected(s, g, Rules::general, Status::invalid_param, "weight");
  // B * R beyond any workspace
  g = s.args();
  g.x.dims[1] = g.weight_a.dims[3] = 16;
  g.weight_a.dims[2] = g.weight_b.dims[3] = int64_t{1} << 60;
  expect_rejected(s, g, Rules::general, Status::invalid_param, "view");
}

TEST(Limits, StorageStridesOffsets) {
  Small s;
  Arguments g = s.args();
  g.y.storage_elems -= 1;
  expect_rejected(s, g, Rules::cann, Status::invalid_param, "y view does not fit its storage");
  g = s.args();
  g.x.strides[1] = -1;
  expect_rejected(s, g, Rules::general, Status::invalid_param, "x stride of dim 1 must be >= 1");
  g = s.args();
  g.weight_b.offset = -3;
  expect_rejected(s, g, Rules::general, Status::invalid_param, "weightB storage offset must be >= 0");
  g = s.args();
  g.out.strides[0] = 8;  // rows overlap: out[0, 8] is out[1, 0]
  expect_rejected(s, g, Rules::general, Status::invalid_param, "out view overlaps itself");
}

TEST(Limits, OutAliasingAnInput) {
  Small s;
  for (TensorView Arguments::*input : {&Arguments::x, &Arguments::weight_a, &Arguments::weight_b}) {
    Arguments g = s.args();
    g.out.data = (g.*input).data;  // the same bytes as that input
    std::string msg;
    EXPECT_EQ(addlora::add_lora(g, Rules::general, &msg), Status::invalid_param) << msg;
    EXPECT_NE(msg.find("out overlaps"), std::string::npos) << msg;
  }
  // Half-overlapping y (not the identical view) is also refused.
  Arguments g = s.args();
  g.out.data = s.y.data() + 8;
  g.out.storage_elems = -1;
  std::string msg;
  EXPECT_EQ(addlora::add_lora(g, Rules::general, &msg), Status::invalid_param) << msg;
  EXPECT_NE(msg.find("out overlaps y"), std::string::npos) << msg;
}

TEST(Limits, AclnnRejectsViewsLargerThanStorage) {
  std::vector<uint16_t> buf(64, 0);
  std::vector<int32_t> ibuf(4, 0);
  const int64_t y_dims[] = {4, 16}, small_storage[] = {63}, w_dims[] = {1, 1, 16, 16}, i_dims[] = {4};
  const int64_t x_dims[] = {4, 16};
  aclTensor* y = aclCreateTensor(y_dims, 2, ACL_FLOAT16, nullptr, 0, ACL_FORMAT_ND, small_storage, 1, buf.data());
  aclTensor* x = aclCreateTensor(x_dims, 2, ACL_FLOAT16, nullptr, 0, ACL_FORMAT_ND, x_dims, 2, buf.data());
  std::vector<uint16_t> wbuf(256, 0);
  aclTensor* w = aclCreateTensor(w_dims, 4, ACL_FLOAT16, nullptr, 0, ACL_FORMAT_ND, w_dims, 4, wbuf.data());
  aclTensor* idx = aclCreateTensor(i_dims, 1, ACL_INT32, nullptr, 0, ACL_FORMAT_ND, i_dims, 1, ibuf.data());
  std::vector<uint16_t> obuf(64, 0);
  aclTensor* out = aclCreateTensor(y_dims, 2, ACL_FLOAT16, nullptr, 0, ACL_FORMAT_ND, y_dims, 2, obuf.data());
  if (y == nullptr) {
    // The runtime may already refuse a view larger than its storage at creation.
    EXPECT_STRNE(aclGetRecentErrMsg(), "");
  } else {
    uint64_t ws = 0;
    aclOpExecutor* e = nullptr;
    EXPECT_EQ(aclnnAddLoraGetWorkspaceSize(y, x, w, idx, nullptr, 0, 1.0, 0, -1, out, &ws, &e), 161002);
    EXPECT_NE(std::string(aclGetRecentErrMsg()).find("storage"), std::string::npos);
    EXPECT_EQ(e, nullptr);
  }
  const int64_t huge[] = {kBig, 16};
  aclTensor* h = aclCreateTensor(huge, 2, ACL_FLOAT16, nullptr, 0, ACL_FORMAT_ND, huge, 2, buf.data());
  EXPECT_EQ(h, nullptr) << "a view of 2^63 x 16 elements cannot exist";
  for (aclTensor* t : {y, x, w, idx, out}) aclDestroyTensor(t);
}

}  // namespace
