// SIMD shrink / expand kernels, compiled once per Highway target (AVX3 = AVX-512, AVX2 =
// AVX2+FMA+F16C, SCALAR = the baseline every x86-64 CPU runs).  dispatch.cc picks one table at
// run time.  fp16 / bf16 / fp32 storage, fp32 products and sums in chains of at most kChain
// products per lane folded into fp64 (work.h), one final rounding.
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
#include <type_traits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_kernels.cc"
// AVX3, AVX2 and the scalar baseline; SSE4/SSSE3 are skipped (no F16C, little to gain on
// machines that also run the library's other parts).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_SSE4)
#endif
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"

#include "model/numeric.h"
#include "kernels/row_lines.h"
#include "kernels/row_ops.h"
#include "kernels/scratch.h"
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

// The bits of 16-bit values of dtype T (bf16, or f16 on x86 targets) widened to fp32, exactly.
template <DType T, class D = DF>
HWY_INLINE hn::Vec<D> WidenBits(hn::Vec<hn::Rebind<uint16_t, D>> u) {
  const D df;
  if constexpr (T == DType::bf16) {  // bf16 -> f32: move the bits up
    return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(hn::RebindToUnsigned<D>(), u)));
  } else {
    static_assert(T == DType::f16, "16-bit dtypes only");
    return hn::PromoteTo(df, hn::BitCast(hn::Rebind<hwy::float16_t, D>(), u));
  }
}

// D: a float descriptor (DF by default); result: Vec<D>.
template <DType T, class D = DF>
HWY_INLINE hn::Vec<D> LoadF(const void* base, int64_t off) {
  const D df;
  if constexpr (T == DType::f32) {
    return hn::LoadU(df, static_cast<const float*>(base) + off);
  } else if constexpr (T == DType::bf16) {
    return WidenBits<T, D>(hn::LoadU(hn::Rebind<uint16_t, D>(), static_cast<const uint16_t*>(base) + off));
  } else {
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
    // Highway's portable f16 promotion mishandles Inf/NaN: convert lane by lane.
    HWY_ALIGN float lanes[hn::MaxLanes(D())];
    for (size_t i = 0; i < hn::MaxLanes(D()); ++i)
      lanes[i] = numeric::half_to_float(static_cast<const uint16_t*>(base)[off + static_cast<int64_t>(i)]);
    return hn::Load(df, lanes);
#else
    return WidenBits<T, D>(hn::LoadU(hn::Rebind<uint16_t, D>(), static_cast<const uint16_t*>(base) + off));
#endif
  }
}

template <DType T>
constexpr size_t ElemSize() { return model::element_size(T); }

// First `count` (< kLanes) elements at base+off, zeros after; reads only those elements.
template <DType T, class D = DF>
HWY_INLINE hn::Vec<D> LoadTailF(const void* base, int64_t off, int64_t count) {
  alignas(64) unsigned char buf[64] = {};
  std::memcpy(buf, static_cast<const unsigned char*>(base) + off * ElemSize<T>(),
              std::min<size_t>(sizeof buf, static_cast<size_t>(count) * ElemSize<T>()));
  return LoadF<T, D>(buf, 0);
}

template <DType T, class D = DF>
HWY_INLINE void StoreF(hn::Vec<D> v, void* base, int64_t off) {
  const D df;
  if constexpr (T == DType::f32) {
    hn::StoreU(v, df, static_cast<float*>(base) + off);
  } else if constexpr (T == DType::bf16) {  // round to nearest even, NaN stays quiet NaN
    const hn::RebindToUnsigned<D> du32;
    const hn::RebindToSigned<D> di32;
    const hn::Rebind<uint16_t, D> du16;
    const auto u = hn::BitCast(du32, v);
    const auto lsb = hn::And(hn::ShiftRight<16>(u), hn::Set(du32, 1u));
    const auto rounded = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du32, 0x7fffu), lsb)));
    const auto quiet = hn::Or(hn::ShiftRight<16>(u), hn::Set(du32, 0x40u));
    // IsNaN needs no constants: fewer registers beside a block's live accumulators.
    const auto bits = hn::IfThenElse(hn::RebindMask(du32, hn::IsNaN(v)), quiet, rounded);
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di32, bits)), du16,
               static_cast<uint16_t*>(base) + off);
  } else {
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
    // Highway's portable f16 demotion truncates: round to nearest even lane by lane.
    HWY_ALIGN float lanes[hn::MaxLanes(D())];
    hn::Store(v, df, lanes);
    for (size_t i = 0; i < hn::MaxLanes(D()); ++i)
      static_cast<uint16_t*>(base)[off + static_cast<int64_t>(i)] = numeric::float_to_half(lanes[i]);
#else  // vcvtps2ph with the current (round to nearest even) mode
    const hn::Rebind<hwy::float16_t, D> dh;
    hn::StoreU(hn::DemoteTo(dh, v), dh, static_cast<hwy::float16_t*>(base) + off);
#endif
  }
}

