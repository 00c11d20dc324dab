// A CANN aclnn client of aclnnAddLora that also uses the aclnn object API around the call:
// aclScalar, aclIntArray, aclTensorList, ACL error constants, context and run-mode queries.
// Built like a vendor example, with no build system:
//
//   source P/set_env.sh
//   g++ add_lora_objects.cpp -I P/include -I P/include/aclnn -L P/lib64 -lopapi_math -lascendcl -lnnopbase -o t
//   ./t
//
// The operation: 5 rows, 3 adapters with 2 layers each; every row picks an adapter (or none,
// index -1), and columns [yOffset, yOffset + H2) of out become y + scale * (x A^T) B^T.  The
// result is checked against a plain double-precision loop over the same fp16 inputs; the
// program exits 0 only if every element is within fp16 rounding of it.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"

#define CHECK_OK(expr, what)                                                                 \
  do {                                                                                       \
    const int status_ = static_cast<int>(expr);                                              \
    if (status_ != ACL_SUCCESS) {                                                            \
      std::printf("%s failed: %d (%s)\n", what, status_, aclGetRecentErrMsg());              \
      return ACL_ERROR_FAILURE;                                                              \
    }                                                                                        \
  } while (0)

namespace {

// fp16 <-> float without the library (the check must not lean on the code under test).
uint16_t to_half(float f) {  // exact for the values used here (multiples of 1/64, |v| < 8)
  if (f == 0.0f) return 0;
  const uint16_t sign = f < 0 ? 0x8000 : 0;
  float a = std::fabs(f);
  int e = 0;
  while (a >= 2.0f) { a /= 2.0f; ++e; }
  while (a < 1.0f) { a *= 2.0f; --e; }
  const uint16_t mant = static_cast<uint16_t>(std::lround((a - 1.0f) * 1024.0f));
  return static_cast<uint16_t>(sign | ((e + 15) << 10) | mant);
}

double from_half(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -v : v;
}

// Small exact values: k/64 for k in [-32, 32).
float value(uint32_t seed) {
  seed = seed * 2654435761u + 12345u;
  return static_cast<float>(static_cast<int>((seed >> 13) % 64) - 32) / 64.0f;
}

struct Buffer {  // "device" memory with its host copy
  std::vector<uint16_t> host;
  void* device = nullptr;
};

// Device buffer + aclTensor of a contiguous fp16 / int32 array.  The shape goes through an
// aclIntArray, the way a client hands shapes around, and is read back with its size getter.
int make_tensor(const std::vector<int64_t>& shape, aclDataType dtype, const void* host, size_t bytes, void** device,
                aclTensor** tensor) {
  aclIntArray* dims = aclCreateIntArray(shape.data(), shape.size());
  if (dims == nullptr) {
    std::printf("aclCreateIntArray failed: %s\n", aclGetRecentErrMsg());
    return ACL_ERROR_FAILURE;
  }
  uint64_t rank = 0;
  CHECK_OK(aclGetIntArraySize(dims, &rank), "aclGetIntArraySize");
  CHECK_OK(aclDestroyIntArray(dims), "aclDestroyIntArray");
  if (rank != shape.size()) return ACL_ERROR_FAILURE;
  CHECK_OK(aclrtMalloc(device, bytes, ACL_MEM_MALLOC_HUGE_FIRST), "aclrtMalloc");
  CHECK_OK(aclrtMemcpy(*device, bytes, host, bytes, ACL_MEMCPY_HOST_TO_DEVICE), "aclrtMemcpy");
  *tensor = aclCreateTensor(shape.data(), rank, dtype, nullptr, 0, aclFormat::ACL_FORMAT_ND, shape.data(), rank,
                            *device);
  if (*tensor == nullptr) {
    std::printf("aclCreateTensor failed: %s\n", aclGetRecentErrMsg());
    return ACL_ERROR_FAILURE;
  }
  return ACL_SUCCESS;
}

// Expected failures: the documented code and a message.
int expect_errors(aclrtStream stream) {
  int bad = 0;
  if (aclCreateIntArray(nullptr, 3) != nullptr || std::strlen(aclGetRecentErrMsg()) == 0) ++bad;
  std::vector<int64_t> none;  // empty vector: data() may be null, size 0 is a valid empty array
  aclIntArray* empty = aclCreateIntArray(none.data(), none.size());
  uint64_t n = 99;
  if (empty == nullptr || aclGetIntArraySize(empty, &n) != ACLNN_SUCCESS || n != 0) ++bad;
  if (aclDestroyIntArray(empty) != ACLNN_SUCCESS) ++bad;
  if (aclDestroyIntArray(empty) != ACLNN_ERR_PARAM_INVALID) ++bad;  // use after destroy: a code, no crash
  aclGetRecentErrMsg();
  char small[4], big[8] = {0};
  if (aclrtMemcpy(small, sizeof small, big, sizeof big, ACL_MEMCPY_HOST_TO_HOST) != ACL_ERROR_RT_PARAM_INVALID) ++bad;
  aclGetRecentErrMsg();
  if (aclrtSynchronizeStreamWithTimeout(stream, -5) != ACL_ERROR_INVALID_PARAM) ++bad;
  aclGetRecentErrMsg();
  if (bad) std::printf("%d error-path checks failed\n", bad);
  return bad ? ACL_ERROR_FAILURE : ACL_SUCCESS;
}

}  // namespace

