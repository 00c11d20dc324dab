/**
 * A CANN client, built only against the install prefix, that runs aclnnAddLora over
 * hundreds of vendor-style shapes (B 1-283, H up to 29728, W up to 29, L up to 30, R 16-256
 * without weightA), strided views and in-place calls, and checks every element against its
 * own fp64 loop; then checks that invalid inputs get the documented code and a message.
 *
 *   ./add_lora_vendor_sweep [cases]      (default 300)
 *
 * Precision target (the library's contract, docs/contract.md §1): within 1 ulp of the fp64
 * result in fp16 plus 2^-16 * M, M = |y| + |scale| * sum_r |b_r| * sum_h |x_h a_rh|.  Exit code
 * 0 when every case passes.
 */
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"

#define CHECK_ACL(expr)                                                         \
  do {                                                                          \
    int _r = (expr);                                                            \
    if (_r != 0) {                                                              \
      printf("%s failed: %d (%s)\n", #expr, _r, aclGetRecentErrMsg());          \
      std::exit(2);                                                             \
    }                                                                           \
  } while (0)

namespace {

uint64_t g_seed = 0x9e3779b97f4a7c15ull;
uint64_t Next() {
  g_seed ^= g_seed << 13;
  g_seed ^= g_seed >> 7;
  g_seed ^= g_seed << 17;
  return g_seed;
}
int64_t Pick(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1)); }
double Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0) * 2 - 1; }

// ulp of an fp16 value of magnitude |v| (subnormal spacing below 2^-14).
double UlpF16(double v) {
  v = std::fabs(v);
  if (v < 6.103515625e-05) return 5.960464477539063e-08;
  int e;
  std::frexp(v, &e);  // v = m * 2^e, m in [0.5, 1)
  return std::ldexp(1.0, e - 11);
}

// A device buffer holding a (possibly strided) fp16 or int32 matrix view.
struct Dev {
  void* ptr = nullptr;
  aclTensor* t = nullptr;
  std::vector<uint8_t> host;  // the whole storage image
};

// Creates a view [rows, cols] (or a 1-D / 4-D contiguous tensor when dims.size() != 2) with a
// row pitch of `pitch` elements and a storage offset, filled from `value(i, j)`.
template <typename T, typename F>
void MakeView(Dev* d, const std::vector<int64_t>& dims, int64_t pitch, int64_t offset, aclDataType dtype, F value) {
  std::vector<int64_t> strides(dims.size(), 1);
  int64_t elems = 1;
  if (dims.size() == 2) {
    strides = {pitch, 1};
    elems = offset + (dims[0] - 1) * pitch + dims[1];
  } else {
    for (size_t k = dims.size() - 1; k-- > 0;) strides[k] = strides[k + 1] * dims[k + 1];
    int64_t n = 1;
    for (int64_t v : dims) n *= v;
    elems = offset + n;
  }
  d->host.assign(static_cast<size_t>(elems) * sizeof(T), 0xA5);
  T* h = reinterpret_cast<T*>(d->host.data());
  if (dims.size() == 2) {
    for (int64_t i = 0; i < dims[0]; ++i)
      for (int64_t j = 0; j < dims[1]; ++j) h[offset + i * pitch + j] = value(i, j);
  } else {
    int64_t n = elems - offset;
    for (int64_t k = 0; k < n; ++k) h[offset + k] = value(k, 0);
  }
  CHECK_ACL(aclrtMalloc(&d->ptr, d->host.size(), ACL_MEM_MALLOC_HUGE_FIRST));
  CHECK_ACL(aclrtMemcpy(d->ptr, d->host.size(), d->host.data(), d->host.size(), ACL_MEMCPY_HOST_TO_DEVICE));
  const int64_t storage[1] = {elems};
  d->t = aclCreateTensor(dims.data(), dims.size(), dtype, strides.data(), offset, ACL_FORMAT_ND, storage, 1, d->ptr);
  if (d->t == nullptr) {
    printf("aclCreateTensor failed: %s\n", aclGetRecentErrMsg());
    std::exit(2);
  }
}

void Free(Dev* d) {
  if (d->t) aclDestroyTensor(d->t);
  if (d->ptr) aclrtFree(d->ptr);
  *d = Dev();
}

float H2F(uint16_t h) { return aclFloat16ToFloat(h); }

