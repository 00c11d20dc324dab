// addlora._core's shared pieces (python/*.cc): array and tensor views, the library call with the
// GIL released, argument helpers.  The module is split by concern:
//   arrays.cc        numpy / DLPack arrays as TensorViews; run, run_multi, NZ conversion (general path)
//   torch_tensors.cc torch tensors described through the C API (describe), plain argument reads
//   fast_path.cc     the eager fast path: the description cache, fast_run, builtin entries
//   torch_results.cc the allocating calls' torch results (one aligned block through DLPack)
//   punica.cc        vLLM's punica ops and addlora.shrink / addlora.expand
//   module.cc        the nanobind module (bindings only)
#pragma once
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
#include <unordered_map>
#include <vector>

namespace addlora_py {

namespace nb = nanobind;
using addlora::DType;
using addlora::Status;
using addlora::TensorView;

// Inputs may be read-only (e.g. a numpy view with writeable=False); the output must not be.
using InArray = nb::ndarray<nb::ro>;
using OutArray = nb::ndarray<>;
bool dtype_from_dlpack(nb::dlpack::dtype t, DType* out);
std::string dlpack_dtype_name(nb::dlpack::dtype t);

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
// Contiguous row-major strides for v.dims; a small zeroed buffer of v's own standing in for the
// storage of an array without elements (see arrays.cc).
void contiguous_strides(TensorView& v);
void stand_in_storage(TensorView& v, Scratch& scratch);

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
// Python's exception for a library failure (TypeError, RuntimeError or ValueError, by its kind).
[[noreturn]] void raise_error(const addlora::Error& e);

inline addlora::Rules rules_of(bool strict) { return strict ? addlora::Rules::cann : addlora::Rules::general; }
inline addlora::Precision precision_of(bool fast) { return fast ? addlora::Precision::fast : addlora::Precision::exact; }

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
// Multiply-adds of an add_lora call (an estimate for call_without_gil).
int64_t lora_work(const addlora::Arguments& a);
// Multiply-adds of a shrink or expand: rows [B, K] against weights [W, 1, M, N] (B * M * N).
int64_t half_work(const TensorView& rows, const TensorView& weights);

// One LoRA pair of a multi-slice call, as the Python layer packs it:
// (weight_b | None, weight_a | None, scale, y_offset, y_slice_size, weight_b_nz_shape | None, weight_a_nz_shape | None,
//  ranks | None, scales | None).
using SliceTuple = std::tuple<std::optional<InArray>, std::optional<InArray>, double, int64_t, int64_t, Shape, Shape,
                              std::optional<InArray>, std::optional<InArray>>;
void run(const OutArray& out, const InArray& y, const InArray& x, const InArray& weight_b,
         const InArray& indices, const InArray& weight_a, int64_t layer_idx, double scale,
         int64_t y_offset, int64_t y_slice_size, bool strict, bool fast, const Shape& weight_b_nz,
         const Shape& weight_a_nz, const InArray& ranks, const InArray& scales);
void run_multi(const OutArray& out, const InArray& y, const InArray& x, const InArray& indices,
               const std::vector<SliceTuple>& slices, int64_t layer_idx, bool strict, bool fast);
void nd_to_nz(const InArray& src, const OutArray& dst);
void nz_to_nd(const InArray& src, const OutArray& dst);
int64_t nz_elements(const std::vector<int64_t>& dims);

// ---- torch tensors (torch_tensors.cc) ----
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
  lenfunc length = nullptr;  // the C base class's len() (torch.Tensor.__len__ is Python code, ~0.5 µs)
  PyObject *d_data_ptr = nullptr, *d_stride = nullptr;                            // method descriptors
  PyObject *d_shape = nullptr, *d_dtype = nullptr, *d_is_cpu = nullptr, *d_requires_grad = nullptr;  // getsets
  PyObject* d_nbytes = nullptr;  // getset, or null (then not read: fast_path.cc lookup_guard)
  // Where a plain tensor object keeps its TensorImpl pointer, and the TensorImpl its
  // StorageImpl pointer (byte offsets found on the first plain CPU tensor described, from
  // torch's own `_cdata` values; 0: not found).  Used only to choose what to prefetch
  // (prefetch_metadata), never for a value.
  int64_t impl_offset = 0, storage_offset = 0;
  bool offsets_tried = false;
};
extern TorchRefs g_torch;

bool torch_ready();          // torch imported (never imports it); fills g_torch once
bool is_torch_tensor(PyObject* o);
bool plain_tensor(PyObject* o);  // exactly torch.Tensor or nn.Parameter
void prefetch_metadata(PyObject* const* objs, int n);  // see torch_tensors.cc
// (At most 8 handles, the most any call passes; more would only go unprefetched.)
inline void prefetch_metadata(std::initializer_list<nb::handle> hs) {
  PyObject* objs[8];
  int n = 0;
  for (nb::handle h : hs)
    if (n < 8) objs[n++] = h.ptr();
  prefetch_metadata(objs, n);
}
PyObject* tensor_get(PyObject* o, bool plain, PyObject* descr, PyObject* name);
PyObject* tensor_call(PyObject* o, bool plain, PyObject* descr, PyObject* name);
bool is_numpy_array(PyObject* o);
bool plain_int(nb::handle h, int64_t* v);
bool plain_float(nb::handle h, double* v);

struct PyRef {  // owned reference, released at scope exit
  PyObject* p;
  explicit PyRef(PyObject* q) : p(q) {}
  ~PyRef() { Py_XDECREF(p); }
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
};
// Result of describing one argument.
enum class Described { ok, needs_grad };

