// vLLM's punica ops and addlora.shrink / addlora.expand.  See native.h for the module's layout.
#include "native.h"

namespace addlora_py {

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

// The four tensors of a bgmv op (inputs, weights, output, indices), from the description cache
// when a guard passes (torch >= 2: fast_path.cc), else described and remembered.
void describe_cached(int kind, nb::handle inputs, nb::handle weights, nb::handle output, nb::handle indices,
                     const char* weights_name, TensorView* vi, TensorView* vw, TensorView* vo, TensorView* vx,
                     Keep& keep) {
  PyObject* const tensors[4] = {inputs.ptr(), weights.ptr(), output.ptr(), indices.ptr()};
  TensorView* const views[4] = {vi, vw, vo, vx};
  constexpr unsigned kBatched = 0b1101u;  // inputs, output and indices: dim 0 is the batch
  GuardKey key;
  bool remember = false;
  if (lookup_guard(kind, 4, 1, -1, kBatched, tensors, views, &key, &remember)) return;
  describe(inputs, "inputs", false, vi, keep);
  describe(weights, weights_name, false, vw, keep);
  describe(output, "output_tensor", true, vo, keep);
  describe(indices, "lora_indices_tensor", false, vx, keep);
  if (remember) remember_guard(key, kBatched, tensors, views);
}

// bgmv_shrink / sgmv_shrink: output[b, :R] = scaling * inputs[b] . A[i]^T for rows with an
// adapter (vLLM overwrites; rows without one are not written).
void punica_shrink(nb::handle inputs, nb::handle weights, nb::handle output, nb::handle indices, nb::handle scaling,
                   const std::vector<int64_t>* exploded, const char* weights_name) {
  prefetch_metadata({inputs, weights, output, indices});
  require(inputs, "inputs");
  require(weights, weights_name);
  require(output, "output_tensor");
  addlora::ShrinkArguments s;
  s.scale = float_arg(scaling, "scaling");
  Keep keep;
  if (exploded) {
    describe(inputs, "inputs", false, &s.x, keep);
    describe(weights, weights_name, false, &s.weight_a, keep);
    describe(output, "output_tensor", true, &s.z, keep);
    s.indices = index_view(const_cast<std::vector<int64_t>&>(*exploded));
  } else {
    require(indices, "lora_indices_tensor");
    describe_cached(kGuardPunicaShrink, inputs, weights, output, indices, weights_name, &s.x, &s.weight_a, &s.z,
                    &s.indices, keep);
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
  }, half_work(s.x, s.weight_a));
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
  prefetch_metadata({inputs, weights, output, indices});
  require(inputs, "inputs");
  require(weights, "lora_b_weights");
  require(output, "output_tensor");
  addlora::ExpandArguments e;
  Keep keep;
  if (exploded) {
    describe(inputs, "inputs", false, &e.z, keep);
    describe(weights, "lora_b_weights", false, &e.weight_b, keep);
    describe(output, "output_tensor", true, &e.out, keep);
    e.indices = index_view(const_cast<std::vector<int64_t>&>(*exploded));
  } else {
    require(indices, "lora_indices_tensor");
    describe_cached(kGuardPunicaExpand, inputs, weights, output, indices, "lora_b_weights", &e.z, &e.weight_b, &e.out,
                    &e.indices, keep);
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
  }, half_work(e.z, e.weight_b));
}


// The punica ops by number, as vLLM names and orders their arguments (Python's defaults: the
// last parameter of the ops with one).
const PunicaSignature kPunicaSignatures[kPunicaOps] = {
    {{"inputs", "lora_b_weights", "output_tensor", "lora_indices_tensor", "scaling"}, 5, 4, 0},
    {{"inputs", "lora_b_weights", "output_tensor", "lora_indices_tensor", "add_inputs"}, 5, 4, 1},
    {{"inputs", "lora_b_weights", "output_tensor", "lora_indices_tensor", "slice_offset", "slice_size", "add_inputs"},
     7, 6, 1},
    {{"inputs", "lora_a_weights", "output_tensor", "b_seq_start_loc", "seq_len_tensor", "lora_indices_tensor",
      "batches", "max_seq_length", "token_nums", "scaling"}, 10, 10, 0},
    {{"inputs", "lora_b_weights", "output_tensor", "b_seq_start_loc", "seq_len_tensor", "lora_indices_tensor",
      "batches", "max_seq_length", "token_nums", "add_inputs"}, 10, 9, 2},
    {{"inputs", "lora_b_weights", "output_tensor", "b_seq_start_loc", "seq_len_tensor", "lora_indices_tensor",
      "batches", "max_seq_length", "token_nums", "slice_offset", "slice_size", "add_inputs"}, 12, 11, 2},
};

namespace {
// The slice of a bgmv/sgmv expand_slice: offset and size read, then the offset checked.
void slice_args(nb::handle offset, nb::handle size, int64_t* o, int64_t* n) {
  *o = int_arg(offset, "slice_offset");
  *n = int_arg(size, "slice_size");
  if (*o < 0) throw nb::value_error(("AddLora: slice_offset must be >= 0 (got " + std::to_string(*o) + ")").c_str());
}
}  // namespace

void punica_op(int op, const nb::handle* a) {
  if (op == kBgmvShrink) return punica_shrink(a[0], a[1], a[2], a[3], a[4], nullptr, "lora_b_weights");
  if (op == kBgmvExpand) return punica_expand(a[0], a[1], a[2], a[3], bool_arg(a[4], "add_inputs"), -1, -1, nullptr);
  int64_t o = -1, n = -1;
  if (op == kBgmvExpandSlice) {
    slice_args(a[4], a[5], &o, &n);
    return punica_expand(a[0], a[1], a[2], a[3], bool_arg(a[6], "add_inputs"), o, n, nullptr);
  }
  // sgmv: a[3..8] are the starts, lengths, per-sequence adapters, batches, max_seq_length and
  // token_nums, exploded into per-token adapters once inputs is described.
  Keep keep;
  require(a[0], "inputs");
  TensorView vx;
  describe(a[0], "inputs", false, &vx, keep);
  const bool add = op != kSgmvShrink && bool_arg(a[op == kSgmvExpand ? 9 : 11], "add_inputs");
  if (op == kSgmvExpandSlice) slice_args(a[9], a[10], &o, &n);
  std::vector<int64_t> ex;
  explode_sequences(keep, a[3], a[4], a[5], int_arg(a[6], "batches"), int_arg(a[7], "max_seq_length"),
                    int_arg(a[8], "token_nums"), vx.ndim == 2 ? vx.dims[0] : -1, &ex);
  if (op == kSgmvShrink) return punica_shrink(a[0], a[1], a[2], nb::none(), a[9], &ex, "lora_a_weights");
  punica_expand(a[0], a[1], a[2], nb::none(), add, o, n, &ex);
}

// addlora.shrink / addlora.expand: the C++ API's ShrinkArguments / ExpandArguments as they are.
void py_shrink(nb::handle x, nb::handle weight_a, nb::handle z, nb::handle indices, int64_t layer_idx, double scale,
               bool accumulate, bool fast) {
  prefetch_metadata({x, weight_a, z, indices});
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
  prefetch_metadata({z, weight_b, out, indices});
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

}  // namespace addlora_py
