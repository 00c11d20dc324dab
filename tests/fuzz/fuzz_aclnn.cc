// Fuzz harness: the aclnn entry point with arbitrary dims, strides, offsets, storage dims,
// dtypes, formats and attributes.  Storage dims always describe the real buffer behind the
// tensor (at most kMaxStorage elements), so a call that is accepted and run must stay inside
// it (AddressSanitizer watches).  Every status must be one docs/contract.md §2-3 documents, with a message.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"

namespace {

constexpr int64_t kMaxStorage = 1 << 13;  // elements

[[noreturn]] void finding(const char* what, int code) {
  std::fprintf(stderr, "FINDING: %s (status %d): %s\n", what, code, aclGetRecentErrMsg());
  std::abort();
}

int64_t fuzz_dim(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 9)) {
    case 0: return in.ConsumeIntegral<int64_t>();
    case 1: return int64_t{1} << in.ConsumeIntegralInRange(0, 62);
    case 2: return 16 * in.ConsumeIntegralInRange<int64_t>(0, 8);
    default: return in.ConsumeIntegralInRange<int64_t>(0, 40);
  }
}

struct Holder {
  std::vector<uint64_t> storage;
  aclTensor* tensor = nullptr;
  ~Holder() { aclDestroyTensor(tensor); }
};

aclTensor* fuzz_tensor(FuzzedDataProvider& in, int rank_hint, Holder* h) {
  const uint64_t rank = in.ConsumeIntegralInRange(0, 7) ? rank_hint : in.ConsumeIntegralInRange<uint64_t>(0, 9);
  std::vector<int64_t> dims(rank), strides(rank);
  for (auto& d : dims) d = fuzz_dim(in);
  int64_t s = 1;
  for (size_t i = rank; i-- > 0;) {
    strides[i] = in.ConsumeIntegralInRange(0, 6) ? s : fuzz_dim(in);
    if (dims[i] > 0 && dims[i] < (int64_t{1} << 20) && s < (int64_t{1} << 40)) s *= dims[i];
  }
  const int32_t dtypes[] = {ACL_FLOAT16, ACL_FLOAT16, ACL_FLOAT16, ACL_INT32, ACL_FLOAT, ACL_BF16, ACL_INT8, ACL_INT64, 30, -1};  // 30: unassigned but inside the enum's range
  const int32_t formats[] = {ACL_FORMAT_ND, ACL_FORMAT_ND, ACL_FORMAT_ND, ACL_FORMAT_FRACTAL_NZ, ACL_FORMAT_NCHW, 31};
  const aclDataType dtype = static_cast<aclDataType>(dtypes[in.ConsumeIntegralInRange(0, 9)]);
  const aclFormat format = static_cast<aclFormat>(formats[in.ConsumeIntegralInRange(0, 5)]);
  const int64_t offset = in.ConsumeIntegralInRange(0, 5) ? in.ConsumeIntegralInRange<int64_t>(0, 9) : fuzz_dim(in);
  // Storage: a real buffer; its dims are flat [n] or a factorisation n = n0 * n1.
  const int64_t n = in.ConsumeIntegralInRange<int64_t>(0, kMaxStorage);
  h->storage.assign(static_cast<size_t>(n) + 1, 0x3c003c003c003c00ull);  // 8 bytes per element covers every dtype
  std::vector<int64_t> storage_dims{n};
  if (n % 16 == 0 && n > 0 && in.ConsumeBool()) storage_dims = {n / 16, 16};
  const bool null_strides = in.ConsumeIntegralInRange(0, 3) == 0;
  h->tensor = aclCreateTensor(rank ? dims.data() : nullptr, rank, dtype, null_strides ? nullptr : strides.data(), offset,
                              format, storage_dims.data(), storage_dims.size(), h->storage.data());
  return h->tensor;
}

bool documented(int code) {
  return code == 0 || code == 161001 || code == 161002 || code == 561000 || code == 561002;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = aclInit(nullptr) == ACL_SUCCESS && aclrtSetDevice(0) == ACL_SUCCESS;
  if (!ready) finding("runtime did not start", -1);
  FuzzedDataProvider in(data, size);
  Holder y, x, b, idx, a, out;
  aclTensor* ty = fuzz_tensor(in, 2, &y);
  aclTensor* tx = fuzz_tensor(in, 2, &x);
  aclTensor* tb = fuzz_tensor(in, 4, &b);
  aclTensor* ti = fuzz_tensor(in, 1, &idx);
  aclTensor* ta = in.ConsumeBool() ? fuzz_tensor(in, 4, &a) : nullptr;
  aclTensor* to = in.ConsumeIntegralInRange(0, 3) == 0 ? ty : fuzz_tensor(in, 2, &out);
  for (auto& w : idx.storage) w = in.ConsumeIntegral<uint64_t>();  // any index values
  const int64_t layer = in.ConsumeIntegralInRange<int64_t>(-1, 3);
  const int64_t off = in.ConsumeIntegralInRange(0, 3) ? 16 * in.ConsumeIntegralInRange<int64_t>(-1, 4) : in.ConsumeIntegral<int64_t>();
  const int64_t slice = in.ConsumeIntegralInRange<int64_t>(-2, 70);
  const double scale = in.ConsumeFloatingPoint<double>();

  uint64_t ws_size = 0;
  aclOpExecutor* exec = nullptr;
  const bool null_ws = in.ConsumeIntegralInRange(0, 30) == 0;
  const int st = aclnnAddLoraGetWorkspaceSize(ty, tx, tb, ti, ta, layer, scale, off, slice, to,
                                              null_ws ? nullptr : &ws_size, &exec);
  if (!documented(st)) finding("undocumented status from phase one", st);
  if (st != 0) {
    if (std::strlen(aclGetRecentErrMsg()) == 0) finding("error without a message", st);
    if (exec != nullptr) finding("failed phase one returned an executor", st);
    return 0;
  }
  std::vector<uint8_t> ws(ws_size + 1);
  const int run = aclnnAddLora(ws_size ? ws.data() : nullptr, ws_size, exec, nullptr);
  if (run != 0) finding("phase two failed after phase one succeeded", run);
  if (aclrtSynchronizeStream(nullptr) != ACL_SUCCESS) finding("stream failed", -1);
  return 0;
}
