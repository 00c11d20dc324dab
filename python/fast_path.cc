// The eager fast path of npu_batch_gather_matmul(_) / add_lora: the description cache, fast_run
// and the builtin entries (its results: torch_results.cc).  See native.h for the module's layout.
#include "native.h"

namespace addlora_py {

// ---- torch >= 2: described tensors cached, checked by Dynamo's TensorGuards ----------------------
// Describing a torch tensor costs ~0.35 µs of attribute reads (shape and stride() build tuples).
// Under torch 2.x the description of a call's tensors (add_lora's here, the punica ops' in
// punica.cc) is kept, keyed by the weights' addresses and the call's form, together with a
// torch._C._dynamo.guards.TensorGuards over the same tensors: its check() (C++, ~0.12 µs a tensor)
// confirms that every tensor still has the recorded type, dtype, device, dispatch keys,
// requires_grad (False), sizes and strides; only data_ptr() is then read (it includes the storage
// offset).  The batch dimension (dim 0 of the activations, indices and outputs) is left to any
// size: a serving stack's batch changes from step to step, and an entry per (weights, batch size)
// would fill the cache with entries used once.  Its size is read per call through the C base
// class's len(); a factory that cannot leave it open (its self-test) keys on the first tensor's row
// count instead.  Any mismatch, or a check that raises, is a miss: the tensors are described as
// usual and the entry rebuilt (~3 µs: the guard is made in Python) if its guard had served a few
// calls; otherwise rebuilding backs off (see should_rebuild), so tensors whose metadata keeps
// changing cost a describe and a failed check, not a rebuild each time.  Up to kGuardEntries
// entries (a model's projections, two per punica projection); when full, new keys wait for unused
// entries to go (make_room).  Calls with weights over kCacheMaxWeightBytes are not cached at all
// (their entries would be cold).  The factory (addlora/_guards.py) is installed only after a
// self-test of those semantics; without it nothing is cached.
struct GuardKeyHash {
  size_t operator()(const GuardKey& k) const {
    uint64_t h = reinterpret_cast<uintptr_t>(k.weight_b) * 0x9e3779b97f4a7c15ULL;
    h ^= reinterpret_cast<uintptr_t>(k.weight_a) + 0x7f4a7c159e3779b9ULL + (h << 6) + (h >> 2);
    h ^= static_cast<uint64_t>(k.rows) * 0xbf58476d1ce4e5b9ULL + static_cast<uint64_t>(k.kind * 8 + k.n);
    return static_cast<size_t>(h ^ (h >> 31));
  }
};
struct GuardEntry {
  PyObject* check = nullptr;  // owned: the guard's bound check()
  TensorView views[6];        // metadata of the guarded tensors (data filled per call)
  int64_t hits_since_build = 0;
  int backoff = 0, skip = 0;  // rebuild back-off (should_rebuild)
  bool used = true;           // served a call (or was made) since the last sweep (make_room)
};
constexpr size_t kGuardEntries = 2048;
std::unordered_map<GuardKey, GuardEntry, GuardKeyHash> g_guards;
PyObject* g_guard_factory = nullptr;  // callable(batched, *tensors) -> check, or null (no cache)
bool g_open_rows = false;             // the factory leaves dim 0 of the `batched` tensors open
int64_t g_guard_hits = 0, g_guard_misses = 0;  // for tests: calls served from an entry / checks failed
int64_t g_turned_away = 0;  // new keys left uncached since the last sweep (the cache was full)

void clear_guards() {
  g_turned_away = 0;
  std::unordered_map<GuardKey, GuardEntry, GuardKeyHash> old;
  old.swap(g_guards);  // the decrefs below may run Python code: the live map is already empty
  for (auto& [key, e] : old) Py_CLEAR(e.check);
}

void set_guard_factory(nb::handle factory) {
  clear_guards();
  Py_CLEAR(g_guard_factory);
  g_open_rows = false;
  if (factory.is_none()) return;
  g_guard_factory = Py_NewRef(factory.ptr());
  PyObject* open = PyObject_GetAttrString(factory.ptr(), "dynamic_rows");
  g_open_rows = open == Py_True;
  Py_XDECREF(open);
  PyErr_Clear();
}

std::tuple<bool, int, int64_t, int64_t, int64_t> guard_stats() {
  int entries = 0;
  for (const auto& [key, e] : g_guards) entries += e.check != nullptr;
  return std::make_tuple(g_guard_factory != nullptr, entries, g_guard_hits, g_guard_misses,
                         static_cast<int64_t>(kGuardEntries));
}

// Whether `key` may have an entry.  A full cache keeps its entries and leaves new keys
// uncached (described each call); once a cache's worth of new keys has been turned away, the
// entries that served no call since the previous sweep go (their weights freed, or no longer
// used).  So however many weight sets a model cycles through, at most one guard is built
// (~3 us, in Python) per kGuardEntries turned-away calls, and the entries in use stay.
bool make_room(const GuardKey& key) {
  if (g_guards.size() < kGuardEntries || g_guards.count(key)) return true;
  if (++g_turned_away < static_cast<int64_t>(kGuardEntries)) return false;
  g_turned_away = 0;
  std::vector<PyObject*> drop;
  for (auto it = g_guards.begin(); it != g_guards.end();) {
    if (it->second.used) {
      it->second.used = false;
      ++it;
    } else {
      drop.push_back(it->second.check);
      it = g_guards.erase(it);
    }
  }
  for (PyObject* check : drop) Py_XDECREF(check);  // the map is consistent: a decref may run Python code
  return g_guards.size() < kGuardEntries;
}

void* torch_data_ptr(PyObject* t) {
  PyRef ptr(tensor_call(t, plain_tensor(t), g_torch.d_data_ptr, g_torch.s_data_ptr));
  if (!ptr.p) {
    PyErr_Clear();
    return nullptr;
  }
  return PyLong_AsVoidPtr(ptr.p);
}

// True if the guard passes for these tensors (a raising check is a miss).
// The check runs Python machinery (argument handling, possibly a garbage collection whose
// finalizers call us again and change the cache): it holds its own reference meanwhile.
bool guard_passes(PyObject* check, PyObject* const* tensors, int n) {
  Py_INCREF(check);
  PyObject* r = PyObject_Vectorcall(check, tensors, static_cast<size_t>(n), nullptr);
  Py_DECREF(check);
  if (!r) {
    PyErr_Clear();
    return false;
  }
  const bool ok = r == Py_True;
  Py_DECREF(r);
  return ok;
}

// After a miss on `key`: whether to build a guard now.  Yes without an entry, or when the old
// guard served at least kUsefulHits calls; otherwise the old guard stays (its tensors may come
// back, e.g. two stride patterns in turn) and the next 1, 3, 7, ... up to 255 misses describe
// without rebuilding.
constexpr int64_t kUsefulHits = 4;
bool should_rebuild(const GuardKey& key) {
  auto it = g_guards.find(key);
  if (it == g_guards.end()) return true;
  GuardEntry& e = it->second;
  if (e.skip > 0) {
    --e.skip;
    return false;
  }
  if (e.check && e.hits_since_build < kUsefulHits) {
    e.backoff = std::min(2 * e.backoff + 1, 255);
    e.skip = e.backoff;
    return false;
  }
  e.backoff = 0;
  return true;
}

// Records a described call (views with data) for later ones; silently does nothing when the
// tensors should not be cached (one requires grad, one has no elements) or the factory fails.
void remember_guard(const GuardKey& key, unsigned batched, PyObject* const* tensors, const TensorView* const* views) {
  for (int k = 0; k < key.n; ++k) {
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
  if (!make_room(key)) return;
  // Python code runs here (other threads may use the cache meanwhile): no entry is held across it.
  PyRef mask(PyLong_FromUnsignedLong(batched));
  if (!mask.p) {
    PyErr_Clear();
    return;
  }
  PyObject* argv[7] = {mask.p};
  for (int k = 0; k < key.n; ++k) argv[k + 1] = tensors[k];
  PyObject* check = PyObject_Vectorcall(g_guard_factory, argv, static_cast<size_t>(key.n) + 1, nullptr);
  if (!check || check == Py_None) {
    PyErr_Clear();
    Py_XDECREF(check);
    return;
  }
  if (g_guards.size() >= kGuardEntries && g_guards.find(key) == g_guards.end()) {  // filled meanwhile
    Py_DECREF(check);
    return;
  }
  GuardEntry& e = g_guards[key];
  PyObject* old = e.check;
  e.check = check;
  e.hits_since_build = 0;
  e.skip = 0;
  e.used = true;
  for (int k = 0; k < key.n; ++k) {
    e.views[k] = *views[k];
    e.views[k].data = nullptr;
  }
  Py_XDECREF(old);
}

// Weights larger than this are not cached: such calls stream their weights (and between two
// uses of one projection, the rest of a model's) through the caches, so its entry is cold by
// the next call, and a cold TensorGuards check measured slower than the attribute reads it
// replaces (decode R=16, 937 weight sets from DRAM: +0.3-0.8 us a call); small weights' calls
// are hot and cost ~0.3 us less through the cache (bench/notes.md).
constexpr int64_t kCacheMaxWeightBytes = int64_t{64} << 10;

bool small_weights(PyObject* const* tensors, int w0, int w1) {
  if (!g_torch.d_nbytes) return false;  // torch 2.0 has no nbytes: size unknown, not cached
  int64_t bytes = 0;
  for (int w : {w0, w1}) {
    if (w < 0) continue;
    PyRef nb(tensor_get(tensors[w], true, g_torch.d_nbytes, nullptr));  // a plain tensor (lookup_guard)
    const long long v = nb.p ? PyLong_AsLongLong(nb.p) : -1;
    if (v < 0) {
      PyErr_Clear();
      return false;
    }
    bytes += v;
  }
  return bytes <= kCacheMaxWeightBytes;
}

bool lookup_guard(int kind, int n, int w0, int w1, unsigned batched, PyObject* const* tensors,
                  TensorView* const* views, GuardKey* key, bool* remember) {
  *remember = false;
  if (!g_guard_factory) return false;
  for (int k = 0; k < n; ++k)
    if (!plain_tensor(tensors[k])) return false;
  if (!small_weights(tensors, w0, w1)) return false;
  *key = GuardKey{nullptr, nullptr, -1, kind, n};
  key->weight_b = torch_data_ptr(tensors[w0]);
  key->weight_a = w1 >= 0 ? torch_data_ptr(tensors[w1]) : nullptr;
  // Without an open batch dimension, tensors[0]'s rows through the C base class: size(0).  Only
  // a hint: the guard checks every size.
  key->rows = g_open_rows || !g_torch.length ? 0 : g_torch.length(tensors[0]);
  if (key->rows < 0) PyErr_Clear();
  if (key->weight_b == nullptr || (w1 >= 0 && key->weight_a == nullptr)) return false;
  auto it = g_guards.find(*key);
  PyObject* const check = it != g_guards.end() ? it->second.check : nullptr;
  if (!check || !guard_passes(check, tensors, n)) {
    g_guard_misses += check != nullptr;
    *remember = should_rebuild(*key);
    return false;
  }
  it = g_guards.find(*key);  // the check may have changed the cache (see guard_passes)
  if (it == g_guards.end() || it->second.check != check) return false;  // described this once
  GuardEntry& e = it->second;
  ++e.hits_since_build;
  e.used = true;
  ++g_guard_hits;
  for (int k = 0; k < n; ++k) *views[k] = e.views[k];  // copied before any other Python call
  for (int k = 0; k < n; ++k) {
    views[k]->data = k == w0 ? key->weight_b : k == w1 ? key->weight_a : torch_data_ptr(tensors[k]);
    bool ok = views[k]->data != nullptr;
    // The open batch dimension: this call's rows (an empty batch is described as usual).
    if (ok && g_open_rows && ((batched >> k) & 1u) && views[k]->ndim >= 1) {
      const Py_ssize_t rows = g_torch.length ? g_torch.length(tensors[k]) : -1;
      if (rows < 0) PyErr_Clear();
      ok = rows > 0;
      views[k]->dims[0] = rows;
    }
    if (!ok) {
      for (int j = 0; j < n; ++j) *views[j] = TensorView();  // describe() needs fresh views
      *remember = true;
      return false;
    }
  }
  return true;
}

// npu_batch_gather_matmul(_) / add_lora with torch_npu's arguments only.  Returns `out`, or
// NotImplemented for the general path.  One function (~140 lines) on purpose: it is the eager
// call's whole hot path, read top to bottom, every early return a fallback to the general path.
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
  const int kind = allocate ? kGuardAllocated : out.ptr() == y.ptr() ? kGuardInPlace : kGuardSeparateOut;
  PyObject* tensors[6] = {y.ptr(), x.ptr(), weight_b.ptr(), indices.ptr()};
  TensorView* views[6] = {&args.y, &args.x, &args.weight_b, &args.indices};
  int n = 4;
  if (has_a) tensors[n] = weight_a.ptr(), views[n++] = &args.weight_a;
  if (kind == kGuardSeparateOut) tensors[n] = out.ptr(), views[n++] = &args.out;
  // The tensors whose dim 0 is the batch (y, x, indices[, out]): bit k for tensors[k].
  const unsigned batched = 0b1011u | (kind == kGuardSeparateOut ? 1u << (n - 1) : 0u);
  prefetch_metadata(tensors, n);
  GuardKey key;
  bool guardable = false;  // remember the views once described
  const bool described = lookup_guard(kind, n, 2, has_a ? 4 : -1, batched, tensors, views, &key, &guardable);
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
    if (guardable && !described) remember_guard(key, batched, tensors, views);
  } catch (const std::exception&) {
    // Anything the fast path cannot describe: the general path says what is wrong.
    PyErr_Clear();
    return nb::borrow(Py_NotImplemented);
  }
  call_without_gil([&](addlora::Error& message) { return addlora::add_lora(args, addlora::Rules::general, message); },
                   lora_work(args));
  return nb::borrow(out);
}