template <DType T, class D = DF>
HWY_INLINE void StoreTailF(hn::Vec<D> v, void* base, int64_t off, int64_t count) {
  alignas(64) unsigned char buf[64];
  StoreF<T, D>(v, buf, 0);
  // count < kLanes, so at most 60 bytes; the min() tells the compiler so.
  std::memcpy(static_cast<unsigned char*>(base) + off * ElemSize<T>(), buf,
              std::min<size_t>(sizeof buf, static_cast<size_t>(count) * ElemSize<T>()));
}

// min(count, kLanes) elements at base+off (zeros after); reads only those elements.
template <DType T>
HWY_INLINE VF LoadUpToF(const void* base, int64_t off, int64_t count) {
  return count >= static_cast<int64_t>(kLanes) ? LoadF<T>(base, off) : LoadTailF<T>(base, off, count);
}

// ---- the accumulator policy (work.h): fp32 chains of kChain products per lane, folded into fp64

// Columns (or ranks) after which every lane of a vector accumulator holds kChain products.
constexpr int64_t kSegCols = internal::kChain * static_cast<int64_t>(kLanes);
static_assert(kSegCols % 32 == 0, "fold boundaries must fall between NZ chunk pairs");

// Start of the fold segment after the one holding column h (segments begin at seg0).
HWY_INLINE int64_t NextFold(int64_t seg0, int64_t h) { return seg0 + ((h - seg0) / kSegCols + 1) * kSegCols; }

// Lane-wise: total[0..kLanes) += v in fp64 (total need not be aligned: it may lie in a
// caller's workspace).
using DD = hn::ScalableTag<double>;
constexpr size_t kLanesD = hn::MaxLanes(DD());
HWY_INLINE void FoldLanes(VF v, double* total) {
  const DD dd;
#if HWY_TARGET == HWY_SCALAR
  const auto lo = hn::PromoteTo(dd, v);
  hn::Store(hn::Add(hn::Load(dd, total), lo), dd, total);
#else
  static_assert(kLanesD * 2 == kLanes, "fp64 vectors hold half the fp32 lanes");
  const hn::Half<DF> dh;
  const auto lo = hn::PromoteTo(dd, hn::LowerHalf(dh, v)), hi = hn::PromoteTo(dd, hn::UpperHalf(dh, v));
  hn::StoreU(hn::Add(hn::LoadU(dd, total), lo), dd, total);
  hn::StoreU(hn::Add(hn::LoadU(dd, total + kLanesD), hi), dd, total + kLanesD);
#endif
}
// total[0..kLanes) rounded to fp32.
HWY_INLINE VF RoundLanes(const double* total) {
  const DD dd;
#if HWY_TARGET == HWY_SCALAR
  return hn::DemoteTo(DF(), hn::Load(dd, total));
#else
  const hn::Half<DF> dh;
  return hn::Combine(DF(), hn::DemoteTo(dh, hn::Load(dd, total + kLanesD)), hn::DemoteTo(dh, hn::Load(dd, total)));
#endif
}

