// libnnopbase: aclTensor creation, destruction and getters.  Live tensors are tracked so
// a double aclDestroyTensor, or a getter on a destroyed tensor, is an error code; each live
// tensor also records the aclTensorList that owns it, if any (meta.cc).
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <vector>

#include "runtime/guard.h"
#include "runtime/internal.h"
#include "runtime/meta.h"
#include "runtime/pointer_table.h"

namespace addlora_rt {
namespace {

constexpr uint64_t kMaxDims = 8;
// aclDataType spans -1..41 and aclFormat -1..54, so each can hold exactly [-64, 63] (the
// smallest two's-complement bit-field holding all enumerators).  Widen this if the enums grow.
constexpr int64_t kMinEnum = -64, kMaxEnum = 63;

std::mutex g_tensors_mutex;
// Live tensor -> the list that owns it (nullptr: owned by the client).
PointerTable& live_tensors() {
  static auto* map = new PointerTable;  // never destroyed: see runtime.cc
  return *map;
}

// Copies `n` values after checking the array and the values.  `what` names it in messages.
bool copy_dims(const char* what, const int64_t* src, uint64_t n, std::vector<int64_t>* out) {
  if (n > kMaxDims) {
    set_error("aclCreateTensor: %s has %llu dims; at most %llu are supported", what,
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(kMaxDims));
    return false;
  }
  if (n > 0 && src == nullptr) {
    set_error("aclCreateTensor: %s is null but its count is %llu", what, static_cast<unsigned long long>(n));
    return false;
  }
  out->assign(src, src + n);
  for (uint64_t i = 0; i < n; ++i) {
    if ((*out)[i] < 0) {
      set_error("aclCreateTensor: %s[%llu] = %lld is negative", what, static_cast<unsigned long long>(i),
                static_cast<long long>((*out)[i]));
      return false;
    }
  }
  return true;
}

// Number of elements a view spans from its first element: 1 + sum((d-1)*s), 0 if empty.
// false on overflow.
bool view_extent(const std::vector<int64_t>& dims, const std::vector<int64_t>& strides, int64_t* extent) {
  int64_t last = 0;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0) {
      *extent = 0;
      return true;
    }
    int64_t step;
    if (__builtin_mul_overflow(dims[i] - 1, strides[i], &step) || __builtin_add_overflow(last, step, &last))
      return false;
  }
  return !__builtin_add_overflow(last, int64_t{1}, extent);
}

template <class T>
aclnnStatus check_getter(const char* fn, const aclTensor* t, const T* out1, const void* out2 = "") {
  if (t == nullptr || out1 == nullptr || out2 == nullptr) {
    set_error("%s: %s is null", fn, t == nullptr ? "tensor" : "an output argument");
    return ACLNN_ERR_PARAM_NULLPTR;
  }
  std::lock_guard<std::mutex> lock(g_tensors_mutex);
  if (!live_tensors().contains(t)) {
    set_error("%s: tensor %p was not created by aclCreateTensor, or was destroyed", fn, static_cast<const void*>(t));
    return ACLNN_ERR_PARAM_INVALID;
  }
  return ACLNN_SUCCESS;
}

aclnnStatus copy_out(const std::vector<int64_t>& v, int64_t** values, uint64_t* num) {
  int64_t* a = new int64_t[v.size()];  // caller frees with delete[] (CANN contract)
  for (size_t i = 0; i < v.size(); ++i) a[i] = v[i];
  *values = a;
  *num = v.size();
  return ACLNN_SUCCESS;
}

}  // namespace

bool set_tensor_data(aclTensor* t, void* addr) {
  std::lock_guard<std::mutex> lock(g_tensors_mutex);
  if (!live_tensors().contains(t)) return false;
  t->data = addr;
  return true;
}

