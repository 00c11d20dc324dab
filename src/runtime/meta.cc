// libnnopbase: the scalar, array and list objects of acl_meta.h (aclScalar, aclIntArray,
// aclFloatArray, aclBoolArray, aclTensorList, aclScalarList).  Every handle is registered
// with its kind, so a stale, foreign or wrong-kind handle is an error code; lists own their
// elements, and ownership is recorded so no element is ever freed twice (tensors in the
// tensor registry of tensor.cc, scalars here).
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/guard.h"
#include "runtime/internal.h"
#include "runtime/meta.h"

namespace addlora_rt {
namespace {

// Larger counts are refused before anything is read (a negative count converted to uint64_t
// lands here); 2^31 elements is far beyond what any operator takes.
constexpr uint64_t kMaxElements = uint64_t{1} << 31;

enum class Kind { scalar, int_array, float_array, bool_array, tensor_list, scalar_list };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::scalar: return "aclScalar";
    case Kind::int_array: return "aclIntArray";
    case Kind::float_array: return "aclFloatArray";
    case Kind::bool_array: return "aclBoolArray";
    case Kind::tensor_list: return "aclTensorList";
    case Kind::scalar_list: return "aclScalarList";
  }
  return "object";
}

struct Entry {
  Kind kind;
  const void* owner;  // the aclScalarList holding a scalar; nullptr otherwise
};

std::mutex g_meta_mutex;
std::unordered_map<const void*, Entry>& live_objects() {
  static auto* map = new std::unordered_map<const void*, Entry>;  // never destroyed: see runtime.cc
  return *map;
}

template <class T> constexpr Kind kind_of();
template <> constexpr Kind kind_of<aclScalar>() { return Kind::scalar; }
template <> constexpr Kind kind_of<aclIntArray>() { return Kind::int_array; }
template <> constexpr Kind kind_of<aclFloatArray>() { return Kind::float_array; }
template <> constexpr Kind kind_of<aclBoolArray>() { return Kind::bool_array; }
template <> constexpr Kind kind_of<aclTensorList>() { return Kind::tensor_list; }
template <> constexpr Kind kind_of<aclScalarList>() { return Kind::scalar_list; }

// The entry of the create functions: nn_entry's barrier (guard.h), with NULL (and the message)
// instead of a status.
template <class T, class F>
T* create_entry(const char* fn, F&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    set_error("%s: out of host memory", fn);
  } catch (const std::exception& e) {
    set_error("%s: internal error: %s", fn, e.what());
  } catch (...) {
    set_error("%s: internal error (unknown exception)", fn);
  }
  return nullptr;
}

// value/size rules shared by the array and list creators.  false = refused (message set).
bool check_count(const char* fn, const void* value, uint64_t size) {
  if (size > kMaxElements) {
    set_error("%s: size %llu is too large (at most 2^31 elements; a negative count?)", fn,
              static_cast<unsigned long long>(size));
    return false;
  }
  if (size > 0 && value == nullptr) {
    set_error("%s: value is null but size is %llu", fn, static_cast<unsigned long long>(size));
    return false;
  }
  return true;
}

// Registers a new object (the caller has filled it) and hands it to the client.
template <class T>
T* publish(std::unique_ptr<T> obj, const void* owner = nullptr) {
  std::lock_guard<std::mutex> lock(g_meta_mutex);
  live_objects().emplace(obj.get(), Entry{kind_of<T>(), owner});
  return obj.release();
}

// Caller holds g_meta_mutex.  161002 (message set) unless `p` is a live object of kind T.
template <class T>
aclnnStatus check_live_locked(const char* fn, const T* p) {
  auto it = live_objects().find(p);
  if (it == live_objects().end()) {
    set_error("%s: %p is not a live %s (never created, or already destroyed)", fn, static_cast<const void*>(p),
              kind_name(kind_of<T>()));
    return ACLNN_ERR_PARAM_INVALID;
  }
  if (it->second.kind != kind_of<T>()) {
    set_error("%s: %p is an %s, not an %s", fn, static_cast<const void*>(p), kind_name(it->second.kind),
              kind_name(kind_of<T>()));
    return ACLNN_ERR_PARAM_INVALID;
  }
  return ACLNN_SUCCESS;
}

// Unregisters a live object of kind T that no list holds; the caller then deletes it.
template <class T>
aclnnStatus unregister(const char* fn, const T* p) {
  std::lock_guard<std::mutex> lock(g_meta_mutex);
  if (aclnnStatus st = check_live_locked(fn, p)) return st;
  auto it = live_objects().find(p);
  if (it->second.owner != nullptr) {
    set_error("%s: %p is held by scalar list %p, which destroys it (call aclDestroyScalarList instead)", fn,
              static_cast<const void*>(p), it->second.owner);
    return ACLNN_ERR_PARAM_INVALID;
  }
  live_objects().erase(it);
  return ACLNN_SUCCESS;
}

