// Allocation failure at every step of the C++ API and the CANN flow: a status code, no
// half-written output, nothing leaked (the ASan stage's LeakSanitizer checks the last part).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "addlora/addlora.h"
#include "cann_case.h"
#include "core/fault.h"
#include "runtime/internal.h"

namespace {

using addlora::DType;
using addlora::Status;
using addlora::TensorView;

struct Disarm {  // never leave an injected failure behind for the next test
  ~Disarm() {
    addlora_test_fail_allocation(-1);
    addlora_rt::test_fail_allocation(-1);
  }
};

TEST(Faults, CppApiEveryAllocationStep) {
  Disarm disarm;
  const int64_t B = 4, H = 32, R = 16;
  std::vector<float> x(B * H, 0.5f), y(B * H, 1.0f), a(R * H, 0.25f), b(H * R, 0.125f);
  std::vector<int32_t> idx{0, -1, 0, 0};
  addlora::Arguments args;
  args.x = TensorView::contiguous(x.data(), DType::f32, {B, H});
  args.y = TensorView::contiguous(y.data(), DType::f32, {B, H});
  args.weight_a = TensorView::contiguous(a.data(), DType::f32, {1, 1, R, H});
  args.weight_b = TensorView::contiguous(b.data(), DType::f32, {1, 1, H, R});
  args.indices = TensorView::contiguous(idx.data(), DType::i32, {B});
  int failures = 0;
  for (int64_t nth = 0; nth < 4; ++nth) {
    std::vector<float> out(B * H, -7.0f);
    args.out = TensorView::contiguous(out.data(), DType::f32, {B, H});
    addlora_test_fail_allocation(nth);
    std::string msg;
    const Status st = addlora::add_lora(args, addlora::Rules::general, &msg);
    addlora_test_fail_allocation(-1);
    if (st == Status::ok) {
      // z = 32 * 0.5 * 0.25 = 4, d = 16 * 4 * 0.125 = 8, out = 1 + 8 on rows with an adapter.
      EXPECT_EQ(out[0], 9.0f);
      EXPECT_EQ(out[B * H - 1], 9.0f);
      EXPECT_EQ(out[H], 1.0f);
      continue;
    }
    ++failures;
    EXPECT_EQ(st, Status::internal) << msg;
    EXPECT_NE(msg.find("AddLora:"), std::string::npos) << msg;
    for (float v : out) ASSERT_EQ(v, -7.0f) << "failed call wrote out (allocation " << nth << ")";
  }
  EXPECT_EQ(failures, 1);  // the workspace (reused or not, it is a fault site); planning allocates nothing
}

// More slices than a one-shot call keeps inline: their Problems are one allocation, then the
// workspace is another.  Five slices of 8 columns each update y [B, 40] in one call.
TEST(Faults, CppApiManySlicesEveryAllocationStep) {
  Disarm disarm;
  const int64_t B = 3, H1 = 16, H2 = 8, R = 4, kSlices = 5, H3 = H2 * kSlices;
  std::vector<float> x(B * H1, 0.5f), y(B * H3, 1.0f), a(R * H1, 0.25f), b(H2 * R, 0.125f);
  std::vector<int32_t> idx{0, -1, 0};
  int failures = 0;
  for (int64_t nth = 0; nth < 4; ++nth) {
    std::vector<float> out(B * H3, -7.0f);
    std::vector<addlora::Arguments> slices(kSlices);
    for (int64_t k = 0; k < kSlices; ++k) {
      addlora::Arguments& s = slices[k];
      s.x = TensorView::contiguous(x.data(), DType::f32, {B, H1});
      s.y = TensorView::contiguous(y.data(), DType::f32, {B, H3});
      s.out = TensorView::contiguous(out.data(), DType::f32, {B, H3});
      s.weight_a = TensorView::contiguous(a.data(), DType::f32, {1, 1, R, H1});
      s.weight_b = TensorView::contiguous(b.data(), DType::f32, {1, 1, H2, R});
      s.indices = TensorView::contiguous(idx.data(), DType::i32, {B});
      s.y_offset = k * H2;
    }
    addlora_test_fail_allocation(nth);
    std::string msg;
    const Status st = addlora::add_lora(slices.data(), slices.size(), addlora::Rules::general, &msg);
    addlora_test_fail_allocation(-1);
    if (st == Status::ok) {
      // z = 16 * 0.5 * 0.25 = 2, d = 4 * 2 * 0.125 = 1: out = 2 on rows with an adapter, else y.
      for (int64_t c = 0; c < H3; ++c) {
        EXPECT_EQ(out[c], 2.0f) << c;
        EXPECT_EQ(out[H3 + c], 1.0f) << c;
        EXPECT_EQ(out[2 * H3 + c], 2.0f) << c;
      }
      continue;
    }
    ++failures;
    EXPECT_EQ(st, Status::internal) << msg;
    EXPECT_NE(msg.find("AddLora:"), std::string::npos) << msg;
    for (float v : out) ASSERT_EQ(v, -7.0f) << "failed call wrote out (allocation " << nth << ")";
  }
  EXPECT_EQ(failures, 2);  // the slices' Problems and the workspace
}

class FaultsCann : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(aclInit(nullptr), ACL_SUCCESS);
    ASSERT_EQ(aclrtSetDevice(0), ACL_SUCCESS);
    ASSERT_EQ(aclrtCreateStream(&stream_), ACL_SUCCESS);
  }
  void TearDown() override {
    aclrtDestroyStream(stream_);
    aclrtResetDevice(0);
    aclFinalize();
  }
  aclrtStream stream_ = nullptr;
};

TEST_F(FaultsCann, DeviceMallocFailureAtEveryStep) {
  Disarm disarm;
  int bad_alloc = 0;
  for (int64_t nth = 0; nth < 8; ++nth) {
    reliability::CannCase c;
    addlora_rt::test_fail_allocation(nth);
    const aclError e = c.create();
    void* ws = nullptr;
    int st = e;
    if (e == ACL_SUCCESS) st = c.run(stream_, &ws);
    addlora_rt::test_fail_allocation(-1);
    if (st == ACL_ERROR_BAD_ALLOC) {
      ++bad_alloc;
      EXPECT_STRNE(aclGetRecentErrMsg(), "");
      if (e == ACL_SUCCESS) {
        EXPECT_TRUE(c.out_untouched());  // the workspace malloc failed
      }
    } else {
      EXPECT_EQ(st, 0) << "allocation " << nth;
      EXPECT_TRUE(c.out_matches());
    }
    if (ws) aclrtFree(ws);
    c.release();
  }
  EXPECT_EQ(bad_alloc, 7);  // six tensors + the workspace; the eighth step has nothing to fail
}

TEST_F(FaultsCann, PlanningFailureLeavesNoExecutorAndNoOutput) {
  Disarm disarm;
  for (int64_t nth = 0; nth < 2; ++nth) {
    reliability::CannCase c;
    ASSERT_EQ(c.create(), ACL_SUCCESS);
    addlora_test_fail_allocation(nth);
    void* ws = nullptr;
    const int st = c.run(stream_, &ws);
    addlora_test_fail_allocation(-1);
    EXPECT_EQ(st, 561000) << "allocation " << nth;  // ACLNN_ERR_INNER
    EXPECT_NE(std::string(aclGetRecentErrMsg()).find("memory"), std::string::npos);
    EXPECT_TRUE(c.out_untouched());
    c.release();
  }
}

}  // namespace