// Lane j of the result = sum of the lanes of v[j] (v holds kLanes vectors; clobbered).
// Pairwise ConcatEven+ConcatOdd halves the vector count per step: ~3 ops per output instead
// of a full horizontal reduction per output.  The order is fixed for a given target.
template <class D>
HWY_INLINE hn::Vec<D> SumEachToLane(D d, hn::Vec<D>* v) {
#if HWY_ARCH_X86_64 && HWY_TARGET <= HWY_AVX3
  if constexpr (hn::MaxLanes(D()) == 16 && std::is_same_v<hn::TFromD<D>, float>) {
    // The same pairs in the same order, laid out so that the first two steps shuffle within
    // 128-bit blocks (vshufps) and the last two move whole blocks (vshuff32x4): cheaper than
    // the cross-lane permutes of ConcatEven/ConcatOdd, and the lanes end in natural order.
    constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0), kOdd = _MM_SHUFFLE(3, 1, 3, 1);
    __m512 w[8];
    for (int i = 0; i < 8; ++i)  // block j: v[2i] lanes 4j+{0,1}, 4j+{2,3}; v[2i+1] the same
      w[i] = _mm512_add_ps(_mm512_shuffle_ps(v[2 * i].raw, v[2 * i + 1].raw, kEven),
                           _mm512_shuffle_ps(v[2 * i].raw, v[2 * i + 1].raw, kOdd));
    __m512 u[4];
    for (int m = 0; m < 4; ++m)  // block j: lanes 4j..4j+3 of v[4m], ..., v[4m+3]
      u[m] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * m], w[2 * m + 1], kEven),
                           _mm512_shuffle_ps(w[2 * m], w[2 * m + 1], kOdd));
    __m512 t[2];
    for (int h = 0; h < 2; ++h)  // blocks 0+1 and 2+3 of u[2h], then of u[2h+1]
      t[h] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * h], u[2 * h + 1], kEven),
                           _mm512_shuffle_f32x4(u[2 * h], u[2 * h + 1], kOdd));
    hn::Vec<D> r;
    r.raw = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], kEven), _mm512_shuffle_f32x4(t[0], t[1], kOdd));
    return r;
  }
#endif
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

// The shrink's fold: accumulators acc(0..kN) (acc(n) returns the n-th) each summed across its
// lanes and added into total[0..kN) in fp64 (the caller restarts the chains on its own
// accumulators: zeroing them here through a reference was slower, bench/notes.md).  kLanes
// accumulators at a time go through SumEachToLane (the last group padded with zeros), about 3
// ops each instead of a horizontal reduction apiece; every accumulator is summed in the same
// pairwise order however many are folded together, so a one-row block and a 6-row block give
// the same bits.  total has room for kN rounded up to kLanes.  (acc by accessor, not by
// pointer: with a pointer the compiler kept register-resident accumulators in memory.)
template <int kN, class Acc>
HWY_INLINE void FoldAccs(const Acc& acc, double* total) {
  const DF d;
  constexpr int kL = static_cast<int>(kLanes);
  for (int g = 0; g < kN; g += kL) {
    VF v[kLanes];
    for (int l = 0; l < kL; ++l) v[l] = g + l < kN ? acc(g + l) : hn::Zero(d);
    FoldLanes(SumEachToLane(d, v), total + g);
  }
}
// Room FoldAccs needs for n totals.
constexpr int FoldRoom(int n) { return (n + static_cast<int>(kLanes) - 1) / static_cast<int>(kLanes) * static_cast<int>(kLanes); }

#if HWY_TARGET != HWY_SCALAR
// For four vectors of four 128-bit blocks: out[b * stride] block c = v[c] block b.
template <class D>
HWY_INLINE void TransposeBlocks(D d, const hn::Vec<D>* v, hn::Vec<D>* out, size_t stride) {
  using V = hn::Vec<D>;
  const V b0 = hn::OddEvenBlocks(hn::SwapAdjacentBlocks(v[1]), v[0]);  // v0.b0 v1.b0 v0.b2 v1.b2
  const V b1 = hn::OddEvenBlocks(v[1], hn::SwapAdjacentBlocks(v[0]));  // v0.b1 v1.b1 v0.b3 v1.b3
  const V b2 = hn::OddEvenBlocks(hn::SwapAdjacentBlocks(v[3]), v[2]);
  const V b3 = hn::OddEvenBlocks(v[3], hn::SwapAdjacentBlocks(v[2]));
  out[0] = hn::ConcatLowerLower(d, b2, b0);
  out[2 * stride] = hn::ConcatUpperUpper(d, b2, b0);
  out[stride] = hn::ConcatLowerLower(d, b3, b1);
  out[3 * stride] = hn::ConcatUpperUpper(d, b3, b1);
}
#endif

