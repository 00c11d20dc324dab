// Checks, in this order: missing tensors (161001), dtypes and layouts (161002), ranks and
// shapes and attributes (561002), then memory: strides, storage bounds and aliasing of out
// (161002).  Sizes use overflow-checked 64-bit arithmetic throughout.
#include "core/validate.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <iterator>
#include <limits>
#include <vector>

namespace addlora::detail {
namespace {

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

class Failure {
 public:
  explicit Failure(std::string* msg) : msg_(msg) {}
  __attribute__((format(printf, 3, 4))) Status operator()(Status s, const char* fmt, ...) const {
    if (msg_) {
      char buf[512];
      va_list ap;
      va_start(ap, fmt);
      std::vsnprintf(buf, sizeof buf, fmt, ap);
      va_end(ap);
      *msg_ = std::string("AddLora: ") + buf;
    }
    return s;
  }

 private:
  std::string* msg_;
};

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::nd: return "ND";
    case Layout::fractal_nz: return "FRACTAL_NZ";
  }
  return "unknown";
}

bool is_float_type(DType t) { return t == DType::f16 || t == DType::bf16 || t == DType::f32; }

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

struct Named {
  const char* name;
  const TensorView* v;
};

// Strides, offset and storage bounds of one view.
Status check_memory(const Failure& fail, const Named& t) {
  const TensorView& v = *t.v;
  if (v.offset < 0)
    return fail(Status::invalid_param, "%s storage offset must be >= 0 (offset=%lld)", t.name,
                static_cast<long long>(v.offset));
  if (v.layout == Layout::nd) {
    for (int i = 0; i < v.ndim; ++i)
      if (v.dims[i] > 1 && v.strides[i] < 1)
        return fail(Status::invalid_param, "%s stride of dim %d must be >= 1 (stride=%lld, dim=%lld)",
                    t.name, i, static_cast<long long>(v.strides[i]), static_cast<long long>(v.dims[i]));
  }
  if (is_empty(v)) return Status::ok;  // no element is ever read or written
  const int64_t last = last_element(v);
  int64_t bytes = 0;
  if (last < 0 || last == kMaxInt64 ||
      __builtin_mul_overflow(last + 1, static_cast<int64_t>(dtype_size(v.dtype)), &bytes))
    return fail(Status::invalid_param, "%s view is too large: its extent overflows 64 bits", t.name);
  if (v.storage_elems >= 0 && last >= v.storage_elems)
    return fail(Status::invalid_param,
                "%s view does not fit its storage (needs %lld elements, storage has %lld)", t.name,
                static_cast<long long>(last + 1), static_cast<long long>(v.storage_elems));
  return Status::ok;
}

uintptr_t first_byte(const TensorView& v) {
  return reinterpret_cast<uintptr_t>(v.data) + static_cast<uintptr_t>(v.offset) * dtype_size(v.dtype);
}

// Byte range [lo, hi) the view may touch.
void byte_range(const TensorView& v, uintptr_t* lo, uintptr_t* hi) {
  const uintptr_t es = dtype_size(v.dtype);
  *lo = first_byte(v);
  *hi = reinterpret_cast<uintptr_t>(v.data) + static_cast<uintptr_t>(last_element(v) + 1) * es;
}

// Two 2-D ND views with the same row pitch in bytes whose rows each fit in one pitch occupy
// bands of byte residues modulo the pitch; disjoint bands share no byte (e.g. column slices
// of one fused [B, 3H] buffer).  True when that proves the views disjoint.
bool disjoint_bands(const TensorView& a, const TensorView& b) {
  if (a.layout != Layout::nd || b.layout != Layout::nd || a.ndim != 2 || b.ndim != 2) return false;
  const int64_t ea = static_cast<int64_t>(dtype_size(a.dtype)), eb = static_cast<int64_t>(dtype_size(b.dtype));
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

}  // namespace

// Same elements: first byte, dtype, shape and strides (strides of size-1 dims ignored).
bool same_view(const TensorView& a, const TensorView& b) {
  if (first_byte(a) != first_byte(b) || a.dtype != b.dtype || a.ndim != b.ndim || a.layout != b.layout) return false;
  for (int i = 0; i < a.ndim; ++i)
    if (a.dims[i] != b.dims[i] || (a.dims[i] > 1 && a.strides[i] != b.strides[i])) return false;
  return true;
}

