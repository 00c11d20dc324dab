// The rules, in the order they are checked, one group per function:
//   presence              missing tensors                                   161001  null
//   types and formats     dtypes, layouts, out dtype == y dtype, precision  161002  type
//   shapes and attributes ranks, dims, cross-tensor sizes, layerIdx,        561002  shape
//                         yOffset, ySliceSize, the rule set's size limits
//   per-adapter inputs    ranks and scales (Rules::general only)            161002 / 561002
//   memory and overlap    strides, offsets, storage bounds, aliasing of out 161002  memory
//                         (validate_memory.cc)
// Where Rules::cann and Rules::general differ, the difference is data (RuleSet below).  Sizes
// use overflow-checked 64-bit arithmetic throughout.
#include "core/validate.h"

#include <limits>
#include <string>
#include <vector>

#include "core/fields.h"
#include "core/validate_impl.h"
#include "model/dtype.h"

namespace addlora::detail {
namespace validation {
namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();

// ---- the two rule sets, as data ------------------------------------------------------------

// A size limit: `dim` must be a multiple of / at most `bound`.
struct Limit {
  const char* dim;            // as in the message: "R", "H1", ...
  int64_t Shape::*value;
  enum Test { multiple_of, at_most } test;
  int64_t bound;
  bool only_with_a;           // checked only when weightA is given
  const char* rule;           // the message; " (<dim>=<value>)" is appended
};

constexpr Limit kCannLimits[] = {
    {"R", &Shape::R, Limit::multiple_of, 16, false, "R must be a multiple of 16"},
    {"R", &Shape::R, Limit::at_most, 128, true, "R must be <= 128 when weightA is given"},
    {"W", &Shape::W, Limit::at_most, 32, false, "W (adapters) must be <= 32"},
    {"L", &Shape::L, Limit::at_most, 32, false, "L (layers) must be <= 32"},
    {"H1", &Shape::H1, Limit::multiple_of, 16, false, "H1 must be a multiple of 16"},
    {"H1", &Shape::H1, Limit::at_most, 131072, false, "H1 must be <= 131072"},
    {"H2", &Shape::H2, Limit::multiple_of, 16, false, "H2 must be a multiple of 16"},
    {"H2", &Shape::H2, Limit::at_most, 131072, false, "H2 must be <= 131072"},
    {"H3", &Shape::H3, Limit::multiple_of, 16, false, "H3 must be a multiple of 16"},
    {"H3", &Shape::H3, Limit::at_most, 131072, false, "H3 must be <= 131072"},
    {"B", &Shape::B, Limit::at_most, 65536, false, "B must be <= 65536"},
};
// The kernels keep row and adapter numbers as int32.
constexpr Limit kGeneralLimits[] = {
    {"B", &Shape::B, Limit::at_most, kMaxInt32, false, "B must be < 2^31"},
    {"W", &Shape::W, Limit::at_most, kMaxInt32, false, "W (adapters) must be < 2^31"},
};

bool is_fp16(DType t) { return t == DType::f16; }
bool is_float_type(DType t) { return t == DType::f16 || t == DType::bf16 || t == DType::f32; }

struct RuleSet {
  bool (*float_ok)(DType);    // y, x, weights, out
  const char* float_types;    // for the message
  bool int64_indices;
  const char* index_types;
  bool empty_batch;           // B == 0 accepted (nothing to do)
  bool per_adapter_inputs;    // ranks and scales accepted
  const Limit* limits;
  size_t num_limits;
};

constexpr RuleSet kCann = {is_fp16, "FLOAT16", false, "INT32", false, false,
                           kCannLimits, sizeof kCannLimits / sizeof kCannLimits[0]};
constexpr RuleSet kGeneral = {is_float_type, "FLOAT16, BF16 or FLOAT", true, "INT32 or INT64", true, true,
                              kGeneralLimits, sizeof kGeneralLimits / sizeof kGeneralLimits[0]};

// y, x, weightB, indices, out, then weightA when given: the order of every per-tensor check.
NamedList tensors_of(const Arguments& a, bool has_a) {
  NamedList t;
  for (size_t i = 0; i < kInputWeightA; ++i) t.push_back({kInputs[i].name, &(a.*kInputs[i].member)});
  t.push_back({kOutputs[0].name, &(a.*kOutputs[0].member)});
  if (has_a) t.push_back({kInputs[kInputWeightA].name, &(a.*kInputs[kInputWeightA].member)});
  return t;
}

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::nd: return "ND";
    case Layout::fractal_nz: return "FRACTAL_NZ";
  }
  return "unknown";
}