template <class T>
aclnnStatus destroy(const char* fn, const T* p) {
  return nn_entry(fn, [&]() -> aclnnStatus {
    if (p == nullptr) return ACLNN_SUCCESS;
    if (aclnnStatus st = unregister(fn, p)) return st;
    delete p;
    return ACLNN_SUCCESS;
  });
}

// Element counts, read by the size getters.
template <class A>
uint64_t element_count(const A& a) { return a.values.size(); }
uint64_t element_count(const aclTensorList& l) { return l.tensors.size(); }
uint64_t element_count(const aclScalarList& l) { return l.scalars.size(); }

// Size getter: the element count of a live T, read under the registry lock so the object
// cannot be destroyed meanwhile.
template <class T>
aclnnStatus get_size(const char* fn, const T* p, uint64_t* size) {
  return nn_entry(fn, [&]() -> aclnnStatus {
    if (p == nullptr || size == nullptr) {
      set_error("%s: %s is null", fn, p == nullptr ? kind_name(kind_of<T>()) : "size");
      return ACLNN_ERR_PARAM_NULLPTR;
    }
    std::lock_guard<std::mutex> lock(g_meta_mutex);
    if (aclnnStatus st = check_live_locked(fn, p)) return st;
    *size = element_count(*p);
    return ACLNN_SUCCESS;
  });
}

// Array contents.  bool is read as bytes: a C client may store any byte in a bool, and
// loading that as bool is undefined.
template <class T>
void copy_values(const T* value, uint64_t size, std::vector<T>* values) {
  values->assign(value, value + size);
}
void copy_values(const bool* value, uint64_t size, std::vector<unsigned char>* values) {
  values->resize(size);
  std::memcpy(values->data(), value, size);
  for (auto& b : *values) b = b != 0;
}

std::vector<const aclTensor*>& elements(aclTensorList& l) { return l.tensors; }
std::vector<const aclScalar*>& elements(aclScalarList& l) { return l.scalars; }
template <class A>
auto& elements(A& a) { return a.values; }

// The array and list creators: `size` values copied into a new A, which `finish` registers
// and returns (or refuses: nullptr, message set).
template <class A, class T, class Finish>
A* create_filled(const char* fn, const T* value, uint64_t size, Finish finish) {
  return create_entry<A>(fn, [&]() -> A* {
    if (!check_count(fn, value, size)) return nullptr;
    auto a = std::make_unique<A>();
    if (size > 0) copy_values(value, size, &elements(*a));
    return finish(std::move(a));
  });
}

template <class A, class T>
A* create_array(const char* fn, const T* value, uint64_t size) {
  return create_filled<A>(fn, value, size, [](std::unique_ptr<A> a) { return publish(std::move(a)); });
}

}  // namespace
}  // namespace addlora_rt

using namespace addlora_rt;