// out[m] lane i = in[i] lane m for a kLanes x kLanes tile.  Interleaves within 128-bit blocks
// give 4x4 transposes per block; block moves finish the job for 8 and 16 lanes.
template <class D>
HWY_INLINE void Transpose(D d, const hn::Vec<D>* in, hn::Vec<D>* out) {
#if HWY_TARGET == HWY_SCALAR
  out[0] = in[0];
#else
  using V = hn::Vec<D>;
  constexpr size_t N = hn::MaxLanes(D());
  static_assert(N == 4 || N == 8 || N == 16, "lane count");
  const hn::Repartition<double, D> dd;
  V u[N];  // u[c * (N/4) + g]: block b holds rows 4g..4g+3 at column 4b + c
  for (size_t g = 0; g < N / 4; ++g) {
    const V* r = in + 4 * g;
    const V t0 = hn::InterleaveLower(d, r[0], r[1]), t1 = hn::InterleaveUpper(d, r[0], r[1]);
    const V t2 = hn::InterleaveLower(d, r[2], r[3]), t3 = hn::InterleaveUpper(d, r[2], r[3]);
    u[0 * (N / 4) + g] = hn::BitCast(d, hn::InterleaveLower(dd, hn::BitCast(dd, t0), hn::BitCast(dd, t2)));
    u[1 * (N / 4) + g] = hn::BitCast(d, hn::InterleaveUpper(dd, hn::BitCast(dd, t0), hn::BitCast(dd, t2)));
    u[2 * (N / 4) + g] = hn::BitCast(d, hn::InterleaveLower(dd, hn::BitCast(dd, t1), hn::BitCast(dd, t3)));
    u[3 * (N / 4) + g] = hn::BitCast(d, hn::InterleaveUpper(dd, hn::BitCast(dd, t1), hn::BitCast(dd, t3)));
  }
  for (size_t c = 0; c < 4; ++c) {
    const V* v = u + c * (N / 4);
    if constexpr (N == 4) {
      out[c] = v[0];
    } else if constexpr (N == 8) {
      out[c] = hn::ConcatLowerLower(d, v[1], v[0]);
      out[4 + c] = hn::ConcatUpperUpper(d, v[1], v[0]);
    } else {
      TransposeBlocks(d, v, out + c, 4);
    }
  }
#endif
}

#if HWY_TARGET == HWY_AVX3
using DU16 = hn::Rebind<uint16_t, DF>;  // as many 16-bit lanes as DF has fp32 lanes
using VU16 = hn::Vec<DU16>;

// out[m] lane i = in[i] lane m for a 16 x 16 tile of 16-bit values in 256-bit vectors: three
// interleave stages within 128-bit blocks (8 x 8 per block), then block moves.  About as many
// shuffles as the fp32 transpose of the widened tile, on vectors half as wide (bench/notes.md).
HWY_INLINE void Transpose16(const VU16* in, VU16* out) {
  const DU16 d;
  const hn::Repartition<uint32_t, DU16> d32;
  const hn::Repartition<uint64_t, DU16> d64;
  constexpr size_t N = hn::MaxLanes(DU16());
  static_assert(N == 16, "lane count");
  VU16 c[N];  // c[8 * h + k]: rows 8h..8h+7; block b holds column 8b + k
  for (size_t h = 0; h < N / 8; ++h) {
    const VU16* a = in + 8 * h;
    hn::Vec<decltype(d32)> p[8], q[8];
    for (size_t i = 0; i < 4; ++i) {  // p[2i], p[2i+1]: rows 2i, 2i+1 paired, columns 0-3 and 4-7
      p[2 * i] = hn::BitCast(d32, hn::InterleaveLower(d, a[2 * i], a[2 * i + 1]));
      p[2 * i + 1] = hn::BitCast(d32, hn::InterleaveUpper(d, a[2 * i], a[2 * i + 1]));
    }
    for (size_t g = 0; g < 2; ++g)  // q[4g + m]: rows 4g..4g+3, columns 2m and 2m+1
      for (size_t j = 0; j < 2; ++j) {
        q[4 * g + 2 * j] = hn::InterleaveLower(d32, p[4 * g + j], p[4 * g + 2 + j]);
        q[4 * g + 2 * j + 1] = hn::InterleaveUpper(d32, p[4 * g + j], p[4 * g + 2 + j]);
      }
    for (size_t j = 0; j < 4; ++j) {
      const auto lo = hn::BitCast(d64, q[j]), hi = hn::BitCast(d64, q[4 + j]);
      c[8 * h + 2 * j] = hn::BitCast(d, hn::InterleaveLower(d64, lo, hi));
      c[8 * h + 2 * j + 1] = hn::BitCast(d, hn::InterleaveUpper(d64, lo, hi));
    }
  }
  for (size_t k = 0; k < 8; ++k) {
    out[k] = hn::ConcatLowerLower(d, c[8 + k], c[k]);
    out[8 + k] = hn::ConcatUpperUpper(d, c[8 + k], c[k]);
  }
}

