// addlora._core: the thin nanobind layer between Python arrays and addlora::add_lora.
//
// Every tensor arrives as a DLPack-described nb::ndarray (numpy, torch and any other DLPack
// or buffer-protocol producer) and is handed to the library as a TensorView over the SAME
// memory: shape, strides (in elements, possibly non-contiguous) and dtype are copied into the
// view, never the data (one exception: int64 per-adapter ranks are converted to int32).  All
// validation is the library's (make_plan); this file only rejects what a TensorView cannot
// express (non-CPU memory, dtypes with no DType, rank > 8, an NZ array that is not one packed
// block of memory, an int64 rank beyond int32) and maps the library's Status to a Python
// exception carrying its message.  The pythonic API (allocation of results, numpy/torch
// symmetry, docstrings) lives in addlora/__init__.py.
#include <addlora/addlora.h>
#include "core/rename.h"  // header only: the library's message rewording, shared
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace nb = nanobind;
using addlora::DType;
using addlora::Status;
using addlora::TensorView;

namespace {

// Inputs may be read-only (e.g. a numpy view with writeable=False); the output must not be.
using InArray = nb::ndarray<nb::ro>;
using OutArray = nb::ndarray<>;

bool dtype_from_dlpack(nb::dlpack::dtype t, DType* out) {
  if (t.lanes != 1) return false;
  const auto code = static_cast<nb::dlpack::dtype_code>(t.code);
  if (code == nb::dlpack::dtype_code::Float && t.bits == 16) *out = DType::f16;
  else if (code == nb::dlpack::dtype_code::Float && t.bits == 32) *out = DType::f32;
  else if (code == nb::dlpack::dtype_code::Bfloat && t.bits == 16) *out = DType::bf16;
  else if (code == nb::dlpack::dtype_code::Int && t.bits == 32) *out = DType::i32;
  else if (code == nb::dlpack::dtype_code::Int && t.bits == 64) *out = DType::i64;
  else return false;
  return true;
}

std::string dlpack_dtype_name(nb::dlpack::dtype t) {
  const char* kind = "";
  switch (static_cast<nb::dlpack::dtype_code>(t.code)) {
    case nb::dlpack::dtype_code::Int: kind = "int"; break;
    case nb::dlpack::dtype_code::UInt: kind = "uint"; break;
    case nb::dlpack::dtype_code::Float: kind = "float"; break;
    case nb::dlpack::dtype_code::Bfloat: kind = "bfloat"; break;
    case nb::dlpack::dtype_code::Complex: kind = "complex"; break;
    case nb::dlpack::dtype_code::Bool: kind = "bool"; break;
    default: return "dlpack(code=" + std::to_string(t.code) + ", bits=" + std::to_string(t.bits) + ")";
  }
  std::string s = kind + std::to_string(t.bits);
  if (t.lanes != 1) s += "x" + std::to_string(t.lanes);
  return s;
}

constexpr size_t kMaxDims = sizeof(TensorView::dims) / sizeof(TensorView::dims[0]);

using Scratch = std::vector<std::unique_ptr<char[]>>;

// Device and dtype of an array, or the exception that says why it cannot be a TensorView.
template <class Array>
void check_device_dtype(const Array& a, const char* name, DType* dtype) {
  if (a.device_type() != nb::device::cpu::value)
    throw nb::type_error(("AddLora: " + std::string(name) + " must be in CPU memory (DLPack device type " +
                          std::to_string(a.device_type()) + ")").c_str());
  if (!dtype_from_dlpack(a.dtype(), dtype))
    throw nb::type_error(("AddLora: " + std::string(name) + " has dtype " + dlpack_dtype_name(a.dtype()) +
                          "; supported: float16, bfloat16, float32 (indices: int32, int64)").c_str());
}

template <class Array>
void* data_of(const Array& a) {
  return static_cast<char*>(const_cast<void*>(static_cast<const void*>(a.data_handle()))) + a.byte_offset();
}

// Contiguous row-major strides for v.dims, and a small zeroed buffer of v's own when the array
// has no elements (torch exports those with a null data pointer and sometimes zero strides):
// nothing is read or written, but the library must see a present, well-formed view that
// aliases nothing.
void contiguous_strides(TensorView& v) {
  int64_t extent = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    v.strides[d] = extent;
    extent *= v.dims[d] > 0 ? v.dims[d] : 1;
  }
}
void stand_in_storage(TensorView& v, Scratch& scratch) {
  int64_t extent = 1;
  for (int d = 0; d < v.ndim; ++d) extent *= v.dims[d] > 0 ? v.dims[d] : 1;
  scratch.emplace_back(new char[static_cast<size_t>(extent) * addlora::dtype_size(v.dtype)]());
  v.data = scratch.back().get();
}

// A view over the array's memory.  An absent array (None) gives the empty view the library
// reads as "missing": it then reports null_pointer for required tensors.
template <class Array>
TensorView view_of(const Array& a, const char* name, Scratch& scratch) {
  TensorView v;
  if (!a.is_valid()) return v;
  check_device_dtype(a, name, &v.dtype);
  if (a.ndim() > kMaxDims)  // TensorView's capacity; the library reports the rank each input needs
    throw nb::value_error(("AddLora: " + std::string(name) + " must have at most " + std::to_string(kMaxDims) +
                           " dimensions (got " + std::to_string(a.ndim()) + ")").c_str());
  v.data = data_of(a);
  v.ndim = static_cast<int32_t>(a.ndim());
  for (size_t d = 0; d < a.ndim(); ++d) {
    v.dims[d] = static_cast<int64_t>(a.shape(d));
    v.strides[d] = a.stride(d);  // DLPack strides are in elements, like TensorView's
  }
  if (a.size() == 0) {
    contiguous_strides(v);
    stand_in_storage(v, scratch);
  }
  return v;
}

// True if the array's elements are one dense row-major block (dims of size 1 may have any stride).
template <class Array>
bool is_packed(const Array& a) {
  int64_t expected = 1;
  for (size_t d = a.ndim(); d-- > 0;) {
    if (a.shape(d) != 1 && a.stride(d) != expected) return false;
    expected *= static_cast<int64_t>(a.shape(d));
  }
  return true;
}

template <class Array>
void require_packed(const Array& a, const char* name) {
  if (!is_packed(a))
    throw nb::value_error(("AddLora: " + std::string(name) +
                           " in FRACTAL_NZ must be a C-contiguous packed array (as nd_to_nz returns)").c_str());
}

// A FRACTAL_NZ weight: `a` is the packed storage (any shape, read as a flat run of elements) and
// `dims` the logical ND shape.  The library ignores strides for NZ and checks that the storage
// (`a.size()` elements) holds nz_elements(dims).
TensorView nz_view_of(const InArray& a, const char* name, const std::vector<int64_t>& dims, Scratch& scratch) {
  TensorView v;
  if (!a.is_valid()) return v;
  check_device_dtype(a, name, &v.dtype);
  if (dims.size() > kMaxDims)
    throw nb::value_error(("AddLora: " + std::string(name) + " shape must have at most " + std::to_string(kMaxDims) +
                           " dimensions (got " + std::to_string(dims.size()) + ")").c_str());
  require_packed(a, name);
  v.layout = addlora::Layout::fractal_nz;
  v.ndim = static_cast<int32_t>(dims.size());
  for (size_t d = 0; d < dims.size(); ++d) v.dims[d] = dims[d];
  contiguous_strides(v);  // ignored for NZ; kept well-formed
  v.storage_elems = static_cast<int64_t>(a.size());
  v.data = data_of(a);
  if (a.size() == 0) stand_in_storage(v, scratch);
  return v;
}

// ND or NZ, depending on whether a logical shape is given.
TensorView weight_view(const InArray& a, const char* name, const std::optional<std::vector<int64_t>>& nz_dims,
                       Scratch& scratch) {
  return nz_dims ? nz_view_of(a, name, *nz_dims, scratch) : view_of(a, name, scratch);
}

// Per-adapter ranks ([W] int32) or scales ([W] fp32), or the empty view when absent (None).
// The array is used in place like every other input (any strides), except int64 ranks (torch's
// default integer dtype): those are copied into int32, each value range-checked, since the
// library reads int32 only.  Other dtypes pass through unchanged when the library has a DType
// for them (it then reports the dtype rule, or under strict the parameter itself).
TensorView per_adapter_view(const InArray& a, const char* name, DType want, Scratch& scratch) {
  TensorView v;
  if (!a.is_valid()) return v;
  if (a.device_type() != nb::device::cpu::value)
    throw nb::type_error(("AddLora: " + std::string(name) + " must be in CPU memory (DLPack device type " +
                          std::to_string(a.device_type()) + ")").c_str());
  const char* supported = want == DType::i32 ? "int32 (int64 is converted)" : "float32";
  if (!dtype_from_dlpack(a.dtype(), &v.dtype))
    throw nb::type_error(("AddLora: " + std::string(name) + " has dtype " + dlpack_dtype_name(a.dtype()) +
                          "; supported: " + supported).c_str());
  if (!(want == DType::i32 && v.dtype == DType::i64)) return view_of(a, name, scratch);

  v = view_of(a, name, scratch);  // shape (and a stand-in for no elements) as usual
  v.dtype = DType::i32;
  contiguous_strides(v);
  if (v.ndim != 1) {
    // Never read: the library rejects the rank before running.  Zeroed storage keeps the view
    // well-formed so that its message (the shape rule) is the one raised.
    stand_in_storage(v, scratch);
    return v;
  }
  const int64_t n = v.dims[0], stride = a.stride(0);
  const int64_t* src = static_cast<const int64_t*>(data_of(a));
  scratch.emplace_back(new char[static_cast<size_t>(n > 0 ? n : 1) * sizeof(int32_t)]());
  int32_t* dst = reinterpret_cast<int32_t*>(scratch.back().get());
  for (int64_t k = 0; k < n; ++k) {
    const int64_t r = src[k * stride];
    if (r < std::numeric_limits<int32_t>::min() || r > std::numeric_limits<int32_t>::max())
      throw nb::value_error(("AddLora: " + std::string(name) + "[" + std::to_string(k) + "] = " + std::to_string(r) +
                             " does not fit int32 (int64 ranks are converted to int32)").c_str());
    dst[k] = static_cast<int32_t>(r);
  }
  v.data = dst;
  v.offset = 0;
  return v;
}

