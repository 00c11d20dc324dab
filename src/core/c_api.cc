// C API: converts addlora_tensor to TensorView and calls the C++ API (add_lora, shrink, expand);
// no exception escapes.
#include "addlora/addlora_c.h"

#include <new>
#include <string>

#include "addlora/addlora.h"
#include "core/status.h"

namespace {

thread_local std::string t_last_error;

addlora::TensorView view(const addlora_tensor& t) {
  addlora::TensorView v;
  v.data = t.data;
  v.dtype = static_cast<addlora::DType>(t.dtype);
  v.ndim = t.ndim;
  v.offset = t.offset;
  // A zeroed struct must describe a plain tensor: layout 0 is ND and storage_elems 0 is unknown
  // (the C++ view's defaults), not NCHW and an empty buffer.
  v.layout = t.layout == 0 ? addlora::Layout::nd : static_cast<addlora::Layout>(t.layout);
  v.storage_elems = t.storage_elems == 0 ? -1 : t.storage_elems;
  const int n = t.ndim < 0 ? 0 : (t.ndim > 8 ? 8 : t.ndim);
  bool all_zero = true;
  for (int i = 0; i < n; ++i) {
    v.dims[i] = t.dims[i];
    v.strides[i] = t.strides[i];
    all_zero = all_zero && t.strides[i] == 0;
  }
  if (all_zero) {  // contiguous
    int64_t s = 1;
    for (int i = n - 1; i >= 0; --i) {
      v.strides[i] = s;
      if (__builtin_mul_overflow(s, t.dims[i] > 0 ? t.dims[i] : 1, &s)) s = INT64_MAX;  // rejected later
    }
  }
  return v;
}

// The C surface's one mapping: an Error becomes the returned status and the thread's last
// error message.
int32_t report(const addlora::Error& e) {
  t_last_error = e.message;
  return static_cast<int32_t>(e.status);
}

// Every C entry: clears the last error, refuses a null argument struct, turns any exception
// into Status::internal ("out of memory"), and reports the call's Error.
template <class Args, class F>
int32_t c_call(const Args* a, F&& call) {
  t_last_error.clear();
  addlora::Error error;
  try {
    if (a == nullptr)
      addlora::detail::fail(&error, addlora::Status::null_pointer, addlora::ErrorKind::null, "", "args must not be null");
    else
      call(*a, error);
  } catch (...) {
    addlora::detail::fail(&error, addlora::Status::internal, addlora::ErrorKind::internal, "", "out of memory");
  }
  return report(error);
}

}  // namespace

extern "C" int32_t addlora_run(const addlora_args* a, int32_t strict) {
  return c_call(a, [strict](const addlora_args& c, addlora::Error& error) {
    addlora::Arguments args;
    args.y = view(c.y);
    args.x = view(c.x);
    args.weight_b = view(c.weight_b);
    args.indices = view(c.indices);
    args.weight_a = view(c.weight_a);
    args.out = view(c.out);
    args.layer_idx = c.layer_idx;
    args.scale = c.scale;
    args.y_offset = c.y_offset;
    args.y_slice_size = c.y_slice_size;
    addlora::add_lora(args, strict ? addlora::Rules::cann : addlora::Rules::general, error);
  });
}

extern "C" int32_t addlora_shrink(const addlora_shrink_args* a) {
  return c_call(a, [](const addlora_shrink_args& c, addlora::Error& error) {
    addlora::ShrinkArguments s;
    s.x = view(c.x);
    s.weight_a = view(c.weight_a);
    s.indices = view(c.indices);
    s.z = view(c.z);
    s.layer_idx = c.layer_idx;
    s.scale = c.scale;
    s.accumulate = c.accumulate != 0;
    addlora::shrink(s, error);
  });
}

extern "C" int32_t addlora_expand(const addlora_expand_args* a) {
  return c_call(a, [](const addlora_expand_args& c, addlora::Error& error) {
    addlora::ExpandArguments e;
    e.z = view(c.z);
    e.weight_b = view(c.weight_b);
    e.indices = view(c.indices);
    e.out = view(c.out);
    e.layer_idx = c.layer_idx;
    e.scale = c.scale;
    e.y_offset = c.y_offset;
    e.y_slice_size = c.y_slice_size;
    e.accumulate = c.accumulate != 0;
    addlora::expand(e, error);
  });
}

extern "C" const char* addlora_last_error(void) { return t_last_error.c_str(); }
extern "C" void addlora_set_num_threads(int32_t n) {
  try {
    addlora::set_num_threads(n);
  } catch (...) {  // threads could not be created: the previous pool stays
    t_last_error = "AddLora: cannot create the worker threads";
  }
}
extern "C" int32_t addlora_num_threads(void) { return addlora::num_threads(); }
extern "C" const char* addlora_simd_target(void) { return addlora::simd_target(); }
