#include "cann_case.h"

#include <cstring>
#include <random>

#include "addlora/addlora.h"
#include "model/numeric.h"
#include "reference/check.h"
#include "reference/reference.h"

namespace reliability {

aclError CannCase::make(DeviceTensor* t, const std::vector<int64_t>& dims, aclDataType dtype, const void* host,
                        size_t bytes) {
  t->bytes = bytes;
  if (aclError e = aclrtMalloc(&t->dev, bytes, ACL_MEM_MALLOC_HUGE_FIRST)) return e;
  if (aclError e = aclrtMemcpy(t->dev, bytes, host, bytes, ACL_MEMCPY_HOST_TO_DEVICE)) return e;
  std::vector<int64_t> strides(dims.size(), 1);
  for (size_t k = dims.size() - 1; k-- > 0;) strides[k] = strides[k + 1] * dims[k + 1];
  t->tensor = aclCreateTensor(dims.data(), dims.size(), dtype, strides.data(), 0, ACL_FORMAT_ND, dims.data(),
                              dims.size(), t->dev);
  return t->tensor ? ACL_SUCCESS : ACL_ERROR_BAD_ALLOC;
}

aclError CannCase::create() {
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> u(-1, 1);
  auto fill = [&](std::vector<uint16_t>& v, size_t n) {
    v.resize(n);
    for (auto& e : v) e = addlora::numeric::float_to_half(u(gen));
  };
  fill(hx_, B * H1);
  fill(hy_, B * H3);
  fill(ha_, W * L * R * H1);
  fill(hb_, W * L * H2 * R);
  fill(hout_, B * H3);
  hidx_ = {0, 2, -1, 1, 7};
  if (aclError e = make(&x_, {B, H1}, ACL_FLOAT16, hx_.data(), hx_.size() * 2)) return e;
  if (aclError e = make(&y_, {B, H3}, ACL_FLOAT16, hy_.data(), hy_.size() * 2)) return e;
  if (aclError e = make(&a_, {W, L, R, H1}, ACL_FLOAT16, ha_.data(), ha_.size() * 2)) return e;
  if (aclError e = make(&b_, {W, L, H2, R}, ACL_FLOAT16, hb_.data(), hb_.size() * 2)) return e;
  if (aclError e = make(&idx_, {B}, ACL_INT32, hidx_.data(), hidx_.size() * 4)) return e;
  return make(&out_, {B, H3}, ACL_FLOAT16, hout_.data(), hout_.size() * 2);
}

void CannCase::release() {
  for (DeviceTensor* t : {&x_, &y_, &a_, &b_, &idx_, &out_}) {
    if (t->tensor) aclDestroyTensor(t->tensor);
    if (t->dev) aclrtFree(t->dev);
    *t = DeviceTensor{};
  }
}

int CannCase::run(aclrtStream stream, void** workspace_out) {
  uint64_t ws_size = 0;
  aclOpExecutor* exec = nullptr;
  int st = aclnnAddLoraGetWorkspaceSize(y_.tensor, x_.tensor, b_.tensor, idx_.tensor, a_.tensor, 1, 0.25, 16, -1,
                                        out_.tensor, &ws_size, &exec);
  if (st != 0) return st;
  void* ws = nullptr;
  if (ws_size > 0) {
    if (aclError e = aclrtMalloc(&ws, ws_size, ACL_MEM_MALLOC_HUGE_FIRST)) {
      aclDestroyAclOpExecutor(exec);  // never launched: the client still owns it
      return e;
    }
  }
  *workspace_out = ws;
  st = aclnnAddLora(ws, ws_size, exec, stream);
  if (st != 0) {
    aclDestroyAclOpExecutor(exec);
    return st;
  }
  return aclrtSynchronizeStream(stream);
}

bool CannCase::out_matches() {
  std::vector<uint16_t> got(hout_.size());
  if (aclrtMemcpy(got.data(), got.size() * 2, out_.dev, out_.bytes, ACL_MEMCPY_DEVICE_TO_HOST) != 0) return false;
  using addlora::DType;
  using addlora::TensorView;
  addlora::Arguments args;
  args.x = TensorView::contiguous(hx_.data(), DType::f16, {B, H1});
  args.y = TensorView::contiguous(hy_.data(), DType::f16, {B, H3});
  args.weight_a = TensorView::contiguous(ha_.data(), DType::f16, {W, L, R, H1});
  args.weight_b = TensorView::contiguous(hb_.data(), DType::f16, {W, L, H2, R});
  args.indices = TensorView::contiguous(hidx_.data(), DType::i32, {B});
  args.out = TensorView::contiguous(got.data(), DType::f16, {B, H3});
  args.layer_idx = 1;
  args.scale = 0.25;
  args.y_offset = 16;
  const auto expected = addlora::ref::compute(args);
  const auto r = addlora::ref::check_out(expected, args.out);
  if (!r.ok) ADD_FAILURE() << r.report;
  return r.ok;
}

bool CannCase::out_untouched() {
  std::vector<uint16_t> got(hout_.size());
  if (aclrtMemcpy(got.data(), got.size() * 2, out_.dev, out_.bytes, ACL_MEMCPY_DEVICE_TO_HOST) != 0) return false;
  return got == hout_;
}

}  // namespace reliability