// Python's split, from the failure's kind (data, never the message): TypeError for a dtype or
// format, RuntimeError for internal failures, ValueError for everything else (missing
// tensors, shapes, attributes, memory).
[[noreturn]] void raise_error(const addlora::Error& e) {
  const std::string text =
      e.message.empty() ? "AddLora: error status " + std::to_string(static_cast<int>(e.status)) : e.message;
  switch (e.kind) {
    case addlora::ErrorKind::type: throw nb::type_error(text.c_str());
    case addlora::ErrorKind::internal: throw std::runtime_error(text);  // -> RuntimeError
    default: throw nb::value_error(text.c_str());
  }
}

addlora::Rules rules_of(bool strict) { return strict ? addlora::Rules::cann : addlora::Rules::general; }
addlora::Precision precision_of(bool fast) { return fast ? addlora::Precision::fast : addlora::Precision::exact; }

using Shape = std::optional<std::vector<int64_t>>;

// Runs a library call with the GIL released (the arrays stay alive: nb::ndarray holds
// references while other Python threads run) and turns a failed status into the matching
// Python exception.
//
// `work` (multiply-adds, if known) below kKeepGil: the call takes about a microsecond and keeps
// the GIL (releasing and re-taking it costs ~0.05 µs, and no other thread could do much meanwhile).
constexpr int64_t kKeepGil = int64_t{1} << 15;
template <class F>
void call_without_gil(F&& call, int64_t work = std::numeric_limits<int64_t>::max()) {
  addlora::Error error;
  Status status;
  if (work < kKeepGil) {
    status = call(error);
  } else {
    nb::gil_scoped_release release;
    status = call(error);
  }
  if (status != Status::ok) raise_error(error);
}

// Multiply-adds of an add_lora call (an estimate; malformed views give any value, the library
// rejects them).
int64_t lora_work(const addlora::Arguments& a) {
  if (a.x.ndim != 2 || a.weight_b.ndim != 4) return std::numeric_limits<int64_t>::max();
  const int64_t B = a.x.dims[0], H1 = a.x.dims[1], H2 = a.weight_b.dims[2], R = a.weight_b.dims[3];
  if (B < 0 || H1 < 0 || H2 < 0 || R < 0 || B > kKeepGil || H1 > kKeepGil || H2 > kKeepGil || R > kKeepGil)
    return std::numeric_limits<int64_t>::max();
  return B * R * (H1 + H2);
}

void run(const OutArray& out, const InArray& y, const InArray& x, const InArray& weight_b,
         const InArray& indices, const InArray& weight_a, int64_t layer_idx, double scale,
         int64_t y_offset, int64_t y_slice_size, bool strict, bool fast, const Shape& weight_b_nz,
         const Shape& weight_a_nz, const InArray& ranks, const InArray& scales) {
  addlora::Arguments args;
  Scratch scratch;  // stand-in storage for arrays with no elements
  args.y = view_of(y, "y", scratch);  // y before out: a bad y is reported as y, not as the out made like it
  args.x = view_of(x, "x", scratch);
  args.weight_b = weight_view(weight_b, "weight_b", weight_b_nz, scratch);
  args.indices = view_of(indices, "indices", scratch);
  args.weight_a = weight_view(weight_a, "weight_a", weight_a_nz, scratch);
  args.out = view_of(out, "out", scratch);
  args.ranks = per_adapter_view(ranks, "ranks", DType::i32, scratch);
  args.scales = per_adapter_view(scales, "scales", DType::f32, scratch);
  args.layer_idx = layer_idx;
  args.scale = scale;
  args.y_offset = y_offset;
  args.y_slice_size = y_slice_size;
  args.precision = precision_of(fast);
  call_without_gil([&](addlora::Error& message) { return addlora::add_lora(args, rules_of(strict), message); });
}

// One LoRA pair of a multi-slice call, as the Python layer packs it:
// (weight_b | None, weight_a | None, scale, y_offset, y_slice_size, weight_b_nz_shape | None, weight_a_nz_shape | None,
//  ranks | None, scales | None).
using SliceTuple = std::tuple<std::optional<InArray>, std::optional<InArray>, double, int64_t, int64_t, Shape, Shape,
                              std::optional<InArray>, std::optional<InArray>>;

// Several slices in ONE library call (the multi-slice overload): y, x, indices and out are one
// view each, shared by every slice, as the library requires.
void run_multi(const OutArray& out, const InArray& y, const InArray& x, const InArray& indices,
               const std::vector<SliceTuple>& slices, int64_t layer_idx, bool strict, bool fast) {
  Scratch scratch;
  const TensorView vy = view_of(y, "y", scratch), vx = view_of(x, "x", scratch),
                   vi = view_of(indices, "indices", scratch), vo = view_of(out, "out", scratch);
  std::vector<addlora::Arguments> args(slices.size());
  for (size_t k = 0; k < slices.size(); ++k) {
    const auto& [wb, wa, scale, y_offset, y_slice_size, wb_nz, wa_nz, ranks, scales] = slices[k];
    const std::string prefix = "slices[" + std::to_string(k) + "].";
    const std::string b_name = prefix + "weight_b", a_name = prefix + "weight_a";
    const std::string r_name = prefix + "ranks", s_name = prefix + "scales";
    addlora::Arguments& a = args[k];
    a.y = vy;
    a.x = vx;
    a.indices = vi;
    a.out = vo;
    if (wb) a.weight_b = weight_view(*wb, b_name.c_str(), wb_nz, scratch);  // absent: the library says so
    if (wa) a.weight_a = weight_view(*wa, a_name.c_str(), wa_nz, scratch);
    if (ranks) a.ranks = per_adapter_view(*ranks, r_name.c_str(), DType::i32, scratch);
    if (scales) a.scales = per_adapter_view(*scales, s_name.c_str(), DType::f32, scratch);
    a.layer_idx = layer_idx;
    a.scale = scale;
    a.y_offset = y_offset;
    a.y_slice_size = y_slice_size;
    a.precision = precision_of(fast);
  }
  call_without_gil([&](addlora::Error& message) {
    return addlora::add_lora(args.data(), args.size(), rules_of(strict), message);
  });
}

// ND [..., M, N] -> packed NZ storage `dst` (allocated by the caller, dst.size() elements).
void nd_to_nz(const InArray& src, const OutArray& dst) {
  Scratch scratch;
  const TensorView v = view_of(src, "weight", scratch);
  DType dt;
  check_device_dtype(dst, "nz", &dt);
  require_packed(dst, "nz");
  call_without_gil([&](addlora::Error& message) {
    return addlora::nd_to_nz(v, data_of(dst), static_cast<int64_t>(dst.size()), message);
  });
}

// Packed NZ storage `src` -> the ND array `dst` (its shape is the logical shape).
void nz_to_nd(const InArray& src, const OutArray& dst) {
  Scratch scratch;
  DType dt;
  check_device_dtype(src, "nz", &dt);
  require_packed(src, "nz");
  const TensorView v = view_of(dst, "out", scratch);
  call_without_gil([&](addlora::Error& message) {
    return addlora::nz_to_nd(data_of(src), static_cast<int64_t>(src.size()), v, message);
  });
}

int64_t nz_elements(const std::vector<int64_t>& dims) {
  if (dims.size() < 2 || dims.size() > kMaxDims)
    throw nb::value_error(("AddLora: an NZ shape needs 2 to 8 dimensions (got " + std::to_string(dims.size()) + ")").c_str());
  for (int64_t d : dims)
    if (d < 0) throw nb::value_error("AddLora: an NZ shape needs non-negative dimensions");
  const int64_t n = addlora::nz_elements(dims.data(), static_cast<int>(dims.size()));
  if (n == 0) {
    for (int64_t d : dims)
      if (d == 0) return 0;
    throw nb::value_error("AddLora: the NZ element count overflows 64 bits");
  }
  return n;
}


// ---- the eager fast path ----------------------------------------------------------------------
// Torch tensors are described by a few attribute reads (data_ptr, shape, stride, dtype, is_cpu,
// requires_grad) instead of a DLPack export (torch builds a capsule in Python code: several µs
// per tensor); numpy and other arrays go through nanobind's ndarray caster as before.  Any
// argument the fast path does not take as is (keywords beyond torch_npu's, a tensor that
// requires grad, an attribute that is not a plain int) makes it return NotImplemented and the
// Python layer takes the general path, which produces the error messages.