// ---- presence -------------------------------------------------------------------------------

Status check_presence(const Arguments& a, bool has_a, const NamedList& tensors, const Failure& fail) {
  for (const Named& t : tensors)
    if (t.v->data == nullptr && t.v != &a.weight_a)
      return fail(Status::null_pointer, ErrorKind::null, "%s must not be null", t.name);
  if (has_a && a.weight_a.data == nullptr)
    return fail(Status::null_pointer, ErrorKind::null, "weightA has %d dims but no data", a.weight_a.ndim);
  return Status::ok;
}

// ---- types and formats ----------------------------------------------------------------------

Status check_types(const Arguments& a, const RuleSet& rs, const NamedList& tensors, const Failure& fail) {
  for (const Named& t : tensors) {
    const DType d = t.v->dtype;
    if (t.v == &a.indices) {
      if (!(d == DType::i32 || (rs.int64_indices && d == DType::i64)))
        return fail(Status::invalid_param, ErrorKind::type, "indices dtype must be %s (got %s)", rs.index_types,
                    dtype_name(d));
    } else if (!rs.float_ok(d)) {
      return fail(Status::invalid_param, ErrorKind::type, "%s dtype must be %s (got %s)", t.name, rs.float_types,
                  dtype_name(d));
    }
    const bool is_weight = t.v == &a.weight_a || t.v == &a.weight_b;
    const Layout l = t.v->layout;
    if (l != Layout::nd && l != Layout::fractal_nz)  // name the number the caller passed
      return fail(Status::invalid_param, ErrorKind::type, "%s format must be ND%s (got format %d)", t.name,
                  is_weight ? " or FRACTAL_NZ" : "", static_cast<int>(l));
    if (l != Layout::nd && !is_weight)
      return fail(Status::invalid_param, ErrorKind::type, "%s format must be ND (got %s)", t.name, layout_name(l));
    if (l == Layout::fractal_nz && model::element_size(d) != 2)
      return fail(Status::invalid_param, ErrorKind::type, "%s in FRACTAL_NZ must be a 16-bit dtype (got %s)", t.name,
                  dtype_name(d));
  }
  if (a.out.dtype != a.y.dtype)
    return fail(Status::invalid_param, ErrorKind::type, "out dtype must equal y dtype (out=%s, y=%s)",
                dtype_name(a.out.dtype), dtype_name(a.y.dtype));
  // exact and fast name the same precision contract; anything else is not a Precision.
  if (a.precision != Precision::exact && a.precision != Precision::fast)
    return fail(Status::invalid_param, ErrorKind::shape, "precision must be exact or fast (got %d)",
                static_cast<int>(a.precision));
  return Status::ok;
}

// ---- shapes and attributes ------------------------------------------------------------------

Status check_ranks(const Arguments& a, const RuleSet& rs, const NamedList& tensors, const Failure& fail) {
  for (const Named& t : tensors) {
    const int rank = t.v == &a.indices ? 1 : (t.v == &a.weight_a || t.v == &a.weight_b) ? 4 : 2;
    if (t.v->ndim != rank)
      return fail(Status::invalid_shape, ErrorKind::shape, "%s must be %d-D (got %d-D)", t.name, rank, t.v->ndim);
    const bool batch_tensor = t.v == &a.y || t.v == &a.x || t.v == &a.out || t.v == &a.indices;
    for (int i = 0; i < rank; ++i) {
      const int64_t d = t.v->dims[i];
      if (d < 0)
        return fail(Status::invalid_shape, ErrorKind::shape, "%s dim %d must be >= 0 (got %lld)", t.name, i, (ll)d);
      // Empty tensors: never on the NPU; the general rules accept B == 0 (nothing to do).
      if (d == 0 && !(rs.empty_batch && batch_tensor && i == 0))
        return fail(Status::invalid_shape, ErrorKind::shape, "%s must not be empty (dim %d is 0)", t.name, i);
    }
  }
  return Status::ok;
}

