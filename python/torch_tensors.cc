// torch tensors described through the C API (attribute reads, no DLPack export), and plain
// argument reads.  See native.h for the module's layout.
#include "native.h"

#include <cstring>

namespace addlora_py {

// ---- the eager fast path ----------------------------------------------------------------------
// Torch tensors are described by a few attribute reads (data_ptr, shape, stride, dtype, is_cpu,
// requires_grad) instead of a DLPack export (torch builds a capsule in Python code: several µs
// per tensor); numpy and other arrays go through nanobind's ndarray caster as before.  Any
// argument the fast path does not take as is (keywords beyond torch_npu's, a tensor that
// requires grad, an attribute that is not a plain int) makes it return NotImplemented and the
// Python layer takes the general path, which produces the error messages.

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
  if (PyObject* name = PyUnicode_InternFromString("nbytes")) {
    g_torch.d_nbytes = base_descriptor(t, name, false);  // the name stays referenced, like the others
  }
  PyErr_Clear();
  if (g_torch.d_data_ptr && g_torch.d_stride && g_torch.d_shape && g_torch.d_dtype && g_torch.d_is_cpu &&
      g_torch.d_requires_grad) {
    g_torch.plain_types[0] = t;
    PyTypeObject* base = t->tp_base;  // torch._C.TensorBase (_TensorBase before 2.x)
    if (base && base->tp_as_mapping && base->tp_as_mapping->mp_length) g_torch.length = base->tp_as_mapping->mp_length;
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

namespace {

// The byte offset in [begin, end) of base's first 8-byte word equal to value, or 0.
int64_t word_offset(const unsigned char* base, int64_t begin, int64_t end, uintptr_t value) {
  for (int64_t off = begin; off + 8 <= end; off += 8) {
    uintptr_t w;
    std::memcpy(&w, base + off, sizeof w);
    if (w == value) return off;
  }
  return 0;
}

// Finds g_torch.impl_offset and storage_offset on t, a plain CPU tensor just described (the
// first one: no tensor is made for it, so the user's default device and modes play no part):
// the words of the tensor object and of its TensorImpl that equal torch's own `_cdata` of the
// tensor and of its untyped storage.  Not found (another layout; torch < 2 has no
// untyped_storage): that offset stays 0, and nothing, or only the TensorImpl, is prefetched.
void find_metadata_offsets(PyObject* t) {
  auto cdata = [](PyObject* o) -> uintptr_t {
    PyRef c(PyObject_GetAttrString(o, "_cdata"));
    const uintptr_t v = c.p && PyLong_Check(c.p) ? static_cast<uintptr_t>(PyLong_AsUnsignedLongLong(c.p)) : 0;
    PyErr_Clear();
    return v == static_cast<uintptr_t>(-1) ? 0 : v;
  };
  const uintptr_t impl = cdata(t);
  if (!impl) return;
  const auto* obj = reinterpret_cast<const unsigned char*>(t);
  g_torch.impl_offset = word_offset(obj, sizeof(PyObject), Py_TYPE(t)->tp_basicsize, impl);
  if (!g_torch.impl_offset) return;
  PyRef st(PyObject_CallMethod(t, "untyped_storage", nullptr));
  const uintptr_t storage = st.p ? cdata(st.p) : 0;
  PyErr_Clear();
  // Within the TensorImpl's first 64 bytes: a TensorImpl is far larger.
  if (storage) g_torch.storage_offset = word_offset(reinterpret_cast<const unsigned char*>(impl), 8, 64, storage);
}

}  // namespace

// Prefetches the TensorImpl (its first 256 bytes: sizes, strides, dtype, storage) and then the
// StorageImpl of each plain torch tensor in objs.  The attribute reads that follow walk that
// chain one tensor at a time, each step a cache miss when the call's tensors are cold (decode,
// where the model's weights stream through the caches between calls); prefetched together,
// the misses of all tensors overlap.  The pointers read here only choose what to prefetch.
void prefetch_metadata(PyObject* const* objs, int n) {
  if (!g_torch.impl_offset) return;
  const unsigned char* impl[8];
  int m = 0;
  for (int i = 0; i < n && m < 8; ++i) {
    if (!plain_tensor(objs[i])) continue;
    std::memcpy(&impl[m], reinterpret_cast<const unsigned char*>(objs[i]) + g_torch.impl_offset, sizeof impl[m]);
    for (int line = 0; line < 4; ++line) __builtin_prefetch(impl[m] + 64 * line);
    ++m;
  }
  if (!g_torch.storage_offset) return;
  for (int i = 0; i < m; ++i) {
    const unsigned char* storage;
    std::memcpy(&storage, impl[i] + g_torch.storage_offset, sizeof storage);
    if (storage) {
      __builtin_prefetch(storage);
      __builtin_prefetch(storage + 64);
    }
  }
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

[[noreturn]] void raise_from_python(const char* name) {
  // An attribute read failed (e.g. a sparse tensor has no strides): keep Python's reason.
  nb::python_error e;
  throw nb::type_error(("AddLora: cannot read " + std::string(name) + " as a strided CPU tensor (" +
                        std::string(e.what()) + ")").c_str());
}

// A TensorView over a torch tensor, numpy array or other DLPack/buffer CPU array.
// `h` None gives the empty (absent) view.  Raises TypeError for what cannot be a view.
// `v` must be a default-constructed view (every caller passes a fresh one).  (~85 lines: one
// branch per array kind -- torch tensor, DLPack, buffer -- each short.)
Described describe(nb::handle h, const char* name, bool writable, TensorView* v, Keep& keep, bool check_grad) {
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
    if (plain && !g_torch.offsets_tried) {
      g_torch.offsets_tried = true;
      find_metadata_offsets(o);
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

}  // namespace addlora_py
