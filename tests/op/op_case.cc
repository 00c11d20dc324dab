#include "op_case.h"

#include <climits>
#include <sstream>

namespace optest {

using addlora::ref::Rng;
using addlora::ref::TestTensor;

namespace {

const char* dname(DType t) {
  switch (t) {
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::f32: return "f32";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
  }
  return "x";
}

// Random strides with gaps for a 2-D activation [rows, cols].
std::unique_ptr<TestTensor> activation(Rng& rng, DType t, int64_t rows, int64_t cols, bool strided) {
  if (!strided) return std::make_unique<TestTensor>(TestTensor::nd(t, {rows, cols}));
  const int64_t cs = 1 + rng.below(3), pad = rng.below(10);
  const int64_t off = rng.below(21);
  if (rng.below(4) == 0)  // column-major: rows are adjacent
    return std::make_unique<TestTensor>(TestTensor::nd(t, {rows, cols}, {cs, rows * cs + pad}, off));
  return std::make_unique<TestTensor>(
      TestTensor::nd(t, {rows, cols}, addlora::ref::padded_strides({rows, cols}, cs, pad), off));
}

// A weight family [W, L, M, N]: ND (dense, padded, transposed matrices) or NZ.
std::unique_ptr<TestTensor> weight(Rng& rng, DType t, std::vector<int64_t> dims, Layout layout, bool strided) {
  if (layout == Layout::fractal_nz)
    return std::make_unique<TestTensor>(TestTensor::nz(t, dims, strided ? rng.below(41) : 0));
  if (!strided) return std::make_unique<TestTensor>(TestTensor::nd(t, dims));
  const int64_t M = dims[2], N = dims[3], off = rng.below(17);
  switch (rng.below(3)) {
    case 0:  // rows padded
      return std::make_unique<TestTensor>(TestTensor::nd(t, dims, addlora::ref::padded_strides(dims, 1, 3), off));
    case 1: {  // each matrix column-major, adapters separated by a gap
      const int64_t mat = M * N;
      return std::make_unique<TestTensor>(TestTensor::nd(t, dims, {dims[1] * mat + 5, mat, 1, M}, off));
    }
    default:  // every other element
      return std::make_unique<TestTensor>(TestTensor::nd(t, dims, addlora::ref::padded_strides(dims, 2, 0), off));
  }
}

std::vector<int64_t> index_values(Rng& rng, const CaseSpec& c) {
  std::vector<int64_t> none = {-1, c.W, c.W + 1, c.W + 1000, INT32_MIN, INT32_MAX, -2};
  if (c.index_dtype == DType::i64) {
    // Values whose low 32 bits are a valid adapter: wrong if truncated to int32.
    none.push_back((int64_t{1} << 32) + 0);
    none.push_back((int64_t{1} << 32) + (c.W - 1));
    none.push_back(INT64_MIN);
    none.push_back(INT64_MAX);
    none.push_back(-(int64_t{1} << 32));
  }
  std::vector<int64_t> v(static_cast<size_t>(c.B));
  const int64_t same = rng.below(c.W);
  const int64_t step = 1 + 2 * rng.below(16);
  for (int64_t b = 0; b < c.B; ++b) {
    switch (c.pattern) {
      case Pattern::same: v[b] = same; break;
      case Pattern::distinct: v[b] = (b * step + same) % c.W; break;
      case Pattern::none: v[b] = none[rng.below(static_cast<int64_t>(none.size()))]; break;
      case Pattern::mixed:
        v[b] = rng.below(3) == 0 ? none[rng.below(static_cast<int64_t>(none.size()))] : rng.below(c.W);
        break;
    }
  }
  return v;
}

}  // namespace

std::string CaseSpec::name() const {
  std::ostringstream o;
  static const char* pat[] = {"same", "distinct", "none", "mixed"};
  o << "B" << B << "_H" << H1 << "x" << H2 << "x" << H3 << "_R" << R << "_W" << W << "_L" << L << "_l" << layer
    << "_off" << y_offset << "_S" << (y_slice < 0 ? std::string("all") : std::to_string(y_slice)) << "_"
    << pat[static_cast<int>(pattern)] << (has_a ? "_A" : "_noA") << "_" << dname(dtype);
  if (w_dtype != dtype) o << "_w" << dname(w_dtype);
  if (y_dtype != dtype) o << "_y" << dname(y_dtype);
  if (index_dtype != DType::i32) o << "_idx" << dname(index_dtype);
  if (strided) o << "_strided";
  if (in_place) o << "_inplace";
  if (a_layout == Layout::fractal_nz) o << "_Anz";
  if (b_layout == Layout::fractal_nz) o << "_Bnz";
  if (scale_factor != 1) o << "_neg";
  o << "_s" << seed;
  return o.str();
}

std::unique_ptr<CaseData> make_case(const CaseSpec& c) {
  Rng rng(c.seed * 0x9e3779b97f4a7c15ull + 12345);
  auto d = std::make_unique<CaseData>();
  d->spec = c;
  d->y = activation(rng, c.y_dtype, c.B, c.H3, c.strided);
  d->x = activation(rng, c.dtype, c.B, c.H1, c.strided);
  d->wb = weight(rng, c.w_dtype, {c.W, c.L, c.H2, c.R}, c.b_layout, c.strided);
  if (c.has_a) d->wa = weight(rng, c.w_dtype, {c.W, c.L, c.R, c.H1}, c.a_layout, c.strided);
  if (!c.in_place) d->out = activation(rng, c.y_dtype, c.B, c.H3, c.strided);
  d->y->fill_uniform(rng, -1, 1);
  d->x->fill_uniform(rng, -1, 1);
  d->wb->fill_uniform(rng, -1, 1);
  if (d->wa) d->wa->fill_uniform(rng, -1, 1);
  if (d->out) d->out->fill_uniform(rng, -4, 4);  // stale garbage the operator must overwrite
  d->index_values = index_values(rng, c);
  const int64_t istride = c.strided ? 1 + rng.below(3) : 1, ioff = c.strided ? rng.below(5) : 0;
  d->idx = std::make_unique<TestTensor>(TestTensor::nd(c.index_dtype, {c.B}, {istride}, ioff));
  // Gap sentinel: an index that changes the result if the operator reads it instead.
  d->idx->fill_ints(d->index_values, c.pattern == Pattern::none ? 0 : -1);
  d->scale = c.scale_factor * addlora::ref::balanced_scale(c.H1, c.R, c.has_a);
  return d;
}

addlora::Arguments CaseData::args() const {
  addlora::Arguments a;
  a.y = y->view();
  a.x = x->view();
  a.weight_b = wb->view();
  if (wa) a.weight_a = wa->view();
  a.indices = idx->view();
  a.out = out ? out->view() : a.y;
  a.layer_idx = spec.layer;
  a.scale = scale;
  a.y_offset = spec.y_offset;
  a.y_slice_size = spec.y_slice;
  return a;
}

Snapshot snapshot(const CaseData& d) {
  Snapshot s;
  for (const auto* t : {&d.y, &d.x, &d.wa, &d.wb, &d.idx, &d.out})
    s.images.push_back(*t ? (*t)->image_bytes() : std::vector<uint8_t>());
  return s;
}

std::string memory_changes(const CaseData& d, const Snapshot& s) {
  std::string r;
  const char* names[] = {"y", "x", "weightA", "weightB", "indices", "out"};
  const std::unique_ptr<TestTensor>* ts[] = {&d.y, &d.x, &d.wa, &d.wb, &d.idx, &d.out};
  for (int k = 0; k < 6; ++k) {
    if (!*ts[k]) continue;
    const bool written = k == 5 || (k == 0 && !d.out);  // the output view
    const std::string c = written ? (*ts[k])->changes_outside_view(s.images[k]) : (*ts[k])->changes(s.images[k]);
    if (!c.empty()) r += std::string(names[k]) + ": " + c + "\n";
  }
  return r;
}

}  // namespace optest
