// (GCC 12: the AVX-512 intrinsics built on _mm512_undefined_* warn falsely.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// Screening for tiny bf16 inputs and the fp32 fallback (shrink_bf16_screen.h).  Compiled with
// the project's default flags: only the functions marked ADDLORA_BF16_TARGET use AVX-512.
#include "kernels/shrink_bf16_screen.h"

#include <algorithm>

namespace addlora::kernels::internal::bf16 {

// A contiguous bf16 run [p, p + n) holds a tiny value.
ADDLORA_BF16_TARGET bool RunHasTiny(const uint16_t* p, int64_t n) {
  __m512i m0 = _mm512_set1_epi16(-1), m1 = m0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    m0 = _mm512_min_epu16(m0, TinyKey(_mm512_loadu_si512(p + i)));
    m1 = _mm512_min_epu16(m1, TinyKey(_mm512_loadu_si512(p + i + 32)));
  }
  for (; i < n; i += 32) {
    const int64_t c = std::min<int64_t>(32, n - i);
    const __mmask32 k = c == 32 ? ~__mmask32{0} : (__mmask32{1} << c) - 1;
    m0 = _mm512_min_epu16(m0, TinyKey(_mm512_maskz_loadu_epi16(k, p + i)));  // zeros: not tiny
  }
  return _mm512_cmplt_epu16_mask(_mm512_min_epu16(m0, m1), _mm512_set1_epi16(static_cast<short>(kTinyLimit))) != 0;
}

// RunHasTiny(src, n), copying the run to dst on the way.
ADDLORA_BF16_TARGET bool CopyRunHasTiny(uint16_t* dst, const uint16_t* src, int64_t n) {
  __m512i m0 = _mm512_set1_epi16(-1);
  for (int64_t i = 0; i < n; i += 32) {
    const int64_t c = std::min<int64_t>(32, n - i);
    const __mmask32 k = c == 32 ? ~__mmask32{0} : (__mmask32{1} << c) - 1;
    const __m512i v = _mm512_maskz_loadu_epi16(k, src + i);
    _mm512_mask_storeu_epi16(dst + i, k, v);
    m0 = _mm512_min_epu16(m0, TinyKey(v));
  }
  return _mm512_cmplt_epu16_mask(m0, _mm512_set1_epi16(static_cast<short>(kTinyLimit))) != 0;
}

// Rank rows ar[0..n) (n <= kRanks) over columns [h0, h1) (h0 a multiple of 16): bit j set if
// row j holds a tiny value.  Element h of a row is at ar[j] + (h >> 4) * cs + (h & 15): ND
// (cs = 16) and FRACTAL_NZ alike, read chunk by chunk in address order.
ADDLORA_BF16_TARGET unsigned RanksWithTiny(const uint16_t* const* ar, int n, int64_t cs, int64_t h0, int64_t h1) {
  if (cs == 16) {
    unsigned bits = 0;
    for (int j = 0; j < n; ++j) bits |= RunHasTiny(ar[j] + h0, h1 - h0) ? 1u << j : 0u;
    return bits;
  }
  __m256i m[kRanks];
  for (int j = 0; j < kRanks; ++j) m[j] = _mm256_set1_epi16(-1);
  for (int64_t h = h0; h < h1; h += 16) {
    const int64_t c = std::min<int64_t>(16, h1 - h);
    const __mmask16 k = c == 16 ? __mmask16(0xffff) : __mmask16((1u << c) - 1);
    const int64_t off = (h >> 4) * cs;
    for (int j = 0; j < n; ++j) m[j] = _mm256_min_epu16(m[j], TinyKey256(_mm256_maskz_loadu_epi16(k, ar[j] + off)));
  }
  unsigned bits = 0;
  const __m256i lim = _mm256_set1_epi16(static_cast<short>(kTinyLimit));
  for (int j = 0; j < n; ++j) bits |= _mm256_cmplt_epu16_mask(m[j], lim) != 0 ? 1u << j : 0u;
  return bits;
}

