// Planning: a validated Arguments becomes the normalised Problem the kernels run.
#include <cstring>
#include <new>

#include "core/plan_impl.h"
#include "kernels/kernels.h"

namespace addlora::detail {
namespace {

const char* at(const TensorView& v, int64_t elements) {
  return static_cast<const char*>(v.data) + elements * static_cast<int64_t>(dtype_size(v.dtype));
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
    const int64_t block = ((v.dims[2] + 15) / 16) * ((v.dims[3] + 15) / 16) * 256;
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
  p.scale = static_cast<float>(a.scale);
  p.x = matrix(a.x);
  p.y = matrix(a.y);
  p.out = matrix(a.out);
  p.in_place = s.in_place;
  p.indices = at(a.indices, a.indices.offset);
  p.index_dtype = a.indices.dtype;
  p.index_stride = a.indices.strides[0];
  p.has_a = s.has_a;
  if (s.has_a) p.a = weight(a.weight_a, a.layer_idx);
  p.b = weight(a.weight_b, a.layer_idx);
  return p;
}

}  // namespace addlora::detail

namespace addlora {

Status Plan::Impl::rebuild(std::string* message) {
  detail::Shape s;
  const Status st = detail::validate(args, rules, &s, message);
  if (st != Status::ok) return st;
  problem = detail::build_problem(args, s);
  workspace = kernels::workspace_bytes(problem);
  return Status::ok;
}

}  // namespace addlora
