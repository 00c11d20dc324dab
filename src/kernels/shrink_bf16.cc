// (GCC 12: the AVX-512 intrinsics built on _mm512_undefined_* warn falsely.)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The bf16 x bf16 shrink through vdpbf16ps (AVX512_BF16); see shrink_bf16.h for the contract.
// Compiled with the project's default flags: only the functions marked kBf16Target use
// AVX-512 (a whole file built with -mavx512* could leak AVX-512 code into inline functions
// the linker might pick for the rest of the program).
#include "kernels/shrink_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>

#include "core/problem.h"

#define ADDLORA_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace addlora::kernels::internal {
namespace {

using detail::Problem;

constexpr int64_t kSeg = kChain * 16;  // columns per fold segment: 32 vdpbf16ps, 64 products per lane
constexpr int kRanks = 4;              // ranks per register block
constexpr int kRowsMax = 6;            // rows per register block (24 accumulators)
constexpr int64_t kFlagRanks = 4096;   // A screening results kept per task (else rescreened per row block)
// "Tiny" bf16 magnitudes m (sign dropped): 0 < m < 2^-56, i.e. biased exponent <= 70.  With m2 =
// bits << 1 (the sign shifted out), tiny <=> (m2 - 1) < kTinyLimit as unsigned 16-bit.
constexpr uint16_t kTinyLimit = (71 << 8) - 1;  // m = 71 << 7 (2^-56) gives m2 - 1 = kTinyLimit: not tiny

std::atomic<bool> g_enabled{true};
std::atomic<uint64_t> g_tasks{0}, g_fallbacks{0};

bool cpu_has_bf16_dot() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bf16");
}

// Running minimum of (bits << 1) - 1 over 16-bit lanes; tiny values exist iff a lane < kTinyLimit.
ADDLORA_BF16_TARGET inline __m512i TinyKey(__m512i v) {
  return _mm512_sub_epi16(_mm512_slli_epi16(v, 1), _mm512_set1_epi16(1));
}
ADDLORA_BF16_TARGET inline __m256i TinyKey256(__m256i v) {
  return _mm256_sub_epi16(_mm256_slli_epi16(v, 1), _mm256_set1_epi16(1));
}

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

// 32 columns of a rank row from column h (a multiple of 16), the first `n` of them (zeros after).
template <bool kNz>
ADDLORA_BF16_TARGET inline __m512i LoadA(const uint16_t* a, int64_t cs, int64_t h, int64_t n) {
  const uint16_t* p = a + (h >> 4) * cs;
  if constexpr (!kNz) {
    if (n >= 32) return _mm512_loadu_si512(p);
    return _mm512_maskz_loadu_epi16((__mmask32{1} << n) - 1, p);
  } else {
    if (n >= 32)
      return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + cs)), 1);
    const __m256i lo = _mm256_maskz_loadu_epi16(n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1), p);
    const __m256i hi = n > 16 ? _mm256_maskz_loadu_epi16(__mmask16((1u << (n - 16)) - 1), p + cs) : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  }
}

ADDLORA_BF16_TARGET inline __m512 Dot(__m512 acc, __m512i x, __m512i a) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(x), reinterpret_cast<__m512bh>(a));
}

// tot[i][j] = sum over h in [h0, h1) of x_i[h] * a_j[h]: per fold segment of kSeg columns from
// h0 (the K chunk's start), kRows x kRanks accumulators of 32 vdpbf16ps, each reduced (fixed
// tree) and added into its fp64 total.  xr[i]: row i of x (column h at xr[i] + h).
template <int kRows, bool kNz>
ADDLORA_BF16_TARGET __attribute__((noinline)) void DotBlock(const uint16_t* const* xr, const uint16_t* const* ar, int64_t cs,
                                                            int64_t h0, int64_t h1, double (*tot)[kRanks]) {
  for (int64_t hs = h0; hs < h1; hs += kSeg) {
    const int64_t he = std::min(h1, hs + kSeg);
    __m512 acc[kRows][kRanks];
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kRanks; ++j) acc[i][j] = _mm512_setzero_ps();
    int64_t h = hs;
    for (; h + 32 <= he; h += 32) {
      __m512i a[kRanks];
      for (int j = 0; j < kRanks; ++j) a[j] = LoadA<kNz>(ar[j], cs, h, 32);
      for (int i = 0; i < kRows; ++i) {
        const __m512i xv = _mm512_loadu_si512(xr[i] + h);
        for (int j = 0; j < kRanks; ++j) acc[i][j] = Dot(acc[i][j], xv, a[j]);
      }
    }
    if (h < he) {  // ragged end of the chunk
      const int64_t n = he - h;
      const __mmask32 k = (__mmask32{1} << n) - 1;
      __m512i a[kRanks];
      for (int j = 0; j < kRanks; ++j) a[j] = LoadA<kNz>(ar[j], cs, h, n);
      for (int i = 0; i < kRows; ++i) {
        const __m512i xv = _mm512_maskz_loadu_epi16(k, xr[i] + h);
        for (int j = 0; j < kRanks; ++j) acc[i][j] = Dot(acc[i][j], xv, a[j]);
      }
    }
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kRanks; ++j) tot[i][j] += static_cast<double>(_mm512_reduce_add_ps(acc[i][j]));
  }
}