#endif

// Where chunk-structured weight rows live (see the file comment).
struct WeightRows {
  const unsigned char* base;  // adapter's element (0, 0)
  int64_t esize;
  int64_t row_step;           // elements between rows m and m+1
  int64_t chunk_step;         // elements between 16-chunks c and c+1 of one row
  int64_t off(int64_t m, int64_t k) const { return m * row_step + (k >> 4) * chunk_step + (k & 15); }
  const unsigned char* row(int64_t m) const { return base + m * row_step * esize; }
  bool nz() const { return chunk_step != 16; }  // an NZ chunk step is >= 256 elements
};

WeightRows Rows(const detail::WeightDesc& d, int64_t M, int64_t adapter) {
  WeightRows w;
  w.esize = static_cast<int64_t>(model::element_size(d.dtype));
  w.base = static_cast<const unsigned char*>(d.base) + adapter * d.adapter_stride * w.esize;
  if (d.layout == Layout::fractal_nz) {
    w.row_step = 16;
    w.chunk_step = model::nz_chunk_step(M);
  } else {
    w.row_step = d.row_stride;
    w.chunk_step = 16;
  }
  return w;
}

// Rows `order[pos]` for pos in [pb, pe) of a row-major matrix are about to be read over bytes
// [b0, b1) each.  Prefetch the first lines of every 4 KiB page of those runs: the hardware
// stream prefetcher takes over within a page but does not start a new one by itself, and a
// burst of every line would overflow the miss buffers (the surplus prefetches are dropped).
HWY_INLINE void PrefetchRunHeads(const unsigned char* base, const int32_t* order, int64_t row_bytes, int64_t pb,
                                 int64_t pe, int64_t b0, int64_t b1) {
  for (int64_t pos = pb; pos < pe; ++pos) {
    const unsigned char* row = base + order[pos] * row_bytes;
    for (int64_t b = b0; b < b1;) {
      const uintptr_t a = reinterpret_cast<uintptr_t>(row + b);
      hwy::Prefetch(row + b);
      if (b + 64 < b1) hwy::Prefetch(row + b + 64);
      b += static_cast<int64_t>(4096 - (a & 4095));  // next page
    }
  }
}

using internal::PrefetchL2;  // row_lines.h

// Every cache line of the bytes [p, p + bytes) (a short run: the caller spreads long ones).
HWY_INLINE void PrefetchLines(const unsigned char* p, int64_t bytes) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes);
  for (uintptr_t a = first; a < end; a += 64) PrefetchL2(reinterpret_cast<const unsigned char*>(a));
}

#include "kernels/shrink-inl.h"  // NOLINT(build/include)

#include "kernels/expand-inl.h"  // NOLINT(build/include)

#include "kernels/shrink_outer-inl.h"  // NOLINT(build/include)

const internal::TargetKernels* Table() {
  static const internal::TargetKernels table{hwy::TargetName(HWY_TARGET), &Shrink, &Expand, &WriteScaledZ};
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
