// addlora._core: the thin nanobind layer between Python arrays and addlora::add_lora.
//
// Every tensor arrives as a DLPack-described nb::ndarray (numpy, torch and any other DLPack
// or buffer-protocol producer) and is handed to the library as a TensorView over the SAME
// memory: shape, strides (in elements, possibly non-contiguous) and dtype are copied into the
// view, never the data.  All validation is the library's (make_plan); this file only rejects
// what a TensorView cannot express (non-CPU memory, dtypes with no DType, rank > 8) and maps
// the library's Status to a Python exception carrying its message.  The pythonic API
// (allocation of results, numpy/torch symmetry, docstrings) lives in addlora/__init__.py.
#include <addlora/addlora.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <memory>
#include <string>
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

// A view over the array's memory.  An absent array (None) gives the empty view the library
// reads as "missing": it then reports null_pointer for required tensors.
template <class Array>
TensorView view_of(const Array& a, const char* name, std::vector<std::unique_ptr<char[]>>& scratch) {
  TensorView v;
  if (!a.is_valid()) return v;
  if (a.device_type() != nb::device::cpu::value)
    throw nb::type_error(("AddLora: " + std::string(name) + " must be in CPU memory (DLPack device type " +
                          std::to_string(a.device_type()) + ")").c_str());
  if (!dtype_from_dlpack(a.dtype(), &v.dtype))
    throw nb::type_error(("AddLora: " + std::string(name) + " has dtype " + dlpack_dtype_name(a.dtype()) +
                          "; supported: float16, bfloat16, float32 (indices: int32, int64)").c_str());
  if (a.ndim() > kMaxDims)  // TensorView's capacity; the library reports the rank each input needs
    throw nb::value_error(("AddLora: " + std::string(name) + " must have at most " + std::to_string(kMaxDims) +
                           " dimensions (got " + std::to_string(a.ndim()) + ")").c_str());
  v.data = static_cast<char*>(const_cast<void*>(static_cast<const void*>(a.data_handle()))) + a.byte_offset();
  v.ndim = static_cast<int32_t>(a.ndim());
  for (size_t d = 0; d < a.ndim(); ++d) {
    v.dims[d] = static_cast<int64_t>(a.shape(d));
    v.strides[d] = a.stride(d);  // DLPack strides are in elements, like TensorView's
  }
  if (a.size() == 0) {
    // No elements (B == 0 under the general rules): torch exports these with a null data
    // pointer and sometimes zero strides.  Nothing is read or written, but the library must
    // see a present, well-formed view that aliases nothing: contiguous strides over a small
    // buffer of its own.
    int64_t extent = 1;
    for (int d = v.ndim - 1; d >= 0; --d) {
      v.strides[d] = extent;
      extent *= v.dims[d] > 0 ? v.dims[d] : 1;
    }
    scratch.emplace_back(new char[static_cast<size_t>(extent) * addlora::dtype_size(v.dtype)]());
    v.data = scratch.back().get();
  }
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

void run(const OutArray& out, const InArray& y, const InArray& x, const InArray& weight_b,
         const InArray& indices, const InArray& weight_a, int64_t layer_idx, double scale,
         int64_t y_offset, int64_t y_slice_size, bool strict) {
  addlora::Arguments args;
  std::vector<std::unique_ptr<char[]>> scratch;  // stand-in storage for arrays with no elements
  args.y = view_of(y, "y", scratch);  // y before out: a bad y is reported as y, not as the out made like it
  args.x = view_of(x, "x", scratch);
  args.weight_b = view_of(weight_b, "weight_b", scratch);
  args.indices = view_of(indices, "indices", scratch);
  args.weight_a = view_of(weight_a, "weight_a", scratch);
  args.out = view_of(out, "out", scratch);
  args.layer_idx = layer_idx;
  args.scale = scale;
  args.y_offset = y_offset;
  args.y_slice_size = y_slice_size;
  std::string message;
  Status status;
  {
    // The arrays stay alive (nb::ndarray holds references) while other Python threads run.
    nb::gil_scoped_release release;
    status = addlora::add_lora(args, strict ? addlora::Rules::cann : addlora::Rules::general, &message);
  }
  if (status != Status::ok) raise_status(status, message);
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "Native layer of the addlora package (use the functions in addlora, not these).";
  m.def("run", &run, nb::arg("out").none(), nb::arg("y").none(), nb::arg("x").none(),
        nb::arg("weight_b").none(), nb::arg("indices").none(), nb::arg("weight_a").none(),
        nb::arg("layer_idx"), nb::arg("scale"), nb::arg("y_offset"), nb::arg("y_slice_size"),
        nb::arg("strict"),
        "out = y + scale * gathered LoRA delta (out may be y). No allocation, no copies; "
        "raises ValueError / TypeError / RuntimeError with the library's message.");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw nb::value_error(("AddLora: set_num_threads needs n >= 1 (got " + std::to_string(n) + ")").c_str());
    addlora::set_num_threads(n);
  }, nb::arg("n"));
  m.def("num_threads", &addlora::num_threads);
  m.def("simd_target", &addlora::simd_target);
  m.def("version", &addlora::version);
}
