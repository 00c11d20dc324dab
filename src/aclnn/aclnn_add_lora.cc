// aclnnAddLora on the host: aclTensors become addlora::TensorViews, the C++ planner validates
// them under Rules::cann (exactly what the NPU accepts), and the plan runs on the stream.
#include "aclnnop/aclnn_add_lora.h"

#include <limits>
#include <memory>
#include <new>
#include <string>

#include "addlora/addlora.h"
#include "core/fault.h"
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

  std::function<void()> bind(void* workspace) override {
    if (repointed) {
      addlora::Plan fresh;
      std::string message;
      const addlora::Status st = addlora::make_plan(args, addlora::Rules::cann, &fresh, &message);
      if (st != addlora::Status::ok) {
        addlora_rt::set_error("%s (after re-pointing buffers)", message.c_str());
        return {};
      }
      plan = std::move(fresh);  // same shapes, so the same workspace size
      repointed = false;
    }
    auto captured = std::make_shared<addlora::Plan>(plan.clone());
    return [captured, workspace] { captured->run(workspace); };
  }

  bool set_input_addr(uint64_t index, void* addr) override {
    static constexpr addlora::TensorView addlora::Arguments::*kInputs[] = {
        &addlora::Arguments::y, &addlora::Arguments::x, &addlora::Arguments::weight_b, &addlora::Arguments::indices,
        &addlora::Arguments::weight_a};
    if (index >= 5 || (index == 4 && args.weight_a.ndim == 0)) return false;
    (args.*kInputs[index]).data = addr;
    // In place stays in place: out is the same view as y.
    if (index == 0 && in_place()) args.out.data = addr;
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

aclnnStatus fail(aclnnStatus code, const std::string& message) {
  addlora_rt::set_error("%s", message.c_str());
  return code;
}

}  // namespace

extern "C" aclnnStatus aclnnAddLoraGetWorkspaceSize(const aclTensor* y, const aclTensor* x, const aclTensor* weightB,
                                                    const aclTensor* indices, const aclTensor* weightAOptional,
                                                    int64_t layerIdx, double scale, int64_t yOffset,
                                                    int64_t ySliceSize, const aclTensor* out,
                                                    uint64_t* workspaceSize, aclOpExecutor** executor) {
  const struct { const char* name; const void* p; } required[] = {
      {"y", y}, {"x", x}, {"weightB", weightB}, {"indices", indices}, {"out", out},
      {"workspaceSize", workspaceSize}, {"executor", executor}};
  for (const auto& r : required)
    if (r.p == nullptr) return fail(ACLNN_ERR_PARAM_NULLPTR, std::string("AddLora: ") + r.name + " must not be null");
  const struct { const char* name; const aclTensor* t; } tensors[] = {
      {"y", y}, {"x", x}, {"weightB", weightB}, {"indices", indices}, {"weightA", weightAOptional}, {"out", out}};
  for (const auto& t : tensors)
    if (t.t != nullptr && !addlora_rt::is_live_tensor(t.t))
      return fail(ACLNN_ERR_PARAM_INVALID,
                  std::string("AddLora: ") + t.name + " is not a live aclTensor (destroyed, or not from aclCreateTensor)");
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
    std::string message;
    const addlora::Status st = addlora::make_plan(args, addlora::Rules::cann, &e->plan, &message);
    if (st != addlora::Status::ok) return fail(static_cast<aclnnStatus>(st), message);
    e->workspace_size = e->plan.workspace_bytes();
    const uint64_t bytes = e->workspace_size;
    aclOpExecutor* handle = addlora_rt::register_executor(std::move(e));
    if (handle == nullptr) return fail(ACLNN_ERR_INNER, "AddLora: cannot register the executor");
    *workspaceSize = bytes;
    *executor = handle;
    addlora_rt::clear_error();
    return ACLNN_SUCCESS;
  } catch (const std::bad_alloc&) {
    return fail(ACLNN_ERR_INNER, "AddLora: out of memory while planning");
  } catch (...) {
    return fail(ACLNN_ERR_INNER, "AddLora: internal error while planning");
  }
}

extern "C" aclnnStatus aclnnAddLora(void* workspace, uint64_t workspaceSize, aclOpExecutor* executor,
                                    aclrtStream stream) {
  return addlora_rt::launch_executor(executor, workspace, workspaceSize, stream);
}