extern "C" {

// ---- scalars ------------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclScalar* aclCreateScalar(void* value, aclDataType dataType) {
  const char* const fn = __func__;
  return create_entry<aclScalar>(fn, [&]() -> aclScalar* {
    const int64_t bits = enum_bits(dataType);
    const size_t bytes = (bits >= -64 && bits <= 63) ? aclDataTypeSize(static_cast<aclDataType>(bits)) : 0;
    if (bytes == 0 || bytes > sizeof(aclScalar::bytes)) {
      set_error("%s: dataType %lld has no whole-byte size (undefined, string, sub-byte or unknown)", fn,
                static_cast<long long>(bits));
      return nullptr;
    }
    if (value == nullptr) {
      set_error("%s: value is null", fn);
      return nullptr;
    }
    auto s = std::make_unique<aclScalar>();
    s->dtype = static_cast<aclDataType>(bits);
    std::memcpy(s->bytes, value, bytes);
    return publish(std::move(s));
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclDestroyScalar(const aclScalar* scalar) {
  return destroy(__func__, scalar);
}

// ---- arrays -------------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclIntArray* aclCreateIntArray(const int64_t* value, uint64_t size) {
  return create_array<aclIntArray>(__func__, value, size);
}
ACL_FUNC_VISIBILITY aclFloatArray* aclCreateFloatArray(const float* value, uint64_t size) {
  return create_array<aclFloatArray>(__func__, value, size);
}
ACL_FUNC_VISIBILITY aclBoolArray* aclCreateBoolArray(const bool* value, uint64_t size) {
  return create_array<aclBoolArray>(__func__, value, size);
}

ACL_FUNC_VISIBILITY aclnnStatus aclDestroyIntArray(const aclIntArray* array) {
  return destroy(__func__, array);
}
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyFloatArray(const aclFloatArray* array) {
  return destroy(__func__, array);
}
ACL_FUNC_VISIBILITY aclnnStatus aclDestroyBoolArray(const aclBoolArray* array) {
  return destroy(__func__, array);
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetIntArraySize(const aclIntArray* array, uint64_t* size) {
  return get_size(__func__, array, size);
}
ACL_FUNC_VISIBILITY aclnnStatus aclGetFloatArraySize(const aclFloatArray* array, uint64_t* size) {
  return get_size(__func__, array, size);
}
ACL_FUNC_VISIBILITY aclnnStatus aclGetBoolArraySize(const aclBoolArray* array, uint64_t* size) {
  return get_size(__func__, array, size);
}

// ---- lists --------------------------------------------------------------------------------

ACL_FUNC_VISIBILITY aclTensorList* aclCreateTensorList(const aclTensor* const* value, uint64_t size) {
  const char* const fn = __func__;
  return create_filled<aclTensorList>(fn, value, size, [&](std::unique_ptr<aclTensorList> list) -> aclTensorList* {
    // Register the list first: once its tensors have changed hands nothing may fail.
    {
      std::lock_guard<std::mutex> lock(g_meta_mutex);
      live_objects().emplace(list.get(), Entry{Kind::tensor_list, nullptr});
    }
    auto unregister_list = [&] {
      std::lock_guard<std::mutex> lock(g_meta_mutex);
      live_objects().erase(list.get());
    };
    aclnnStatus st;
    try {
      st = adopt_tensors(fn, list->tensors.data(), size, list.get());  // throws only before any change
    } catch (...) {
      unregister_list();
      throw;
    }
    if (st != ACLNN_SUCCESS) {
      unregister_list();
      return nullptr;
    }
    return list.release();
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclDestroyTensorList(const aclTensorList* array) {
  const char* const fn = __func__;
  return nn_entry(fn, [&]() -> aclnnStatus {
    if (array == nullptr) return ACLNN_SUCCESS;
    if (aclnnStatus st = unregister(fn, array)) return st;
    destroy_owned_tensors(array->tensors, array);
    delete array;
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetTensorListSize(const aclTensorList* tensorList, uint64_t* size) {
  return get_size(__func__, tensorList, size);
}

ACL_FUNC_VISIBILITY aclScalarList* aclCreateScalarList(const aclScalar* const* value, uint64_t size) {
  const char* const fn = __func__;
  return create_filled<aclScalarList>(fn, value, size, [&](std::unique_ptr<aclScalarList> list) -> aclScalarList* {
    std::unordered_set<const aclScalar*> seen;
    std::lock_guard<std::mutex> lock(g_meta_mutex);
    for (uint64_t i = 0; i < size; ++i) {
      const aclScalar* s = list->scalars[i];
      if (s == nullptr) {
        set_error("%s: value[%llu] is null", fn, static_cast<unsigned long long>(i));
        return nullptr;
      }
      if (check_live_locked(fn, s) != ACLNN_SUCCESS) return nullptr;
      const void* owner = live_objects().find(s)->second.owner;
      if (owner != nullptr) {
        set_error("%s: value[%llu] = %p is already held by scalar list %p (a scalar can belong to one list only)",
                  fn, static_cast<unsigned long long>(i), static_cast<const void*>(s), owner);
        return nullptr;
      }
      if (!seen.insert(s).second) {
        set_error("%s: value[%llu] = %p appears twice in the list", fn, static_cast<unsigned long long>(i),
                  static_cast<const void*>(s));
        return nullptr;
      }
    }
    // The only step that may throw comes before the scalars change hands.
    live_objects().emplace(list.get(), Entry{Kind::scalar_list, nullptr});
    for (const aclScalar* s : list->scalars) live_objects().find(s)->second.owner = list.get();
    return list.release();
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclDestroyScalarList(const aclScalarList* array) {
  const char* const fn = __func__;
  return nn_entry(fn, [&]() -> aclnnStatus {
    if (array == nullptr) return ACLNN_SUCCESS;
    {
      std::lock_guard<std::mutex> lock(g_meta_mutex);
      if (aclnnStatus st = check_live_locked(fn, array)) return st;
      live_objects().erase(array);
      for (const aclScalar* s : array->scalars) {
        auto it = live_objects().find(s);
        if (it != live_objects().end() && it->second.owner == array) live_objects().erase(it);
      }
    }
    for (const aclScalar* s : array->scalars) delete s;
    delete array;
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclGetScalarListSize(const aclScalarList* scalarList, uint64_t* size) {
  return get_size(__func__, scalarList, size);
}

}  // extern "C"
