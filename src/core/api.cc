// The public C++ API (include/addlora/addlora.h) on top of validation, planning and kernels.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <memory>
#include <new>
#include <vector>

#include "core/fault.h"
#include "core/fields.h"
#include "core/plan_impl.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "model/dtype.h"

namespace addlora {

size_t dtype_size(DType t) { return model::element_size(t); }

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "FLOAT";
    case DType::f16: return "FLOAT16";
    case DType::bf16: return "BF16";
    case DType::i32: return "INT32";
    case DType::i64: return "INT64";
  }
  return "UNSUPPORTED";
}

TensorView TensorView::contiguous(void* data, DType dtype, std::initializer_list<int64_t> dims) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.ndim = static_cast<int32_t>(dims.size() > 8 ? 8 : dims.size());
  int i = 0;
  for (int64_t d : dims) {
    if (i == v.ndim) break;
    v.dims[i++] = d;
  }
  int64_t stride = 1;
  for (int k = v.ndim - 1; k >= 0; --k) {
    v.strides[k] = stride;
    // Saturate instead of overflowing: validation then rejects the view as too large.
    if (__builtin_mul_overflow(stride, v.dims[k] > 0 ? v.dims[k] : 1, &stride)) stride = INT64_MAX;
  }
  return v;
}

Plan::Plan() = default;
Plan::~Plan() = default;
Plan::Plan(Plan&&) noexcept = default;
Plan& Plan::operator=(Plan&&) noexcept = default;

bool Plan::valid() const { return impl_ != nullptr; }

Plan Plan::clone() const {
  Plan copy;
  if (impl_) copy.impl_.reset(new Impl(*impl_));
  return copy;
}
uint64_t Plan::workspace_bytes() const { return impl_ ? impl_->workspace : 0; }

void Plan::run(void* workspace) const {
  if (!impl_) return;
  kernels::execute(impl_->problems.data(), impl_->problems.size(), workspace);
}

namespace {
// Re-points `field` in every slice (shared inputs) or, for weights, in a single-slice plan.
bool repoint(Plan::Impl* impl, TensorView Arguments::*field, void* data) {
  if (!impl) return false;
  const bool per_slice = field == &Arguments::weight_a || field == &Arguments::weight_b;
  if (per_slice && impl->slices.size() != 1) return false;
  std::vector<void*> old;
  old.reserve(impl->slices.size());  // may throw before anything changed
  for (Arguments& a : impl->slices) {
    old.push_back((a.*field).data);
    (a.*field).data = data;
  }
  Status st;
  try {
    st = impl->rebuild(nullptr);
  } catch (const std::bad_alloc&) {
    st = Status::internal;
  }
  if (st != Status::ok) {
    for (size_t k = 0; k < old.size(); ++k) (impl->slices[k].*field).data = old[k];
    return false;
  }
  return true;
}
}  // namespace

bool Plan::set_input_data(int index, void* data) {
  if (index < 0 || index >= static_cast<int>(detail::kNumInputs)) return false;
  if (index == kInputWeightA && !(impl_ && detail::has_weight_a(impl_->slices.front()))) return false;
  return repoint(impl_.get(), detail::kInputs[index].member, data);
}

bool Plan::set_output_data(int index, void* data) {
  return index >= 0 && index < static_cast<int>(detail::kNumOutputs) &&
         repoint(impl_.get(), detail::kOutputs[index].member, data);
}

namespace {

// The C++ surface's one mapping: an Error becomes the returned status and, for the
// std::string* overloads, the message (written only on failure, as always).
Status report(const Error& e, std::string* message) {
  if (e.status != Status::ok && message) *message = e.message;
  return e.status;
}

}  // namespace

Status make_plan(const Arguments& args, Rules rules, Plan* plan, Error& error) {
  return make_plan(&args, 1, rules, plan, error);
}

