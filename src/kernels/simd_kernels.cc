// SIMD shrink / expand kernels, compiled once per Highway target (AVX3 = AVX-512, AVX2 =
// AVX2+FMA+F16C, SCALAR = the baseline every x86-64 CPU runs).  dispatch.cc picks one table at
// run time.  fp16 / bf16 / fp32 storage, fp32 products and sums, one final rounding.
//
// Memory access model (see work.h for the phases):
// * A weight row r (length H1) and B weight row n (length R) are read in 16-element chunks
//   that are contiguous in both supported layouts: ND with unit column stride (chunk c of row m
//   at m*row_stride + 16c) and FRACTAL_NZ (at m*16 + c*ceil(M/16)*256).  So one kernel serves
//   both, with (row_step, chunk_step) = (row_stride, 16) or (16, ceil(M/16)*256).
// * A vector never straddles a chunk (lanes <= 16).  A ragged last vector (H1 or R not a
//   multiple of the lane count) is copied into a zeroed stack buffer: no load ever reads past
//   the end of a tensor.  (Highway 1.0.3 has no LoadN, and its MaskedLoad for 16-bit lanes on
//   AVX2 is a full load plus blend, so it would read past the end.)
#include <algorithm>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_kernels.cc"
// AVX3, AVX2 and the scalar baseline; SSE4/SSSE3 are skipped (no F16C, little to gain on
// machines that also run the library's other parts).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)
#endif
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "core/numeric.h"
#include "kernels/work.h"

HWY_BEFORE_NAMESPACE();
namespace addlora::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using detail::Problem;
using internal::Work;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr size_t kLanes = hn::MaxLanes(DF());
static_assert(kLanes <= 16 && 16 % kLanes == 0, "a vector must fit inside a 16-element chunk");

// ---- loads and stores of one vector of fp32 values from/to any storage dtype ---------------

template <DType T>
HWY_INLINE VF LoadF(const void* base, int64_t off) {
  const DF df;
  if constexpr (T == DType::f32) {
    return hn::LoadU(df, static_cast<const float*>(base) + off);
  } else if constexpr (T == DType::bf16) {  // bf16 -> f32 is exact: move the bits up
    const hn::Rebind<uint16_t, DF> du16;
    const hn::RebindToUnsigned<DF> du32;
    const auto u = hn::PromoteTo(du32, hn::LoadU(du16, static_cast<const uint16_t*>(base) + off));
    return hn::BitCast(df, hn::ShiftLeft<16>(u));
  } else {
#if HWY_TARGET == HWY_SCALAR  // Highway's scalar f16 promotion mishandles Inf/NaN
    return hn::Set(df, numeric::half_to_float(static_cast<const uint16_t*>(base)[off]));
#else
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, static_cast<const hwy::float16_t*>(base) + off));
#endif
  }
}

template <DType T>
constexpr size_t ElemSize() { return T == DType::f32 ? 4 : 2; }

// First `count` (< kLanes) elements at base+off, zeros after; reads only those elements.
template <DType T>
HWY_INLINE VF LoadTailF(const void* base, int64_t off, int64_t count) {
  alignas(64) unsigned char buf[64] = {};
  std::memcpy(buf, static_cast<const unsigned char*>(base) + off * ElemSize<T>(),
              static_cast<size_t>(count) * ElemSize<T>());
  return LoadF<T>(buf, 0);
}

template <DType T>
HWY_INLINE void StoreF(VF v, void* base, int64_t off) {
  const DF df;
  if constexpr (T == DType::f32) {
    hn::StoreU(v, df, static_cast<float*>(base) + off);
  } else if constexpr (T == DType::bf16) {  // round to nearest even, NaN stays quiet NaN
    const hn::RebindToUnsigned<DF> du32;
    const hn::RebindToSigned<DF> di32;
    const hn::Rebind<uint16_t, DF> du16;
    const auto u = hn::BitCast(du32, v);
    const auto lsb = hn::And(hn::ShiftRight<16>(u), hn::Set(du32, 1u));
    const auto rounded = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du32, 0x7fffu), lsb)));
    const auto is_nan = hn::Gt(hn::And(u, hn::Set(du32, 0x7fffffffu)), hn::Set(du32, 0x7f800000u));
    const auto quiet = hn::Or(hn::ShiftRight<16>(u), hn::Set(du32, 0x40u));
    const auto bits = hn::IfThenElse(is_nan, quiet, rounded);
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di32, bits)), du16,
               static_cast<uint16_t*>(base) + off);
  } else {
#if HWY_TARGET == HWY_SCALAR  // Highway's scalar f16 demotion truncates
    static_cast<uint16_t*>(base)[off] = numeric::float_to_half(hn::GetLane(v));
#else  // vcvtps2ph with the current (round to nearest even) mode
    const hn::Rebind<hwy::float16_t, DF> dh;
    hn::StoreU(hn::DemoteTo(dh, v), dh, static_cast<hwy::float16_t*>(base) + off);
#endif
  }
}

