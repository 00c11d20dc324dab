/**
 * aclnnAddLora sample, written the way CANN's aclnn operator samples are: initialise the
 * runtime, put the inputs in device memory, describe them as aclTensors, ask for the
 * workspace, run on a stream, copy the result back and check it against a plain fp64 loop.
 *
 *   y[B, H3] (updated in place), x[B, H1], weightA[W, L, R, H1], weightB[W, L, H2, R],
 *   indices[B]; for each row b with 0 <= indices[b] < W:
 *     y[b, yOffset + n] += scale * (x[b] . weightA[i, layerIdx]^T) . weightB[i, layerIdx]^T [n]
 *
 * Exit code 0 when every element is within 1 ulp (fp16) of the fp64 result plus 2^-16 * M,
 * M = |y| + |scale| * sum_r |b_r| * sum_h |x_h a_rh| (the library's precision contract), 1 otherwise.
 */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"

#define CHECK_RET(cond, return_expr) \
  do {                               \
    if (!(cond)) {                   \
      return_expr;                   \
    }                                \
  } while (0)

#define LOG_PRINT(message, ...)     \
  do {                              \
    printf(message, ##__VA_ARGS__); \
  } while (0)

int64_t GetShapeSize(const std::vector<int64_t>& shape) {
  int64_t shapeSize = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    shapeSize *= shape[i];
  }
  return shapeSize;
}

int Init(int32_t deviceId, aclrtStream* stream) {
  auto ret = aclInit(nullptr);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclInit failed. ERROR: %d\n", ret); return ret);
  ret = aclrtSetDevice(deviceId);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclrtSetDevice failed. ERROR: %d\n", ret); return ret);
  ret = aclrtCreateStream(stream);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclrtCreateStream failed. ERROR: %d\n", ret); return ret);
  return 0;
}

template <typename T>
int CreateAclTensor(const std::vector<T>& hostData, const std::vector<int64_t>& shape, void** deviceAddr,
                    aclDataType dataType, aclTensor** tensor) {
  auto size = GetShapeSize(shape) * sizeof(T);
  auto ret = aclrtMalloc(deviceAddr, size, ACL_MEM_MALLOC_HUGE_FIRST);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclrtMalloc failed. ERROR: %d\n", ret); return ret);
  ret = aclrtMemcpy(*deviceAddr, size, hostData.data(), size, ACL_MEMCPY_HOST_TO_DEVICE);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclrtMemcpy failed. ERROR: %d\n", ret); return ret);

  // Contiguous strides, as the CANN samples compute them.
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; i--) {
    strides[i] = shape[i + 1] * strides[i + 1];
  }
  *tensor = aclCreateTensor(shape.data(), shape.size(), dataType, strides.data(), 0, aclFormat::ACL_FORMAT_ND,
                            shape.data(), shape.size(), *deviceAddr);
  CHECK_RET(*tensor != nullptr, LOG_PRINT("aclCreateTensor failed: %s\n", aclGetRecentErrMsg()); return -1);
  return 0;
}

// Deterministic pseudo-random values in [-1, 1).
static double NextValue(uint32_t* state) {
  *state = *state * 1664525u + 1013904223u;
  return static_cast<double>(*state >> 8) / 8388608.0 - 1.0;
}