int main() {
  const int64_t B = 5, H1 = 32, H2 = 32, H3 = 64, R = 16, W = 3, L = 2;
  const int64_t layerIdx = 1, yOffset = 16, ySliceSize = H2;
  const int32_t indices[B] = {2, 0, -1, 2, 1};

  CHECK_OK(aclInit(nullptr), "aclInit");
  CHECK_OK(aclrtSetDevice(0), "aclrtSetDevice");
  aclrtRunMode mode;
  CHECK_OK(aclrtGetRunMode(&mode), "aclrtGetRunMode");
  uint32_t devices = 0;
  CHECK_OK(aclrtGetDeviceCount(&devices), "aclrtGetDeviceCount");
  aclrtContext context = nullptr;
  CHECK_OK(aclrtCreateContext(&context, 0), "aclrtCreateContext");
  CHECK_OK(aclrtSetCurrentContext(context), "aclrtSetCurrentContext");
  aclrtStream stream = nullptr;
  CHECK_OK(aclrtCreateStream(&stream), "aclrtCreateStream");
  std::printf("run mode %s, %u device(s), SoC %s\n", mode == ACL_HOST ? "host" : "device", devices, aclrtGetSocName());
  if (expect_errors(stream) != ACL_SUCCESS) return ACL_ERROR_FAILURE;

  // Inputs: fp16 values k/64, exact in fp16.
  std::vector<uint16_t> x(B * H1), y(B * H3), a(W * L * R * H1), b(W * L * H2 * R), out(B * H3, 0);
  for (size_t i = 0; i < x.size(); ++i) x[i] = to_half(value(1 + i));
  for (size_t i = 0; i < y.size(); ++i) y[i] = to_half(value(100003 + i));
  for (size_t i = 0; i < a.size(); ++i) a[i] = to_half(value(200003 + i));
  for (size_t i = 0; i < b.size(); ++i) b[i] = to_half(value(300007 + i));

  // scale as an aclScalar, as aclnn clients pass attributes to other operators; AddLora itself
  // takes it as a double.
  double scale = 0.5;
  aclScalar* scaleScalar = aclCreateScalar(&scale, ACL_DOUBLE);
  if (scaleScalar == nullptr) return ACL_ERROR_FAILURE;

  void *dx, *dy, *da, *db, *dind, *dout;
  aclTensor *tx, *ty, *ta, *tb, *tind, *tout;
  if (make_tensor({B, H1}, ACL_FLOAT16, x.data(), x.size() * 2, &dx, &tx) ||
      make_tensor({B, H3}, ACL_FLOAT16, y.data(), y.size() * 2, &dy, &ty) ||
      make_tensor({W, L, R, H1}, ACL_FLOAT16, a.data(), a.size() * 2, &da, &ta) ||
      make_tensor({W, L, H2, R}, ACL_FLOAT16, b.data(), b.size() * 2, &db, &tb) ||
      make_tensor({B}, aclDataType::ACL_INT32, indices, sizeof indices, &dind, &tind) ||
      make_tensor({B, H3}, ACL_FLOAT16, out.data(), out.size() * 2, &dout, &tout))
    return ACL_ERROR_FAILURE;

  // The weights go into a tensor list: destroying the list destroys them.
  const aclTensor* weights[2] = {ta, tb};
  aclTensorList* weightList = aclCreateTensorList(weights, 2);
  uint64_t listSize = 0;
  if (weightList == nullptr) return ACL_ERROR_FAILURE;
  CHECK_OK(aclGetTensorListSize(weightList, &listSize), "aclGetTensorListSize");
  if (listSize != 2) return ACL_ERROR_FAILURE;

  // A rejected call first: yOffset + H2 > H3 is a tiling error with a message.
  uint64_t workspaceSize = 0;
  aclOpExecutor* executor = nullptr;
  const aclnnStatus rejected = aclnnAddLoraGetWorkspaceSize(ty, tx, tb, tind, ta, layerIdx, scale, H3 - 8, ySliceSize,
                                                            tout, &workspaceSize, &executor);
  std::printf("yOffset past H3: %d (%s)\n", rejected, aclGetRecentErrMsg());
  if (rejected != ACLNN_ERR_INNER_TILING_ERROR) return ACL_ERROR_FAILURE;

  CHECK_OK(aclnnAddLoraGetWorkspaceSize(ty, tx, tb, tind, ta, layerIdx, scale, yOffset, ySliceSize, tout,
                                        &workspaceSize, &executor),
           "aclnnAddLoraGetWorkspaceSize");
  void* workspace = nullptr;
  if (workspaceSize > 0) CHECK_OK(aclrtMalloc(&workspace, workspaceSize, ACL_MEM_MALLOC_HUGE_FIRST), "aclrtMalloc");
  CHECK_OK(aclnnAddLora(workspace, workspaceSize, executor, stream), "aclnnAddLora");
  CHECK_OK(aclrtSynchronizeStreamWithTimeout(stream, 60000), "aclrtSynchronizeStreamWithTimeout");

  // Copy back through pinned host memory.
  void* pinned = nullptr;
  const size_t outBytes = out.size() * 2;
  CHECK_OK(aclrtMallocHost(&pinned, outBytes), "aclrtMallocHost");
  CHECK_OK(aclrtMemcpy(pinned, outBytes, dout, outBytes, ACL_MEMCPY_DEVICE_TO_HOST), "aclrtMemcpy");
  std::memcpy(out.data(), pinned, outBytes);
  CHECK_OK(aclrtFreeHost(pinned), "aclrtFreeHost");

  // Independent check in double precision.
  int wrong = 0;
  double maxErr = 0;
  for (int64_t r = 0; r < B; ++r) {
    const int32_t w = indices[r];
    for (int64_t c = 0; c < H3; ++c) {
      double expect = from_half(y[r * H3 + c]);
      if (w >= 0 && w < W && c >= yOffset && c < yOffset + ySliceSize) {
        const int64_t j = c - yOffset;
        double d = 0;
        for (int64_t k = 0; k < R; ++k) {
          double z = 0;
          for (int64_t i = 0; i < H1; ++i)
            z += from_half(x[r * H1 + i]) * from_half(a[((w * L + layerIdx) * R + k) * H1 + i]);
          d += z * from_half(b[((w * L + layerIdx) * H2 + j) * R + k]);
        }
        expect += scale * d;
      }
      const double got = from_half(out[r * H3 + c]);
      const double err = std::fabs(got - expect);
      maxErr = err > maxErr ? err : maxErr;
      if (err > std::fabs(expect) * (1.0 / 1024) + 1e-6) ++wrong;  // one fp16 rounding
    }
  }
  std::printf("out[0][%lld..%lld] = %.5f %.5f %.5f; max |error| %.3g over %lld elements, %d outside fp16 rounding\n",
              static_cast<long long>(yOffset), static_cast<long long>(yOffset + 2), from_half(out[yOffset]),
              from_half(out[yOffset + 1]), from_half(out[yOffset + 2]), maxErr, static_cast<long long>(B * H3), wrong);

  // Tear-down, vendor style: the list takes its tensors with it.
  CHECK_OK(aclDestroyTensorList(weightList), "aclDestroyTensorList");
  if (aclDestroyTensor(ta) != ACLNN_ERR_PARAM_INVALID) return ACL_ERROR_FAILURE;  // already gone with the list
  aclGetRecentErrMsg();
  CHECK_OK(aclDestroyScalar(scaleScalar), "aclDestroyScalar");
  for (aclTensor* t : {tx, ty, tind, tout}) CHECK_OK(aclDestroyTensor(t), "aclDestroyTensor");
  for (void* p : {dx, dy, da, db, dind, dout}) CHECK_OK(aclrtFree(p), "aclrtFree");
  if (workspace) CHECK_OK(aclrtFree(workspace), "aclrtFree");
  CHECK_OK(aclrtDestroyStream(stream), "aclrtDestroyStream");
  CHECK_OK(aclrtDestroyContext(context), "aclrtDestroyContext");
  CHECK_OK(aclrtResetDevice(0), "aclrtResetDevice");
  CHECK_OK(aclFinalize(), "aclFinalize");
  std::printf(wrong == 0 ? "PASS\n" : "FAIL\n");
  return wrong == 0 ? 0 : 1;
}
