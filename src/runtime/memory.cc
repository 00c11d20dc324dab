// libascendcl: memory of the CANN ACL C API on the host.  "Device" and host blocks are both
// ordinary host memory (64-byte aligned), tracked in two pools so a foreign or freed pointer
// is an error code.
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "model/fault.h"
#include "runtime/runtime_state.h"

namespace addlora_rt {
namespace {

constexpr size_t kAlignment = 64;  // CANN promises 32; cache lines and AVX-512 like 64
constexpr size_t kMaxAllocation = size_t{1} << 46;  // 64 TiB

addlora::model::FaultCountdown g_device_memory;  // libascendcl's fault site (model/fault.h)

aclError allocate(const char* fn, void** ptr, size_t size, bool host) {
  if (ptr == nullptr) {
    set_error("%s: the output pointer is null", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  if (size == 0) {
    set_error("%s: size must be > 0", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  if (aclError err = check_initialized(fn)) return err;
  // Absurd sizes fail here, not in the allocator (sanitizer allocators abort on them).
  if (size > kMaxAllocation) {
    set_error("%s: cannot allocate %zu bytes (more than any host can provide)", fn, size);
    return ACL_ERROR_BAD_ALLOC;
  }
  const size_t rounded = (size + kAlignment - 1) / kAlignment * kAlignment;  // aligned_alloc rule
  void* p = g_device_memory.fires() ? nullptr : std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) {
    set_error("%s: cannot allocate %zu bytes", fn, size);
    return ACL_ERROR_BAD_ALLOC;
  }
  std::lock_guard<std::mutex> lock(rt().m);
  if (!rt().initialized) {  // aclFinalize ran meanwhile
    std::free(p);
    return not_initialized(fn);
  }
  try {
    (host ? rt().host_blocks : rt().device_blocks).emplace(p, size);
  } catch (...) {
    std::free(p);
    throw;
  }
  *ptr = p;
  return ACL_SUCCESS;
}

aclError release(const char* fn, void* p, bool host) {
  if (p == nullptr) {
    set_error("%s: pointer is null", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  {
    std::lock_guard<std::mutex> lock(rt().m);
    if (!rt().initialized) return not_initialized(fn);
    auto& blocks = host ? rt().host_blocks : rt().device_blocks;
    auto it = blocks.find(p);
    if (it == blocks.end()) {
      set_error("%s: %p was not returned by %s, or was already freed", fn, p,
                host ? "aclrtMallocHost" : "aclrtMalloc");
      return ACL_ERROR_INVALID_PARAM;
    }
    blocks.erase(it);
  }
  std::free(p);
  return ACL_SUCCESS;
}

aclError check_copy(const char* fn, const void* dst, size_t dest_max, const void* src, size_t count,
                    int64_t kind) {
  if (dst == nullptr || src == nullptr) {
    set_error("%s: %s pointer is null", fn, dst == nullptr ? "destination" : "source");
    return ACL_ERROR_INVALID_PARAM;
  }
  if (kind < ACL_MEMCPY_HOST_TO_HOST || kind > ACL_MEMCPY_INTER_DEVICE_TO_DEVICE) {
    set_error("%s: kind %lld is not an aclrtMemcpyKind (0..7)", fn, static_cast<long long>(kind));
    return ACL_ERROR_INVALID_PARAM;
  }
  if (count > dest_max) {
    set_error("%s: count (%zu bytes) exceeds destMax (%zu bytes)", fn, count, dest_max);
    return ACL_ERROR_RT_PARAM_INVALID;
  }
  return ACL_SUCCESS;
}

aclError check_set(const char* fn, const void* dst, size_t max_count, size_t count) {
  if (dst == nullptr) {
    set_error("%s: pointer is null", fn);
    return ACL_ERROR_INVALID_PARAM;
  }
  if (count > max_count) {
    set_error("%s: count (%zu bytes) exceeds maxCount (%zu bytes)", fn, count, max_count);
    return ACL_ERROR_RT_PARAM_INVALID;
  }
  return ACL_SUCCESS;
}

}  // namespace

void test_fail_allocation(int64_t nth) { g_device_memory.arm(nth); }

}  // namespace addlora_rt

using namespace addlora_rt;

extern "C" {

// ---- memory -----------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclError aclrtMalloc(void** devPtr, size_t size, aclrtMemMallocPolicy /*hint only*/) {
  return acl_entry(__func__, [&](const char* fn) { return allocate(fn, devPtr, size, false); });
}
ACL_FUNC_VISIBILITY aclError aclrtFree(void* devPtr) {
  return acl_entry(__func__, [&](const char* fn) { return release(fn, devPtr, false); });
}
ACL_FUNC_VISIBILITY aclError aclrtMallocHost(void** hostPtr, size_t size) {
  return acl_entry(__func__, [&](const char* fn) { return allocate(fn, hostPtr, size, true); });
}
ACL_FUNC_VISIBILITY aclError aclrtFreeHost(void* hostPtr) {
  return acl_entry(__func__, [&](const char* fn) { return release(fn, hostPtr, true); });
}

ACL_FUNC_VISIBILITY aclError aclrtMemcpy(void* dst, size_t destMax, const void* src, size_t count,
                                         aclrtMemcpyKind kind) {
  return acl_entry(__func__, Needs::init, [&](const char* fn) -> aclError {
    if (aclError err = check_copy(fn, dst, destMax, src, count, enum_bits(kind))) return err;
    if (count > 0) std::memmove(dst, src, count);
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtMemcpyAsync(void* dst, size_t destMax, const void* src, size_t count,
                                              aclrtMemcpyKind kind, aclrtStream stream) {
  return acl_entry(__func__, Needs::init, [&](const char* fn) -> aclError {
    if (aclError err = check_copy(fn, dst, destMax, src, count, enum_bits(kind))) return err;
    return submit(fn, stream, [dst, src, count] {
      if (count > 0) std::memmove(dst, src, count);
    });
  });
}

ACL_FUNC_VISIBILITY aclError aclrtMemset(void* devPtr, size_t maxCount, int32_t value, size_t count) {
  return acl_entry(__func__, Needs::init, [&](const char* fn) -> aclError {
    if (aclError err = check_set(fn, devPtr, maxCount, count)) return err;
    if (count > 0) std::memset(devPtr, static_cast<unsigned char>(value), count);
    return ACL_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclError aclrtMemsetAsync(void* devPtr, size_t maxCount, int32_t value, size_t count,
                                              aclrtStream stream) {
  return acl_entry(__func__, Needs::init, [&](const char* fn) -> aclError {
    if (aclError err = check_set(fn, devPtr, maxCount, count)) return err;
    return submit(fn, stream, [devPtr, value, count] {
      if (count > 0) std::memset(devPtr, static_cast<unsigned char>(value), count);
    });
  });
}

}  // extern "C"
