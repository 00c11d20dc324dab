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
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
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

// Python's split: TypeError for a wrong dtype, ValueError for everything about shapes,
// attributes, missing tensors and memory (strides, overlap).  The library reports dtype and
// memory problems with the same status (invalid_param), so its message decides: every dtype
// message names the "dtype".
[[noreturn]] void raise_status(Status s, const std::string& message) {
  const std::string text = message.empty() ? "AddLora: error status " + std::to_string(static_cast<int>(s)) : message;
  switch (s) {
    case Status::invalid_param:
      if (text.find(" dtype") != std::string::npos) throw nb::type_error(text.c_str());
      throw nb::value_error(text.c_str());
    case Status::null_pointer:
    case Status::invalid_shape: throw nb::value_error(text.c_str());
    default: throw std::runtime_error(text);  // -> RuntimeError
  }
}

addlora::Rules rules_of(bool strict) { return strict ? addlora::Rules::cann : addlora::Rules::general; }
addlora::Precision precision_of(bool fast) { return fast ? addlora::Precision::fast : addlora::Precision::exact; }

using Shape = std::optional<std::vector<int64_t>>;

// Runs a library call with the GIL released (the arrays stay alive: nb::ndarray holds
// references while other Python threads run) and turns a failed status into the matching
// Python exception.
template <class F>
void call_without_gil(F&& call) {
  std::string message;
  Status status;
  {
    nb::gil_scoped_release release;
    status = call(&message);
  }
  if (status != Status::ok) raise_status(status, message);
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
  call_without_gil([&](std::string* message) { return addlora::add_lora(args, rules_of(strict), message); });
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
  call_without_gil([&](std::string* message) {
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
  call_without_gil([&](std::string* message) {
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
  call_without_gil([&](std::string* message) {
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
  m.def("nd_to_nz", &nd_to_nz, nb::arg("src"), nb::arg("dst"), "Pack ND src [..., M, N] into NZ storage dst.");
  m.def("nz_to_nd", &nz_to_nd, nb::arg("src"), nb::arg("dst"), "Unpack NZ storage src into ND dst.");
  m.def("nz_elements", &nz_elements, nb::arg("dims"), "Elements of the NZ storage of logical shape dims.");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw nb::value_error(("AddLora: set_num_threads needs n >= 1 (got " + std::to_string(n) + ")").c_str());
    addlora::set_num_threads(n);
  }, nb::arg("n"));
  m.def("num_threads", &addlora::num_threads);
  m.def("simd_target", &addlora::simd_target);
  m.def("version", &addlora::version);
}
