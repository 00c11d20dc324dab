// See row_ops.h.
#include "kernels/row_ops.h"

#include <cmath>
#include <cstring>

#include "model/dtype.h"

namespace addlora::kernels::internal {

using detail::Problem;

void copy_row(const Problem& p, int64_t b) {
  const size_t es = model::element_size(p.y.dtype);
  const auto* src = static_cast<const unsigned char*>(p.y.base) + b * p.y.row_stride * es;
  auto* dst = static_cast<unsigned char*>(const_cast<void*>(p.out.base)) +
              b * p.out.row_stride * model::element_size(p.out.dtype);
  if (p.y.dtype == p.out.dtype && p.y.col_stride == 1 && p.out.col_stride == 1) {
    std::memcpy(dst, src, static_cast<size_t>(p.H3) * es);
    return;
  }
  model::visit_float(p.y.dtype, [&](auto ty) {
    model::visit_float(p.out.dtype, [&](auto to) {
      for (int64_t c = 0; c < p.H3; ++c)
        model::store_float<decltype(to)::value>(
            dst, c * p.out.col_stride, model::load_float<decltype(ty)::value>(src, c * p.y.col_stride));
    });
  });
}

void write_scaled_z(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t nb, int64_t ne) {
  const Problem& p = *w.p;
  const float scale = static_cast<float>(detail::scale_of(p, adapter));
  void* out = const_cast<void*>(p.out.base);
  model::visit_float(p.y.dtype, [&](auto ty) {
    model::visit_float(p.out.dtype, [&](auto to) {
      for (int64_t pos = pb; pos < pe; ++pos) {
        const int64_t row = w.order[pos];
        const float* z = w.z + pos * w.rp;
        for (int64_t n = nb; n < ne; ++n) {
          const int64_t col = p.y_offset + n;
          const float y = model::load_float<decltype(ty)::value>(p.y.base, row * p.y.row_stride + col * p.y.col_stride);
          model::store_float<decltype(to)::value>(out, row * p.out.row_stride + col * p.out.col_stride,
                                                  std::fma(z[n], scale, y));
        }
      }
    });
  });
}

}  // namespace addlora::kernels::internal
