// Planning: a validated Arguments becomes the normalised Problem the kernels run.
#include <algorithm>
#include <cstring>
#include <string>
#include <new>

#include "core/plan_impl.h"
#include "core/status.h"
#include "kernels/kernels.h"
#include "model/dtype.h"

namespace addlora::detail {
namespace {

const char* at(const TensorView& v, int64_t elements) {
  return static_cast<const char*>(v.data) + elements * static_cast<int64_t>(model::element_size(v.dtype));
}

MatrixDesc matrix(const TensorView& v) {
  MatrixDesc m;
  m.base = at(v, v.offset);
  m.dtype = v.dtype;
  m.row_stride = v.strides[0];
  m.col_stride = v.strides[1];
  return m;
}

// Weight family [W, L, M, N] at `layer` -> WeightDesc over (w, m, n).
WeightDesc weight(const TensorView& v, int64_t layer) {
  WeightDesc d;
  d.dtype = v.dtype;
  d.layout = v.layout;
  if (v.layout == Layout::fractal_nz) {
    const int64_t block = model::nz_matrix_elements(v.dims[2], v.dims[3]);
    d.adapter_stride = v.dims[1] * block;
    d.base = at(v, v.offset + layer * block);
  } else {
    d.adapter_stride = v.strides[0];
    d.row_stride = v.strides[2];
    d.col_stride = v.strides[3];
    d.base = at(v, v.offset + layer * v.strides[1]);
  }
  return d;
}

}  // namespace

Problem build_problem(const Arguments& a, const Shape& s) {
  Problem p;
  p.B = s.B;
  p.H1 = s.H1;
  p.H2 = s.H2;
  p.H3 = s.H3;
  p.R = s.R;
  p.W = s.W;
  p.S = s.S;
  p.y_offset = a.y_offset;
  p.scale = a.scale;
  p.x = matrix(a.x);
  p.y = matrix(a.y);
  p.out = matrix(a.out);
  p.in_place = s.in_place;
  p.indices = at(a.indices, a.indices.offset);
  p.index_dtype = a.indices.dtype;
  p.index_stride = a.indices.strides[0];
  if (a.ranks.data != nullptr) {
    p.ranks = reinterpret_cast<const int32_t*>(at(a.ranks, a.ranks.offset));
    p.ranks_stride = a.ranks.strides[0];
  }
  if (a.scales.data != nullptr) {
    p.scales = reinterpret_cast<const float*>(at(a.scales, a.scales.offset));
    p.scales_stride = a.scales.strides[0];
  }
  p.has_a = s.has_a;
  if (s.has_a) p.a = weight(a.weight_a, a.layer_idx);
  p.b = weight(a.weight_b, a.layer_idx);
  return p;
}

}  // namespace addlora::detail

namespace addlora {

namespace {

// A rule about how the slices of one call relate to each other.
Status slice_fail(Error* error, Status st, const std::string& text) {
  return detail::fail(error, st, st == Status::null_pointer ? ErrorKind::null : ErrorKind::shape, "", text);
}

// Shared inputs are the same view in every slice, and so are layerIdx and precision.
Status check_shared(const Arguments& a, const Arguments& first, const std::string& which, Error* error) {
  const struct { const char* name; const TensorView& mine; const TensorView& theirs; } shared[] = {
      {"y", a.y, first.y}, {"x", a.x, first.x}, {"indices", a.indices, first.indices}, {"out", a.out, first.out}};
  for (const auto& t : shared)
    if (!detail::same_view(t.mine, t.theirs))
      return slice_fail(error, Status::invalid_param, which + t.name + " must be the same view in every slice");
  if (a.layer_idx != first.layer_idx || a.precision != first.precision)
    return slice_fail(error, Status::invalid_param, which + "layerIdx and precision must be equal in every slice");
  return Status::ok;
}

// Written column ranges of different slices must not overlap (each slice reads y there).
Status check_disjoint_columns(const detail::Problem* built, size_t n, Error* error) {
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      const auto& p = built[i];
      const auto& q = built[j];
      if (p.S > 0 && q.S > 0 && p.y_offset < q.y_offset + q.S && q.y_offset < p.y_offset + p.S)
        return slice_fail(error, Status::invalid_shape,
                          "slices " + std::to_string(i) + " and " + std::to_string(j) +
                              " write overlapping columns ([" + std::to_string(p.y_offset) + ", " +
                              std::to_string(p.y_offset + p.S) + ") and [" + std::to_string(q.y_offset) + ", " +
                              std::to_string(q.y_offset + q.S) + "))");
    }
  return Status::ok;
}

}  // namespace

namespace detail {

Status plan_slices(const Arguments* slices, size_t n, Rules rules, bool shrink_only, Problem* built,
                   uint64_t* workspace, Error* error) {
  if (n == 0) return slice_fail(error, Status::invalid_param, "at least one slice is needed");
  const Arguments& first = slices[0];
  for (size_t k = 0; k < n; ++k) {
    const Arguments& a = slices[k];
    const std::string which = n > 1 ? "slice " + std::to_string(k) + ": " : "";
    if (k > 0)
      if (Status st = check_shared(a, first, which, error); st != Status::ok) return st;
    Shape shape;
    if (Status st = validate(a, rules, &shape, error, which); st != Status::ok) return st;
    built[k] = build_problem(a, shape);
  }
  if (Status st = check_disjoint_columns(built, n, error); st != Status::ok) return st;
  if (shrink_only)
    for (size_t k = 0; k < n; ++k) to_shrink_only(&built[k]);  // as Plan::Impl::set_shrink_only()
  // Slices after the first update out in place: y has been copied to out by the first.
  for (size_t k = 1; k < n; ++k) {
    built[k].y = built[k].out;
    built[k].in_place = true;
  }
  *workspace = kernels::workspace_bytes(built, n);
  return Status::ok;
}

}  // namespace detail

Status Plan::Impl::rebuild(Error* error) {
  std::vector<detail::Problem> built(slices.size());
  uint64_t ws = 0;
  if (Status st = detail::plan_slices(slices.data(), slices.size(), rules, shrink_only, built.data(), &ws, error);
      st != Status::ok)
    return st;
  problems = std::move(built);
  workspace = ws;
  return Status::ok;
}

void Plan::Impl::set_shrink_only() {
  shrink_only = true;
  for (detail::Problem& p : problems) detail::to_shrink_only(&p);
  workspace = kernels::workspace_bytes(problems.data(), problems.size());
}

namespace detail {

void to_shrink_only(Problem* p) {
  const int64_t rank = p->H2;  // weight_a's R
  p->has_a = true;
  p->a = p->b;                 // [W, R, H1] as the expand's [W, H2, rank]: the same descriptor
  p->H1 = p->R;                // the expand's rank was x's width
  p->R = rank;
  p->H2 = rank;
  p->S = rank;
  p->shrink_only = true;
}

}  // namespace detail

}  // namespace addlora