// Holds the nanobind arrays of non-torch arguments alive for the call.
struct Keep {
  std::vector<InArray> in;
  std::vector<OutArray> out;
  Scratch scratch;
};
// A TensorView over a torch tensor, numpy array or other DLPack/buffer CPU array (`v` fresh).
Described describe(nb::handle h, const char* name, bool writable, TensorView* v, Keep& keep,
                   bool check_grad = false);

// ---- torch results (torch_results.cc) ----
// A new contiguous torch CPU tensor shaped like `like`, or null (no Python error set) when this
// route is unavailable; *data receives its first element.
PyObject* new_torch_result(const TensorView& like, void** data);

// ---- the eager fast path (fast_path.cc) ----
nb::object fast_run(nb::handle out, nb::handle y, nb::handle x, nb::handle weight_b, nb::handle indices,
                    nb::handle weight_a, nb::handle layer_idx, nb::handle scale, nb::handle y_offset,
                    nb::handle y_slice_size);
// The description cache's key: one entry per op form and weights (fast_path.cc).
enum GuardKind {
  kGuardAllocated = 0,     // add_lora forms: out allocated, in place, a separate out
  kGuardInPlace = 1,
  kGuardSeparateOut = 2,
  kGuardPunicaShrink = 3,  // the punica bgmv ops (punica.cc)
  kGuardPunicaExpand = 4
};
struct GuardKey {
  void* weight_b;  // the weights' addresses (a punica op's one weight tensor: weight_b)
  void* weight_a;
  int64_t rows;    // the first guarded tensor's size(0), or 0 when the batch dimension is open
  int kind;      // the op and form (kGuardAllocated ... kGuardPunicaExpand)
  int n;         // tensors guarded
  bool operator==(const GuardKey& o) const {
    return weight_b == o.weight_b && weight_a == o.weight_a && rows == o.rows && kind == o.kind && n == o.n;
  }
};
// The description cache for one call of form `kind`: tensors[0..n), the weights at slots w0
// (and w1 >= 0) keyed by address, dim 0 of the `batched` ones (bit k: tensors[k]) open.  True on
// a hit: views[0..n) then hold the recorded metadata with this call's addresses and rows.
// Otherwise *remember says whether to pass the views, once described, to remember_guard.
// Weights over kCacheMaxWeightBytes are never cached (cold entries cost more than they save).
bool lookup_guard(int kind, int n, int w0, int w1, unsigned batched, PyObject* const* tensors,
                  TensorView* const* views, GuardKey* key, bool* remember);
void remember_guard(const GuardKey& key, unsigned batched, PyObject* const* tensors, const TensorView* const* views);
void set_guard_factory(nb::handle factory);
std::tuple<bool, int, int64_t, int64_t, int64_t> guard_stats();
// Builtin entries (fast_path.cc): kinds 0-2 the torch_npu-style functions (EntryKind), 3 and up
// the punica ops (kEntryPunica + PunicaOp).
nb::object make_entry(int kind, nb::handle fallback, const std::string& name, const std::string& doc);
// f() (a new reference, or null with the Python error set), with any C++ exception it throws
// turned into the Python error nanobind would raise for it: a builtin entry's result.
template <class F>
PyObject* translated(F&& f) {
  try {
    return f();
  } catch (nb::python_error& e) {
    e.restore();
  } catch (const nb::builtin_exception& e) {
    PyErr_SetString(e.type() == nb::exception_type::type_error ? PyExc_TypeError
                    : e.type() == nb::exception_type::value_error ? PyExc_ValueError
                                                                   : PyExc_RuntimeError,
                    e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

// ---- punica and the halves (punica.cc) ----
void require(nb::handle h, const char* name);
int64_t int_arg(nb::handle h, const char* name);
double float_arg(nb::handle h, const char* name);
bool bool_arg(nb::handle h, const char* name);
void explode_sequences(Keep& keep, nb::handle b_seq_start_loc, nb::handle seq_len_tensor,
                       nb::handle lora_indices_tensor, int64_t batches, int64_t max_seq_length, int64_t token_nums,
                       int64_t rows, std::vector<int64_t>* exploded);
void punica_shrink(nb::handle inputs, nb::handle weights, nb::handle output, nb::handle indices, nb::handle scaling,
                   const std::vector<int64_t>* exploded, const char* weights_name);
void punica_expand(nb::handle inputs, nb::handle weights, nb::handle output, nb::handle indices, bool add_inputs,
                   int64_t slice_offset, int64_t slice_size, const std::vector<int64_t>* exploded);
// vLLM's six punica ops, in the order of make_entry's kinds from kEntryPunica.  punica_op runs
// one with its arguments in vLLM's positional order (a[0] = inputs ..., defaults filled in).
enum PunicaOp { kBgmvShrink, kBgmvExpand, kBgmvExpandSlice, kSgmvShrink, kSgmvExpand, kSgmvExpandSlice, kPunicaOps };
constexpr int kEntryPunica = 3;
constexpr int kPunicaMaxArgs = 12;
struct PunicaSignature {
  const char* names[kPunicaMaxArgs];
  int n;                // parameters
  int required;         // the first `required` have no default
  int default_kind;     // the last parameter's default (when required < n): 0 1.0, 1 True, 2 False
};
extern const PunicaSignature kPunicaSignatures[kPunicaOps];
void punica_op(int op, const nb::handle* a);
void py_shrink(nb::handle x, nb::handle weight_a, nb::handle z, nb::handle indices, int64_t layer_idx, double scale,
               bool accumulate, bool fast);
void py_expand(nb::handle z, nb::handle weight_b, nb::handle out, nb::handle indices, int64_t layer_idx, double scale,
               int64_t y_offset, int64_t y_slice_size, bool accumulate, bool fast);

}  // namespace addlora_py
