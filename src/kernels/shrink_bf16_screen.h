// Private to the bf16 shrink (shrink_bf16.cc): screening for "tiny" inputs, which vdpbf16ps
// would flush, and the fp32 fallback for the (row, rank) pairs that hold them.  Only functions
// marked ADDLORA_BF16_TARGET use AVX-512; callers run them only where bf16_dot_usable().
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "kernels/work.h"

#define ADDLORA_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace addlora::kernels::internal::bf16 {

constexpr int64_t kSeg = kChain * 16;  // columns per fold segment: 32 vdpbf16ps, 64 products per lane
constexpr int kRanks = 4;              // ranks per register block
// "Tiny" bf16 magnitudes m (sign dropped): 0 < m < 2^-56, i.e. biased exponent <= 70.  With m2 =
// bits << 1 (the sign shifted out), tiny <=> (m2 - 1) < kTinyLimit as unsigned 16-bit.
constexpr uint16_t kTinyLimit = (71 << 8) - 1;  // m = 71 << 7 (2^-56) gives m2 - 1 = kTinyLimit: not tiny

// Running minimum of (bits << 1) - 1 over 16-bit lanes; tiny values exist iff a lane < kTinyLimit.
ADDLORA_BF16_TARGET inline __m512i TinyKey(__m512i v) {
  return _mm512_sub_epi16(_mm512_slli_epi16(v, 1), _mm512_set1_epi16(1));
}
ADDLORA_BF16_TARGET inline __m256i TinyKey256(__m256i v) {
  return _mm256_sub_epi16(_mm256_slli_epi16(v, 1), _mm256_set1_epi16(1));
}

ADDLORA_BF16_TARGET inline __m512 Widen(__m256i v) {  // 16 bf16 -> fp32, exact
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

// A contiguous bf16 run [p, p + n) holds a tiny value.
ADDLORA_BF16_TARGET bool RunHasTiny(const uint16_t* p, int64_t n);
// RunHasTiny(src, n), copying the run to dst on the way.
ADDLORA_BF16_TARGET bool CopyRunHasTiny(uint16_t* dst, const uint16_t* src, int64_t n);
// Rank rows ar[0..n) (n <= kRanks) over columns [h0, h1) (h0 a multiple of 16): bit j set if
// row j holds a tiny value (ND, cs = 16, and FRACTAL_NZ alike).
ADDLORA_BF16_TARGET unsigned RanksWithTiny(const uint16_t* const* ar, int n, int64_t cs, int64_t h0, int64_t h1);
// ND A, rank rows a + r * row_step for r in [0, n), over columns [h0, h1): bit r of
// flags[r / 64] set if rank r holds a tiny value.
ADDLORA_BF16_TARGET void ScreenRanksNd(const uint16_t* a, int64_t row_step, int64_t n, int64_t h0, int64_t h1,
                                       uint64_t* flags);
// FRACTAL_NZ A, ranks [0, n) from `a` over columns [h0, h1): bit r of flags[r / 64] set if
// rank r holds a tiny value.
ADDLORA_BF16_TARGET void ScreenRanksNz(const uint16_t* a, int64_t n, int64_t cs, int64_t h0, int64_t h1, uint64_t* flags);
// The fp32 FMA fallback for one (row, rank) pair over [h0, h1), folded at the same segment
// boundaries as the vdpbf16ps path.
ADDLORA_BF16_TARGET double FmaPair(const uint16_t* x, const uint16_t* a, int64_t cs, int64_t h0, int64_t h1);

}  // namespace addlora::kernels::internal::bf16