// ---- C entry points ------------------------------------------------------------------------------
// A Python def costs 0.2-0.5 µs before it reaches C++ (frame, keyword defaults, the
// torch.compile check).  Where that is safe (addlora/_route.py: install_builtins) the package
// replaces npu_batch_gather_matmul(_), add_lora and the punica ops by builtins made here: they
// take the usual arguments straight from the vectorcall and run the C++ call; anything else
// (another keyword, a missing argument, NotImplemented from fast_run) is forwarded unchanged to
// the Python function they replace, which handles and reports it as before.
enum EntryKind { kEntryInPlace = 0, kEntryNew = 1, kEntryAddLora = 2 };
constexpr int kEntries = kEntryPunica + kPunicaOps;

// Fills slot[0, n_names) from a vectorcall's positional arguments (at most max_positional) and
// keywords (names[0, n_names), interned, compared by identity first).  False for anything else
// (too many positionals, an unknown keyword, one given twice): the builtin then forwards the
// call to its Python function, which reports it.
bool take_arguments(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, PyObject* const* names, int n_names,
                    Py_ssize_t max_positional, PyObject** slot) {
  if (nargs > max_positional) return false;
  for (Py_ssize_t k = 0; k < nargs; ++k) slot[k] = args[k];
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; ++k) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, k);
    int s = 0;
    while (s < n_names && names[s] != name) ++s;  // keyword names are interned
    if (s == n_names)
      for (s = 0; s < n_names && PyUnicode_Compare(names[s], name) != 0; ++s) {
      }
    if (PyErr_Occurred()) PyErr_Clear();
    if (s == n_names || slot[s]) return false;
    slot[s] = args[nargs + k];
  }
  return true;
}