struct Case {
  int64_t B, H1, H2, H3, R, W, L, layer, yOffset, slice, pitchPad, offset;
  bool hasA, inPlace;
};

// Runs one case; returns the number of elements outside the target.
int64_t RunCase(const Case& c, aclrtStream stream) {
  const int64_t pitchX = c.H1 + c.pitchPad, pitchY = c.H3 + c.pitchPad;
  const double scale = c.hasA ? 1.0 / std::sqrt(static_cast<double>(c.H1 * c.R) / 9.0) : 1.0 / std::sqrt(c.R / 3.0);
  Dev x, y, out, a, b, idx;
  MakeView<uint16_t>(&x, {c.B, c.H1}, pitchX, c.offset, ACL_FLOAT16,
                     [](int64_t, int64_t) { return aclFloatToFloat16(static_cast<float>(Uniform())); });
  MakeView<uint16_t>(&y, {c.B, c.H3}, pitchY, c.offset, ACL_FLOAT16,
                     [](int64_t, int64_t) { return aclFloatToFloat16(static_cast<float>(Uniform())); });
  if (!c.inPlace)
    MakeView<uint16_t>(&out, {c.B, c.H3}, pitchY, 0, ACL_FLOAT16, [](int64_t, int64_t) { return uint16_t{0x7e00}; });
  if (c.hasA)
    MakeView<uint16_t>(&a, {c.W, c.L, c.R, c.H1}, 0, 0, ACL_FLOAT16,
                       [](int64_t, int64_t) { return aclFloatToFloat16(static_cast<float>(Uniform())); });
  MakeView<uint16_t>(&b, {c.W, c.L, c.H2, c.R}, 0, 0, ACL_FLOAT16,
                     [](int64_t, int64_t) { return aclFloatToFloat16(static_cast<float>(Uniform())); });
  MakeView<int32_t>(&idx, {c.B}, 0, 0, ACL_INT32, [&](int64_t, int64_t) {
    const int64_t r = Pick(0, 9);
    return static_cast<int32_t>(r == 0 ? -1 : (r == 1 ? c.W + Pick(0, 3) : Pick(0, c.W - 1)));
  });

  uint64_t wsSize = 0;
  aclOpExecutor* exec = nullptr;
  aclTensor* outT = c.inPlace ? y.t : out.t;
  CHECK_ACL(aclnnAddLoraGetWorkspaceSize(y.t, x.t, b.t, idx.t, c.hasA ? a.t : nullptr, c.layer, scale, c.yOffset,
                                         c.slice, outT, &wsSize, &exec));
  void* ws = nullptr;
  if (wsSize > 0) CHECK_ACL(aclrtMalloc(&ws, wsSize, ACL_MEM_MALLOC_HUGE_FIRST));
  CHECK_ACL(aclnnAddLora(ws, wsSize, exec, stream));
  CHECK_ACL(aclrtSynchronizeStream(stream));

  Dev& res = c.inPlace ? y : out;
  std::vector<uint8_t> got(res.host.size());
  CHECK_ACL(aclrtMemcpy(got.data(), got.size(), res.ptr, got.size(), ACL_MEMCPY_DEVICE_TO_HOST));
  const uint16_t* g = reinterpret_cast<const uint16_t*>(got.data());
  const uint16_t* hy = reinterpret_cast<const uint16_t*>(y.host.data());
  const uint16_t* hx = reinterpret_cast<const uint16_t*>(x.host.data());
  const uint16_t* ha = reinterpret_cast<const uint16_t*>(a.host.data());
  const uint16_t* hb = reinterpret_cast<const uint16_t*>(b.host.data());
  const int32_t* hi = reinterpret_cast<const int32_t*>(idx.host.data());
  const int64_t S = c.slice == -1 ? c.H2 : c.slice;
  const int64_t outOffset = c.inPlace ? c.offset : 0;
  int64_t bad = 0;
  std::vector<double> z(static_cast<size_t>(c.R)), zabs(static_cast<size_t>(c.R));
  for (int64_t r = 0; r < c.B; ++r) {
    const int64_t i = hi[r];
    const bool adapter = i >= 0 && i < c.W;
    if (adapter) {
      for (int64_t k = 0; k < c.R; ++k) {
        if (!c.hasA) {
          z[k] = H2F(hx[c.offset + r * pitchX + k]);
          zabs[k] = std::fabs(z[k]);
          continue;
        }
        double s = 0, sa = 0;
        const uint16_t* arow = ha + ((i * c.L + c.layer) * c.R + k) * c.H1;
        for (int64_t h = 0; h < c.H1; ++h) {
          const double p = static_cast<double>(H2F(hx[c.offset + r * pitchX + h])) * H2F(arow[h]);
          s += p;
          sa += std::fabs(p);
        }
        z[k] = s;
        zabs[k] = sa;
      }
    }
    for (int64_t col = 0; col < c.H3; ++col) {
      const double yv = H2F(hy[c.offset + r * pitchY + col]);
      const double gv = H2F(g[outOffset + r * pitchY + col]);
      const int64_t n = col - c.yOffset;
      if (!adapter || n < 0 || n >= S) {
        if (gv != yv) ++bad;
        continue;
      }
      double d = 0, m = 0;
      const uint16_t* brow = hb + ((i * c.L + c.layer) * c.H2 + n) * c.R;
      for (int64_t k = 0; k < c.R; ++k) {
        d += z[k] * H2F(brow[k]);
        m += zabs[k] * std::fabs(H2F(brow[k]));
      }
      d *= scale;
      m = std::fabs(yv) + std::fabs(scale) * m;
      const double want = yv + d, err = std::fabs(gv - want);
      if (!(err <= UlpF16(want) + std::ldexp(m, -16))) ++bad;
    }
  }
  if (ws) aclrtFree(ws);
  for (Dev* d : {&x, &y, &out, &a, &b, &idx}) Free(d);
  return bad;
}