template <DType T>
HWY_INLINE void StoreTailF(VF v, void* base, int64_t off, int64_t count) {
  alignas(64) unsigned char buf[64];
  StoreF<T>(v, buf, 0);
  std::memcpy(static_cast<unsigned char*>(base) + off * ElemSize<T>(), buf,
              static_cast<size_t>(count) * ElemSize<T>());
}

VF LoadAnyF(DType t, const void* base, int64_t off, int64_t count) {
  if (count >= static_cast<int64_t>(kLanes)) {
    switch (t) {
      case DType::f16: return LoadF<DType::f16>(base, off);
      case DType::bf16: return LoadF<DType::bf16>(base, off);
      default: return LoadF<DType::f32>(base, off);
    }
  }
  switch (t) {
    case DType::f16: return LoadTailF<DType::f16>(base, off, count);
    case DType::bf16: return LoadTailF<DType::bf16>(base, off, count);
    default: return LoadTailF<DType::f32>(base, off, count);
  }
}

void StoreAnyF(DType t, VF v, void* base, int64_t off, int64_t count) {
  if (count >= static_cast<int64_t>(kLanes)) {
    switch (t) {
      case DType::f16: return StoreF<DType::f16>(v, base, off);
      case DType::bf16: return StoreF<DType::bf16>(v, base, off);
      default: return StoreF<DType::f32>(v, base, off);
    }
  }
  switch (t) {
    case DType::f16: return StoreTailF<DType::f16>(v, base, off, count);
    case DType::bf16: return StoreTailF<DType::bf16>(v, base, off, count);
    default: return StoreTailF<DType::f32>(v, base, off, count);
  }
}

// Lane j of the result = sum of the lanes of v[j] (v holds kLanes vectors; clobbered).
// Pairwise ConcatEven+ConcatOdd halves the vector count per step: ~3 ops per output instead
// of a full horizontal reduction per output.  The order is fixed for a given target.
template <class D>
HWY_INLINE hn::Vec<D> SumEachToLane(D d, hn::Vec<D>* v) {
#if HWY_TARGET != HWY_SCALAR
  {
    for (size_t count = hn::MaxLanes(d); count > 1; count /= 2) {
      for (size_t i = 0; i < count / 2; ++i)
        v[i] = hn::Add(hn::ConcatEven(d, v[2 * i + 1], v[2 * i]),
                       hn::ConcatOdd(d, v[2 * i + 1], v[2 * i]));
    }
  }
#endif
  return v[0];
}

// Where chunk-structured weight rows live (see the file comment).
struct WeightRows {
  const unsigned char* base;  // adapter's element (0, 0)
  int64_t esize;
  int64_t row_step;           // elements between rows m and m+1
  int64_t chunk_step;         // elements between 16-chunks c and c+1 of one row
  int64_t off(int64_t m, int64_t k) const { return m * row_step + (k >> 4) * chunk_step + (k & 15); }
};

WeightRows Rows(const detail::WeightDesc& d, int64_t M, int64_t adapter) {
  WeightRows w;
  w.esize = d.dtype == DType::f32 ? 4 : 2;
  w.base = static_cast<const unsigned char*>(d.base) + adapter * d.adapter_stride * w.esize;
  if (d.layout == Layout::fractal_nz) {
    w.row_step = 16;
    w.chunk_step = ((M + 15) / 16) * 256;
  } else {
    w.row_step = d.row_stride;
    w.chunk_step = 16;
  }
  return w;
}

// ---- shrink: zpart[k][pos][r] = sum over h in K chunk k of x[row, h] * A[adapter, r, h] ------