Shape shape_of(const Arguments& a, bool has_a) {
  Shape s;
  s.has_a = has_a;
  s.B = a.y.dims[0];
  s.H3 = a.y.dims[1];
  s.H1 = a.x.dims[1];
  s.W = a.weight_b.dims[0];
  s.L = a.weight_b.dims[1];
  s.H2 = a.weight_b.dims[2];
  s.R = a.weight_b.dims[3];
  return s;
}

// Sizes that must agree between tensors.
Status check_shapes(const Arguments& a, const Shape& s, const Failure& fail) {
  constexpr ErrorKind k = ErrorKind::shape;
  if (a.out.dims[0] != s.B || a.out.dims[1] != s.H3)
    return fail(Status::invalid_shape, k, "out shape must equal y shape (out=[%lld, %lld], y=[%lld, %lld])",
                (ll)a.out.dims[0], (ll)a.out.dims[1], (ll)s.B, (ll)s.H3);
  if (a.x.dims[0] != s.B)
    return fail(Status::invalid_shape, k, "x dim 0 must equal y dim 0 (B) (x=%lld, y=%lld)", (ll)a.x.dims[0], (ll)s.B);
  if (a.indices.dims[0] != s.B)
    return fail(Status::invalid_shape, k, "indices dim 0 must equal y dim 0 (B) (indices=%lld, y=%lld)",
                (ll)a.indices.dims[0], (ll)s.B);
  if (s.H2 > s.H3)
    return fail(Status::invalid_shape, k, "weightB dim 2 (H2) must be <= y dim 1 (H3) (H2=%lld, H3=%lld)", (ll)s.H2,
                (ll)s.H3);
  if (!s.has_a) {
    if (s.H1 != s.R)
      return fail(Status::invalid_shape, k,
                  "without weightA, x dim 1 (H1) must equal weightB dim 3 (R) (H1=%lld, R=%lld)", (ll)s.H1, (ll)s.R);
    return Status::ok;
  }
  const int64_t* d = a.weight_a.dims;
  if (d[0] != s.W || d[1] != s.L)
    return fail(Status::invalid_shape, k,
                "weightA dims 0,1 must equal weightB dims 0,1 (W, L) (weightA=[%lld, %lld], weightB=[%lld, %lld])",
                (ll)d[0], (ll)d[1], (ll)s.W, (ll)s.L);
  if (d[2] != s.R)
    return fail(Status::invalid_shape, k, "weightA dim 2 must equal weightB dim 3 (R) (weightA=%lld, R=%lld)",
                (ll)d[2], (ll)s.R);
  if (d[3] != s.H1)
    return fail(Status::invalid_shape, k, "weightA dim 3 must equal x dim 1 (H1) (weightA=%lld, H1=%lld)", (ll)d[3],
                (ll)s.H1);
  return Status::ok;
}

Status check_attributes(const Arguments& a, const Shape& s, const Failure& fail) {
  constexpr ErrorKind k = ErrorKind::shape;
  if (a.layer_idx < 0 || a.layer_idx >= s.L)
    return fail(Status::invalid_shape, k, "layerIdx must be in [0, L) (layerIdx=%lld, L=%lld)", (ll)a.layer_idx,
                (ll)s.L);
  if (a.y_offset < 0 || a.y_offset >= s.H3)
    return fail(Status::invalid_shape, k, "yOffset must be in [0, H3) (yOffset=%lld, H3=%lld)", (ll)a.y_offset,
                (ll)s.H3);
  if (a.y_slice_size != -1 && (a.y_slice_size < 0 || a.y_slice_size > s.H2))
    return fail(Status::invalid_shape, k, "ySliceSize must be -1 or in [0, H2] (ySliceSize=%lld, H2=%lld)",
                (ll)a.y_slice_size, (ll)s.H2);
  if (a.y_offset + s.H2 > s.H3)
    return fail(Status::invalid_shape, k, "yOffset + H2 must be <= H3 (yOffset=%lld, H2=%lld, H3=%lld)",
                (ll)a.y_offset, (ll)s.H2, (ll)s.H3);
  return Status::ok;
}

