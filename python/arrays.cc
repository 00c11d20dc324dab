// numpy and other DLPack / buffer-protocol arrays as TensorViews, and the general path's calls
// (run, run_multi, NZ conversion).  See native.h for the module's layout.
#include "native.h"

namespace addlora_py {

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

// Multiply-adds of an add_lora call (an estimate; malformed views give any value, the library
// rejects them).
namespace {
// Every size in [0, kKeepGil]: products of a few of them cannot overflow.
bool small_sizes(std::initializer_list<int64_t> sizes) {
  for (int64_t v : sizes)
    if (v < 0 || v > kKeepGil) return false;
  return true;
}
}  // namespace

int64_t lora_work(const addlora::Arguments& a) {
  if (a.x.ndim != 2 || a.weight_b.ndim != 4) return std::numeric_limits<int64_t>::max();
  const int64_t B = a.x.dims[0], H1 = a.x.dims[1], H2 = a.weight_b.dims[2], R = a.weight_b.dims[3];
  return small_sizes({B, H1, H2, R}) ? B * R * (H1 + H2) : std::numeric_limits<int64_t>::max();
}

int64_t half_work(const TensorView& rows, const TensorView& weights) {
  if (rows.ndim != 2 || weights.ndim != 4) return std::numeric_limits<int64_t>::max();
  const int64_t B = rows.dims[0], M = weights.dims[2], N = weights.dims[3];
  return small_sizes({B, M, N}) ? B * M * N : std::numeric_limits<int64_t>::max();
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

}  // namespace addlora_py