int main() {
  // 1. Device / stream initialisation.
  int32_t deviceId = 0;
  aclrtStream stream;
  auto ret = Init(deviceId, &stream);
  CHECK_RET(ret == 0, LOG_PRINT("Init acl failed. ERROR: %d\n", ret); return 1);

  // 2. Inputs.
  const int64_t B = 8, H1 = 64, H2 = 32, H3 = 64, R = 16, W = 4, L = 2;
  const int64_t layerIdx = 1, yOffset = 16, ySliceSize = -1;
  const double scale = 0.25;
  std::vector<int64_t> yShape = {B, H3}, xShape = {B, H1}, weightBShape = {W, L, H2, R},
                       indicesShape = {B}, weightAShape = {W, L, R, H1};
  uint32_t seed = 2024;
  std::vector<aclFloat16> yHost(GetShapeSize(yShape)), xHost(GetShapeSize(xShape)),
      weightBHost(GetShapeSize(weightBShape)), weightAHost(GetShapeSize(weightAShape));
  for (size_t i = 0; i < yHost.size(); ++i) yHost[i] = aclFloatToFloat16(static_cast<float>(NextValue(&seed)));
  for (size_t i = 0; i < xHost.size(); ++i) xHost[i] = aclFloatToFloat16(static_cast<float>(NextValue(&seed)));
  for (size_t i = 0; i < weightBHost.size(); ++i)
    weightBHost[i] = aclFloatToFloat16(static_cast<float>(NextValue(&seed)));
  for (size_t i = 0; i < weightAHost.size(); ++i)
    weightAHost[i] = aclFloatToFloat16(static_cast<float>(NextValue(&seed) / 4));
  // Rows 2 and 5 have no adapter (index -1 and index == W).
  std::vector<int32_t> indicesHost = {0, 3, -1, 1, 2, 4, 3, 0};

  void *yDeviceAddr = nullptr, *xDeviceAddr = nullptr, *weightBDeviceAddr = nullptr, *indicesDeviceAddr = nullptr,
       *weightADeviceAddr = nullptr;
  aclTensor *y = nullptr, *x = nullptr, *weightB = nullptr, *indices = nullptr, *weightA = nullptr;
  ret = CreateAclTensor(yHost, yShape, &yDeviceAddr, aclDataType::ACL_FLOAT16, &y);
  CHECK_RET(ret == ACL_SUCCESS, return 1);
  ret = CreateAclTensor(xHost, xShape, &xDeviceAddr, aclDataType::ACL_FLOAT16, &x);
  CHECK_RET(ret == ACL_SUCCESS, return 1);
  ret = CreateAclTensor(weightBHost, weightBShape, &weightBDeviceAddr, aclDataType::ACL_FLOAT16, &weightB);
  CHECK_RET(ret == ACL_SUCCESS, return 1);
  ret = CreateAclTensor(indicesHost, indicesShape, &indicesDeviceAddr, aclDataType::ACL_INT32, &indices);
  CHECK_RET(ret == ACL_SUCCESS, return 1);
  ret = CreateAclTensor(weightAHost, weightAShape, &weightADeviceAddr, aclDataType::ACL_FLOAT16, &weightA);
  CHECK_RET(ret == ACL_SUCCESS, return 1);

  // 3. Phase one: validate, plan, workspace size.  out is y (in place, as the NPU kernel does).
  uint64_t workspaceSize = 0;
  aclOpExecutor* executor = nullptr;
  ret = aclnnAddLoraGetWorkspaceSize(y, x, weightB, indices, weightA, layerIdx, scale, yOffset, ySliceSize, y,
                                     &workspaceSize, &executor);
  CHECK_RET(ret == ACL_SUCCESS,
            LOG_PRINT("aclnnAddLoraGetWorkspaceSize failed. ERROR: %d (%s)\n", ret, aclGetRecentErrMsg());
            return 1);
  void* workspaceAddr = nullptr;
  if (workspaceSize > 0) {
    ret = aclrtMalloc(&workspaceAddr, workspaceSize, ACL_MEM_MALLOC_HUGE_FIRST);
    CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("allocate workspace failed. ERROR: %d\n", ret); return 1);
  }

  // 4. Phase two: enqueue on the stream, then wait.
  ret = aclnnAddLora(workspaceAddr, workspaceSize, executor, stream);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclnnAddLora failed. ERROR: %d (%s)\n", ret, aclGetRecentErrMsg());
            return 1);
  ret = aclrtSynchronizeStream(stream);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclrtSynchronizeStream failed. ERROR: %d\n", ret); return 1);

  // 5. Copy the result back and compare with an fp64 loop.
  std::vector<aclFloat16> resultData(GetShapeSize(yShape), 0);
  ret = aclrtMemcpy(resultData.data(), resultData.size() * sizeof(aclFloat16), yDeviceAddr,
                    resultData.size() * sizeof(aclFloat16), ACL_MEMCPY_DEVICE_TO_HOST);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("copy result from device to host failed. ERROR: %d\n", ret); return 1);

  int bad = 0;
  double maxError = 0;
  const int64_t S = ySliceSize == -1 ? H2 : ySliceSize;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t i = indicesHost[b];
    std::vector<double> z(R, 0.0), zabs(R, 0.0);
    if (i >= 0 && i < W) {
      for (int64_t r = 0; r < R; ++r)
        for (int64_t h = 0; h < H1; ++h) {
          const double p = static_cast<double>(aclFloat16ToFloat(xHost[b * H1 + h])) *
                           aclFloat16ToFloat(weightAHost[((i * L + layerIdx) * R + r) * H1 + h]);
          z[r] += p;
          zabs[r] += std::fabs(p);
        }
    }
    for (int64_t c = 0; c < H3; ++c) {
      const double yv = aclFloat16ToFloat(yHost[b * H3 + c]);
      double expected = yv, d = 0, m = 0;
      if (i >= 0 && i < W && c >= yOffset && c < yOffset + S) {
        for (int64_t r = 0; r < R; ++r) {
          const double bv = aclFloat16ToFloat(weightBHost[((i * L + layerIdx) * H2 + (c - yOffset)) * R + r]);
          d += z[r] * bv;
          m += zabs[r] * std::fabs(bv);
        }
        d *= scale;
        expected = yv + d;
      }
      m = std::fabs(yv) + std::fabs(scale) * m;
      const double got = aclFloat16ToFloat(resultData[b * H3 + c]);
      const double err = std::fabs(got - expected);
      int e = 0;
      std::frexp(expected, &e);
      const double ulp = std::ldexp(1.0, (expected == 0 || e - 1 < -14 ? -14 : e - 1) - 10);
      if (err > ulp + std::ldexp(m, -16)) ++bad;
      if (err > maxError) maxError = err;
    }
  }
  for (int64_t c = yOffset; c < yOffset + 4; ++c)
    LOG_PRINT("result[0][%ld] is: %f\n", static_cast<long>(c), aclFloat16ToFloat(resultData[c]));
  LOG_PRINT("max error vs fp64: %g, elements outside tolerance: %d of %ld\n", maxError, bad,
            static_cast<long>(resultData.size()));

  // 6. Release tensors, device memory, stream, device, runtime.
  aclDestroyTensor(y);
  aclDestroyTensor(x);
  aclDestroyTensor(weightB);
  aclDestroyTensor(indices);
  aclDestroyTensor(weightA);
  aclrtFree(yDeviceAddr);
  aclrtFree(xDeviceAddr);
  aclrtFree(weightBDeviceAddr);
  aclrtFree(indicesDeviceAddr);
  aclrtFree(weightADeviceAddr);
  if (workspaceSize > 0) {
    aclrtFree(workspaceAddr);
  }
  ret = aclrtDestroyStream(stream);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclrtDestroyStream failed. ERROR: %d\n", ret); return 1);
  ret = aclrtResetDevice(deviceId);
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclrtResetDevice failed. ERROR: %d\n", ret); return 1);
  ret = aclFinalize();
  CHECK_RET(ret == ACL_SUCCESS, LOG_PRINT("aclFinalize failed. ERROR: %d\n", ret); return 1);
  if (bad != 0) {
    LOG_PRINT("FAILED\n");
    return 1;
  }
  LOG_PRINT("PASSED\n");
  return 0;
}