bool has_weight_a(const Arguments& a) { return a.weight_a.data != nullptr || a.weight_a.ndim != 0; }

Status validate(const Arguments& a, Rules rules, Shape* shape, std::string* message) {
  const Failure fail(message);
  const bool cann = rules == Rules::cann;
  const bool has_a = has_weight_a(a);

  // ---- missing tensors ------------------------------------------------------------------
  const Named required[] = {{"y", &a.y}, {"x", &a.x}, {"weightB", &a.weight_b},
                            {"indices", &a.indices}, {"out", &a.out}};
  for (const Named& t : required)
    if (t.v->data == nullptr) return fail(Status::null_pointer, "%s must not be null", t.name);
  if (has_a && a.weight_a.data == nullptr)
    return fail(Status::null_pointer, "weightA has %d dims but no data", a.weight_a.ndim);

  std::vector<Named> tensors(std::begin(required), std::end(required));
  if (has_a) tensors.push_back({"weightA", &a.weight_a});

  // ---- dtypes and layouts ---------------------------------------------------------------
  for (const Named& t : tensors) {
    const bool is_index = t.v == &a.indices;
    const DType d = t.v->dtype;
    if (is_index) {
      if (!(d == DType::i32 || (!cann && d == DType::i64)))
        return fail(Status::invalid_param, "indices dtype must be %s (got %s)",
                    cann ? "INT32" : "INT32 or INT64", dtype_name(d));
    } else if (cann ? d != DType::f16 : !is_float_type(d)) {
      return fail(Status::invalid_param, "%s dtype must be %s (got %s)", t.name,
                  cann ? "FLOAT16" : "FLOAT16, BF16 or FLOAT", dtype_name(d));
    }
    const bool is_weight = t.v == &a.weight_a || t.v == &a.weight_b;
    const Layout l = t.v->layout;
    if (l != Layout::nd && !(is_weight && l == Layout::fractal_nz))
      return fail(Status::invalid_param, "%s format must be ND%s (got %s)", t.name,
                  is_weight ? " or FRACTAL_NZ" : "", layout_name(l));
    if (l == Layout::fractal_nz && dtype_size(d) != 2)
      return fail(Status::invalid_param, "%s in FRACTAL_NZ must be a 16-bit dtype (got %s)", t.name,
                  dtype_name(d));
  }
  if (a.out.dtype != a.y.dtype)
    return fail(Status::invalid_param, "out dtype must equal y dtype (out=%s, y=%s)",
                dtype_name(a.out.dtype), dtype_name(a.y.dtype));

  if (a.precision != Precision::exact && a.precision != Precision::fast)
    return fail(Status::invalid_param, "precision must be exact or fast (got %d)", static_cast<int>(a.precision));
  if (cann && a.precision != Precision::exact)
    return fail(Status::invalid_param, "the NPU rules compute with Precision::exact only");

  // ---- ranks and dims -------------------------------------------------------------------
  const struct { const Named t; int rank; } ranks[] = {
      {{"y", &a.y}, 2}, {{"x", &a.x}, 2}, {{"weightB", &a.weight_b}, 4},
      {{"indices", &a.indices}, 1}, {{"out", &a.out}, 2}, {{"weightA", &a.weight_a}, 4}};
  for (const auto& r : ranks) {
    if (r.t.v == &a.weight_a && !has_a) continue;
    if (r.t.v->ndim != r.rank)
      return fail(Status::invalid_shape, "%s must be %d-D (got %d-D)", r.t.name, r.rank, r.t.v->ndim);
    for (int i = 0; i < r.rank; ++i) {
      const int64_t d = r.t.v->dims[i];
      if (d < 0)
        return fail(Status::invalid_shape, "%s dim %d must be >= 0 (got %lld)", r.t.name, i,
                    static_cast<long long>(d));
      // Empty tensors: never on the NPU; the general API accepts B == 0 (nothing to do).
      const bool batch_dim = (r.t.v == &a.y || r.t.v == &a.x || r.t.v == &a.out || r.t.v == &a.indices) && i == 0;
      if (d == 0 && (cann || !batch_dim))
        return fail(Status::invalid_shape, "%s must not be empty (dim %d is 0)", r.t.name, i);
    }
  }

  Shape s;
  s.has_a = has_a;
  s.B = a.y.dims[0];
  s.H3 = a.y.dims[1];
  s.H1 = a.x.dims[1];
  s.W = a.weight_b.dims[0];
  s.L = a.weight_b.dims[1];
  s.H2 = a.weight_b.dims[2];
  s.R = a.weight_b.dims[3];
  using ll = long long;

  if (a.out.dims[0] != s.B || a.out.dims[1] != s.H3)
    return fail(Status::invalid_shape, "out shape must equal y shape (out=[%lld, %lld], y=[%lld, %lld])",
                (ll)a.out.dims[0], (ll)a.out.dims[1], (ll)s.B, (ll)s.H3);
  if (a.x.dims[0] != s.B)
    return fail(Status::invalid_shape, "x dim 0 must equal y dim 0 (B) (x=%lld, y=%lld)",
                (ll)a.x.dims[0], (ll)s.B);
  if (a.indices.dims[0] != s.B)
    return fail(Status::invalid_shape, "indices dim 0 must equal y dim 0 (B) (indices=%lld, y=%lld)",
                (ll)a.indices.dims[0], (ll)s.B);
  if (s.H2 > s.H3)
    return fail(Status::invalid_shape, "weightB dim 2 (H2) must be <= y dim 1 (H3) (H2=%lld, H3=%lld)",
                (ll)s.H2, (ll)s.H3);
  if (has_a) {
    const int64_t* d = a.weight_a.dims;
    if (d[0] != s.W || d[1] != s.L)
      return fail(Status::invalid_shape,
                  "weightA dims 0,1 must equal weightB dims 0,1 (W, L) (weightA=[%lld, %lld], weightB=[%lld, %lld])",
                  (ll)d[0], (ll)d[1], (ll)s.W, (ll)s.L);
    if (d[2] != s.R)
      return fail(Status::invalid_shape, "weightA dim 2 must equal weightB dim 3 (R) (weightA=%lld, R=%lld)",
                  (ll)d[2], (ll)s.R);
    if (d[3] != s.H1)
      return fail(Status::invalid_shape, "weightA dim 3 must equal x dim 1 (H1) (weightA=%lld, H1=%lld)",
                  (ll)d[3], (ll)s.H1);
  } else if (s.H1 != s.R) {
    return fail(Status::invalid_shape,
                "without weightA, x dim 1 (H1) must equal weightB dim 3 (R) (H1=%lld, R=%lld)", (ll)s.H1,
                (ll)s.R);
  }

  // ---- attributes -------------------------------------------------------------------------
  if (a.layer_idx < 0 || a.layer_idx >= s.L)
    return fail(Status::invalid_shape, "layerIdx must be in [0, L) (layerIdx=%lld, L=%lld)",
                (ll)a.layer_idx, (ll)s.L);
  if (a.y_offset < 0 || a.y_offset >= s.H3)
    return fail(Status::invalid_shape, "yOffset must be in [0, H3) (yOffset=%lld, H3=%lld)",
                (ll)a.y_offset, (ll)s.H3);
  if (a.y_slice_size != -1 && (a.y_slice_size < 0 || a.y_slice_size > s.H2))
    return fail(Status::invalid_shape, "ySliceSize must be -1 or in [0, H2] (ySliceSize=%lld, H2=%lld)",
                (ll)a.y_slice_size, (ll)s.H2);
  if (a.y_offset + s.H2 > s.H3)
    return fail(Status::invalid_shape, "yOffset + H2 must be <= H3 (yOffset=%lld, H2=%lld, H3=%lld)",
                (ll)a.y_offset, (ll)s.H2, (ll)s.H3);
  s.S = a.y_slice_size == -1 ? s.H2 : a.y_slice_size;

  // ---- NPU limits (Rules::cann only) ----------------------------------------------------------
  if (cann) {
    if (s.R % 16 != 0) return fail(Status::invalid_shape, "R must be a multiple of 16 (R=%lld)", (ll)s.R);
    if (has_a && s.R > 128)
      return fail(Status::invalid_shape, "R must be <= 128 when weightA is given (R=%lld)", (ll)s.R);
    if (s.W > 32) return fail(Status::invalid_shape, "W (adapters) must be <= 32 (W=%lld)", (ll)s.W);
    if (s.L > 32) return fail(Status::invalid_shape, "L (layers) must be <= 32 (L=%lld)", (ll)s.L);
    const struct { const char* n; int64_t v; } hs[] = {{"H1", s.H1}, {"H2", s.H2}, {"H3", s.H3}};
    for (const auto& h : hs) {
      if (h.v % 16 != 0)
        return fail(Status::invalid_shape, "%s must be a multiple of 16 (%s=%lld)", h.n, h.n, (ll)h.v);
      if (h.v > 131072)
        return fail(Status::invalid_shape, "%s must be <= 131072 (%s=%lld)", h.n, h.n, (ll)h.v);
    }
    if (s.B > 65536) return fail(Status::invalid_shape, "B must be <= 65536 (B=%lld)", (ll)s.B);
  } else if (s.B > std::numeric_limits<int32_t>::max()) {
    return fail(Status::invalid_shape, "B must be < 2^31 (B=%lld)", (ll)s.B);
  } else if (s.W > std::numeric_limits<int32_t>::max()) {  // the kernels keep adapter numbers as int32
    return fail(Status::invalid_shape, "W (adapters) must be < 2^31 (W=%lld)", (ll)s.W);
  }

  // ---- per-adapter ranks and scales (library API only) -----------------------------------------
  const struct { const char* name; const TensorView* v; DType dtype; } per_adapter[] = {
      {"ranks", &a.ranks, DType::i32}, {"scales", &a.scales, DType::f32}};
  for (const auto& t : per_adapter) {
    if (t.v->data == nullptr) continue;
    if (cann)
      return fail(Status::invalid_param, "%s is not an input of aclnnAddLora (use Rules::general)", t.name);
    if (t.v->dtype != t.dtype)
      return fail(Status::invalid_param, "%s dtype must be %s (got %s)", t.name, dtype_name(t.dtype),
                  dtype_name(t.v->dtype));
    if (t.v->layout != Layout::nd)
      return fail(Status::invalid_param, "%s format must be ND", t.name);
    if (t.v->ndim != 1 || t.v->dims[0] != s.W)
      return fail(Status::invalid_shape, "%s must be 1-D of W=%lld elements (got %d-D, dim 0 = %lld)", t.name,
                  (ll)s.W, t.v->ndim, t.v->ndim > 0 ? (ll)t.v->dims[0] : -1LL);
    tensors.push_back({t.name, t.v});
  }

  // ---- memory: strides, storage, workspace size, aliasing ------------------------------------
  for (const Named& t : tensors)
    if (Status st = check_memory(fail, t); st != Status::ok) return st;
  int64_t z_elems = 0;
  if (__builtin_mul_overflow(s.B, s.R, &z_elems) || z_elems > (kMaxInt64 >> 4))
    return fail(Status::invalid_shape, "B * R is too large for the workspace (B=%lld, R=%lld)", (ll)s.B, (ll)s.R);

  // out must not write one element twice.  Elements (i, j) and (i', j') coincide when
  // di*rs == dj*cs; the smallest solution is (cs/g, rs/g) with g = gcd(rs, cs).
  if (!is_empty(a.out)) {
    const int64_t rs = a.out.strides[0], cs = a.out.strides[1];
    const int64_t rows = a.out.dims[0], cols = a.out.dims[1];
    if (rows > 1 && cols > 1) {
      const int64_t g = gcd(rs, cs);
      if (cs / g < rows && rs / g < cols)
        return fail(Status::invalid_param,
                    "out view overlaps itself (strides=[%lld, %lld], shape=[%lld, %lld])", (ll)rs, (ll)cs,
                    (ll)rows, (ll)cols);
    }
  }
  s.in_place = same_view(a.out, a.y);
  if (!is_empty(a.out)) {
    uintptr_t olo, ohi;
    byte_range(a.out, &olo, &ohi);
    for (const Named& t : tensors) {
      if (t.v == &a.out || (t.v == &a.y && s.in_place) || is_empty(*t.v)) continue;
      uintptr_t lo, hi;
      byte_range(*t.v, &lo, &hi);
      if (lo < ohi && olo < hi && !disjoint_bands(a.out, *t.v))
        return fail(Status::invalid_param,
                    "out overlaps %s in memory (only out == y, the identical view, may alias)", t.name);
    }
  }
  *shape = s;
  return Status::ok;
}

}  // namespace addlora::detail
