// Validation, the last rule group: memory and overlap (strides, offsets, storage bounds, the
// workspace size, aliasing of out).  Sizes use overflow-checked 64-bit arithmetic.
#include <cstdint>

#include "core/validate_impl.h"
#include "model/dtype.h"

namespace addlora::detail {
namespace validation {
namespace {

// Highest element index (relative to data) the view touches, or -1 on overflow.
// For NZ the view is the packed storage of [.., M, N] with 16x16 blocks.
int64_t last_element(const TensorView& v) {
  int64_t last = v.offset;
  if (v.layout == Layout::fractal_nz) {
    int64_t batch = 1;
    for (int i = 0; i + 2 < v.ndim; ++i)
      if (__builtin_mul_overflow(batch, v.dims[i], &batch)) return -1;
    const int64_t M = v.dims[v.ndim - 2], N = v.dims[v.ndim - 1];
    const int64_t m1 = M / 16 + (M % 16 != 0), n1 = N / 16 + (N % 16 != 0);  // no overflow near 2^63
    int64_t n = 0;
    if (__builtin_mul_overflow(batch, m1, &n) || __builtin_mul_overflow(n, n1, &n) ||
        __builtin_mul_overflow(n, int64_t{256}, &n) || __builtin_add_overflow(last, n - 1, &last))
      return -1;
    return last;
  }
  for (int i = 0; i < v.ndim; ++i) {
    int64_t step = 0;
    if (v.dims[i] > 1 && (__builtin_mul_overflow(v.dims[i] - 1, v.strides[i], &step) ||
                          __builtin_add_overflow(last, step, &last)))
      return -1;
  }
  return last;
}

bool is_empty(const TensorView& v) {
  for (int i = 0; i < v.ndim && i < 8; ++i)
    if (v.dims[i] == 0) return true;
  return false;
}

// Strides, offset and storage bounds of one view.
Status check_view_memory(const Named& t, const Failure& fail) {
  constexpr ErrorKind k = ErrorKind::memory;
  const TensorView& v = *t.v;
  if (v.offset < 0)
    return fail(Status::invalid_param, k, "%s storage offset must be >= 0 (offset=%lld)", t.name, (ll)v.offset);
  if (v.layout == Layout::nd) {
    for (int i = 0; i < v.ndim; ++i)
      if (v.dims[i] > 1 && v.strides[i] < 1)
        return fail(Status::invalid_param, k, "%s stride of dim %d must be >= 1 (stride=%lld, dim=%lld)", t.name, i,
                    (ll)v.strides[i], (ll)v.dims[i]);
  }
  if (is_empty(v)) return Status::ok;  // no element is ever read or written
  const int64_t last = last_element(v);
  int64_t bytes = 0;
  if (last < 0 || last == kMaxInt64 ||
      __builtin_mul_overflow(last + 1, static_cast<int64_t>(model::element_size(v.dtype)), &bytes))
    return fail(Status::invalid_param, k, "%s view is too large: its extent overflows 64 bits", t.name);
  if (v.storage_elems >= 0 && last >= v.storage_elems)
    return fail(Status::invalid_param, k, "%s view does not fit its storage (needs %lld elements, storage has %lld)",
                t.name, (ll)(last + 1), (ll)v.storage_elems);
  return Status::ok;
}

uintptr_t first_byte(const TensorView& v) {
  return reinterpret_cast<uintptr_t>(v.data) + static_cast<uintptr_t>(v.offset) * model::element_size(v.dtype);
}

// Byte range [lo, hi) the view may touch.
void byte_range(const TensorView& v, uintptr_t* lo, uintptr_t* hi) {
  const uintptr_t es = model::element_size(v.dtype);
  *lo = first_byte(v);
  *hi = reinterpret_cast<uintptr_t>(v.data) + static_cast<uintptr_t>(last_element(v) + 1) * es;
}

// Two 2-D ND views with the same row pitch in bytes whose rows each fit in one pitch occupy
// bands of byte residues modulo the pitch; disjoint bands share no byte (e.g. column slices
// of one fused [B, 3H] buffer).  True when that proves the views disjoint.
bool disjoint_bands(const TensorView& a, const TensorView& b) {
  if (a.layout != Layout::nd || b.layout != Layout::nd || a.ndim != 2 || b.ndim != 2) return false;
  const int64_t ea = static_cast<int64_t>(model::element_size(a.dtype));
  const int64_t eb = static_cast<int64_t>(model::element_size(b.dtype));
  const int64_t pitch = a.strides[0] * ea;
  if (pitch != b.strides[0] * eb || pitch <= 0) return false;
  const int64_t wa = ((a.dims[1] - 1) * a.strides[1] + 1) * ea, wb = ((b.dims[1] - 1) * b.strides[1] + 1) * eb;
  if (wa > pitch || wb > pitch) return false;
  const uintptr_t p = static_cast<uintptr_t>(pitch);
  const uintptr_t ra = first_byte(a) % p, rb = first_byte(b) % p;
  return (rb + p - ra) % p >= static_cast<uintptr_t>(wa) && (ra + p - rb) % p >= static_cast<uintptr_t>(wb);
}

int64_t gcd(int64_t a, int64_t b) {
  while (b != 0) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// out must not write one element twice.  Elements (i, j) and (i', j') coincide when
// di*rs == dj*cs; the smallest solution is (cs/g, rs/g) with g = gcd(rs, cs).
Status check_out_self_overlap(const TensorView& out, const Failure& fail) {
  const int64_t rs = out.strides[0], cs = out.strides[1];
  const int64_t rows = out.dims[0], cols = out.dims[1];
  if (rows <= 1 || cols <= 1) return Status::ok;
  const int64_t g = gcd(rs, cs);
  if (cs / g < rows && rs / g < cols)
    return fail(Status::invalid_param, ErrorKind::memory,
                "out view overlaps itself (strides=[%lld, %lld], shape=[%lld, %lld])", (ll)rs, (ll)cs, (ll)rows,
                (ll)cols);
  return Status::ok;
}

}  // namespace

Status check_memory(const Arguments& a, const NamedList& tensors, Shape* s, const Failure& fail) {
  for (const Named& t : tensors)
    if (Status st = check_view_memory(t, fail); st != Status::ok) return st;
  int64_t z_elems = 0;
  if (__builtin_mul_overflow(s->B, s->R, &z_elems) || z_elems > (kMaxInt64 >> 4))
    return fail(Status::invalid_shape, ErrorKind::shape, "B * R is too large for the workspace (B=%lld, R=%lld)",
                (ll)s->B, (ll)s->R);
  if (!is_empty(a.out))
    if (Status st = check_out_self_overlap(a.out, fail); st != Status::ok) return st;
  s->in_place = same_view(a.out, a.y);
  if (is_empty(a.out)) return Status::ok;
  uintptr_t olo, ohi;
  byte_range(a.out, &olo, &ohi);
  for (const Named& t : tensors) {
    if (t.v == &a.out || (t.v == &a.y && s->in_place) || is_empty(*t.v)) continue;
    uintptr_t lo, hi;
    byte_range(*t.v, &lo, &hi);
    if (lo < ohi && olo < hi && !disjoint_bands(a.out, *t.v))
      return fail(Status::invalid_param, ErrorKind::memory,
                  "out overlaps %s in memory (only out == y, the identical view, may alias)", t.name);
  }
  return Status::ok;
}

}  // namespace validation

// Same elements: first byte, dtype, shape and strides (strides of size-1 dims ignored).
bool same_view(const TensorView& a, const TensorView& b) {
  using validation::first_byte;
  if (first_byte(a) != first_byte(b) || a.dtype != b.dtype || a.ndim != b.ndim || a.layout != b.layout) return false;
  for (int i = 0; i < a.ndim; ++i)
    if (a.dims[i] != b.dims[i] || (a.dims[i] > 1 && a.strides[i] != b.strides[i])) return false;
  return true;
}

}  // namespace addlora::detail
