// ND <-> FRACTAL_NZ conversion (docs/contract.md §5): [.., M, N] is stored as [.., ceil(N/16), ceil(M/16), 16, 16],
// element (m, n) at block (n/16, m/16), position (m%16, n%16), padding zero.
#include <cstring>
#include <limits>

#include "addlora/addlora.h"

namespace addlora {
namespace {

struct Geometry {
  int64_t batch = 1, M = 0, N = 0, m1 = 0, n1 = 0, elems = 0;
};

bool geometry(const int64_t* dims, int ndim, Geometry* g) {
  if (ndim < 2 || ndim > 8) return false;
  for (int i = 0; i < ndim; ++i)
    if (dims[i] < 0) return false;
  for (int i = 0; i + 2 < ndim; ++i)
    if (__builtin_mul_overflow(g->batch, dims[i], &g->batch)) return false;
  g->M = dims[ndim - 2];
  g->N = dims[ndim - 1];
  g->m1 = g->M / 16 + (g->M % 16 != 0);  // ceil without overflow near 2^63
  g->n1 = g->N / 16 + (g->N % 16 != 0);
  int64_t block = 0;
  return !__builtin_mul_overflow(g->m1, int64_t{256}, &block) && !__builtin_mul_overflow(g->batch, block, &g->elems) &&
         !__builtin_mul_overflow(g->elems, g->n1, &g->elems);
}

Status check(const TensorView& v, int64_t nz_elems, Geometry* g, std::string* message) {
  auto fail = [&](const char* what) {
    if (message) *message = std::string("AddLora: ") + what;
    return Status::invalid_param;
  };
  if (v.data == nullptr) {
    if (message) *message = "AddLora: ND tensor data must not be null";
    return Status::null_pointer;
  }
  if (v.dtype != DType::f16 && v.dtype != DType::bf16) return fail("FRACTAL_NZ conversion needs a 16-bit dtype");
  if (v.layout != Layout::nd) return fail("the ND side of an NZ conversion must have Layout::nd");
  if (!geometry(v.dims, v.ndim, g)) return fail("NZ conversion needs 2 to 8 non-negative dims without overflow");
  if (nz_elems < g->elems) return fail("NZ buffer is smaller than nz_elements(dims)");
  if (v.offset < 0) return fail("ND offset must be >= 0");
  int64_t last = v.offset;
  for (int i = 0; i < v.ndim; ++i) {
    if (v.dims[i] > 1 && v.strides[i] < 1) return fail("ND strides must be >= 1");
    int64_t step = 0;
    if (v.dims[i] > 1 &&
        (__builtin_mul_overflow(v.dims[i] - 1, v.strides[i], &step) || __builtin_add_overflow(last, step, &last)))
      return fail("ND view extent overflows 64 bits");
  }
  if (v.storage_elems >= 0 && g->elems > 0 && last >= v.storage_elems)
    return fail("ND view does not fit its storage_elems");
  return Status::ok;
}

// Offset of ND element (t, m, n) from the view's first element.
int64_t nd_offset(const TensorView& v, int64_t t, int64_t m, int64_t n) {
  int64_t off = m * v.strides[v.ndim - 2] + n * v.strides[v.ndim - 1];
  for (int i = v.ndim - 3; i >= 0; --i) {  // unflatten the batch index
    off += (t % v.dims[i]) * v.strides[i];
    t /= v.dims[i];
  }
  return off;
}

Status null_buffer(const char* name, std::string* message) {
  if (message) *message = std::string("AddLora: NZ conversion ") + name + " must not be null";
  return Status::null_pointer;
}

}  // namespace

int64_t nz_elements(const int64_t* dims, int ndim) {
  Geometry g;
  return dims != nullptr && geometry(dims, ndim, &g) ? g.elems : 0;
}

Status nd_to_nz(const TensorView& src, void* dst, int64_t dst_elems, std::string* message) {
  Geometry g;
  if (Status st = check(src, dst_elems, &g, message); st != Status::ok) return st;
  if (dst == nullptr) return null_buffer("dst", message);
  auto* out = static_cast<uint16_t*>(dst);
  const auto* in = static_cast<const uint16_t*>(src.data) + src.offset;
  std::memset(out, 0, static_cast<size_t>(g.elems) * 2);
  for (int64_t t = 0; t < g.batch; ++t)
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n)
        out[t * g.n1 * g.m1 * 256 + (n / 16) * g.m1 * 256 + m * 16 + n % 16] = in[nd_offset(src, t, m, n)];
  return Status::ok;
}

Status nz_to_nd(const void* src, int64_t src_elems, const TensorView& dst, std::string* message) {
  Geometry g;
  if (Status st = check(dst, src_elems, &g, message); st != Status::ok) return st;
  if (src == nullptr) return null_buffer("src", message);
  const auto* in = static_cast<const uint16_t*>(src);
  auto* out = static_cast<uint16_t*>(dst.data) + dst.offset;
  for (int64_t t = 0; t < g.batch; ++t)
    for (int64_t m = 0; m < g.M; ++m)
      for (int64_t n = 0; n < g.N; ++n)
        out[nd_offset(dst, t, m, n)] = in[t * g.n1 * g.m1 * 256 + (n / 16) * g.m1 * 256 + m * 16 + n % 16];
  return Status::ok;
}

}  // namespace addlora