struct TorchRefs {
  PyObject* tensor_type = nullptr;   // torch.Tensor (subclasses such as Parameter pass too)
  PyObject* dtypes[5] = {};          // float16, bfloat16, float32, int32, int64
  DType codes[5] = {DType::f16, DType::bf16, DType::f32, DType::i32, DType::i64};
  PyObject *s_data_ptr, *s_shape, *s_stride, *s_dtype, *s_is_cpu, *s_requires_grad;
  PyObject* is_grad_enabled = nullptr;  // torch.is_grad_enabled
  PyObject* empty_like = nullptr;     // torch.empty_like (fallback allocator)
  PyObject* from_dlpack = nullptr;    // torch._C._from_dlpack (a capsule -> a tensor, no copy)
  PyObject* empty_kwnames = nullptr;  // ("memory_format",)
  PyObject* contiguous = nullptr;     // torch.contiguous_format
  PyObject* torch = nullptr;
  // Plain torch.Tensor and nn.Parameter (no overriding subclass): their attributes are read
  // through _TensorBase's own descriptors, skipping the instance attribute lookup.
  PyTypeObject* plain_types[2] = {};
  PyObject *d_data_ptr = nullptr, *d_stride = nullptr;                            // method descriptors
  PyObject *d_shape = nullptr, *d_dtype = nullptr, *d_is_cpu = nullptr, *d_requires_grad = nullptr;  // getsets
};
TorchRefs g_torch;

// A C-level descriptor of torch.Tensor's base class, or null (then the generic lookup is used).
PyObject* base_descriptor(PyTypeObject* type, PyObject* name, bool method) {
  PyObject* d = _PyType_Lookup(type, name);  // borrowed
  if (!d) return nullptr;
  if (method ? Py_IS_TYPE(d, &PyMethodDescr_Type) : Py_IS_TYPE(d, &PyGetSetDescr_Type)) {
    Py_INCREF(d);  // kept for the process lifetime
    return d;
  }
  return nullptr;
}

// torch, when the process has imported it (never imported here).
bool torch_ready() {
  if (g_torch.tensor_type) return true;
  PyObject* mod = PyImport_GetModule(nb::str("torch").ptr());
  if (!mod) {
    PyErr_Clear();
    return false;
  }
  PyObject* type = PyObject_GetAttrString(mod, "Tensor");
  if (!type) {
    PyErr_Clear();
    Py_DECREF(mod);
    return false;
  }
  const char* names[5] = {"float16", "bfloat16", "float32", "int32", "int64"};
  for (int k = 0; k < 5; ++k) {
    g_torch.dtypes[k] = PyObject_GetAttrString(mod, names[k]);
    if (!g_torch.dtypes[k]) PyErr_Clear();
  }
  g_torch.s_data_ptr = PyUnicode_InternFromString("data_ptr");
  g_torch.s_shape = PyUnicode_InternFromString("shape");
  g_torch.s_stride = PyUnicode_InternFromString("stride");
  g_torch.s_dtype = PyUnicode_InternFromString("dtype");
  g_torch.s_is_cpu = PyUnicode_InternFromString("is_cpu");
  g_torch.s_requires_grad = PyUnicode_InternFromString("requires_grad");
  g_torch.is_grad_enabled = PyObject_GetAttrString(mod, "is_grad_enabled");
  g_torch.empty_like = PyObject_GetAttrString(mod, "empty_like");
  if (PyObject* c = PyObject_GetAttrString(mod, "_C")) {
    g_torch.from_dlpack = PyObject_GetAttrString(c, "_from_dlpack");  // kept; null: empty_like is used
    Py_DECREF(c);
  }
  PyErr_Clear();
  g_torch.contiguous = PyObject_GetAttrString(mod, "contiguous_format");
  g_torch.empty_kwnames = Py_BuildValue("(N)", PyUnicode_InternFromString("memory_format"));  // interned, as vectorcall expects
  if (!g_torch.empty_like || !g_torch.contiguous || !g_torch.empty_kwnames || !g_torch.is_grad_enabled) PyErr_Clear();
  g_torch.torch = mod;  // kept for the process lifetime, like the interned names
  PyTypeObject* t = reinterpret_cast<PyTypeObject*>(type);
  g_torch.d_data_ptr = base_descriptor(t, g_torch.s_data_ptr, true);
  g_torch.d_stride = base_descriptor(t, g_torch.s_stride, true);
  g_torch.d_shape = base_descriptor(t, g_torch.s_shape, false);
  g_torch.d_dtype = base_descriptor(t, g_torch.s_dtype, false);
  g_torch.d_is_cpu = base_descriptor(t, g_torch.s_is_cpu, false);
  g_torch.d_requires_grad = base_descriptor(t, g_torch.s_requires_grad, false);
  if (g_torch.d_data_ptr && g_torch.d_stride && g_torch.d_shape && g_torch.d_dtype && g_torch.d_is_cpu &&
      g_torch.d_requires_grad) {
    g_torch.plain_types[0] = t;
    if (PyObject* nn = PyObject_GetAttrString(mod, "nn")) {
      if (PyObject* param = PyObject_GetAttrString(nn, "Parameter")) {
        g_torch.plain_types[1] = reinterpret_cast<PyTypeObject*>(param);  // kept
      }
      Py_DECREF(nn);
    }
    PyErr_Clear();
  }
  g_torch.tensor_type = type;
  return true;
}

// o.<getter> / o.<method>(): through the base descriptors for plain tensors, else generically.
PyObject* tensor_get(PyObject* o, bool plain, PyObject* descr, PyObject* name) {
  if (plain) return Py_TYPE(descr)->tp_descr_get(descr, o, reinterpret_cast<PyObject*>(Py_TYPE(o)));
  return PyObject_GetAttr(o, name);
}
PyObject* tensor_call(PyObject* o, bool plain, PyObject* descr, PyObject* name) {
  if (plain) return PyObject_Vectorcall(descr, &o, 1, nullptr);
  return PyObject_CallMethodNoArgs(o, name);
}
bool plain_tensor(PyObject* o) {
  return g_torch.plain_types[0] && (Py_TYPE(o) == g_torch.plain_types[0] || Py_TYPE(o) == g_torch.plain_types[1]);
}

bool is_torch_tensor(PyObject* o) {
  return torch_ready() && PyObject_TypeCheck(o, reinterpret_cast<PyTypeObject*>(g_torch.tensor_type));
}

// Reads a tuple of Python ints into dims; false if it is not one (or too long).
bool int_tuple(PyObject* t, int64_t* out, int32_t* n) {
  if (!t || !PyTuple_Check(t) || PyTuple_GET_SIZE(t) > static_cast<Py_ssize_t>(kMaxDims)) return false;
  *n = static_cast<int32_t>(PyTuple_GET_SIZE(t));
  for (int32_t d = 0; d < *n; ++d) {
    const long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(t, d));
    if (v == -1 && PyErr_Occurred()) return false;
    out[d] = v;
  }
  return true;
}

struct PyRef {  // owned reference, released at scope exit
  PyObject* p;
  explicit PyRef(PyObject* q) : p(q) {}
  ~PyRef() { Py_XDECREF(p); }
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
};

[[noreturn]] void raise_from_python(const char* name) {
  // An attribute read failed (e.g. a sparse tensor has no strides): keep Python's reason.
  nb::python_error e;
  throw nb::type_error(("AddLora: cannot read " + std::string(name) + " as a strided CPU tensor (" +
                        std::string(e.what()) + ")").c_str());
}

// Result of describing one argument.
enum class Described { ok, needs_grad };

// Holds the nanobind arrays of non-torch arguments alive for the call.
struct Keep {
  std::vector<InArray> in;
  std::vector<OutArray> out;
  Scratch scratch;
};

// A TensorView over a torch tensor, numpy array or other DLPack/buffer CPU array.
// `h` None gives the empty (absent) view.  Raises TypeError for what cannot be a view.
// `v` must be a default-constructed view (every caller passes a fresh one).
Described describe(nb::handle h, const char* name, bool writable, TensorView* v, Keep& keep,
                   bool check_grad = false) {
  PyObject* o = h.ptr();
  if (o == Py_None) return Described::ok;
  if (is_torch_tensor(o)) {
    const bool plain = plain_tensor(o);
    PyRef cpu(tensor_get(o, plain, g_torch.d_is_cpu, g_torch.s_is_cpu));
    if (!cpu.p) raise_from_python(name);
    if (cpu.p != Py_True) {
      std::string dev = "?";
      if (PyObject* d = PyObject_GetAttrString(o, "device")) {
        if (PyObject* str = PyObject_Str(d)) {
          if (const char* c = PyUnicode_AsUTF8(str)) dev = c;
          Py_DECREF(str);
        }
        Py_DECREF(d);
      }
      PyErr_Clear();
      throw nb::type_error(("AddLora: " + std::string(name) + " must be a CPU tensor (got device " + dev + ")").c_str());
    }
    PyRef dt(tensor_get(o, plain, g_torch.d_dtype, g_torch.s_dtype));
    if (!dt.p) raise_from_python(name);
    int k = 0;
    while (k < 5 && g_torch.dtypes[k] != dt.p) ++k;
    if (k == 5)
    {
      std::string dts = "?";
      if (PyObject* str = PyObject_Str(dt.p)) {
        if (const char* c = PyUnicode_AsUTF8(str)) dts = c;
        Py_DECREF(str);
      }
      PyErr_Clear();
      throw nb::type_error(("AddLora: " + std::string(name) + " has dtype " + dts +
                            "; supported: float16, bfloat16, float32 (indices: int32, int64)").c_str());
    }
    v->dtype = g_torch.codes[k];
    bool grad = false;
    // Integer tensors (indices) cannot require grad: torch refuses requires_grad on them.
    if (check_grad && v->dtype != DType::i32 && v->dtype != DType::i64) {
      PyRef rg(tensor_get(o, plain, g_torch.d_requires_grad, g_torch.s_requires_grad));
      if (!rg.p) raise_from_python(name);
      grad = rg.p == Py_True;
    }
    PyRef shape(tensor_get(o, plain, g_torch.d_shape, g_torch.s_shape));
    if (!shape.p) raise_from_python(name);
    int32_t nd = 0, ns = 0;
    if (!int_tuple(shape.p, v->dims, &nd)) {
      if (PyErr_Occurred()) raise_from_python(name);
      throw nb::value_error(("AddLora: " + std::string(name) + " must have at most " + std::to_string(kMaxDims) +
                             " dimensions").c_str());
    }
    PyRef stride(tensor_call(o, plain, g_torch.d_stride, g_torch.s_stride));
    if (!stride.p || !int_tuple(stride.p, v->strides, &ns) || ns != nd) raise_from_python(name);
    PyRef ptr(tensor_call(o, plain, g_torch.d_data_ptr, g_torch.s_data_ptr));
    if (!ptr.p) raise_from_python(name);
    v->data = PyLong_AsVoidPtr(ptr.p);
    v->ndim = nd;
    int64_t n = 1;
    for (int32_t d = 0; d < nd; ++d) n *= v->dims[d];
    if (n == 0 || v->data == nullptr) {
      contiguous_strides(*v);
      stand_in_storage(*v, keep.scratch);
    }
    return grad ? Described::needs_grad : Described::ok;
  }
  // numpy and the rest: nanobind's caster (buffer protocol / DLPack).
  if (writable) {
    OutArray a;
    if (!nb::try_cast<OutArray>(h, a)) {
      if (nb::try_cast<InArray>(h, keep.in.emplace_back()))
        throw nb::value_error(("AddLora: " + std::string(name) + " is read-only").c_str());
      throw nb::type_error(("AddLora: " + std::string(name) + " must be a torch tensor or an array (numpy, DLPack); got " +
                            std::string(nb::type_name(h.type()).c_str())).c_str());
    }
    keep.out.push_back(a);
    *v = view_of(keep.out.back(), name, keep.scratch);
  } else {
    InArray a;
    if (!nb::try_cast<InArray>(h, a))
      throw nb::type_error(("AddLora: " + std::string(name) + " must be a torch tensor or an array (numpy, DLPack); got " +
                            std::string(nb::type_name(h.type()).c_str())).c_str());
    keep.in.push_back(a);
    *v = view_of(keep.in.back(), name, keep.scratch);
  }
  return Described::ok;
}