// Argument slots: y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, out
// (out=: add_lora only).
constexpr int kSlots = 10;
PyObject* g_slot_names[kSlots] = {};
PyObject *g_zero = nullptr, *g_minus_one = nullptr, *g_npu_scale = nullptr, *g_one = nullptr;

template <int Kind>
PyObject* entry_call(PyObject* fallback, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  PyObject* slot[kSlots] = {};
  bool general = !take_arguments(args, PyVectorcall_NARGS(nargsf), kwnames, g_slot_names,
                                 Kind == kEntryAddLora ? kSlots : kSlots - 1, Kind == kEntryAddLora ? 4 : 9, slot);
  for (int k = 0; !general && k < 4; ++k) general = slot[k] == nullptr;
  if (!general) {
    nb::handle none = nb::none();
    const nb::handle y = slot[0];
    const nb::handle out = Kind == kEntryInPlace ? y : Kind == kEntryNew ? none : slot[9] ? slot[9] : none;
    PyObject* r = translated([&] {
      return fast_run(out, y, slot[1], slot[2], slot[3], slot[4] ? slot[4] : none.ptr(), slot[5] ? slot[5] : g_zero,
                      slot[6] ? slot[6] : Kind == kEntryAddLora ? g_one : g_npu_scale, slot[7] ? slot[7] : g_zero,
                      slot[8] ? slot[8] : Kind == kEntryAddLora ? none.ptr() : g_minus_one)
          .release()
          .ptr();
    });
    if (r != Py_NotImplemented) return r;  // the result, or null with the error set
    Py_DECREF(r);
  }
  return PyObject_Vectorcall(fallback, args, nargsf, kwnames);
}