aclnnStatus adopt_tensors(const char* fn, const aclTensor* const* tensors, uint64_t n, const void* owner) {
  std::unordered_set<const aclTensor*> seen;
  seen.reserve(n);
  std::lock_guard<std::mutex> lock(g_tensors_mutex);
  for (uint64_t i = 0; i < n; ++i) {
    const aclTensor* t = tensors[i];
    if (t == nullptr) {
      set_error("%s: value[%llu] is null", fn, static_cast<unsigned long long>(i));
      return ACLNN_ERR_PARAM_NULLPTR;
    }
    const void* const* owner_of = live_tensors().find(t);
    if (owner_of == nullptr) {
      set_error("%s: value[%llu] = %p is not a live tensor (never created by aclCreateTensor, or destroyed)", fn,
                static_cast<unsigned long long>(i), static_cast<const void*>(t));
      return ACLNN_ERR_PARAM_INVALID;
    }
    if (*owner_of != nullptr) {
      set_error("%s: value[%llu] = %p is already held by tensor list %p (a tensor can belong to one list only)", fn,
                static_cast<unsigned long long>(i), static_cast<const void*>(t), *owner_of);
      return ACLNN_ERR_PARAM_INVALID;
    }
    if (!seen.insert(t).second) {
      set_error("%s: value[%llu] = %p appears twice in the list", fn, static_cast<unsigned long long>(i),
                static_cast<const void*>(t));
      return ACLNN_ERR_PARAM_INVALID;
    }
  }
  for (uint64_t i = 0; i < n; ++i) live_tensors().set(tensors[i], owner);  // present: no growth, no throw
  return ACLNN_SUCCESS;
}

void destroy_owned_tensors(const std::vector<const aclTensor*>& tensors, const void* owner) {
  std::vector<const aclTensor*> doomed;
  doomed.reserve(tensors.size());
  {
    std::lock_guard<std::mutex> lock(g_tensors_mutex);
    for (const aclTensor* t : tensors) {
      const void* const* owner_of = live_tensors().find(t);
      if (owner_of != nullptr && *owner_of == owner) {  // always true: the list owns them
        live_tensors().erase(t);
        doomed.push_back(t);
      }
    }
  }
  for (const aclTensor* t : doomed) delete t;
}

bool is_live_tensor(const aclTensor* t) {
  if (t == nullptr) return false;
  std::lock_guard<std::mutex> lock(g_tensors_mutex);
  return live_tensors().contains(t);
}

// An operator's tensors are usually cold when it is called (a decode step's weights stream
// through the caches between calls), and checking then describing them one at a time chains
// their misses: registry slot, structure, shape arrays.  Prefetching every structure and
// registry slot first, and every live tensor's arrays before the caller reads them, lets those
// misses overlap.  A prefetch of any address is harmless, so the structures are prefetched
// before they are known live; their fields are read only after.
int first_dead_tensor(const aclTensor* const* ts, int n) {
  for (int i = 0; i < n; ++i)
    if (ts[i] != nullptr) __builtin_prefetch(ts[i]);
  std::lock_guard<std::mutex> lock(g_tensors_mutex);
  const PointerTable& live = live_tensors();
  for (int i = 0; i < n; ++i)
    if (ts[i] != nullptr) __builtin_prefetch(live.home_line(ts[i]));
  for (int i = 0; i < n; ++i)
    if (ts[i] != nullptr && !live.contains(ts[i])) return i;
  for (int i = 0; i < n; ++i) {
    if (ts[i] == nullptr) continue;
    __builtin_prefetch(ts[i]->view_dims.data());
    __builtin_prefetch(ts[i]->strides.data());
    __builtin_prefetch(ts[i]->storage_dims.data());
  }
  return -1;
}

}  // namespace addlora_rt

using namespace addlora_rt;