// numpy.ndarray (exactly), when numpy is imported.
bool is_numpy_array(PyObject* o) {
  static PyObject* type = nullptr;
  if (!type) {
    PyObject* mod = PyImport_GetModule(nb::str("numpy").ptr());
    if (!mod) {
      PyErr_Clear();
      return false;
    }
    type = PyObject_GetAttrString(mod, "ndarray");  // kept for the process lifetime
    Py_DECREF(mod);
    if (!type) {
      PyErr_Clear();
      return false;
    }
  }
  return Py_TYPE(o) == reinterpret_cast<PyTypeObject*>(type);
}

// A plain Python int (not bool, not numpy's) or nothing.
bool plain_int(nb::handle h, int64_t* v) {
  if (!PyLong_CheckExact(h.ptr())) return false;
  const long long x = PyLong_AsLongLong(h.ptr());
  if (x == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  *v = x;
  return true;
}
bool plain_float(nb::handle h, double* v) {
  if (PyFloat_CheckExact(h.ptr())) {
    *v = PyFloat_AS_DOUBLE(h.ptr());
    return true;
  }
  int64_t i;
  if (plain_int(h, &i)) {
    *v = static_cast<double>(i);
    return true;
  }
  return false;
}

// ---- results of the allocating calls --------------------------------------------------------------
// torch.empty_like goes through torch's dispatcher (~0.9 µs with its keyword).  A result for a
// torch y is instead one 64-byte-aligned block of our own (a DLPack header, then the elements)
// handed to torch._C._from_dlpack (~0.45 µs): the tensor owns the block and frees it through
// the DLPack deleter (no GIL needed).  Same dtype, shape, contiguous strides and CPU device as
// torch.empty_like(y, memory_format=torch.contiguous_format); its storage is not resizable
// (as for torch.from_numpy).  If anything fails here the caller uses torch.empty_like.
struct DLManaged {  // DLPack's DLManagedTensor (ABI-stable since DLPack 0.2)
  nb::dlpack::dltensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManaged*);
};
struct ResultBlock {
  DLManaged managed;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};
constexpr size_t kResultHeader = (sizeof(ResultBlock) + 63) / 64 * 64;

void free_result(DLManaged* m) { std::free(m->manager_ctx); }

// A capsule torch did not consume (still named "dltensor") still owns its block.
void result_capsule_destructor(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, "dltensor")) return;  // consumed ("used_dltensor"): torch owns it
  if (auto* m = static_cast<DLManaged*>(PyCapsule_GetPointer(capsule, "dltensor"))) m->deleter(m);
}

bool dlpack_dtype_of(DType t, nb::dlpack::dtype* d) {
  d->lanes = 1;
  switch (t) {
    case DType::f16: d->code = static_cast<uint8_t>(nb::dlpack::dtype_code::Float); d->bits = 16; return true;
    case DType::f32: d->code = static_cast<uint8_t>(nb::dlpack::dtype_code::Float); d->bits = 32; return true;
    case DType::bf16: d->code = static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat); d->bits = 16; return true;
    default: return false;
  }
}

// A new contiguous torch CPU tensor shaped like `like`, or null (no Python error set) when this
// route is unavailable.  *data receives its first element.
PyObject* new_torch_result(const TensorView& like, void** data) {
  nb::dlpack::dtype dt;
  if (!g_torch.from_dlpack || !dlpack_dtype_of(like.dtype, &dt) || like.ndim < 0 ||
      like.ndim > static_cast<int32_t>(kMaxDims))
    return nullptr;
  size_t elements = 1;
  for (int32_t d = 0; d < like.ndim; ++d) elements *= static_cast<size_t>(like.dims[d] > 0 ? like.dims[d] : 0);
  const size_t bytes = (elements * addlora::dtype_size(like.dtype) + 63) / 64 * 64;
  void* block = std::aligned_alloc(64, kResultHeader + (bytes > 0 ? bytes : 64));
  if (!block) return nullptr;
  ResultBlock* r = new (block) ResultBlock;
  nb::dlpack::dltensor& t = r->managed.dl_tensor;
  t.data = static_cast<char*>(block) + kResultHeader;
  t.device.device_type = nb::device::cpu::value;
  t.device.device_id = 0;
  t.ndim = like.ndim;
  t.dtype = dt;
  int64_t extent = 1;
  for (int32_t d = like.ndim - 1; d >= 0; --d) {
    r->shape[d] = like.dims[d];
    r->strides[d] = extent;
    extent *= like.dims[d] > 0 ? like.dims[d] : 1;
  }
  t.shape = r->shape;
  t.strides = r->strides;
  t.byte_offset = 0;
  r->managed.manager_ctx = block;
  r->managed.deleter = free_result;
  PyObject* capsule = PyCapsule_New(&r->managed, "dltensor", result_capsule_destructor);
  if (!capsule) {
    std::free(block);
    PyErr_Clear();
    return nullptr;
  }
  PyObject* tensor = PyObject_CallOneArg(g_torch.from_dlpack, capsule);
  Py_DECREF(capsule);  // unconsumed: frees the block; consumed: the tensor owns it
  if (!tensor) {
    PyErr_Clear();
    return nullptr;
  }
  *data = t.data;  // the block lives as long as the tensor
  return tensor;
}

// ---- torch >= 2: described tensors cached, checked by Dynamo's TensorGuards ----------------------
// Describing a torch tensor costs ~0.35 µs of attribute reads (shape and stride() build tuples).
// Under torch 2.x the description of a call's tensors is kept, keyed by the weights' addresses,
// together with a torch._C._dynamo.guards.TensorGuards over the same tensors: its check() (C++,
// ~0.12 µs a tensor) confirms that every tensor still has the recorded type, dtype, device,
// dispatch keys, requires_grad (False), sizes and strides; only data_ptr() is then read (it
// includes the storage offset).  Any mismatch, or a check that raises, is a miss: the tensors
// are described as usual and the entry replaced.  The factory (addlora/_guards.py) is installed
// only after a self-test of those semantics; without it nothing is cached.
struct GuardEntry {
  int kind = -1;      // 0: result allocated, 1: in place (out is y), 2: a separate out
  int n = 0;          // tensors guarded: y, x, weight_b, indices[, weight_a][, out]
  bool has_a = false;
  void* weight_b = nullptr;
  void* weight_a = nullptr;
  PyObject* check = nullptr;  // owned: the guard's bound check()
  TensorView views[6];        // metadata of the guarded tensors (data filled per call)
};
constexpr int kGuardEntries = 16;
GuardEntry g_guard_entries[kGuardEntries];
int g_guard_next = 0;
PyObject* g_guard_factory = nullptr;  // callable(*tensors) -> check, or null (no cache)
int64_t g_guard_hits = 0, g_guard_misses = 0;  // for tests: calls served from an entry / entries refused

void set_guard_factory(nb::handle factory) {
  for (GuardEntry& e : g_guard_entries) {
    Py_CLEAR(e.check);
    e = GuardEntry();
  }
  Py_CLEAR(g_guard_factory);
  if (!factory.is_none()) g_guard_factory = Py_NewRef(factory.ptr());
}

void* torch_data_ptr(PyObject* t) {
  PyRef ptr(tensor_call(t, plain_tensor(t), g_torch.d_data_ptr, g_torch.s_data_ptr));
  if (!ptr.p) {
    PyErr_Clear();
    return nullptr;
  }
  return PyLong_AsVoidPtr(ptr.p);
}

GuardEntry* find_guard(int kind, int n, bool has_a, void* weight_b, void* weight_a) {
  for (GuardEntry& e : g_guard_entries)
    if (e.check && e.kind == kind && e.n == n && e.has_a == has_a && e.weight_b == weight_b && e.weight_a == weight_a)
      return &e;
  return nullptr;
}

