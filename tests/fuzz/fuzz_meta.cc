// Fuzz harness: the acl_meta.h objects (tensors, scalars, int/float/bool arrays, tensor and
// scalar lists) driven by arbitrary sequences of create / destroy / size calls, including
// NULL and huge counts, stale handles, handles of the wrong kind, duplicates and elements
// already held by another list.  A model of what acl_meta.h documents predicts every
// result; any difference, a failure without a message, a crash or (under ASan) a double free
// or leak is a finding.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "acl/acl.h"
#include "aclnn/aclnn_base.h"

namespace {

[[noreturn]] void finding(const char* what, long long got, long long want) {
  std::fprintf(stderr, "FINDING: %s (got %lld, expected %lld): %s\n", what, got, want, aclGetRecentErrMsg());
  std::abort();
}

enum Kind { kTensor, kScalar, kIntArray, kFloatArray, kBoolArray, kTensorList, kScalarList, kKinds };
enum State { kFree, kOwned, kDead };

struct Slot {
  Kind kind = kTensor;
  const void* handle = nullptr;
  State state = kFree;
  uint64_t size = 0;            // element count for arrays and lists
  std::vector<size_t> members;  // lists: slot indices of the elements
};

// Status of destroying `p` as kind k through the matching function.
aclnnStatus destroy_as(Kind k, const void* p) {
  switch (k) {
    case kTensor: return aclDestroyTensor(static_cast<const aclTensor*>(p));
    case kScalar: return aclDestroyScalar(static_cast<const aclScalar*>(p));
    case kIntArray: return aclDestroyIntArray(static_cast<const aclIntArray*>(p));
    case kFloatArray: return aclDestroyFloatArray(static_cast<const aclFloatArray*>(p));
    case kBoolArray: return aclDestroyBoolArray(static_cast<const aclBoolArray*>(p));
    case kTensorList: return aclDestroyTensorList(static_cast<const aclTensorList*>(p));
    default: return aclDestroyScalarList(static_cast<const aclScalarList*>(p));
  }
}

// Size getter as kind k (tensors and scalars have none: -1 = not applicable).
aclnnStatus size_as(Kind k, const void* p, uint64_t* n) {
  switch (k) {
    case kIntArray: return aclGetIntArraySize(static_cast<const aclIntArray*>(p), n);
    case kFloatArray: return aclGetFloatArraySize(static_cast<const aclFloatArray*>(p), n);
    case kBoolArray: return aclGetBoolArraySize(static_cast<const aclBoolArray*>(p), n);
    case kTensorList: return aclGetTensorListSize(static_cast<const aclTensorList*>(p), n);
    case kScalarList: return aclGetScalarListSize(static_cast<const aclScalarList*>(p), n);
    default: return -1;
  }
}

struct Model {
  std::vector<Slot> slots;

  // A new object may reuse the address of a dead one: that dead slot no longer means "stale".
  void added(Kind k, const void* p, uint64_t size) {
    for (auto& s : slots)
      if (s.state == kDead && s.handle == p) s.handle = nullptr;  // forget it (NULL is tested separately)
    Slot s;
    s.kind = k;
    s.handle = p;
    s.size = size;
    slots.push_back(s);
  }

  void expect_failure_message(const char* what) {
    if (aclGetRecentErrMsg()[0] == '\0') finding(what, 0, 1);
  }

  void destroy(size_t i, Kind as) {
    Slot& s = slots[i];
    if (s.handle == nullptr) return;
    aclGetRecentErrMsg();
    const aclnnStatus st = destroy_as(as, s.handle);
    const bool ok = as == s.kind && s.state == kFree;
    if (ok) {
      if (st != ACLNN_SUCCESS) finding("destroy of a live, unheld handle failed", st, 0);
      s.state = kDead;
      for (size_t m : s.members) slots[m].state = kDead;  // the list destroyed its elements
    } else {
      if (st != ACLNN_ERR_PARAM_INVALID) finding("destroy of a stale, held or wrong-kind handle", st, ACLNN_ERR_PARAM_INVALID);
      expect_failure_message("destroy refused without a message");
    }
  }

  void size(size_t i, Kind as) {
    Slot& s = slots[i];
    if (s.handle == nullptr || as == kTensor || as == kScalar) return;
    uint64_t n = 0xdead;
    aclGetRecentErrMsg();
    const aclnnStatus st = size_as(as, s.handle, &n);
    if (as == s.kind && s.state != kDead) {
      if (st != ACLNN_SUCCESS || n != s.size) finding("size of a live handle", st == 0 ? (long long)n : st, s.size);
    } else {
      if (st != ACLNN_ERR_PARAM_INVALID || n != 0xdead) finding("size of a stale or wrong-kind handle", st, ACLNN_ERR_PARAM_INVALID);
      expect_failure_message("size refused without a message");
    }
  }