// ND A, rank rows a + r * row_step for r in [0, n), over columns [h0, h1): bit r of
// flags[r / 64] set if rank r holds a tiny value.  This pass is what first brings A from DRAM.
// Short runs (K chunks of split-K tasks up to kShortRun columns) are read eight rows side by
// side: row by row, each 4 KiB run would be a new stream for the hardware prefetcher to find.
// Whole rows (rank-split tasks) stream faster row by row (measured: bench/notes.md); so do
// longer chunks, presumably (not measured).
ADDLORA_BF16_TARGET void ScreenRanksNd(const uint16_t* a, int64_t row_step, int64_t n, int64_t h0, int64_t h1,
                                       uint64_t* flags) {
  constexpr int kRows = 8;
  constexpr int64_t kShortRun = 2048;  // columns
  auto flag = [&](int64_t r) { flags[r / 64] |= uint64_t{1} << (r % 64); };
  if (h1 - h0 > kShortRun) {
    for (int64_t r = 0; r < n; ++r)
      if (RunHasTiny(a + r * row_step + h0, h1 - h0)) flag(r);
    return;
  }
  const __m512i lim = _mm512_set1_epi16(static_cast<short>(kTinyLimit));
  for (int64_t r0 = 0; r0 < n; r0 += kRows) {
    const int m = static_cast<int>(std::min<int64_t>(kRows, n - r0));
    const uint16_t* row[kRows];
    for (int j = 0; j < kRows; ++j) row[j] = a + (r0 + std::min(j, m - 1)) * row_step;
    // The next group's rows, prefetched at the same columns as this group reads them: each
    // run is a page of its own, where the hardware prefetcher starts over.
    const int64_t next_m = std::clamp<int64_t>(n - r0 - kRows, 0, kRows);
    const uint16_t* next = next_m > 0 ? a + (r0 + kRows) * row_step : nullptr;
    __m512i mins[kRows];
    for (int j = 0; j < kRows; ++j) mins[j] = _mm512_set1_epi16(-1);
    int64_t h = h0;
    for (; h + 32 <= h1; h += 32) {
      for (int64_t j = 0; j < next_m; ++j) _mm_prefetch(reinterpret_cast<const char*>(next + j * row_step + h), _MM_HINT_T0);
      for (int j = 0; j < kRows; ++j) mins[j] = _mm512_min_epu16(mins[j], TinyKey(_mm512_loadu_si512(row[j] + h)));
    }
    if (h < h1) {
      const __mmask32 k = (__mmask32{1} << (h1 - h)) - 1;  // zeros: not tiny
      for (int j = 0; j < kRows; ++j) mins[j] = _mm512_min_epu16(mins[j], TinyKey(_mm512_maskz_loadu_epi16(k, row[j] + h)));
    }
    for (int j = 0; j < m; ++j)
      if (_mm512_cmplt_epu16_mask(mins[j], lim) != 0) flag(r0 + j);
  }
}

// FRACTAL_NZ A, ranks [0, n) from `a` (rank r's pieces at a + 16 r in every chunk) over
// columns [h0, h1): bit r of flags[r / 64] set if rank r holds a tiny value.  Walks A in
// address order (a chunk's pieces of all the ranks, then the next chunk's).
ADDLORA_BF16_TARGET void ScreenRanksNz(const uint16_t* a, int64_t n, int64_t cs, int64_t h0, int64_t h1, uint64_t* flags) {
  // First whole: a chunk's pieces of ranks [0, n) are one run of 16 n elements (columns past
  // h1 in the last chunk are NZ padding: a tiny value there only costs the exact pass below).
  // Tiny values are rare, so this usually settles it.
  bool any = false;
  for (int64_t h = h0; h < h1 && !any; h += 16) any = RunHasTiny(a + (h >> 4) * cs, 16 * n);
  if (!any) return;
  constexpr int64_t kGroup = 64;
  const __m256i lim = _mm256_set1_epi16(static_cast<short>(kTinyLimit));
  for (int64_t g0 = 0; g0 < n; g0 += kGroup) {
    const int64_t m = std::min(kGroup, n - g0);
    __m256i mins[kGroup];
    for (int64_t r = 0; r < m; ++r) mins[r] = _mm256_set1_epi16(-1);
    for (int64_t h = h0; h < h1; h += 16) {
      const int64_t c = std::min<int64_t>(16, h1 - h);
      const __mmask16 k = c == 16 ? __mmask16(0xffff) : __mmask16((1u << c) - 1);
      const uint16_t* p = a + g0 * 16 + (h >> 4) * cs;
      for (int64_t r = 0; r < m; ++r) mins[r] = _mm256_min_epu16(mins[r], TinyKey256(_mm256_maskz_loadu_epi16(k, p + r * 16)));
    }
    for (int64_t r = 0; r < m; ++r)
      if (_mm256_cmplt_epu16_mask(mins[r], lim) != 0) flags[(g0 + r) / 64] |= uint64_t{1} << ((g0 + r) % 64);
  }
}

// The fallback for a (row, rank) pair with tiny inputs: fp32 FMA chains (bf16 widened exactly,
// 16 lanes, column h in lane h mod 16: 64 products per lane per segment), folded into fp64 at
// the same segment boundaries.  Subnormals take part with IEEE gradual underflow.
ADDLORA_BF16_TARGET double FmaPair(const uint16_t* x, const uint16_t* a, int64_t cs, int64_t h0, int64_t h1) {
  double total = 0;
  for (int64_t hs = h0; hs < h1; hs += kSeg) {
    const int64_t he = std::min(h1, hs + kSeg);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t h = hs; h < he; h += 16) {
      const int64_t c = std::min<int64_t>(16, he - h);
      const __mmask16 k = c == 16 ? __mmask16(0xffff) : __mmask16((1u << c) - 1);
      const __m512 xv = Widen(_mm256_maskz_loadu_epi16(k, x + h));
      const __m512 av = Widen(_mm256_maskz_loadu_epi16(k, a + (h >> 4) * cs));
      acc = _mm512_fmadd_ps(xv, av, acc);
    }
    total += static_cast<double>(_mm512_reduce_add_ps(acc));
  }
  return total;
}

}  // namespace addlora::kernels::internal::bf16