constexpr int kShrinkRows = 4;   // register block: rows x ranks accumulators
constexpr int kShrinkRanks = 4;

template <DType TX, DType TA>
void ShrinkT(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t k) {
  const Problem& p = *w.p;
  const DF df;
  const WeightRows A = Rows(p.a, p.R, adapter);
  const int64_t h_begin = k * w.kc;
  const int64_t h_end = std::min<int64_t>(p.H1, h_begin + w.kc);
  const int64_t h_full = h_begin + ((h_end - h_begin) / kLanes) * kLanes;
  const int64_t xes = ElemSize<TX>();
  const unsigned char* xbase = static_cast<const unsigned char*>(p.x.base);
  float* zk = w.zpart + k * w.B * w.rp;

  for (int64_t pos0 = pos_begin; pos0 < pos_end; pos0 += kShrinkRows) {
    // Short blocks repeat their last row; those results are simply not stored.
    const unsigned char* xr[kShrinkRows];
    for (int i = 0; i < kShrinkRows; ++i) {
      const int64_t pos = std::min<int64_t>(pos0 + i, pos_end - 1);
      xr[i] = xbase + w.order[pos] * p.x.row_stride * xes;
    }
    for (int64_t r0 = 0; r0 < p.R; r0 += kShrinkRanks) {
      const unsigned char* ar[kShrinkRanks];
      for (int j = 0; j < kShrinkRanks; ++j)
        ar[j] = A.base + std::min<int64_t>(r0 + j, p.R - 1) * A.row_step * A.esize;
      VF acc[kShrinkRows][kShrinkRanks];
      for (int i = 0; i < kShrinkRows; ++i)
        for (int j = 0; j < kShrinkRanks; ++j) acc[i][j] = hn::Zero(df);
      for (int64_t h = h_begin; h < h_full; h += kLanes) {
        const int64_t aoff = (h >> 4) * A.chunk_step + (h & 15);
        VF av[kShrinkRanks];
        for (int j = 0; j < kShrinkRanks; ++j) av[j] = LoadF<TA>(ar[j], aoff);
        for (int i = 0; i < kShrinkRows; ++i) {
          const VF xv = LoadF<TX>(xr[i], h);
          for (int j = 0; j < kShrinkRanks; ++j) acc[i][j] = hn::MulAdd(xv, av[j], acc[i][j]);
        }
      }
      if (h_full < h_end) {  // ragged end of H1
        const int64_t rem = h_end - h_full;
        const int64_t aoff = (h_full >> 4) * A.chunk_step + (h_full & 15);
        VF av[kShrinkRanks];
        for (int j = 0; j < kShrinkRanks; ++j) av[j] = LoadTailF<TA>(ar[j], aoff, rem);
        for (int i = 0; i < kShrinkRows; ++i) {
          const VF xv = LoadTailF<TX>(xr[i], h_full, rem);
          for (int j = 0; j < kShrinkRanks; ++j) acc[i][j] = hn::MulAdd(xv, av[j], acc[i][j]);
        }
      }
      for (int i = 0; i < kShrinkRows && pos0 + i < pos_end; ++i)
        for (int j = 0; j < kShrinkRanks && r0 + j < p.R; ++j)
          zk[(pos0 + i) * w.rp + r0 + j] = hn::GetLane(hn::SumOfLanes(df, acc[i][j]));
    }
  }
}

template <DType TX>
void ShrinkX(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t k) {
  switch (w.p->a.dtype) {
    case DType::f16: return ShrinkT<TX, DType::f16>(w, pb, pe, adapter, k);
    case DType::bf16: return ShrinkT<TX, DType::bf16>(w, pb, pe, adapter, k);
    default: return ShrinkT<TX, DType::f32>(w, pb, pe, adapter, k);
  }
}

void Shrink(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t k) {
  switch (w.p->x.dtype) {
    case DType::f16: return ShrinkX<DType::f16>(w, pb, pe, adapter, k);
    case DType::bf16: return ShrinkX<DType::bf16>(w, pb, pe, adapter, k);
    default: return ShrinkX<DType::f32>(w, pb, pe, adapter, k);
  }
}