// True if the guard passes for these tensors (a raising check is a miss).
bool guard_passes(GuardEntry* e, PyObject* const* tensors) {
  PyObject* r = PyObject_Vectorcall(e->check, tensors, static_cast<size_t>(e->n), nullptr);
  if (!r) {
    PyErr_Clear();
    return false;
  }
  const bool ok = r == Py_True;
  Py_DECREF(r);
  return ok;
}

// Records a described call (views with data) for later ones; silently does nothing when the
// tensors should not be cached (one requires grad, one has no elements) or the factory fails.
void remember_guard(int kind, PyObject* const* tensors, const TensorView* const* views, int n, bool has_a) {
  for (int k = 0; k < n; ++k) {
    int64_t elements = 1;
    for (int32_t d = 0; d < views[k]->ndim; ++d) elements *= views[k]->dims[d];
    if (elements == 0 || views[k]->data == nullptr) return;
    PyRef rg(tensor_get(tensors[k], plain_tensor(tensors[k]), g_torch.d_requires_grad, g_torch.s_requires_grad));
    if (!rg.p) {
      PyErr_Clear();
      return;
    }
    if (rg.p != Py_False) return;
  }
  PyObject* check = PyObject_Vectorcall(g_guard_factory, tensors, static_cast<size_t>(n), nullptr);
  if (!check || check == Py_None) {
    PyErr_Clear();
    Py_XDECREF(check);
    return;
  }
  GuardEntry* e = find_guard(kind, n, has_a, views[2]->data, has_a ? views[4]->data : nullptr);
  if (!e) {
    e = &g_guard_entries[g_guard_next];
    g_guard_next = (g_guard_next + 1) % kGuardEntries;
  }
  Py_XDECREF(e->check);
  e->check = check;
  e->kind = kind;
  e->n = n;
  e->has_a = has_a;
  e->weight_b = views[2]->data;
  e->weight_a = has_a ? views[4]->data : nullptr;
  for (int k = 0; k < n; ++k) {
    e->views[k] = *views[k];
    e->views[k].data = nullptr;
  }
}

// npu_batch_gather_matmul(_) / add_lora with torch_npu's arguments only.  Returns `out`, or
// NotImplemented for the general path.
nb::object fast_run(nb::handle out, nb::handle y, nb::handle x, nb::handle weight_b, nb::handle indices,
                    nb::handle weight_a, nb::handle layer_idx, nb::handle scale, nb::handle y_offset,
                    nb::handle y_slice_size) {
  addlora::Arguments args;
  if (!plain_int(layer_idx, &args.layer_idx) || !plain_float(scale, &args.scale) ||
      !plain_int(y_offset, &args.y_offset))
    return nb::borrow(Py_NotImplemented);
  if (y_slice_size.is_none()) args.y_slice_size = -1;
  else if (!plain_int(y_slice_size, &args.y_slice_size)) return nb::borrow(Py_NotImplemented);
  if (y.is_none() || x.is_none() || weight_b.is_none() || indices.is_none()) return nb::borrow(Py_NotImplemented);
  bool allocate = out.is_none();  // a new contiguous tensor like y (torch), or numpy array
  nb::object allocated;
  if (allocate && !is_torch_tensor(y.ptr())) {
    if (!is_numpy_array(y.ptr())) return nb::borrow(Py_NotImplemented);  // the Python layer allocates the rest
    static PyObject* empty_like = nullptr;
    static PyObject* kwnames = nullptr;
    static PyObject* order_c = nullptr;
    if (!empty_like) {
      PyObject* np = PyImport_GetModule(nb::str("numpy").ptr());
      if (!np) {
        PyErr_Clear();
        return nb::borrow(Py_NotImplemented);
      }
      empty_like = PyObject_GetAttrString(np, "empty_like");  // kept for the process lifetime
      Py_DECREF(np);
      kwnames = Py_BuildValue("(N)", PyUnicode_InternFromString("order"));  // interned, as vectorcall expects
      order_c = PyUnicode_InternFromString("C");
      if (!empty_like || !kwnames || !order_c) throw nb::python_error();
    }
    PyObject* argv[2] = {y.ptr(), order_c};
    PyObject* r = PyObject_Vectorcall(empty_like, argv, 1, kwnames);
    if (!r) throw nb::python_error();
    allocated = nb::steal(r);
    out = allocated;
    allocate = false;  // described below like any numpy out
  } else if (allocate && (!g_torch.empty_like || !g_torch.contiguous)) {
    return nb::borrow(Py_NotImplemented);
  }
  // Other producers (a DLPack capsule can be consumed only once) go the general way.
  for (nb::handle h : {out, y, x, weight_b, indices, weight_a})
    if (!h.is_none() && !is_torch_tensor(h.ptr()) && !is_numpy_array(h.ptr())) return nb::borrow(Py_NotImplemented);
  // The tensors a guard covers, in order: y, x, weight_b, indices[, weight_a][, out].
  const bool has_a = !weight_a.is_none();
  const int kind = allocate ? 0 : out.ptr() == y.ptr() ? 1 : 2;
  PyObject* tensors[6] = {y.ptr(), x.ptr(), weight_b.ptr(), indices.ptr()};
  TensorView* views[6] = {&args.y, &args.x, &args.weight_b, &args.indices};
  int n = 4;
  if (has_a) tensors[n] = weight_a.ptr(), views[n++] = &args.weight_a;
  if (kind == 2) tensors[n] = out.ptr(), views[n++] = &args.out;
  bool guardable = g_guard_factory != nullptr;
  for (int k = 0; guardable && k < n; ++k) guardable = plain_tensor(tensors[k]);
  bool described = false;
  if (guardable) {
    void* wb = torch_data_ptr(weight_b.ptr());
    void* wa = has_a ? torch_data_ptr(weight_a.ptr()) : nullptr;
    GuardEntry* e = wb ? find_guard(kind, n, has_a, wb, wa) : nullptr;
    const bool hit = e && guard_passes(e, tensors);
    if (e && !hit) ++g_guard_misses;
    if (hit) {
      ++g_guard_hits;
      for (int k = 0; k < n; ++k) *views[k] = e->views[k];  // copied before any other Python call
      described = true;
      for (int k = 0; k < n && described; ++k) {
        views[k]->data = k == 2 ? wb : (k == 4 && has_a) ? wa : torch_data_ptr(tensors[k]);
        described = views[k]->data != nullptr;
      }
    }
    if (!described)
      for (int k = 0; k < n; ++k) *views[k] = TensorView();  // describe() below needs fresh views
  }
  Keep keep;
  bool grad = false;
  // Autograd matters only in grad mode (then a tensor requiring grad goes the general way).
  // A guard hit has checked requires_grad already.
  bool check = false;
  if (g_torch.is_grad_enabled && !described) {
    PyRef on(PyObject_CallNoArgs(g_torch.is_grad_enabled));
    if (!on.p) throw nb::python_error();
    check = on.p == Py_True;
  }
  try {
    if (!described) {
    grad |= describe(y, "y", false, &args.y, keep, check) == Described::needs_grad;
    grad |= describe(x, "x", false, &args.x, keep, check) == Described::needs_grad;
    grad |= describe(weight_b, "weight_b", false, &args.weight_b, keep, check) == Described::needs_grad;
    grad |= describe(indices, "indices", false, &args.indices, keep, check) == Described::needs_grad;
    grad |= describe(weight_a, "weight_a", false, &args.weight_a, keep, check) == Described::needs_grad;
    if (grad) return nb::borrow(Py_NotImplemented);
    }
    if (allocate) {
      void* data = nullptr;
      if (PyObject* r = new_torch_result(args.y, &data)) {
        allocated = nb::steal(r);
      } else {
        PyObject* argv[2] = {y.ptr(), g_torch.contiguous};
        r = PyObject_Vectorcall(g_torch.empty_like, argv, 1, g_torch.empty_kwnames);
        if (!r) throw nb::python_error();
        allocated = nb::steal(r);
        PyRef ptr(tensor_call(r, plain_tensor(r), g_torch.d_data_ptr, g_torch.s_data_ptr));
        if (!ptr.p) throw nb::python_error();
        data = PyLong_AsVoidPtr(ptr.p);
      }
      out = allocated;
      // y's shape and dtype, contiguous: only the address is new.
      args.out = args.y;
      args.out.data = data;
      args.out.offset = 0;
      contiguous_strides(args.out);
      int64_t n = 1;
      for (int32_t d = 0; d < args.out.ndim; ++d) n *= args.out.dims[d];
      if (n == 0 || args.out.data == nullptr) stand_in_storage(args.out, keep.scratch);
    } else if (out.ptr() == y.ptr() && is_torch_tensor(out.ptr())) {
      args.out = args.y;
    } else if (!described) {
      grad |= describe(out, "out", true, &args.out, keep, check) == Described::needs_grad;
      if (grad) return nb::borrow(Py_NotImplemented);
    }
    if (guardable && !described) remember_guard(kind, tensors, views, n, has_a);
  } catch (const std::exception&) {
    // Anything the fast path cannot describe: the general path says what is wrong.
    PyErr_Clear();
    return nb::borrow(Py_NotImplemented);
  }
  call_without_gil([&](addlora::Error& message) { return addlora::add_lora(args, addlora::Rules::general, message); },
                   lora_work(args));
  return nb::borrow(out);
}