Status check_limits(const RuleSet& rs, const Shape& s, const Failure& fail) {
  for (size_t i = 0; i < rs.num_limits; ++i) {
    const Limit& l = rs.limits[i];
    if (l.only_with_a && !s.has_a) continue;
    const int64_t v = s.*l.value;
    const bool ok = l.test == Limit::multiple_of ? v % l.bound == 0 : v <= l.bound;
    if (!ok)
      return fail.text(Status::invalid_shape, ErrorKind::shape,
                       std::string(l.rule) + " (" + l.dim + "=" + std::to_string(v) + ")");
  }
  return Status::ok;
}

// ---- per-adapter inputs (ranks, scales) -----------------------------------------------------

Status check_per_adapter(const Arguments& a, const RuleSet& rs, const Shape& s, NamedList* tensors,
                         const Failure& fail) {
  const struct { const char* name; const TensorView* v; DType dtype; } per_adapter[] = {
      {"ranks", &a.ranks, DType::i32}, {"scales", &a.scales, DType::f32}};
  for (const auto& t : per_adapter) {
    if (t.v->data == nullptr) continue;
    if (!rs.per_adapter_inputs)
      return fail(Status::invalid_param, ErrorKind::shape, "%s is not an input of aclnnAddLora (use Rules::general)",
                  t.name);
    if (t.v->dtype != t.dtype)
      return fail(Status::invalid_param, ErrorKind::type, "%s dtype must be %s (got %s)", t.name, dtype_name(t.dtype),
                  dtype_name(t.v->dtype));
    if (t.v->layout != Layout::nd)
      return fail(Status::invalid_param, ErrorKind::type, "%s format must be ND", t.name);
    if (t.v->ndim != 1 || t.v->dims[0] != s.W)
      return fail(Status::invalid_shape, ErrorKind::shape,
                  "%s must be 1-D of W=%lld elements (got %d-D, dim 0 = %lld)", t.name, (ll)s.W, t.v->ndim,
                  t.v->ndim > 0 ? (ll)t.v->dims[0] : -1LL);
    tensors->push_back({t.name, t.v});
  }
  return Status::ok;
}

}  // namespace
}  // namespace validation

bool has_weight_a(const Arguments& a) { return a.weight_a.data != nullptr || a.weight_a.ndim != 0; }

Status validate(const Arguments& a, Rules rules, Shape* shape, Error* error, const std::string& context) {
  using namespace validation;
  const Failure fail(error, context);
  const RuleSet& rs = rules == Rules::cann ? kCann : kGeneral;
  const bool has_a = has_weight_a(a);
  NamedList tensors = tensors_of(a, has_a);
  Status st = check_presence(a, has_a, tensors, fail);
  if (st == Status::ok) st = check_types(a, rs, tensors, fail);
  if (st == Status::ok) st = check_ranks(a, rs, tensors, fail);
  if (st != Status::ok) return st;
  Shape s = shape_of(a, has_a);
  st = check_shapes(a, s, fail);
  if (st == Status::ok) st = check_attributes(a, s, fail);
  if (st == Status::ok) st = check_limits(rs, s, fail);
  if (st == Status::ok) st = check_per_adapter(a, rs, s, &tensors, fail);
  if (st == Status::ok) st = check_memory(a, tensors, &s, fail);
  if (st != Status::ok) return st;
  s.S = a.y_slice_size == -1 ? s.H2 : a.y_slice_size;
  *shape = s;
  return Status::ok;
}

}  // namespace addlora::detail
