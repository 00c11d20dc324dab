// aclnnAddLora on the host: aclTensors become addlora::TensorViews, the C++ planner validates
// them under Rules::cann (exactly what the NPU accepts, docs/contract.md §2), and the plan runs
// on the stream (docs/design.md follows one call through).
#include "aclnnop/aclnn_add_lora.h"

#include <limits>
#include <memory>
#include <new>
#include <string>

#include "addlora/addlora.h"
#include "core/fault.h"
#include "core/fields.h"
#include "core/status.h"
#include "runtime/internal.h"

namespace {

using addlora::DType;
using addlora::Layout;
using addlora::TensorView;

TensorView to_view(const aclTensor* t) {
  TensorView v;
  if (t == nullptr) return v;
  v.data = t->data;
  v.dtype = static_cast<DType>(t->dtype);
  v.layout = static_cast<Layout>(t->format);
  const size_t n = t->view_dims.size();
  v.ndim = n > 64 ? 64 : static_cast<int32_t>(n);  // any rank but the right one fails validation
  for (size_t i = 0; i < n && i < 8; ++i) {
    v.dims[i] = t->view_dims[i];
    v.strides[i] = i < t->strides.size() ? t->strides[i] : 0;
  }
  v.offset = t->offset;
  // Storage dims may be the NZ shape or a flat [numel]: only their element count matters.
  int64_t elems = 1;
  for (int64_t d : t->storage_dims) {
    if (d < 0 || __builtin_mul_overflow(elems, d, &elems)) {
      elems = d < 0 ? 0 : std::numeric_limits<int64_t>::max();
      if (d < 0) break;
    }
  }
  v.storage_elems = elems;
  return v;
}

// Holds the arguments (so re-pointed buffers can be re-validated at the next launch) and the
// plan made from them.
struct AddLoraExecutor final : aclOpExecutor {
  addlora::Arguments args;
  addlora::Plan plan;
  bool repointed = false;  // args changed since `plan` was made

  void run(void* workspace) override { plan.run(workspace); }

  std::function<void()> bind(void* workspace, bool last) override {
    if (repointed) {
      addlora::Plan fresh;
      addlora::Error error;
      if (addlora::make_plan(args, addlora::Rules::cann, &fresh, error) != addlora::Status::ok) {
        addlora_rt::set_error("%s (after re-pointing buffers)", error.message.c_str());
        return {};  // phase two reports ACLNN_ERR_PARAM_INVALID
      }
      plan = std::move(fresh);  // same shapes, so the same workspace size
      repointed = false;
    }
    if (last) return [this, workspace] { plan.run(workspace); };  // launch_executor keeps us alive
    auto captured = std::make_shared<addlora::Plan>(plan.clone());  // later launches may re-plan
    return [captured, workspace] { captured->run(workspace); };
  }

  bool set_input_addr(uint64_t index, void* addr) override {
    using addlora::detail::kInputs;
    if (index >= addlora::detail::kNumInputs || (index == addlora::kInputWeightA && args.weight_a.ndim == 0))
      return false;
    (args.*kInputs[index].member).data = addr;
    // In place stays in place: out is the same view as y.
    if (index == addlora::kInputY && in_place()) args.out.data = addr;
    repointed = true;
    return true;
  }

  bool set_output_addr(uint64_t index, void* addr) override {
    if (index != 0) return false;
    args.out.data = addr;
    repointed = true;
    return true;
  }

 private:
  bool in_place() const { return args.out.data == args.y.data && args.out.offset == args.y.offset; }
};

// The aclnn surface's one mapping: an Error becomes the thread's message and the aclnnStatus
// (addlora::Status values are the aclnnStatus codes by construction).
aclnnStatus report(const addlora::Error& e) {
  static_assert(static_cast<aclnnStatus>(addlora::Status::null_pointer) == ACLNN_ERR_PARAM_NULLPTR &&
                    static_cast<aclnnStatus>(addlora::Status::invalid_param) == ACLNN_ERR_PARAM_INVALID &&
                    static_cast<aclnnStatus>(addlora::Status::internal) == ACLNN_ERR_INNER &&
                    static_cast<aclnnStatus>(addlora::Status::invalid_shape) == ACLNN_ERR_INNER_TILING_ERROR,
                "addlora::Status and aclnnStatus disagree");
  addlora_rt::set_error("%s", e.message.c_str());
  return static_cast<aclnnStatus>(e.status);
}

aclnnStatus report(addlora::Status status, addlora::ErrorKind kind, const std::string& text) {
  addlora::Error e;
  addlora::detail::fail(&e, status, kind, "", text);
  return report(e);
}

}  // namespace

extern "C" aclnnStatus aclnnAddLoraGetWorkspaceSize(const aclTensor* y, const aclTensor* x, const aclTensor* weightB,
                                                    const aclTensor* indices, const aclTensor* weightAOptional,
                                                    int64_t layerIdx, double scale, int64_t yOffset,
                                                    int64_t ySliceSize, const aclTensor* out,
                                                    uint64_t* workspaceSize, aclOpExecutor** executor) {
  using addlora::ErrorKind;
  using addlora::Status;
  const struct { const char* name; const void* p; } required[] = {
      {"y", y}, {"x", x}, {"weightB", weightB}, {"indices", indices}, {"out", out},
      {"workspaceSize", workspaceSize}, {"executor", executor}};
  for (const auto& r : required)
    if (r.p == nullptr) return report(Status::null_pointer, ErrorKind::null, std::string(r.name) + " must not be null");
  const char* const names[] = {"y", "x", "weightB", "indices", "weightA", "out"};
  const aclTensor* const tensors[] = {y, x, weightB, indices, weightAOptional, out};
  const int dead = addlora_rt::first_dead_tensor(tensors, 6);
  if (dead >= 0)
    return report(Status::invalid_param, ErrorKind::memory,
                  std::string(names[dead]) + " is not a live aclTensor (destroyed, or not from aclCreateTensor)");
  try {
    addlora::Arguments args;
    args.y = to_view(y);
    args.x = to_view(x);
    args.weight_b = to_view(weightB);
    args.indices = to_view(indices);
    args.weight_a = to_view(weightAOptional);
    args.out = to_view(out);
    args.layer_idx = layerIdx;
    args.scale = scale;
    args.y_offset = yOffset;
    args.y_slice_size = ySliceSize;

    if (addlora::detail::allocation_fails()) throw std::bad_alloc();
    std::unique_ptr<AddLoraExecutor> e(new AddLoraExecutor);
    e->args = args;
    addlora::Error error;
    if (addlora::make_plan(args, addlora::Rules::cann, &e->plan, error) != Status::ok) return report(error);
    e->workspace_size = e->plan.workspace_bytes();
    const uint64_t bytes = e->workspace_size;
    aclOpExecutor* handle = addlora_rt::register_executor(std::move(e));
    if (handle == nullptr) return report(Status::internal, ErrorKind::internal, "cannot register the executor");
    *workspaceSize = bytes;
    *executor = handle;
    addlora_rt::clear_error();
    return ACLNN_SUCCESS;
  } catch (const std::bad_alloc&) {
    return report(Status::internal, ErrorKind::internal, "out of memory while planning");
  } catch (...) {
    return report(Status::internal, ErrorKind::internal, "internal error while planning");
  }
}

extern "C" aclnnStatus aclnnAddLora(void* workspace, uint64_t workspaceSize, aclOpExecutor* executor,
                                    aclrtStream stream) {
  return addlora_rt::launch_executor(executor, workspace, workspaceSize, stream);
}