// The punica ops' entries: vLLM's parameters (kPunicaSignatures) from the vectorcall, the
// default of the last one filled in, then punica_op; anything else goes to `fallback` as above.
PyObject* g_punica_names[kPunicaOps][kPunicaMaxArgs] = {};  // interned, kept
PyObject* g_punica_defaults[3] = {};                         // 1.0, True, False (default_kind)

template <int Op>
PyObject* punica_entry(PyObject* fallback, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  const PunicaSignature& sig = kPunicaSignatures[Op];
  PyObject* slot[kPunicaMaxArgs] = {};
  bool general = !take_arguments(args, PyVectorcall_NARGS(nargsf), kwnames, g_punica_names[Op], sig.n, sig.n, slot);
  if (!general && sig.required < sig.n && !slot[sig.n - 1]) slot[sig.n - 1] = g_punica_defaults[sig.default_kind];
  for (int k = 0; !general && k < sig.n; ++k) general = slot[k] == nullptr;
  if (general) return PyObject_Vectorcall(fallback, args, nargsf, kwnames);
  nb::handle a[kPunicaMaxArgs];
  for (int k = 0; k < sig.n; ++k) a[k] = slot[k];
  return translated([&] {
    punica_op(Op, a);
    return Py_NewRef(Py_None);
  });
}