// ---- C entry points (torch 1.x and no torch) -------------------------------------------------------
// A Python def costs ~0.2 µs before it reaches fast_run (frame, keyword-only defaults, the
// torch.compile check).  Where nothing can trace the public functions (no torch 2.x), the
// package replaces npu_batch_gather_matmul(_) and add_lora by builtins made here: they take
// torch_npu's arguments straight from the vectorcall and run fast_run; anything else (another
// keyword, a missing argument, NotImplemented from fast_run) is forwarded unchanged to the
// Python function they replace, which handles and reports it as before.
enum EntryKind { kEntryInPlace = 0, kEntryNew = 1, kEntryAddLora = 2 };
// Argument slots: y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, out.
constexpr int kSlots = 10;
PyObject* g_slot_names[kSlots] = {};
PyMethodDef g_entry_defs[3] = {};
std::string g_entry_docs[3];
PyObject *g_zero = nullptr, *g_minus_one = nullptr, *g_npu_scale = nullptr, *g_one = nullptr;

template <int Kind>
PyObject* entry_call(PyObject* fallback, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  const Py_ssize_t max_positional = Kind == kEntryAddLora ? 4 : 9;
  PyObject* slot[kSlots] = {};
  bool general = nargs > max_positional;
  for (Py_ssize_t k = 0; !general && k < nargs; ++k) slot[k] = args[k];
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; !general && k < nkw; ++k) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, k);
    int s = 0;
    while (s < kSlots && g_slot_names[s] != name) ++s;  // keyword names are interned
    if (s == kSlots)
      for (s = 0; s < kSlots && PyUnicode_Compare(g_slot_names[s], name) != 0; ++s) {
      }
    if (PyErr_Occurred()) PyErr_Clear();
    if (s == kSlots || slot[s] || (s == 9 && Kind != kEntryAddLora)) general = true;  // out=: add_lora only
    else slot[s] = args[nargs + k];
  }
  for (int k = 0; !general && k < 4; ++k) general = slot[k] == nullptr;
  if (!general) {
    nb::handle none = nb::none();
    const nb::handle y = slot[0];
    const nb::handle out = Kind == kEntryInPlace ? y : Kind == kEntryNew ? none : slot[9] ? slot[9] : none;
    try {
      nb::object r = fast_run(out, y, slot[1], slot[2], slot[3], slot[4] ? slot[4] : none.ptr(),
                              slot[5] ? slot[5] : g_zero, slot[6] ? slot[6] : Kind == kEntryAddLora ? g_one : g_npu_scale,
                              slot[7] ? slot[7] : g_zero,
                              slot[8] ? slot[8] : Kind == kEntryAddLora ? none.ptr() : g_minus_one);
      if (r.ptr() != Py_NotImplemented) return r.release().ptr();
    } catch (nb::python_error& e) {
      e.restore();
      return nullptr;
    } catch (const nb::builtin_exception& e) {
      PyErr_SetString(e.type() == nb::exception_type::type_error ? PyExc_TypeError
                      : e.type() == nb::exception_type::value_error ? PyExc_ValueError
                                                                     : PyExc_RuntimeError,
                      e.what());
      return nullptr;
    } catch (const std::bad_alloc&) {
      PyErr_NoMemory();
      return nullptr;
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
      return nullptr;
    }
  }
  return PyObject_Vectorcall(fallback, args, nargsf, kwnames);
}

// A builtin named like `fallback` whose __doc__ is `doc` (a "name(sig)\n--\n\n" text signature
// first, for inspect.signature), calling entry_call<kind>.
nb::object make_entry(int kind, nb::handle fallback, const std::string& name, const std::string& doc) {
  if (kind < 0 || kind > 2) throw nb::value_error("make_entry: kind must be 0, 1 or 2");
  if (!g_slot_names[0]) {
    const char* names[kSlots] = {"y", "x", "weight_b", "indices", "weight_a", "layer_idx", "scale", "y_offset",
                                 "y_slice_size", "out"};
    for (int k = 0; k < kSlots; ++k) g_slot_names[k] = PyUnicode_InternFromString(names[k]);  // kept
    g_zero = PyLong_FromLong(0);
    g_minus_one = PyLong_FromLong(-1);
    g_npu_scale = PyFloat_FromDouble(1e-3);
    g_one = PyFloat_FromDouble(1.0);
  }
  static std::string names[3];
  names[kind] = name;
  g_entry_docs[kind] = doc;
  PyMethodDef& d = g_entry_defs[kind];
  d.ml_name = names[kind].c_str();
  d.ml_meth = reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(
      kind == kEntryInPlace ? &entry_call<kEntryInPlace> : kind == kEntryNew ? &entry_call<kEntryNew>
                                                                              : &entry_call<kEntryAddLora>));
  d.ml_flags = METH_FASTCALL | METH_KEYWORDS;
  d.ml_doc = g_entry_docs[kind].c_str();
  nb::object module = nb::str("addlora");
  PyObject* f = PyCFunction_NewEx(&d, fallback.ptr(), module.ptr());
  if (!f) throw nb::python_error();
  return nb::steal(f);
}

// ---- shrink / expand (vLLM punica) ------------------------------------------------------------
// Weights [W, R, H] (vLLM's squeezed layout) are read as [W, 1, R, H].
void as_4d(TensorView& w) {
  if (w.ndim != 3) return;
  for (int d = 3; d >= 2; --d) {
    w.dims[d] = w.dims[d - 1];
    w.strides[d] = w.strides[d - 1];
  }
  w.dims[1] = 1;
  w.strides[1] = w.strides[0];
  w.ndim = 4;
}

// Rows of a 1-D int tensor as int64 (lora indices, sequence lengths, start locations).
std::vector<int64_t> int_values(const TensorView& v, const char* name) {
  if (v.ndim != 1)
    throw nb::value_error(("AddLora: " + std::string(name) + " must be 1-D (got " + std::to_string(v.ndim) + "-D)").c_str());
  if (v.dtype != DType::i32 && v.dtype != DType::i64)
    throw nb::type_error(("AddLora: " + std::string(name) + " dtype must be int32 or int64").c_str());
  if (v.dims[0] > 1 && v.strides[0] < 1)
    throw nb::value_error(("AddLora: " + std::string(name) + " must have a positive stride").c_str());
  std::vector<int64_t> r(static_cast<size_t>(v.dims[0]));
  for (int64_t k = 0; k < v.dims[0]; ++k) {
    const int64_t at = v.offset + k * v.strides[0];
    r[k] = v.dtype == DType::i64 ? static_cast<const int64_t*>(v.data)[at] : static_cast<const int32_t*>(v.data)[at];
  }
  return r;
}

// sgmv: per-token adapter numbers from per-sequence ones (lora_indices_tensor repeated
// seq_len_tensor times), after checking the sequence description against the token count.
void explode_sequences(Keep& keep, nb::handle b_seq_start_loc, nb::handle seq_len_tensor,
                       nb::handle lora_indices_tensor, int64_t batches, int64_t max_seq_length, int64_t token_nums,
                       int64_t rows, std::vector<int64_t>* exploded) {
  TensorView vs, vl, vi;
  describe(b_seq_start_loc, "b_seq_start_loc", false, &vs, keep);
  describe(seq_len_tensor, "seq_len_tensor", false, &vl, keep);
  describe(lora_indices_tensor, "lora_indices_tensor", false, &vi, keep);
  if (!vs.data || !vl.data || !vi.data)
    throw nb::value_error("AddLora: b_seq_start_loc, seq_len_tensor and lora_indices_tensor must not be None");
  const auto start = int_values(vs, "b_seq_start_loc"), len = int_values(vl, "seq_len_tensor"),
             idx = int_values(vi, "lora_indices_tensor");
  auto bad = [](const std::string& m) { throw nb::value_error(("AddLora: " + m).c_str()); };
  if (batches < 0 || static_cast<size_t>(batches) > len.size() || static_cast<size_t>(batches) > idx.size() ||
      static_cast<size_t>(batches) > start.size())
    bad("batches must be in [0, len(seq_len_tensor)] and <= len(lora_indices_tensor), len(b_seq_start_loc) (batches=" +
        std::to_string(batches) + ", lengths " + std::to_string(len.size()) + ", " + std::to_string(idx.size()) + ", " +
        std::to_string(start.size()) + ")");
  int64_t total = 0;
  for (int64_t k = 0; k < batches; ++k) {
    if (len[k] < 0) bad("seq_len_tensor[" + std::to_string(k) + "] = " + std::to_string(len[k]) + " is negative");
    if (len[k] > max_seq_length)
      bad("seq_len_tensor[" + std::to_string(k) + "] = " + std::to_string(len[k]) + " exceeds max_seq_length=" +
          std::to_string(max_seq_length));
    if (start[k] != total)
      bad("b_seq_start_loc[" + std::to_string(k) + "] = " + std::to_string(start[k]) +
          " must equal the sum of the earlier seq_len_tensor entries (" + std::to_string(total) + ")");
    total += len[k];
  }
  if (total != token_nums)
    bad("token_nums=" + std::to_string(token_nums) + " must equal the sum of seq_len_tensor[:batches] (" +
        std::to_string(total) + ")");
  if (token_nums != rows)
    bad("token_nums=" + std::to_string(token_nums) + " must equal the rows of inputs (" + std::to_string(rows) + ")");
  exploded->clear();
  exploded->reserve(static_cast<size_t>(total));
  for (int64_t k = 0; k < batches; ++k) exploded->insert(exploded->end(), static_cast<size_t>(len[k]), idx[k]);
}

TensorView index_view(std::vector<int64_t>& v) {
  TensorView t;
  t.data = v.empty() ? static_cast<void*>(&t.offset) : v.data();  // any non-null address for no rows
  t.dtype = DType::i64;
  t.ndim = 1;
  t.dims[0] = static_cast<int64_t>(v.size());
  t.strides[0] = 1;
  return t;
}

void require(nb::handle h, const char* name) {
  if (h.is_none()) throw nb::value_error(("AddLora: " + std::string(name) + " must not be None").c_str());
}