Case RandomCase(int k) {
  static const int64_t kH[] = {16, 64, 128, 256, 512, 1024, 2048, 4096, 5120, 8192, 11008, 13824, 29728};
  Case c{};
  c.hasA = Pick(0, 3) != 0;
  c.B = k % 7 == 0 ? 283 : (k % 5 == 0 ? Pick(1, 8) : Pick(1, 283));
  c.R = c.hasA ? 16 * Pick(1, 8) : 16 * Pick(1, 16);
  const bool big = k % 40 == 0;  // a few cases at the largest hidden sizes
  c.H1 = c.hasA ? (big ? 29728 : kH[Pick(0, 9)]) : c.R;
  c.H2 = big ? kH[Pick(9, 12)] : kH[Pick(0, 8)];
  c.H3 = c.H2 + 16 * Pick(0, 3) * Pick(0, 64);
  if (big) c.B = Pick(1, 16);
  // Keep the fp64 check affordable: about 2^22 multiply-adds per case (2^25 for the big ones).
  const int64_t budget = big ? (int64_t{1} << 25) : (int64_t{1} << 22);
  c.B = std::max<int64_t>(1, std::min<int64_t>(c.B, budget / (c.R * (c.H1 + c.H2))));
  c.W = Pick(1, 29);
  c.L = Pick(1, 30);
  // Weights of at most ~2^22 elements (8 MiB) per case: fewer layers first, then fewer adapters.
  while (c.W * c.L * c.R * (c.H1 + c.H2) > (int64_t{1} << 22) && c.L > 1) c.L = (c.L + 1) / 2;
  while (c.W * c.L * c.R * (c.H1 + c.H2) > (int64_t{1} << 22) && c.W > 1) c.W = (c.W + 1) / 2;
  c.layer = Pick(0, 1) ? c.L - 1 : Pick(0, c.L - 1);
  c.yOffset = (c.H3 - c.H2) == 0 ? 0 : 16 * Pick(0, (c.H3 - c.H2) / 16);
  const int64_t s = Pick(0, 3);
  c.slice = s == 0 ? -1 : (s == 1 ? c.H2 : (s == 2 ? 0 : Pick(1, c.H2)));
  c.pitchPad = Pick(0, 2) == 0 ? Pick(1, 24) : 0;
  c.offset = Pick(0, 2) == 0 ? Pick(1, 40) : 0;
  c.inPlace = Pick(0, 1) == 0;
  return c;
}