extern "C" {

ACL_FUNC_VISIBILITY aclTensor* aclCreateTensor(const int64_t* viewDims, uint64_t viewDimsNum, aclDataType dataType,
                                               const int64_t* stride, int64_t offset, aclFormat format,
                                               const int64_t* storageDims, uint64_t storageDimsNum,
                                               void* tensorData) {
  try {
    auto t = std::make_unique<aclTensor>();
    if (!copy_dims("viewDims", viewDims, viewDimsNum, &t->view_dims)) return nullptr;
    const size_t n = t->view_dims.size();
    if (stride != nullptr) {
      if (!copy_dims("stride", stride, n, &t->strides)) return nullptr;
    } else {  // contiguous, row-major; a zero dim counts as 1 so strides stay meaningful
      t->strides.assign(n, 1);
      for (size_t i = n; i-- > 1;) {
        const int64_t d = t->view_dims[i] > 0 ? t->view_dims[i] : 1;
        if (__builtin_mul_overflow(t->strides[i], d, &t->strides[i - 1])) {
          set_error("aclCreateTensor: the view shape is too large (element count overflows int64)");
          return nullptr;
        }
      }
    }
    if (offset < 0) {
      set_error("aclCreateTensor: offset = %lld is negative", static_cast<long long>(offset));
      return nullptr;
    }
    int64_t extent;
    if (!view_extent(t->view_dims, t->strides, &extent)) {
      set_error("aclCreateTensor: the view is too large (its extent overflows int64)");
      return nullptr;
    }
    if (storageDims == nullptr && storageDimsNum == 0) {
      int64_t total;
      if (__builtin_add_overflow(offset, extent, &total)) {
        set_error("aclCreateTensor: offset + view extent overflows int64");
        return nullptr;
      }
      t->storage_dims.assign(1, total);  // the smallest 1-D storage holding the view
    } else if (!copy_dims("storageDims", storageDims, storageDimsNum, &t->storage_dims)) {
      return nullptr;
    }
    // Values outside what the enum types can hold (possible from C) would be undefined
    // behaviour to store; names not in our headers but representable are kept for the operator.
    const int64_t dtype_bits = enum_bits(dataType), format_bits = enum_bits(format);
    if (dtype_bits < kMinEnum || dtype_bits > kMaxEnum) {
      set_error("aclCreateTensor: dataType %lld is not an aclDataType", static_cast<long long>(dtype_bits));
      return nullptr;
    }
    if (format_bits < kMinEnum || format_bits > kMaxEnum) {
      set_error("aclCreateTensor: format %lld is not an aclFormat", static_cast<long long>(format_bits));
      return nullptr;
    }
    t->offset = offset;
    t->dtype = static_cast<aclDataType>(dtype_bits);
    t->format = static_cast<aclFormat>(format_bits);
    t->data = tensorData;
    std::lock_guard<std::mutex> lock(g_tensors_mutex);
    live_tensors().set(t.get(), nullptr);
    return t.release();
  } catch (...) {
    set_error("aclCreateTensor: out of host memory");
    return nullptr;
  }
}

ACL_FUNC_VISIBILITY aclnnStatus aclInitTensor(aclTensor* tensor, const int64_t* viewDims, uint64_t viewDimsNum,
                                              aclDataType dataType, const int64_t* stride, int64_t offset,
                                              aclFormat format, const int64_t* storageDims, uint64_t storageDimsNum,
                                              void* tensorDataAddr) {
  return nn_entry("aclInitTensor", [&]() -> aclnnStatus {
    if (tensor == nullptr) {
      set_error("aclInitTensor: tensor is null");
      return ACLNN_ERR_PARAM_NULLPTR;
    }
    // Build the new state with aclCreateTensor's checks, then move it into the live handle.
    std::unique_ptr<aclTensor> fresh(aclCreateTensor(viewDims, viewDimsNum, dataType, stride, offset, format,
                                                     storageDims, storageDimsNum, tensorDataAddr));
    if (!fresh) return ACLNN_ERR_PARAM_INVALID;  // message set by aclCreateTensor
    std::lock_guard<std::mutex> lock(g_tensors_mutex);
    live_tensors().erase(fresh.get());
    if (!live_tensors().contains(tensor)) {
      set_error("aclInitTensor: tensor %p was not created by aclCreateTensor, or was destroyed",
                static_cast<const void*>(tensor));
      return ACLNN_ERR_PARAM_INVALID;
    }
    std::swap(*tensor, *fresh);
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclDestroyTensor(const aclTensor* tensor) {
  return nn_entry("aclDestroyTensor", [&]() -> aclnnStatus {
    if (tensor == nullptr) return ACLNN_SUCCESS;
    {
      std::lock_guard<std::mutex> lock(g_tensors_mutex);
      const void* const* owner_of = live_tensors().find(tensor);
      if (owner_of == nullptr) {
        set_error("aclDestroyTensor: tensor %p was not created by aclCreateTensor, or was already destroyed "
                  "(aclDestroyTensorList destroys the tensors of its list)",
                  static_cast<const void*>(tensor));
        return ACLNN_ERR_PARAM_INVALID;
      }
      if (*owner_of != nullptr) {
        set_error("aclDestroyTensor: tensor %p is held by tensor list %p, which destroys it "
                  "(call aclDestroyTensorList instead)",
                  static_cast<const void*>(tensor), *owner_of);
        return ACLNN_ERR_PARAM_INVALID;
      }
      live_tensors().erase(tensor);
    }
    delete tensor;
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetViewShape(const aclTensor* tensor, int64_t** viewDims, uint64_t* viewDimsNum) {
  return nn_entry("aclGetViewShape", [&]() -> aclnnStatus {
    if (aclnnStatus st = check_getter("aclGetViewShape", tensor, viewDims, viewDimsNum)) return st;
    return copy_out(tensor->view_dims, viewDims, viewDimsNum);
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetStorageShape(const aclTensor* tensor, int64_t** storageDims,
                                                   uint64_t* storageDimsNum) {
  return nn_entry("aclGetStorageShape", [&]() -> aclnnStatus {
    if (aclnnStatus st = check_getter("aclGetStorageShape", tensor, storageDims, storageDimsNum)) return st;
    return copy_out(tensor->storage_dims, storageDims, storageDimsNum);
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetViewStrides(const aclTensor* tensor, int64_t** stridesValue,
                                                  uint64_t* stridesNum) {
  return nn_entry("aclGetViewStrides", [&]() -> aclnnStatus {
    if (aclnnStatus st = check_getter("aclGetViewStrides", tensor, stridesValue, stridesNum)) return st;
    return copy_out(tensor->strides, stridesValue, stridesNum);
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetViewOffset(const aclTensor* tensor, int64_t* offset) {
  return nn_entry("aclGetViewOffset", [&]() -> aclnnStatus {
    if (aclnnStatus st = check_getter("aclGetViewOffset", tensor, offset)) return st;
    *offset = tensor->offset;
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetFormat(const aclTensor* tensor, aclFormat* format) {
  return nn_entry("aclGetFormat", [&]() -> aclnnStatus {
    if (aclnnStatus st = check_getter("aclGetFormat", tensor, format)) return st;
    *format = tensor->format;
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclSetRawTensorAddr(aclTensor* tensor, void* addr) {
  return nn_entry("aclSetRawTensorAddr", [&]() -> aclnnStatus {
    if (tensor != nullptr && addr == nullptr) {
      set_error("aclSetRawTensorAddr: addr is null");
      return ACLNN_ERR_PARAM_NULLPTR;
    }
    if (aclnnStatus st = check_getter("aclSetRawTensorAddr", tensor, addr)) return st;
    if (!set_tensor_data(tensor, addr)) {  // destroyed meanwhile by another thread
      set_error("aclSetRawTensorAddr: tensor %p was destroyed", static_cast<const void*>(tensor));
      return ACLNN_ERR_PARAM_INVALID;
    }
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetRawTensorAddr(const aclTensor* tensor, void** addr) {
  return nn_entry("aclGetRawTensorAddr", [&]() -> aclnnStatus {
    if (aclnnStatus st = check_getter("aclGetRawTensorAddr", tensor, addr)) return st;
    std::lock_guard<std::mutex> lock(g_tensors_mutex);
    if (!live_tensors().contains(tensor)) {
      set_error("aclGetRawTensorAddr: tensor %p was destroyed", static_cast<const void*>(tensor));
      return ACLNN_ERR_PARAM_INVALID;
    }
    *addr = tensor->data;
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetDataType(const aclTensor* tensor, aclDataType* dataType) {
  return nn_entry("aclGetDataType", [&]() -> aclnnStatus {
    if (aclnnStatus st = check_getter("aclGetDataType", tensor, dataType)) return st;
    *dataType = tensor->dtype;
    return ACLNN_SUCCESS;
  });
}

}  // extern "C"