  void make_list(FuzzedDataProvider& in, bool tensors) {
    const Kind elem = tensors ? kTensor : kScalar;
    const size_t n = in.ConsumeIntegralInRange<size_t>(0, 6);
    std::vector<const void*> handles;
    std::vector<size_t> picks;
    bool ok = true;
    for (size_t j = 0; j < n; ++j) {
      if (slots.empty() || in.ConsumeIntegralInRange(0, 9) == 0) {
        handles.push_back(nullptr);
        ok = false;
        continue;
      }
      const size_t k = in.ConsumeIntegralInRange<size_t>(0, slots.size() - 1);
      const Slot& s = slots[k];
      handles.push_back(s.handle);
      bool dup = false;
      for (size_t p : picks) dup = dup || slots[p].handle == s.handle;
      if (s.handle == nullptr || s.kind != elem || s.state != kFree || dup) ok = false;
      picks.push_back(k);
    }
    aclGetRecentErrMsg();
    const void* list =
        tensors ? static_cast<const void*>(aclCreateTensorList(reinterpret_cast<const aclTensor* const*>(handles.data()), n))
                : static_cast<const void*>(aclCreateScalarList(reinterpret_cast<const aclScalar* const*>(handles.data()), n));
    if (ok != (list != nullptr)) finding("list creation", list != nullptr, ok);
    if (!list) return expect_failure_message("list refused without a message");
    for (size_t p : picks) slots[p].state = kOwned;
    added(tensors ? kTensorList : kScalarList, list, n);
    slots.back().members = picks;
  }

  void make_array(FuzzedDataProvider& in, Kind k) {
    uint64_t n = in.ConsumeIntegralInRange<uint64_t>(0, 64);
    std::vector<int64_t> buf(64);
    for (auto& v : buf) v = in.ConsumeIntegral<int64_t>();  // any bits, bools included
    const void* data = buf.data();
    bool ok = true;
    switch (in.ConsumeIntegralInRange(0, 7)) {
      case 0: data = nullptr; ok = n == 0; break;                                    // NULL value
      case 1: n = (uint64_t{1} << 31) + in.ConsumeIntegral<uint32_t>() + 1; ok = false; break;  // huge
      case 2: n = static_cast<uint64_t>(-in.ConsumeIntegralInRange<int64_t>(1, 1 << 20)); ok = false; break;  // negative
      default: break;
    }
    aclGetRecentErrMsg();
    const void* a = k == kIntArray     ? static_cast<const void*>(aclCreateIntArray(static_cast<const int64_t*>(data), n))
                    : k == kFloatArray ? static_cast<const void*>(aclCreateFloatArray(static_cast<const float*>(data), n))
                                       : static_cast<const void*>(aclCreateBoolArray(static_cast<const bool*>(data), n));
    if (ok != (a != nullptr)) finding("array creation", a != nullptr, ok);
    if (!a) return expect_failure_message("array refused without a message");
    added(k, a, n);
  }

  void make_scalar(FuzzedDataProvider& in) {
    const int dt = in.ConsumeIntegralInRange(-64, 63);  // every value the enum can hold
    unsigned char value[16];
    for (auto& b : value) b = in.ConsumeIntegral<unsigned char>();
    const bool null_value = in.ConsumeIntegralInRange(0, 7) == 0;
    aclGetRecentErrMsg();
    const aclDataType dtype = static_cast<aclDataType>(dt);
    const aclScalar* s = aclCreateScalar(null_value ? nullptr : value, dtype);
    const bool ok = !null_value && aclDataTypeSize(dtype) > 0;
    if (ok != (s != nullptr)) finding("scalar creation", s != nullptr, ok);
    if (!s) return expect_failure_message("scalar refused without a message");
    added(kScalar, s, 0);
  }

  void make_tensor() {
    const int64_t dims[2] = {2, 3};
    const aclTensor* t = aclCreateTensor(dims, 2, ACL_FLOAT16, nullptr, 0, ACL_FORMAT_ND, dims, 2, nullptr);
    if (t == nullptr) finding("tensor creation", 0, 1);
    added(kTensor, t, 0);
  }

  // Lists first (they release their elements), then everything still the client's.
  void clean_up() {
    for (size_t i = 0; i < slots.size(); ++i)
      if ((slots[i].kind == kTensorList || slots[i].kind == kScalarList) && slots[i].state == kFree) destroy(i, slots[i].kind);
    for (size_t i = 0; i < slots.size(); ++i)
      if (slots[i].state == kFree) destroy(i, slots[i].kind);
    for (const auto& s : slots)
      if (s.state != kDead && s.handle != nullptr) finding("a handle survived the clean-up", 1, 0);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Model m;
  for (int step = 0; step < 64 && in.remaining_bytes() > 0; ++step) {
    const int op = in.ConsumeIntegralInRange(0, 11);
    auto pick = [&]() { return in.ConsumeIntegralInRange<size_t>(0, m.slots.size() - 1); };
    auto kind = [&]() { return static_cast<Kind>(in.ConsumeIntegralInRange(0, kKinds - 1)); };
    switch (op) {
      case 0: case 1: m.make_tensor(); break;
      case 2: m.make_scalar(in); break;
      case 3: m.make_array(in, kIntArray); break;
      case 4: m.make_array(in, kFloatArray); break;
      case 5: m.make_array(in, kBoolArray); break;
      case 6: m.make_list(in, true); break;
      case 7: m.make_list(in, false); break;
      case 8: if (!m.slots.empty()) { const size_t i = pick(); m.destroy(i, m.slots[i].kind); } break;
      case 9: if (!m.slots.empty()) { const size_t i = pick(); m.destroy(i, kind()); } break;
      case 10: if (!m.slots.empty()) { const size_t i = pick(); m.size(i, m.slots[i].kind); } break;
      default: if (!m.slots.empty()) { const size_t i = pick(); m.size(i, kind()); } break;
    }
  }
  m.clean_up();
  return 0;
}
