// Shrink only and expand only (include/addlora/addlora.h, ShrinkArguments / ExpandArguments):
// both are validated as add_lora calls with no weight_a, by the ordinary machinery.
//
//   shrink: validated as x the "rank vector", weight_a [W, L, R, H1] playing weight_b (H2 = R,
//           rank = H1), z as y and out at once (in place), so only z[b, :R] of rows with an
//           adapter is touched; then run as a shrink (the kernels' shrink phase, then
//           z = y + scale * x.Aᵀ: Problem::shrink_only).
//   expand: z is x (rank vector), out is y and out at once (in place).
//
// Overwrite (accumulate = false) first zeroes the written slice of the rows with an adapter,
// after the plan has validated everything and the workspace is allocated, so a failed call
// writes nothing.  The checks that differ from add_lora's, or whose add_lora wording would name
// the wrong tensor, are done here first; the rest (dtypes, strides, storage, aliasing) is
// add_lora's validation, its message renamed to this call's field names.
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "addlora/addlora.h"
#include "core/plan_impl.h"
#include "core/rename.h"
#include "model/dtype.h"

namespace addlora {
namespace {

using ll = long long;

Status fail(Error& e, Status st, ErrorKind kind, const char* fmt, ...) __attribute__((format(printf, 4, 5)));
Status fail(Error& e, Status st, ErrorKind kind, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  e.status = st;
  e.kind = kind;
  e.message = std::string("AddLora: ") + buf;
  return st;
}

bool present(const TensorView& v) { return v.data != nullptr; }

Status check_rank(Error& message, const TensorView& v, const char* name, int ndim, const char* shape) {
  if (!present(v)) return fail(message, Status::null_pointer, ErrorKind::null, "%s must not be null", name);
  if (v.ndim != ndim)
    return fail(message, Status::invalid_shape, ErrorKind::shape, "%s must be %d-D %s (got %d-D)", name, ndim, shape, v.ndim);
  return Status::ok;
}

int64_t adapter_at(const TensorView& idx, int64_t b) {
  const int64_t k = idx.offset + b * idx.strides[0];
  return idx.dtype == DType::i64 ? static_cast<const int64_t*>(idx.data)[k]
                                 : static_cast<const int32_t*>(idx.data)[k];
}

// Zeroes out[b, col0 : col0 + cols] of every row whose index is in [0, W) (all-zero bits are
// +0 in fp16, bf16 and fp32).
void zero_rows(const TensorView& out, const TensorView& idx, int64_t W, int64_t col0, int64_t cols) {
  const size_t es = model::element_size(out.dtype);
  char* base = static_cast<char*>(out.data) + out.offset * static_cast<int64_t>(es);
  for (int64_t b = 0; b < out.dims[0]; ++b) {
    const int64_t i = adapter_at(idx, b);
    if (i < 0 || i >= W) continue;
    char* row = base + (b * out.strides[0] + col0 * out.strides[1]) * static_cast<int64_t>(es);
    if (out.strides[1] == 1) {
      std::memset(row, 0, static_cast<size_t>(cols) * es);
    } else {
      for (int64_t c = 0; c < cols; ++c) std::memset(row + c * out.strides[1] * static_cast<int64_t>(es), 0, es);
    }
  }
}

// Plans `a` (in place on a.out), allocates the workspace, optionally zeroes the written slice,
// runs.  Messages from validation are renamed with `names`.
Status plan_and_run(const Arguments& a, bool overwrite, int64_t W, int64_t cols,
                    const std::pair<const char*, const char*>* names, size_t n_names, Error& message,
                    bool shrink_only = false) {
  detail::OneCall call;
  const Status st = call.plan(&a, 1, Rules::general, shrink_only, message);  // shrink: validated as an expand
  if (st != Status::ok) {
    // add_lora's aliasing note is about its y / out pair, which is one tensor here.  (Only the
    // text is reworded for this call's names; status and kind are kept as data.)
    std::string& m = message.message;
    const std::string note = " (only out == y, the identical view, may alias)";
    if (const size_t at = m.find(note); at != std::string::npos) m.erase(at, note.size());
    m = detail::rename_identifiers(m, names, names + n_names);
    return st;
  }
  detail::CallWorkspace ws;
  if (Status ws_st = ws.acquire(call.workspace_bytes(), message); ws_st != Status::ok) return ws_st;
  if (overwrite && cols > 0) zero_rows(a.out, a.indices, W, a.y_offset, cols);
  call.run(ws.data());
  return Status::ok;
}

// The float dtypes every kernel takes; checked here too so that an empty problem (which returns
// before planning) still rejects a wrong dtype.
Status check_float(Error& message, const TensorView& v, const char* name) {
  if (v.dtype != DType::f16 && v.dtype != DType::bf16 && v.dtype != DType::f32)
    return fail(message, Status::invalid_param, ErrorKind::type, "%s dtype must be FLOAT16, BF16 or FLOAT (got %s)", name,
                dtype_name(v.dtype));
  return Status::ok;
}

Status check_indices(Error& message, const TensorView& idx, int64_t B, const char* rows_of) {
  if (Status st = check_rank(message, idx, "indices", 1, "[B]"); st != Status::ok) return st;
  if (idx.dtype != DType::i32 && idx.dtype != DType::i64)
    return fail(message, Status::invalid_param, ErrorKind::type, "indices dtype must be INT32 or INT64 (got %s)", dtype_name(idx.dtype));
  if (idx.dims[0] != B)
    return fail(message, Status::invalid_shape, ErrorKind::shape, "indices must have one element per row of %s (indices: %lld, B=%lld)",
                rows_of, (ll)idx.dims[0], (ll)B);
  return Status::ok;
}

// A tensor of the call with the name and shape its messages give it.
struct Operand {
  const TensorView& v;
  const char* name;
  const char* shape;
};

// The tensors of a shrink or expand call: the rank vector `in` [B, K], the weight [W, L, N, K],
// the written tensor `out` [B, ...].  `k` names K in messages; `n` is null, or names N when
// out dim 1 must be >= N.
struct Operands {
  Operand in, weight, out;
  const char* k;
  const char* n;
};

// The checks shrink and expand share, in this order: the three tensors present with their
// ranks, their float dtypes, indices, the weight's K against in's, out's B against in's, out's
// dim 1 against N (when asked), layer_idx against L.
Status check_operands(Error& message, const Operands& c, const TensorView& indices, int64_t layer_idx) {
  const Operand* ops[] = {&c.in, &c.weight, &c.out};
  const int ranks[] = {2, 4, 2};
  for (int i = 0; i < 3; ++i)
    if (Status st = check_rank(message, ops[i]->v, ops[i]->name, ranks[i], ops[i]->shape); st != Status::ok) return st;
  for (const Operand* op : ops)
    if (Status st = check_float(message, op->v, op->name); st != Status::ok) return st;
  const TensorView &in = c.in.v, &w = c.weight.v, &out = c.out.v;
  const int64_t B = in.dims[0], K = in.dims[1], L = w.dims[1], N = w.dims[2];
  if (Status st = check_indices(message, indices, B, c.in.name); st != Status::ok) return st;
  if (w.dims[3] != K)
    return fail(message, Status::invalid_shape, ErrorKind::shape, "%s dim 3 must equal %s dim 1 (%s) (%s dim 3=%lld, %s=%lld)",
                c.weight.name, c.in.name, c.k, c.weight.name, (ll)w.dims[3], c.k, (ll)K);
  if (out.dims[0] != B)
    return fail(message, Status::invalid_shape, ErrorKind::shape, "%s dim 0 must equal %s dim 0 (B) (%s dim 0=%lld, B=%lld)",
                c.out.name, c.in.name, c.out.name, (ll)out.dims[0], (ll)B);
  if (c.n != nullptr && out.dims[1] < N)
    return fail(message, Status::invalid_shape, ErrorKind::shape, "%s dim 1 must be >= %s (%s dim 1=%lld, %s=%lld)", c.out.name,
                c.n, c.out.name, (ll)out.dims[1], c.n, (ll)N);
  if (layer_idx < 0 || layer_idx >= L)
    return fail(message, Status::invalid_shape, ErrorKind::shape, "layer_idx must be in [0, L) (layer_idx=%lld, L=%lld)",
                (ll)layer_idx, (ll)L);
  return Status::ok;
}

}  // namespace

Status shrink(const ShrinkArguments& s, std::string* message) {
  Error e;
  const Status st = shrink(s, e);
  if (message && st != Status::ok) *message = e.message;
  return st;
}

Status expand(const ExpandArguments& args, std::string* message) {
  Error e;
  const Status st = expand(args, e);
  if (message && st != Status::ok) *message = e.message;
  return st;
}

Status shrink(const ShrinkArguments& s, Error& message) {
  const Operands c{{s.x, "x", "[B, H1]"}, {s.weight_a, "weight_a", "[W, L, R, H1]"}, {s.z, "z", "[B, >= R]"}, "H1", "R"};
  if (Status st = check_operands(message, c, s.indices, s.layer_idx); st != Status::ok) return st;
  const int64_t B = s.x.dims[0], W = s.weight_a.dims[0], R = s.weight_a.dims[2];
  if (B == 0 || R == 0) return Status::ok;  // nothing to write
  Arguments a;
  a.x = s.x;
  a.weight_b = s.weight_a;
  a.indices = s.indices;
  a.y = a.out = s.z;
  a.layer_idx = s.layer_idx;
  a.scale = s.scale;
  a.precision = s.precision;
  static const std::pair<const char*, const char*> names[] = {
      {"weightB", "weight_a"}, {"y", "z"}, {"out", "z"}, {"H2", "R"}, {"R", "H1"}, {"yOffset", "offset"}};
  return plan_and_run(a, !s.accumulate, W, R, names, sizeof names / sizeof names[0], message, /*shrink_only=*/true);
}

Status expand(const ExpandArguments& e, Error& message) {
  const Operands c{{e.z, "z", "[B, R]"}, {e.weight_b, "weight_b", "[W, L, H2, R]"}, {e.out, "out", "[B, H3]"}, "R", nullptr};
  if (Status st = check_operands(message, c, e.indices, e.layer_idx); st != Status::ok) return st;
  const int64_t B = e.z.dims[0], W = e.weight_b.dims[0], H2 = e.weight_b.dims[2], H3 = e.out.dims[1];
  if (e.y_slice_size != -1 && (e.y_slice_size < 0 || e.y_slice_size > H2))
    return fail(message, Status::invalid_shape, ErrorKind::shape, "y_slice_size must be -1 or in [0, H2] (y_slice_size=%lld, H2=%lld)",
                (ll)e.y_slice_size, (ll)H2);
  const int64_t S = e.y_slice_size == -1 ? H2 : e.y_slice_size;
  if (e.y_offset < 0 || e.y_offset + S > H3)
    return fail(message, Status::invalid_shape, ErrorKind::shape,
                "y_offset must be >= 0 and y_offset + S <= H3 (y_offset=%lld, S=%lld, H3=%lld)", (ll)e.y_offset, (ll)S,
                (ll)H3);
  if (B == 0 || S == 0) return Status::ok;  // nothing to write
  Arguments a;
  a.x = e.z;
  a.weight_b = e.weight_b;
  // Only the S rows of weight_b that are written are read: narrow the ND view so that
  // add_lora's y_offset + H2 <= H3 holds with H2 = S.  (NZ storage depends on H2: kept whole.)
  if (e.weight_b.layout == Layout::nd) a.weight_b.dims[2] = S;
  a.indices = e.indices;
  a.y = a.out = e.out;
  a.layer_idx = e.layer_idx;
  a.scale = e.scale;
  a.y_offset = e.y_offset;
  a.y_slice_size = e.weight_b.layout == Layout::nd ? -1 : S;
  a.precision = e.precision;
  static const std::pair<const char*, const char*> names[] = {
      {"weightB", "weight_b"}, {"x", "z"}, {"y", "out"}, {"yOffset", "y_offset"}, {"ySliceSize", "y_slice_size"}};
  return plan_and_run(a, !e.accumulate, W, S, names, sizeof names / sizeof names[0], message);
}

}  // namespace addlora