int64_t int_arg(nb::handle h, const char* name) {
  int64_t v;
  if (PyBool_Check(h.ptr()) || !plain_int(h, &v)) {
    PyObject* idx = PyNumber_Index(h.ptr());  // numpy / torch integers
    if (!idx || PyBool_Check(h.ptr())) {
      PyErr_Clear();
      Py_XDECREF(idx);
      throw nb::type_error(("AddLora: " + std::string(name) + " must be an integer (got " +
                            std::string(nb::type_name(h.type()).c_str()) + ")").c_str());
    }
    v = PyLong_AsLongLong(idx);
    Py_DECREF(idx);
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      throw nb::value_error(("AddLora: " + std::string(name) + " does not fit int64").c_str());
    }
  }
  return v;
}

double float_arg(nb::handle h, const char* name) {
  double v;
  if (plain_float(h, &v)) return v;
  if (!PyBool_Check(h.ptr())) {
    v = PyFloat_AsDouble(h.ptr());  // numpy / torch scalars
    if (!(v == -1.0 && PyErr_Occurred())) return v;
    PyErr_Clear();
  }
  throw nb::type_error(("AddLora: " + std::string(name) + " must be a real number (got " +
                        std::string(nb::type_name(h.type()).c_str()) + ")").c_str());
}

bool bool_arg(nb::handle h, const char* name) {
  if (h.ptr() == Py_True) return true;
  if (h.ptr() == Py_False) return false;
  throw nb::type_error(("AddLora: " + std::string(name) + " must be True or False (got " +
                        std::string(nb::type_name(h.type()).c_str()) + ")").c_str());
}

// Replaces whole words (identifier tokens) of a message: the C++ API's argument names -> vLLM's.
void rename_words(std::string* message, std::initializer_list<std::pair<std::string, std::string>> names) {
  *message = addlora::detail::rename_identifiers(*message, names.begin(), names.end());
}

// bgmv_shrink / sgmv_shrink: output[b, :R] = scaling * inputs[b] . A[i]^T for rows with an
// adapter (vLLM overwrites; rows without one are not written).
void punica_shrink(nb::handle inputs, nb::handle weights, nb::handle output, nb::handle indices, nb::handle scaling,
                   const std::vector<int64_t>* exploded, const char* weights_name) {
  require(inputs, "inputs");
  require(weights, weights_name);
  require(output, "output_tensor");
  addlora::ShrinkArguments s;
  s.scale = float_arg(scaling, "scaling");
  Keep keep;
  describe(inputs, "inputs", false, &s.x, keep);
  describe(weights, weights_name, false, &s.weight_a, keep);
  describe(output, "output_tensor", true, &s.z, keep);
  if (exploded) {
    s.indices = index_view(const_cast<std::vector<int64_t>&>(*exploded));
  } else {
    require(indices, "lora_indices_tensor");
    describe(indices, "lora_indices_tensor", false, &s.indices, keep);
  }
  if (s.weight_a.ndim != 3 && s.weight_a.ndim != 4)
    throw nb::value_error(("AddLora: " + std::string(weights_name) + " must be [W, R, H] or [W, 1, R, H] (got " +
                           std::to_string(s.weight_a.ndim) + "-D)").c_str());
  as_4d(s.weight_a);
  if (s.weight_a.dims[1] != 1)
    throw nb::value_error(("AddLora: " + std::string(weights_name) + " dim 1 must be 1 in the 4-D form (got " +
                           std::to_string(s.weight_a.dims[1]) + ")").c_str());
  s.accumulate = false;
  call_without_gil([&](addlora::Error& message) {
    const Status st = addlora::shrink(s, message);
    if (st != Status::ok)  // the C++ API's names -> vLLM's
      rename_words(&message.message, {{"weight_a", weights_name}, {"z", "output_tensor"}, {"x", "inputs"},
                             {"indices", "lora_indices_tensor"}, {"layer_idx", "layer"}});
    return st;
  });
}

void rename_expand(std::string* message) {
  rename_words(message, {{"weight_b", "lora_b_weights"}, {"z", "inputs"}, {"out", "output_tensor"},
                         {"indices", "lora_indices_tensor"}, {"y_offset", "slice_offset"},
                         {"y_slice_size", "slice_size"}});
}

// bgmv_expand(_slice) / sgmv_expand(_slice).  slice_offset < 0: the plain expand (columns
// [0, min(H2, H3)), vLLM's narrower-output rule, and one input row broadcast to every row of
// the output); otherwise columns [slice_offset, slice_offset + slice_size).
void punica_expand(nb::handle inputs, nb::handle weights, nb::handle output, nb::handle indices, bool add_inputs,
                   int64_t slice_offset, int64_t slice_size, const std::vector<int64_t>* exploded) {
  require(inputs, "inputs");
  require(weights, "lora_b_weights");
  require(output, "output_tensor");
  addlora::ExpandArguments e;
  Keep keep;
  describe(inputs, "inputs", false, &e.z, keep);
  describe(weights, "lora_b_weights", false, &e.weight_b, keep);
  describe(output, "output_tensor", true, &e.out, keep);
  if (exploded) {
    e.indices = index_view(const_cast<std::vector<int64_t>&>(*exploded));
  } else {
    require(indices, "lora_indices_tensor");
    describe(indices, "lora_indices_tensor", false, &e.indices, keep);
  }
  if (e.weight_b.ndim != 3 && e.weight_b.ndim != 4)
    throw nb::value_error(("AddLora: lora_b_weights must be [W, H2, R] or [W, 1, H2, R] (got " +
                           std::to_string(e.weight_b.ndim) + "-D)").c_str());
  as_4d(e.weight_b);
  if (e.weight_b.dims[1] != 1)
    throw nb::value_error(("AddLora: lora_b_weights dim 1 must be 1 in the 4-D form (got " +
                           std::to_string(e.weight_b.dims[1]) + ")").c_str());
  e.accumulate = add_inputs;
  bool broadcast_row = false;
  if (slice_offset < 0) {
    // vLLM: columns [0, min(H2, H3)); one input row is added to every output row; more input
    // rows than output rows: the first ones.
    if (e.out.ndim == 2 && e.weight_b.ndim == 4) e.y_slice_size = std::min(e.weight_b.dims[2], e.out.dims[1]);
    if (e.z.ndim == 2 && e.out.ndim == 2 && e.z.dims[0] != e.out.dims[0]) {
      if (e.z.dims[0] == 1) {
        broadcast_row = true;
      } else if (e.z.dims[0] > e.out.dims[0]) {
        e.z.dims[0] = e.out.dims[0];
        if (e.indices.ndim == 1 && e.indices.dims[0] > e.out.dims[0]) e.indices.dims[0] = e.out.dims[0];
      } else {
        throw nb::value_error(("AddLora: inputs has " + std::to_string(e.z.dims[0]) + " rows and output_tensor " +
                               std::to_string(e.out.dims[0]) + ": they must be equal, or inputs must have 1 row").c_str());
      }
    }
  } else {
    e.y_offset = slice_offset;
    e.y_slice_size = slice_size;
    if (e.weight_b.ndim == 4 && slice_size != e.weight_b.dims[2])
      throw nb::value_error(("AddLora: slice_size must equal lora_b_weights' output dim H2 (slice_size=" +
                             std::to_string(slice_size) + ", H2=" + std::to_string(e.weight_b.dims[2]) + ")").c_str());
  }
  // One input row for every output row: that row (and its index) repeated B times in a small
  // buffer of our own (rank-sized rows), so that ONE validated call writes every row or none.
  std::vector<char> rows;
  std::vector<int64_t> row_index;
  if (broadcast_row) {
    if (e.indices.ndim != 1 || e.indices.dims[0] != 1)
      throw nb::value_error("AddLora: with one row of inputs, lora_indices_tensor must have one element");
    if (e.z.ndim != 2) throw nb::value_error("AddLora: inputs must be 2-D [B, R]");
    const int64_t B = e.out.dims[0], R = e.z.dims[1];
    const size_t es = addlora::dtype_size(e.z.dtype);
    rows.resize(static_cast<size_t>(B * R) * es + 1);
    const char* src = static_cast<const char*>(e.z.data) + e.z.offset * static_cast<int64_t>(es);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t r = 0; r < R; ++r)
        std::memcpy(rows.data() + static_cast<size_t>(b * R + r) * es, src + r * e.z.strides[1] * static_cast<int64_t>(es), es);
    row_index.assign(static_cast<size_t>(B), int_values(e.indices, "lora_indices_tensor")[0]);
    e.z.data = rows.data();
    e.z.offset = 0;
    e.z.dims[0] = B;
    e.z.strides[0] = R > 0 ? R : 1;
    e.z.strides[1] = 1;
    e.indices = index_view(row_index);
  }
  call_without_gil([&](addlora::Error& message) {
    const Status st = addlora::expand(e, message);
    if (st != Status::ok) rename_expand(&message.message);
    return st;
  });
}


// addlora.shrink / addlora.expand: the C++ API's ShrinkArguments / ExpandArguments as they are.
void py_shrink(nb::handle x, nb::handle weight_a, nb::handle z, nb::handle indices, int64_t layer_idx, double scale,
               bool accumulate, bool fast) {
  addlora::ShrinkArguments s;
  Keep keep;
  require(x, "x");
  require(weight_a, "weight_a");
  require(z, "z");
  require(indices, "indices");
  describe(x, "x", false, &s.x, keep);
  describe(weight_a, "weight_a", false, &s.weight_a, keep);
  describe(z, "z", true, &s.z, keep);
  describe(indices, "indices", false, &s.indices, keep);
  s.layer_idx = layer_idx;
  s.scale = scale;
  s.accumulate = accumulate;
  s.precision = precision_of(fast);
  call_without_gil([&](addlora::Error& message) { return addlora::shrink(s, message); });
}

