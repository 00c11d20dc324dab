// libnnopbase: the executor registry behind phase two of every aclnn operator.
// An executor handle is live from register_executor() until it is consumed (single-use,
// launched once) or destroyed (aclDestroyAclOpExecutor).  Handles are tokens that are never
// reused (not the executor's address), so a stale handle can never reach a newer executor
// that happens to live at the same address.  Queued runs hold shared
// ownership, so destroying or consuming a handle never frees an executor a stream is about
// to run; the last reference (registry or task) deletes it.
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "runtime/guard.h"
#include "runtime/internal.h"

namespace addlora_rt {
namespace {

struct Entry {
  std::shared_ptr<aclOpExecutor> executor;
  bool repeatable = false;
};

std::mutex g_mutex;
std::unordered_map<const aclOpExecutor*, Entry>& registry() {  // keyed by handle token
  static auto* map = new std::unordered_map<const aclOpExecutor*, Entry>;  // never destroyed: see runtime.cc
  return *map;
}
uintptr_t g_next_token = 0x7a0000;  // guarded by g_mutex; 16-byte steps, never reused

// Caller holds g_mutex.
Entry* find_locked(const char* fn, const aclOpExecutor* e) {
  auto it = registry().find(e);
  if (it == registry().end()) {
    set_error("%s: executor %p is not live (it already ran as a single-use executor, was destroyed, "
              "or was never created)", fn, static_cast<const void*>(e));
    return nullptr;
  }
  return &it->second;
}

aclnnStatus set_addr(const char* fn, bool input, aclOpExecutor* executor, size_t index, aclTensor* tensor,
                     void* addr) {
  if (executor == nullptr || tensor == nullptr) {
    set_error("%s: %s is null", fn, executor == nullptr ? "executor" : "tensor");
    return ACLNN_ERR_INNER_NULLPTR;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  Entry* entry = find_locked(fn, executor);
  if (entry == nullptr) return ACLNN_ERR_PARAM_INVALID;
  if (!is_live_tensor(tensor)) {
    set_error("%s: tensor %p is not live (destroyed, or not from aclCreateTensor)", fn, static_cast<void*>(tensor));
    return ACLNN_ERR_PARAM_INVALID;
  }
  const bool ok = input ? entry->executor->set_input_addr(index, addr) : entry->executor->set_output_addr(index, addr);
  if (!ok) {
    set_error("%s: %s index %zu is out of range for this operator", fn, input ? "input" : "output", index);
    return ACLNN_ERR_PARAM_INVALID;
  }
  set_tensor_data(tensor, addr);  // under the tensor registry's lock: phase one may read it
  return ACLNN_SUCCESS;
}

}  // namespace

aclOpExecutor* register_executor(std::unique_ptr<aclOpExecutor> e) {
  if (!e) {
    set_error("register_executor: null executor");
    return nullptr;
  }
  try {
    Entry entry;
    entry.executor = std::shared_ptr<aclOpExecutor>(std::move(e));
    std::lock_guard<std::mutex> lock(g_mutex);
    g_next_token += 16;
    auto* handle = reinterpret_cast<aclOpExecutor*>(g_next_token);
    registry()[handle] = std::move(entry);
    return handle;
  } catch (...) {  // e (or the shared_ptr owning it) frees the executor on the way out
    set_error("register_executor: out of host memory");
    return nullptr;
  }
}

aclnnStatus launch_executor(aclOpExecutor* e, void* workspace, uint64_t workspace_size, aclrtStream stream) {
  return nn_entry("launch_executor", [&]() -> aclnnStatus {
    if (e == nullptr) {
      set_error("phase two: executor is null");
      return ACLNN_ERR_PARAM_NULLPTR;
    }
    std::shared_ptr<aclOpExecutor> owner;
    std::function<void()> task;
    bool consumed = false;
    {
      // Checked, bound and (single-use) taken out of the registry under the lock, so two
      // threads cannot both launch one single-use executor; the run itself is outside it.
      std::lock_guard<std::mutex> lock(g_mutex);
      Entry* entry = find_locked("phase two", e);
      if (entry == nullptr) return ACLNN_ERR_PARAM_INVALID;
      const uint64_t needed = entry->executor->workspace_size;
      if (workspace == nullptr && workspace_size > 0) {
        set_error("phase two: workspace is null but workspaceSize is %llu (phase one reported %llu bytes)",
                  static_cast<unsigned long long>(workspace_size), static_cast<unsigned long long>(needed));
        return ACLNN_ERR_PARAM_NULLPTR;
      }
      if (workspace_size < needed) {
        set_error("phase two: workspaceSize %llu is smaller than the %llu bytes phase one reported",
                  static_cast<unsigned long long>(workspace_size), static_cast<unsigned long long>(needed));
        return ACLNN_ERR_PARAM_INVALID;
      }
      owner = entry->executor;
      consumed = !entry->repeatable;
      task = owner->bind(workspace, consumed);
      if (!task) return ACLNN_ERR_PARAM_INVALID;  // the executor refused its current arguments (it set the message)
      if (consumed) registry().erase(e);  // the task owns it now
    }
    const aclError err = run_or_enqueue(stream, [owner, task = std::move(task)] { task(); });
    if (err != ACL_SUCCESS) {  // not launched: a single-use executor goes back, as it was
      const std::string why = aclGetRecentErrMsg();
      if (consumed) {
        std::lock_guard<std::mutex> lock(g_mutex);
        registry()[e].executor = std::move(owner);  // tokens are never reused: e is still free
      }
      set_error("phase two: cannot launch on stream %p (aclError %d): %s", stream, err, why.c_str());
      return ACLNN_ERR_RUNTIME_ERROR;
    }
    return ACLNN_SUCCESS;
  });
}

}  // namespace addlora_rt

using namespace addlora_rt;

extern "C" {

ACL_FUNC_VISIBILITY aclnnStatus aclSetAclOpExecutorRepeatable(aclOpExecutor* executor) {
  return nn_entry("aclSetAclOpExecutorRepeatable", [&]() -> aclnnStatus {
    if (executor == nullptr) {
      set_error("aclSetAclOpExecutorRepeatable: executor is null");
      return ACLNN_ERR_INNER_NULLPTR;
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    Entry* entry = find_locked("aclSetAclOpExecutorRepeatable", executor);
    if (entry == nullptr) return ACLNN_ERR_PARAM_INVALID;
    entry->repeatable = true;
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclDestroyAclOpExecutor(aclOpExecutor* executor) {
  return nn_entry("aclDestroyAclOpExecutor", [&]() -> aclnnStatus {
    if (executor == nullptr) {
      set_error("aclDestroyAclOpExecutor: executor is null");
      return ACLNN_ERR_INNER_NULLPTR;
    }
    std::shared_ptr<aclOpExecutor> last;  // released after the lock: its destructor is operator code
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      Entry* entry = find_locked("aclDestroyAclOpExecutor", executor);
      if (entry == nullptr) return ACLNN_ERR_PARAM_INVALID;
      last = std::move(entry->executor);
      registry().erase(executor);
    }
    return ACLNN_SUCCESS;
  });
}

ACL_FUNC_VISIBILITY aclnnStatus aclSetInputTensorAddr(aclOpExecutor* executor, const size_t index, aclTensor* tensor,
                                                      void* addr) {
  return nn_entry("aclSetInputTensorAddr",
                    [&] { return set_addr("aclSetInputTensorAddr", true, executor, index, tensor, addr); });
}

ACL_FUNC_VISIBILITY aclnnStatus aclSetOutputTensorAddr(aclOpExecutor* executor, const size_t index,
                                                       aclTensor* tensor, void* addr) {
  return nn_entry("aclSetOutputTensorAddr",
                    [&] { return set_addr("aclSetOutputTensorAddr", false, executor, index, tensor, addr); });
}

}  // extern "C"