Status make_plan(const Arguments* slices, size_t num_slices, Rules rules, Plan* plan, Error& error) {
  error = Error{};
  if (slices == nullptr || num_slices == 0)
    return detail::fail(&error, Status::null_pointer, ErrorKind::null, "", "slices must not be null or empty");
  if (plan == nullptr) return detail::fail(&error, Status::null_pointer, ErrorKind::null, "", "plan must not be null");
  std::unique_ptr<Plan::Impl> impl(detail::allocation_fails() ? nullptr : new (std::nothrow) Plan::Impl);
  if (!impl) return detail::out_of_memory(&error);
  try {
    impl->slices.assign(slices, slices + num_slices);
    impl->rules = rules;
    if (Status st = impl->rebuild(&error); st != Status::ok) return st;
  } catch (const std::bad_alloc&) {
    return detail::out_of_memory(&error);
  }
  plan->impl_ = std::move(impl);
  return Status::ok;
}

Status make_plan(const Arguments& args, Rules rules, Plan* plan, std::string* message) {
  return make_plan(&args, 1, rules, plan, message);
}

Status make_plan(const Arguments* slices, size_t num_slices, Rules rules, Plan* plan, std::string* message) {
  Error e;
  make_plan(slices, num_slices, rules, plan, e);
  return report(e, message);
}

Status add_lora(const Arguments& args, Rules rules, Error& error) { return add_lora(&args, 1, rules, error); }

Status add_lora(const Arguments* slices, size_t num_slices, Rules rules, Error& error) {
  detail::OneCall call;
  if (Status st = call.plan(slices, num_slices, rules, false, error); st != Status::ok) return st;
  detail::CallWorkspace ws;
  if (Status st = ws.acquire(call.workspace_bytes(), error); st != Status::ok) return st;
  call.run(ws.data());
  return Status::ok;
}

Status add_lora(const Arguments& args, Rules rules, std::string* message) {
  return add_lora(&args, 1, rules, message);
}

Status add_lora(const Arguments* slices, size_t num_slices, Rules rules, std::string* message) {
  Error e;
  add_lora(slices, num_slices, rules, e);
  return report(e, message);
}

namespace {

// The kind of a failed NZ conversion.  layout.cc checks the ND view's presence, then its
// dtype and layout, then the geometry of its dims, then sizes and memory; which of those
// failed follows from the status and the view itself (no message is read).
ErrorKind nz_kind(Status st, const TensorView& nd) {
  if (st == Status::null_pointer) return ErrorKind::null;
  if (st != Status::invalid_param) return ErrorKind::internal;
  if ((nd.dtype != DType::f16 && nd.dtype != DType::bf16) || nd.layout != Layout::nd) return ErrorKind::type;
  bool geometry = nd.ndim >= 2 && nd.ndim <= 8, empty = false;
  for (int i = 0; geometry && i < nd.ndim; ++i) {
    geometry = nd.dims[i] >= 0;
    empty = empty || nd.dims[i] == 0;
  }
  if (!geometry || (!empty && nz_elements(nd.dims, nd.ndim) == 0)) return ErrorKind::shape;
  return ErrorKind::memory;  // the NZ buffer's size, the view's offset, strides or storage
}

Status nz_report(Status st, const TensorView& nd, std::string&& message, Error& error) {
  error = Error{};
  if (st != Status::ok) error = Error{st, nz_kind(st, nd), std::move(message)};
  return st;
}

}  // namespace

Status nd_to_nz(const TensorView& src, void* dst, int64_t dst_elems, Error& error) {
  std::string message;
  const Status st = nd_to_nz(src, dst, dst_elems, &message);
  return nz_report(st, src, std::move(message), error);
}

Status nz_to_nd(const void* src, int64_t src_elems, const TensorView& dst, Error& error) {
  std::string message;
  const Status st = nz_to_nd(src, src_elems, dst, &message);
  return nz_report(st, dst, std::move(message), error);
}

void set_num_threads(int n) {
  // More workers than 8x the hardware threads only costs memory; a huge n would fail to
  // create its threads.
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  kernels::set_num_threads(std::max(1, std::min(n, 8 * hw)));
}
int num_threads() { return kernels::num_threads(); }
const char* simd_target() { return kernels::simd_target(); }
const char* version() { return "0.1.0"; }

}  // namespace addlora