// A METH_FASTCALL | METH_KEYWORDS function as the PyCFunction a PyMethodDef holds.
PyCFunction as_method(PyObject* (*f)(PyObject*, PyObject* const*, size_t, PyObject*)) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f));
}
template <size_t... K>
PyCFunction punica_entry_fn(int op, std::index_sequence<K...>) {
  PyCFunction fn = nullptr;
  ((op == static_cast<int>(K) ? (fn = as_method(&punica_entry<K>)) : nullptr), ...);
  return fn;
}

// The interned names and default values the entries use, made once.
void make_entry_constants() {
  if (g_slot_names[0]) return;
  const char* names[kSlots] = {"y", "x", "weight_b", "indices", "weight_a", "layer_idx", "scale", "y_offset",
                               "y_slice_size", "out"};
  for (int k = 0; k < kSlots; ++k) g_slot_names[k] = PyUnicode_InternFromString(names[k]);  // kept
  g_zero = PyLong_FromLong(0);
  g_minus_one = PyLong_FromLong(-1);
  g_npu_scale = PyFloat_FromDouble(1e-3);
  g_one = PyFloat_FromDouble(1.0);
  for (int o = 0; o < kPunicaOps; ++o)
    for (int k = 0; k < kPunicaSignatures[o].n; ++k)
      g_punica_names[o][k] = PyUnicode_InternFromString(kPunicaSignatures[o].names[k]);
  g_punica_defaults[0] = PyFloat_FromDouble(1.0);
  g_punica_defaults[1] = Py_NewRef(Py_True);
  g_punica_defaults[2] = Py_NewRef(Py_False);
}

// A builtin named like `fallback` whose __doc__ is `doc` (a "name(sig)\n--\n\n" text signature
// first, for inspect.signature), calling entry_call<kind> (kinds 0-2) or punica_entry<kind - 3>,
// in module addlora or addlora.punica.
nb::object make_entry(int kind, nb::handle fallback, const std::string& name, const std::string& doc) {
  if (kind < 0 || kind >= kEntries)
    throw nb::value_error(("make_entry: kind must be in [0, " + std::to_string(kEntries) + ")").c_str());
  make_entry_constants();
  static PyMethodDef defs[kEntries] = {};
  static std::string names[kEntries], docs[kEntries];  // the definitions point into them
  names[kind] = name;
  docs[kind] = doc;
  PyMethodDef& d = defs[kind];
  d.ml_name = names[kind].c_str();
  d.ml_meth = kind == kEntryInPlace  ? as_method(&entry_call<kEntryInPlace>)
              : kind == kEntryNew     ? as_method(&entry_call<kEntryNew>)
              : kind == kEntryAddLora ? as_method(&entry_call<kEntryAddLora>)
                                      : punica_entry_fn(kind - kEntryPunica, std::make_index_sequence<kPunicaOps>());
  d.ml_flags = METH_FASTCALL | METH_KEYWORDS;
  d.ml_doc = docs[kind].c_str();
  nb::object module = nb::str(kind >= kEntryPunica ? "addlora.punica" : "addlora");
  PyObject* f = PyCFunction_NewEx(&d, fallback.ptr(), module.ptr());
  if (!f) throw nb::python_error();
  return nb::steal(f);
}

}  // namespace addlora_py