void py_expand(nb::handle z, nb::handle weight_b, nb::handle out, nb::handle indices, int64_t layer_idx, double scale,
               int64_t y_offset, int64_t y_slice_size, bool accumulate, bool fast) {
  addlora::ExpandArguments e;
  Keep keep;
  require(z, "z");
  require(weight_b, "weight_b");
  require(out, "out");
  require(indices, "indices");
  describe(z, "z", false, &e.z, keep);
  describe(weight_b, "weight_b", false, &e.weight_b, keep);
  describe(out, "out", true, &e.out, keep);
  describe(indices, "indices", false, &e.indices, keep);
  e.layer_idx = layer_idx;
  e.scale = scale;
  e.y_offset = y_offset;
  e.y_slice_size = y_slice_size;
  e.accumulate = accumulate;
  e.precision = precision_of(fast);
  call_without_gil([&](addlora::Error& message) { return addlora::expand(e, message); });
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "Native layer of the addlora package (use the functions in addlora, not these).";
  m.def("run", &run, nb::arg("out").none(), nb::arg("y").none(), nb::arg("x").none(),
        nb::arg("weight_b").none(), nb::arg("indices").none(), nb::arg("weight_a").none(),
        nb::arg("layer_idx"), nb::arg("scale"), nb::arg("y_offset"), nb::arg("y_slice_size"),
        nb::arg("strict"), nb::arg("fast") = false, nb::arg("weight_b_nz_shape").none() = nb::none(),
        nb::arg("weight_a_nz_shape").none() = nb::none(), nb::arg("ranks").none() = nb::none(),
        nb::arg("scales").none() = nb::none(),
        "out = y + scale * gathered LoRA delta (out may be y). No allocation, no copies; "
        "raises ValueError / TypeError / RuntimeError with the library's message. "
        "A weight with an NZ shape is packed FRACTAL_NZ storage of that logical shape. "
        "ranks [W] int32 (int64 converted) / scales [W] float32: per-adapter rank limit and scale factor.");
  m.def("run_multi", &run_multi, nb::arg("out").none(), nb::arg("y").none(), nb::arg("x").none(),
        nb::arg("indices").none(),
        nb::arg("slices"), nb::arg("layer_idx"), nb::arg("strict"), nb::arg("fast"),
        "Several (weight_b, weight_a, scale, y_offset, y_slice_size, b_nz_shape, a_nz_shape, ranks, scales) slices "
        "added into disjoint column ranges of out in one library call.");

  m.def("fast_run", &fast_run, nb::arg("out").none(), nb::arg("y").none(), nb::arg("x").none(), nb::arg("weight_b").none(), nb::arg("indices").none(), nb::arg("weight_a").none(), nb::arg("layer_idx").none(), nb::arg("scale").none(), nb::arg("y_offset").none(), nb::arg("y_slice_size").none(), "Eager path of npu_batch_gather_matmul(_) / add_lora (NotImplemented: use the general path).");
  m.def("bgmv_shrink", [](nb::handle inputs, nb::handle w, nb::handle out, nb::handle idx, nb::handle scaling) {
    punica_shrink(inputs, w, out, idx, scaling, nullptr, "lora_b_weights");
  }, nb::arg("inputs").none(), nb::arg("lora_b_weights").none(), nb::arg("output_tensor").none(), nb::arg("lora_indices_tensor").none(), nb::arg("scaling").none());
  m.def("bgmv_expand", [](nb::handle inputs, nb::handle w, nb::handle out, nb::handle idx, nb::handle add_inputs) {
    punica_expand(inputs, w, out, idx, bool_arg(add_inputs, "add_inputs"), -1, -1, nullptr);
  }, nb::arg("inputs").none(), nb::arg("lora_b_weights").none(), nb::arg("output_tensor").none(), nb::arg("lora_indices_tensor").none(), nb::arg("add_inputs").none());
  m.def("bgmv_expand_slice", [](nb::handle inputs, nb::handle w, nb::handle out, nb::handle idx, nb::handle offset,
                                nb::handle size, nb::handle add_inputs) {
    const int64_t o = int_arg(offset, "slice_offset"), n = int_arg(size, "slice_size");
    if (o < 0) throw nb::value_error(("AddLora: slice_offset must be >= 0 (got " + std::to_string(o) + ")").c_str());
    punica_expand(inputs, w, out, idx, bool_arg(add_inputs, "add_inputs"), o, n, nullptr);
  }, nb::arg("inputs").none(), nb::arg("lora_b_weights").none(), nb::arg("output_tensor").none(), nb::arg("lora_indices_tensor").none(), nb::arg("slice_offset").none(), nb::arg("slice_size").none(), nb::arg("add_inputs").none());
  m.def("sgmv_shrink", [](nb::handle inputs, nb::handle w, nb::handle out, nb::handle start, nb::handle len,
                          nb::handle idx, nb::handle batches, nb::handle max_len, nb::handle tokens, nb::handle scaling) {
    Keep keep;
    std::vector<int64_t> ex;
    require(inputs, "inputs");
    TensorView vx;
    describe(inputs, "inputs", false, &vx, keep);
    explode_sequences(keep, start, len, idx, int_arg(batches, "batches"), int_arg(max_len, "max_seq_length"),
                      int_arg(tokens, "token_nums"), vx.ndim == 2 ? vx.dims[0] : -1, &ex);
    punica_shrink(inputs, w, out, nb::none(), scaling, &ex, "lora_a_weights");
  }, nb::arg("inputs").none(), nb::arg("lora_a_weights").none(), nb::arg("output_tensor").none(), nb::arg("b_seq_start_loc").none(), nb::arg("seq_len_tensor").none(), nb::arg("lora_indices_tensor").none(), nb::arg("batches").none(), nb::arg("max_seq_length").none(), nb::arg("token_nums").none(), nb::arg("scaling").none());
  m.def("sgmv_expand", [](nb::handle inputs, nb::handle w, nb::handle out, nb::handle start, nb::handle len,
                          nb::handle idx, nb::handle batches, nb::handle max_len, nb::handle tokens,
                          nb::handle add_inputs, nb::handle offset, nb::handle size) {
    Keep keep;
    std::vector<int64_t> ex;
    require(inputs, "inputs");
    TensorView vx;
    describe(inputs, "inputs", false, &vx, keep);
    const bool add = bool_arg(add_inputs, "add_inputs");
    int64_t o = -1, n = -1;
    if (!offset.is_none()) {
      o = int_arg(offset, "slice_offset");
      n = int_arg(size, "slice_size");
      if (o < 0) throw nb::value_error(("AddLora: slice_offset must be >= 0 (got " + std::to_string(o) + ")").c_str());
    }
    explode_sequences(keep, start, len, idx, int_arg(batches, "batches"), int_arg(max_len, "max_seq_length"),
                      int_arg(tokens, "token_nums"), vx.ndim == 2 ? vx.dims[0] : -1, &ex);
    punica_expand(inputs, w, out, nb::none(), add, o, n, &ex);
  }, nb::arg("inputs").none(), nb::arg("lora_b_weights").none(), nb::arg("output_tensor").none(), nb::arg("b_seq_start_loc").none(), nb::arg("seq_len_tensor").none(), nb::arg("lora_indices_tensor").none(), nb::arg("batches").none(), nb::arg("max_seq_length").none(), nb::arg("token_nums").none(), nb::arg("add_inputs").none(), nb::arg("slice_offset").none(), nb::arg("slice_size").none());
  m.def("shrink", &py_shrink, nb::arg("x").none(), nb::arg("weight_a").none(), nb::arg("z").none(),
        nb::arg("indices").none(), nb::arg("layer_idx"), nb::arg("scale"), nb::arg("accumulate"), nb::arg("fast"));
  m.def("expand", &py_expand, nb::arg("z").none(), nb::arg("weight_b").none(), nb::arg("out").none(),
        nb::arg("indices").none(), nb::arg("layer_idx"), nb::arg("scale"), nb::arg("y_offset"),
        nb::arg("y_slice_size"), nb::arg("accumulate"), nb::arg("fast"));
  m.def("nd_to_nz", &nd_to_nz, nb::arg("src"), nb::arg("dst"), "Pack ND src [..., M, N] into NZ storage dst.");
  m.def("nz_to_nd", &nz_to_nd, nb::arg("src"), nb::arg("dst"), "Unpack NZ storage src into ND dst.");
  m.def("nz_elements", &nz_elements, nb::arg("dims"), "Elements of the NZ storage of logical shape dims.");
  m.def("set_guard_factory", &set_guard_factory, nb::arg("factory").none(),
        "torch >= 2: callable(*tensors) -> check(*tensors) -> bool (a verified TensorGuards), or None: no cache.");
  m.def("make_entry", &make_entry, nb::arg("kind"), nb::arg("fallback"), nb::arg("name"), nb::arg("doc"),
        "Builtin eager entry (0: npu_batch_gather_matmul_, 1: npu_batch_gather_matmul, 2: add_lora) forwarding "
        "anything it does not take to `fallback`.");
  m.def("guard_stats", [] {
    int entries = 0;
    for (const GuardEntry& e : g_guard_entries) entries += e.check != nullptr;
    return std::make_tuple(g_guard_factory != nullptr, entries, g_guard_hits, g_guard_misses);
  }, "(cache on, entries, hits, misses) of the eager path's description cache (tests).");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw nb::value_error(("AddLora: set_num_threads needs n >= 1 (got " + std::to_string(n) + ")").c_str());
    addlora::set_num_threads(n);
  }, nb::arg("n"));
  m.def("num_threads", &addlora::num_threads);
  m.def("simd_target", &addlora::simd_target);
  m.def("version", &addlora::version);
}