// Invalid inputs: each must return its documented code with a message naming the parameter.
int CheckErrors() {
  Dev x, y, b, idx;
  MakeView<uint16_t>(&x, {4, 64}, 64, 0, ACL_FLOAT16, [](int64_t, int64_t) { return uint16_t{0}; });
  MakeView<uint16_t>(&y, {4, 128}, 128, 0, ACL_FLOAT16, [](int64_t, int64_t) { return uint16_t{0}; });
  MakeView<uint16_t>(&b, {2, 3, 64, 64}, 0, 0, ACL_FLOAT16, [](int64_t, int64_t) { return uint16_t{0}; });
  MakeView<int32_t>(&idx, {4}, 0, 0, ACL_INT32, [](int64_t, int64_t) { return 0; });
  struct Bad {
    const char* what;
    int64_t layer, yOffset, slice;
    int want;
    const char* name;
  } cases[] = {{"layerIdx >= L", 3, 0, -1, 561002, "layerIdx"},
               {"yOffset + H2 > H3", 0, 80, -1, 561002, "yOffset"},
               {"ySliceSize > H2", 0, 0, 65, 561002, "ySliceSize"}};
  int failures = 0;
  for (const Bad& c : cases) {
    uint64_t ws = 0;
    aclOpExecutor* e = nullptr;
    const int st = aclnnAddLoraGetWorkspaceSize(y.t, x.t, b.t, idx.t, nullptr, c.layer, 1.0, c.yOffset, c.slice, y.t,
                                                &ws, &e);
    const std::string msg = aclGetRecentErrMsg();
    const bool ok = st == c.want && msg.find(c.name) != std::string::npos;
    printf("  %-20s -> %d %s\n", c.what, st, ok ? "(as documented)" : "UNEXPECTED");
    if (!ok) ++failures;
  }
  uint64_t ws = 0;
  aclOpExecutor* e = nullptr;
  const int st = aclnnAddLoraGetWorkspaceSize(nullptr, x.t, b.t, idx.t, nullptr, 0, 1.0, 0, -1, y.t, &ws, &e);
  printf("  %-20s -> %d %s\n", "y is null", st, st == 161001 ? "(as documented)" : "UNEXPECTED");
  failures += st != 161001;
  for (Dev* d : {&x, &y, &b, &idx}) Free(d);
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 300;
  CHECK_ACL(aclInit(nullptr));
  CHECK_ACL(aclrtSetDevice(0));
  aclrtStream stream = nullptr;
  CHECK_ACL(aclrtCreateStream(&stream));
  int failed = 0;
  int64_t maxB = 0, maxH = 0, maxW = 0, maxL = 0, maxRnoA = 0, strided = 0, inPlace = 0;
  for (int k = 0; k < cases; ++k) {
    const Case c = RandomCase(k);
    maxB = std::max(maxB, c.B), maxH = std::max({maxH, c.H1, c.H2, c.H3}), maxW = std::max(maxW, c.W);
    maxL = std::max(maxL, c.L), strided += c.pitchPad > 0 || c.offset > 0, inPlace += c.inPlace;
    if (!c.hasA) maxRnoA = std::max(maxRnoA, c.R);
    const int64_t bad = RunCase(c, stream);
    if (bad) {
      ++failed;
      printf("FAIL case %d: B=%lld H1=%lld H2=%lld H3=%lld R=%lld W=%lld L=%lld layer=%lld off=%lld slice=%lld A=%d "
             "inplace=%d: %lld elements outside the target\n",
             k, (long long)c.B, (long long)c.H1, (long long)c.H2, (long long)c.H3, (long long)c.R, (long long)c.W,
             (long long)c.L, (long long)c.layer, (long long)c.yOffset, (long long)c.slice, c.hasA, c.inPlace,
             (long long)bad);
    }
  }
  printf("vendor sweep: %d cases (B up to %lld, H up to %lld, W up to %lld, L up to %lld, R up to %lld without "
         "weightA; %lld strided, %lld in place), %d failed\n",
         cases, (long long)maxB, (long long)maxH, (long long)maxW, (long long)maxL, (long long)maxRnoA,
         (long long)strided, (long long)inPlace, failed);
  printf("invalid inputs:\n");
  const int errs = CheckErrors();
  CHECK_ACL(aclrtDestroyStream(stream));
  CHECK_ACL(aclrtResetDevice(0));
  CHECK_ACL(aclFinalize());
  printf("%d passed, %d failed\n", cases - failed + 4 - errs, failed + errs);
  return failed || errs ? 1 : 0;
}