// ---- expand: out[row, off+n] = y[row, off+n] + scale * sum_r z[pos][r] * B[adapter, n, r] ----
// One vector of kLanes consecutive n per step: kLanes dot products over R (z is fp32, zero
// padded to rp), folded into one vector by SumEachToLane.  The B block (kLanes x R) stays in
// L1 while all rows of the tile use it.

template <DType TB>
void ExpandT(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t n_begin,
             int64_t n_end) {
  const Problem& p = *w.p;
  const DF df;
  const WeightRows Bw = Rows(p.b, p.H2, adapter);
  const int64_t r_full = (p.R / kLanes) * kLanes;
  const VF scale = hn::Set(df, p.scale);
  const int64_t yes = p.y.dtype == DType::f32 ? 4 : 2;
  const int64_t oes = p.out.dtype == DType::f32 ? 4 : 2;
  const unsigned char* ybase = static_cast<const unsigned char*>(p.y.base);
  unsigned char* obase = static_cast<unsigned char*>(const_cast<void*>(p.out.base));

  for (int64_t n0 = n_begin; n0 < n_end; n0 += kLanes) {
    const int64_t valid = std::min<int64_t>(kLanes, n_end - n0);
    const unsigned char* br[kLanes];
    for (size_t j = 0; j < kLanes; ++j)  // lanes past the end repeat the last column
      br[j] = Bw.base + std::min<int64_t>(n0 + j, n_end - 1) * Bw.row_step * Bw.esize;
    for (int64_t pos = pos_begin; pos < pos_end; ++pos) {
      const float* z = w.zpart + pos * w.rp;
      VF acc[kLanes];
      for (size_t j = 0; j < kLanes; ++j) acc[j] = hn::Zero(df);
      for (int64_t r = 0; r < r_full; r += kLanes) {
        const VF zv = hn::LoadU(df, z + r);
        const int64_t boff = (r >> 4) * Bw.chunk_step + (r & 15);
        for (size_t j = 0; j < kLanes; ++j) acc[j] = hn::MulAdd(zv, LoadF<TB>(br[j], boff), acc[j]);
      }
      if (r_full < p.R) {  // ragged end of R
        const VF zv = hn::LoadU(df, z + r_full);
        const int64_t boff = (r_full >> 4) * Bw.chunk_step + (r_full & 15);
        for (size_t j = 0; j < kLanes; ++j)
          acc[j] = hn::MulAdd(zv, LoadTailF<TB>(br[j], boff, p.R - r_full), acc[j]);
      }
      const VF d = SumEachToLane(df, acc);
      const int64_t row = w.order[pos];
      const int64_t col = p.y_offset + n0;
      const VF yv = LoadAnyF(p.y.dtype, ybase + row * p.y.row_stride * yes, col, valid);
      StoreAnyF(p.out.dtype, hn::MulAdd(d, scale, yv), obase + row * p.out.row_stride * oes, col,
                valid);
    }
  }
}

void Expand(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t nb, int64_t ne) {
  switch (w.p->b.dtype) {
    case DType::f16: return ExpandT<DType::f16>(w, pb, pe, adapter, nb, ne);
    case DType::bf16: return ExpandT<DType::bf16>(w, pb, pe, adapter, nb, ne);
    default: return ExpandT<DType::f32>(w, pb, pe, adapter, nb, ne);
  }
}

const internal::TargetKernels* Table() {
  static const internal::TargetKernels table{hwy::TargetName(HWY_TARGET), &Shrink, &Expand};
  return &table;
}

}  // namespace addlora::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace addlora::kernels::internal {

std::vector<const TargetKernels*> supported_targets() {
  const int64_t supported = hwy::SupportedTargets();
  std::vector<const TargetKernels*> out;
  // Best first.  Each branch exists only if that target was compiled.
#if HWY_TARGETS & HWY_AVX3
  if (supported & HWY_AVX3) out.push_back(N_AVX3::Table());
#endif
#if HWY_TARGETS & HWY_AVX2
  if (supported & HWY_AVX2) out.push_back(N_AVX2::Table());
#endif
#if HWY_TARGETS & HWY_SCALAR
  out.push_back(N_SCALAR::Table());
#endif
#if HWY_TARGETS & HWY_EMU128
  out.push_back(N_EMU128::Table());
#endif
  return out;
}

}  // namespace addlora::kernels::internal
#endif  // HWY_ONCE