ADDLORA_BF16_TARGET inline __m512 Widen(__m256i v) {  // 16 bf16 -> fp32, exact
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
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

template <int kRows>
void RunBlock(bool nz, const uint16_t* const* xr, const uint16_t* const* ar, int64_t cs, int64_t h0, int64_t h1,
              double (*tot)[kRanks]) {
  if (nz) DotBlock<kRows, true>(xr, ar, cs, h0, h1, tot);
  else DotBlock<kRows, false>(xr, ar, cs, h0, h1, tot);
}

}  // namespace

bool bf16_dot_usable() {
  static const bool cpu = cpu_has_bf16_dot();
  return cpu && g_enabled.load(std::memory_order_relaxed);
}
void set_bf16_dot_enabled(bool on) { g_enabled.store(on); }
uint64_t bf16_dot_tasks() { return g_tasks.load(); }
uint64_t bf16_dot_fallbacks() { return g_fallbacks.load(); }

void shrink_bf16_dot(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t k) {
  g_tasks.fetch_add(1, std::memory_order_relaxed);
  const Problem& p = *w.p;
  const bool nz = p.a.layout == Layout::fractal_nz;
  const uint16_t* abase = static_cast<const uint16_t*>(p.a.base) + adapter * p.a.adapter_stride;
  const int64_t row_step = nz ? 16 : p.a.row_stride, cs = nz ? ((p.R + 15) / 16) * 256 : 16;
  // As ShrinkTask (shrink-inl.h): split-K task k, or rank group k over all of H1.
  const int64_t h_begin = w.rank_split ? 0 : k * w.kc;
  const int64_t h_end = w.rank_split ? p.H1 : std::min<int64_t>(p.H1, h_begin + w.kc);
  const int64_t rank = detail::rank_of(p, adapter);
  const int64_t r_begin = w.rank_split ? k * w.rank_group : 0;
  const int64_t r_end = w.rank_split ? std::min<int64_t>(rank, r_begin + w.rank_group) : rank;
  if (r_begin >= r_end || h_begin >= h_end) return;
  if (w.rank_split) k = 0;
  double* zk = w.zpart + k * w.B * w.rp;
  const uint16_t* xbase = static_cast<const uint16_t*>(p.x.base);
  // A rows with tiny values in this chunk: screened with the first row block, kept as bits.
  const bool keep_flags = r_end - r_begin <= kFlagRanks;
  uint64_t aflags[kFlagRanks / 64] = {};
  uint64_t fallbacks = 0;

  for (int64_t pos0 = pos_begin; pos0 < pos_end; pos0 += kRowsMax) {
    const int rows_valid = static_cast<int>(std::min<int64_t>(kRowsMax, pos_end - pos0));
    const uint16_t* xr[kRowsMax];  // short blocks repeat their last row (not stored)
    for (int i = 0; i < kRowsMax; ++i)
      xr[i] = xbase + w.order[pos0 + std::min(i, rows_valid - 1)] * p.x.row_stride;
    unsigned xtiny = 0;
    for (int i = 0; i < rows_valid; ++i)
      if (RunHasTiny(xr[i] + h_begin, h_end - h_begin)) xtiny |= 1u << i;
    const bool screen_a = pos0 == pos_begin || !keep_flags;
    for (int64_t r0 = r_begin; r0 < r_end; r0 += kRanks) {
      const int ranks_valid = static_cast<int>(std::min<int64_t>(kRanks, r_end - r0));
      const uint16_t* ar[kRanks];  // short blocks repeat their last rank (not stored)
      for (int j = 0; j < kRanks; ++j) ar[j] = abase + (r0 + std::min(j, ranks_valid - 1)) * row_step;
      unsigned atiny;
      const int64_t fi = r0 - r_begin;  // kRanks divides 64: a block's bits share one word
      if (screen_a) {
        atiny = RanksWithTiny(ar, ranks_valid, cs, h_begin, h_end);
        if (keep_flags) aflags[fi / 64] |= uint64_t{atiny} << (fi % 64);
      } else {
        atiny = static_cast<unsigned>(aflags[fi / 64] >> (fi % 64)) & ((1u << kRanks) - 1);
      }
      double tot[kRowsMax][kRanks] = {};
      if (rows_valid >= 4) RunBlock<6>(nz, xr, ar, cs, h_begin, h_end, tot);
      else if (rows_valid >= 2) RunBlock<3>(nz, xr, ar, cs, h_begin, h_end, tot);
      else RunBlock<1>(nz, xr, ar, cs, h_begin, h_end, tot);
      for (int i = 0; i < rows_valid; ++i) {
        double* o = zk + (pos0 + i) * w.rp + r0;
        for (int j = 0; j < ranks_valid; ++j) {
          if (((xtiny >> i) | (atiny >> j)) & 1u) {
            o[j] = FmaPair(xr[i], ar[j], cs, h_begin, h_end);
            ++fallbacks;
          } else {
            o[j] = tot[i][j];
          }
        }
      }
    }
  }
  if (fallbacks) g_fallbacks.fetch_add(fallbacks, std::memory_order_relaxed);
}

}  // namespace addlora::kernels::internal
