// (GCC 12: the AVX-512 intrinsics built on _mm512_undefined_* warn falsely.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// The bf16 x bf16 shrink through vdpbf16ps (AVX512_BF16); see shrink_bf16.h for the contract.
// Compiled with the project's default flags: only the functions marked ADDLORA_BF16_TARGET use
// AVX-512 (a whole file built with -mavx512* could leak AVX-512 code into inline functions
// the linker might pick for the rest of the program).
#include "kernels/shrink_bf16.h"

#include <immintrin.h>

#include "kernels/row_lines.h"
#include "kernels/shrink_bf16_screen.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>


namespace addlora::kernels::internal {
namespace {

using detail::Problem;
using namespace bf16;  // NOLINT: the screening helpers and the block constants
constexpr int kRowsMax = 6;            // rows per register block (24 accumulators)
constexpr int64_t kFlagRanks = 4096;   // screening bits kept per task: ranks ...
constexpr int64_t kFlagRows = 1024;    // ... and rows (more: screened block by block)
std::atomic<int> g_mode{-1};  // set_bf16_dot_enabled: 1 on, 0 off, -1 the default
std::atomic<uint64_t> g_tasks{0}, g_fallbacks{0};

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

// Lane j of the result = the sum of the lanes of v[j] (16 vectors; clobbered), in a fixed
// 4-level tree: adjacent lanes first, then adjacent pairs, and so on -- the same tree for every
// accumulator whatever block it sits in (padding vectors are zeros).  ~3 ops per vector instead
// of a full reduction each.
ADDLORA_BF16_TARGET inline __m512 SumEachToLane(__m512* v) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  for (int count = 16; count > 1; count /= 2)
    for (int i = 0; i < count / 2; ++i)
      v[i] = _mm512_add_ps(_mm512_permutex2var_ps(v[2 * i], even, v[2 * i + 1]),
                           _mm512_permutex2var_ps(v[2 * i], odd, v[2 * i + 1]));
  return v[0];
}

// The accumulator block padded to whole groups of 16 (the fp64 totals too).
template <int kRows, int kR = kRanks>
constexpr int kTotSlots = (kRows * kR + 15) / 16 * 16;

// tot[i * kR + j] += sum over h in [h0, h1) of x_i[h] * a_j[h], per fold segment of kSeg
// columns from h0 (a fold boundary of the K chunk): kRows x kR accumulators of at most
// 32 vdpbf16ps, each reduced (SumEachToLane) and added into its fp64 total.  xr[i]: row i of
// x (column h at xr[i] + h).
// kPacked: the rows are one buffer, row i at xr[0] + i * kSeg, column h at (h - xoff) (one
// base register instead of kRows: the loop then keeps every pointer in a register).
// amin (or null): running minimum of TinyKey over the A values read (decode screens as it goes).
template <int kRows, bool kNz, bool kPacked = false, bool kMinA = false, int kR = kRanks, int64_t kAhead = 0>
ADDLORA_BF16_TARGET __attribute__((noinline)) void DotBlock(const uint16_t* const* xr, const uint16_t* const* ar, int64_t cs,
                                                            int64_t h0, int64_t h1, double* tot, int64_t xoff = 0,
                                                            __m512i* amin = nullptr) {
  constexpr int kAcc = kRows * kR;
  const uint16_t* const xp = xr[0] - (kPacked ? xoff : 0);
  auto xrow = [&](int i) { return kPacked ? xp + i * kSeg : xr[i]; };
  for (int64_t hs = h0; hs < h1; hs += kSeg) {
    const int64_t he = std::min(h1, hs + kSeg);
    __m512 acc[kRows][kR];
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kR; ++j) acc[i][j] = _mm512_setzero_ps();
    int64_t h = hs;
    for (; h + 32 <= he; h += 32) {
      __m512i a[kR];
      for (int j = 0; j < kR; ++j) a[j] = LoadA<kNz>(ar[j], cs, h, 32);
      if constexpr (kAhead > 0)  // ND rows: a line (32 columns) of each, kAhead bytes on
        if (h + kAhead / 2 < h1)
          for (int j = 0; j < kR; ++j) _mm_prefetch(reinterpret_cast<const char*>(ar[j] + h) + kAhead, _MM_HINT_T0);
      if constexpr (kMinA)
        for (int j = 0; j < kR; ++j) *amin = _mm512_min_epu16(*amin, TinyKey(a[j]));
      for (int i = 0; i < kRows; ++i) {
        const __m512i xv = _mm512_loadu_si512(xrow(i) + h);
        for (int j = 0; j < kR; ++j) acc[i][j] = Dot(acc[i][j], xv, a[j]);
      }
    }
    if (h < he) {  // ragged end of the chunk
      const int64_t n = he - h;
      const __mmask32 k = (__mmask32{1} << n) - 1;
      __m512i a[kR];
      for (int j = 0; j < kR; ++j) a[j] = LoadA<kNz>(ar[j], cs, h, n);
      if constexpr (kMinA)
        for (int j = 0; j < kR; ++j) *amin = _mm512_min_epu16(*amin, TinyKey(a[j]));
      for (int i = 0; i < kRows; ++i) {
        const __m512i xv = _mm512_maskz_loadu_epi16(k, xrow(i) + h);
        for (int j = 0; j < kR; ++j) acc[i][j] = Dot(acc[i][j], xv, a[j]);
      }
    }
    for (int g = 0; g < kTotSlots<kRows, kR>; g += 16) {
      __m512 v[16];
      for (int t = 0; t < 16; ++t) v[t] = g + t < kAcc ? acc[(g + t) / kR][(g + t) % kR] : _mm512_setzero_ps();
      const __m512 sums = SumEachToLane(v);
      _mm512_storeu_pd(tot + g, _mm512_add_pd(_mm512_loadu_pd(tot + g), _mm512_cvtps_pd(_mm512_castps512_ps256(sums))));
      _mm512_storeu_pd(tot + g + 8, _mm512_add_pd(_mm512_loadu_pd(tot + g + 8),
                                                  _mm512_cvtps_pd(_mm512_extractf32x8_ps(sums, 1))));
    }
  }
}

// One row over FRACTAL_NZ A (decode), ranks [0, n) from `a`: z[r] += the sum over [h0, h1).
// Walks A in address order, 128 columns (eight chunks) at a time with every rank of a group of
// 64 in each; the accumulators wait on the stack between those steps.  Each rank gets the
// products, chains, lane tree (SumEachToLane, padded with zeros) and folds of DotBlock, so the
// same bits.  (The rank-block walk read 128 bytes of every 4 KiB at R=128: 2x slower.)
// Returns whether any A value read may be tiny (then the caller screens A rank by rank);
// screening first cost as much as the products.
ADDLORA_BF16_TARGET __attribute__((noinline)) bool DotOneRowNz(const uint16_t* x, const uint16_t* a, int64_t n, int64_t cs,
                                                               int64_t h0, int64_t h1, double* z) {
  constexpr int64_t kGroup = 64, kSteps = 4;
  __m512i mins = _mm512_set1_epi16(-1);
  for (int64_t g0 = 0; g0 < n; g0 += kGroup) {
    const int64_t m = std::min(kGroup, n - g0);
    const uint16_t* ag = a + g0 * 16;
    __m512 acc[kGroup];
    double total[kGroup] = {};
    for (int64_t hs = h0; hs < h1; hs += kSeg) {
      const int64_t he = std::min(h1, hs + kSeg);
      for (int64_t r = 0; r < m; ++r) acc[r] = _mm512_setzero_ps();
      int64_t h = hs;
      for (; h + 32 * kSteps <= he; h += 32 * kSteps) {
        __m512i xv[kSteps];
        for (int64_t t = 0; t < kSteps; ++t) xv[t] = _mm512_loadu_si512(x + h + 32 * t);
        for (int64_t r = 0; r < m; ++r) {
          __m512 v = acc[r];
          for (int64_t t = 0; t < kSteps; ++t) {
            const __m512i av = LoadA<true>(ag + r * 16, cs, h + 32 * t, 32);
            mins = _mm512_min_epu16(mins, TinyKey(av));
            v = Dot(v, xv[t], av);
          }
          acc[r] = v;
        }
      }
      for (; h < he; h += 32) {
        const int64_t c = std::min<int64_t>(32, he - h);
        const __m512i xv = c == 32 ? _mm512_loadu_si512(x + h) : _mm512_maskz_loadu_epi16((__mmask32{1} << c) - 1, x + h);
        for (int64_t r = 0; r < m; ++r) {
          const __m512i av = LoadA<true>(ag + r * 16, cs, h, c);
          mins = _mm512_min_epu16(mins, TinyKey(av));
          acc[r] = Dot(acc[r], xv, av);
        }
      }
      for (int64_t g = 0; g < m; g += 16) {
        __m512 v[16];
        for (int64_t t = 0; t < 16; ++t) v[t] = g + t < m ? acc[g + t] : _mm512_setzero_ps();
        const __m512 sums = SumEachToLane(v);
        alignas(64) double d[16];
        _mm512_store_pd(d, _mm512_cvtps_pd(_mm512_castps512_ps256(sums)));
        _mm512_store_pd(d + 8, _mm512_cvtps_pd(_mm512_extractf32x8_ps(sums, 1)));
        for (int64_t t = 0; t < 16 && g + t < m; ++t) total[g + t] += d[t];
      }
    }
    for (int64_t r = 0; r < m; ++r) z[g0 + r] += total[r];
  }
  return _mm512_cmplt_epu16_mask(mins, _mm512_set1_epi16(static_cast<short>(kTinyLimit))) != 0;
}

template <int kRows>
void RunBlock(bool nz, bool packed, const uint16_t* const* xr, const uint16_t* const* ar, int64_t cs, int64_t h0,
              int64_t h1, double* tot) {
  if (packed) {
    if (nz) DotBlock<kRows, true, true>(xr, ar, cs, h0, h1, tot, h0);
    else DotBlock<kRows, false, true>(xr, ar, cs, h0, h1, tot, h0);
  } else {
    if (nz) DotBlock<kRows, true>(xr, ar, cs, h0, h1, tot);
    else DotBlock<kRows, false>(xr, ar, cs, h0, h1, tot);
  }
}

// One or two rows over ND A (decode; multi-adapter decode) whose columns are not whole fold
// segments, two or more (those take DotRowsInOrder below), rank rows a + r * row_step for r in
// [0, n): z_i[r] += the sum over [h0, h1), rank block by rank block over the whole range
// (DotBlock: the same bits as any other block), kFewRowsRanks A rows streaming at a time, each
// prefetched kFewRowsAhead bytes ahead (work.h; more streams in flight than a 4-rank block
// keeps, and no duplicated row).
// Returns whether any A value read may be tiny (then the caller screens A rank by rank);
// screening first would cost a second pass over A.
template <int kRows>
ADDLORA_BF16_TARGET bool DotFewRowsNd(const uint16_t* const* xr, const uint16_t* a, int64_t row_step, int64_t n,
                                      int64_t h0, int64_t h1, double* const* z) {
  __m512i amin = _mm512_set1_epi16(-1);
  for (int64_t r0 = 0; r0 < n; r0 += kFewRowsRanks) {
    const int valid = static_cast<int>(std::min<int64_t>(kFewRowsRanks, n - r0));
    const uint16_t* ar[kFewRowsRanks];
    for (int j = 0; j < kFewRowsRanks; ++j) ar[j] = a + (r0 + std::min(j, valid - 1)) * row_step;
    double tot[kTotSlots<kRows, kFewRowsRanks>] = {};
    DotBlock<kRows, false, false, true, kFewRowsRanks, kFewRowsAhead>(xr, ar, 16, h0, h1, tot, 0, &amin);
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < valid; ++j) z[i][r0 + j] += tot[i * kFewRowsRanks + j];
  }
  return _mm512_cmplt_epu16_mask(amin, _mm512_set1_epi16(static_cast<short>(kTinyLimit))) != 0;
}

// Adds each of the first *n chains, reduced (SumEachToLane), to its total (in the order given),
// and empties the list.
ADDLORA_BF16_TARGET inline void FlushChains(__m512* pending, double* const* out, int* n) {
  for (int c = *n; c < 16; ++c) pending[c] = _mm512_setzero_ps();
  alignas(64) float sums[16];
  _mm512_store_ps(sums, SumEachToLane(pending));
  for (int c = 0; c < *n; ++c) *out[c] += static_cast<double>(sums[c]);
  *n = 0;
}

// DotFewRowsNd's sums with A read in address order, for columns [h0, h1) of whole fold
// segments (two or more): each rank row whole before the next, two segments at a time (a
// second chain per row hides the vdpbf16ps latency), prefetched kRowNdAhead bytes ahead into
// L2 (RowLines): one stream in address order reads DRAM faster than eight rows side by side
// (bench/notes.md).  Each chain is DotBlock's --
// 32 vdpbf16ps over one segment, reduced by SumEachToLane, added to its rank's fp64 total in
// segment order -- so the bits are DotBlock's.  z[i][r] must be zero on entry.
template <int kRows>
ADDLORA_BF16_TARGET bool DotRowsInOrder(const uint16_t* const* xr, const uint16_t* a, int64_t row_step, int64_t n,
                                        int64_t h0, int64_t h1, double* const* z) {
  constexpr int kChains = 2 * kRows;  // per step: (row, segment) for two segments
  __m512i amin = _mm512_set1_epi16(-1);
  const int64_t segs = (h1 - h0) / kSeg;
  RowLines pf = RowLines::ahead_of(reinterpret_cast<const unsigned char*>(a + h0), (h1 - h0) * 2, row_step * 2, n);
  __m512 pending[16];  // finished chains, reduced 16 at a time
  double* pending_out[16];
  int n_pending = 0;
  for (int64_t r = 0; r < n; ++r) {
    const uint16_t* row = a + r * row_step;
    for (int64_t s = 0; s < segs; s += 2) {
      const bool two = s + 1 < segs;
      const int64_t hs = h0 + s * kSeg, ht = hs + kSeg;
      __m512 acc0[kRows], acc1[kRows];
      for (int i = 0; i < kRows; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
      for (int64_t t = 0; t < kSeg; t += 32) {
        pf.next();
        const __m512i a0 = _mm512_loadu_si512(row + hs + t);
        amin = _mm512_min_epu16(amin, TinyKey(a0));
        for (int i = 0; i < kRows; ++i) acc0[i] = Dot(acc0[i], _mm512_loadu_si512(xr[i] + hs + t), a0);
        if (two) {
          pf.next();
          const __m512i a1 = _mm512_loadu_si512(row + ht + t);
          amin = _mm512_min_epu16(amin, TinyKey(a1));
          for (int i = 0; i < kRows; ++i) acc1[i] = Dot(acc1[i], _mm512_loadu_si512(xr[i] + ht + t), a1);
        }
      }
      QueueChains<kRows>(pending, pending_out, &n_pending, acc0, z, r);
      if (two) QueueChains<kRows>(pending, pending_out, &n_pending, acc1, z, r);
      if (n_pending + kChains > 16) FlushChains(pending, pending_out, &n_pending);
    }
  }
  if (n_pending > 0) FlushChains(pending, pending_out, &n_pending);
  return _mm512_cmplt_epu16_mask(amin, _mm512_set1_epi16(static_cast<short>(kTinyLimit))) != 0;
}

}  // namespace

bool bf16_dot_supported() {
  static const bool cpu = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bf16");
  }();
  return cpu;
}

bool bf16_dot_default() {
  static const bool on = [] {
    if (const char* env = std::getenv("ADDLORA_BF16_DOT"); env && *env) {
      if ((env[0] == '0' || env[0] == '1') && env[1] == '\0') return env[0] == '1';
      std::fprintf(stderr, "addlora: ADDLORA_BF16_DOT=%s is not 0 or 1; using the CPU's default\n", env);
    }
    return amd_cpu();
  }();
  return on;
}

bool bf16_dot_usable() {
  if (!bf16_dot_supported()) return false;
  const int mode = g_mode.load(std::memory_order_relaxed);
  return mode < 0 ? bf16_dot_default() : mode == 1;
}
void set_bf16_dot_enabled(bool on) { g_mode.store(on ? 1 : 0); }
void reset_bf16_dot() { g_mode.store(-1); }
uint64_t bf16_dot_tasks() { return g_tasks.load(); }
uint64_t bf16_dot_fallbacks() { return g_fallbacks.load(); }

// One shrink task (shrink_bf16.h).  Long (~140 lines) because its walks -- decode, the
// segment-major walk with per-task screening bits, and the block-by-block walk for tasks too
// big for those bits -- share the task's geometry through the lambdas at its top.
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
  auto x_row = [&](int64_t pos) { return xbase + w.order[pos] * p.x.row_stride; };
  auto z_row = [&](int64_t pos) { return zk + pos * w.rp; };
  auto rank_rows = [&](int64_t r0, int ranks_valid, const uint16_t** ar) {  // short blocks repeat the last
    for (int j = 0; j < kRanks; ++j) ar[j] = abase + (r0 + std::min(j, ranks_valid - 1)) * row_step;
  };
  auto ranks_in = [&](int64_t r0) { return static_cast<int>(std::min<int64_t>(kRanks, r_end - r0)); };
  // Rows pos0.. of a block (short blocks repeat their last row; those results are not stored).
  auto block_rows = [&](int64_t pos0, int rows_valid, const uint16_t** xr) {
    for (int i = 0; i < kRowsMax; ++i) xr[i] = x_row(pos0 + std::min(i, rows_valid - 1));
  };
  // Columns [h0, h1) of rows pos0.. and ranks r0..: each (row, rank) total += the segments'
  // reduced chains (h0 and h1 on fold boundaries of the chunk, or the chunk's ends).
  auto add_block = [&](int64_t pos0, int rows_valid, const uint16_t* const* xr, int64_t r0, int64_t h0, int64_t h1,
                       bool packed = false) {
    const int ranks_valid = ranks_in(r0);
    const uint16_t* ar[kRanks];
    rank_rows(r0, ranks_valid, ar);
    double tot[kTotSlots<kRowsMax>] = {};
    if (rows_valid >= 4) RunBlock<6>(nz, packed, xr, ar, cs, h0, h1, tot);
    else if (rows_valid >= 2) RunBlock<3>(nz, packed, xr, ar, cs, h0, h1, tot);
    else RunBlock<1>(nz, packed, xr, ar, cs, h0, h1, tot);
    for (int i = 0; i < rows_valid; ++i)
      for (int j = 0; j < ranks_valid; ++j) z_row(pos0 + i)[r0 + j] += tot[i * kRanks + j];
  };

  // Screening (shrink_bf16.h): bit per row of the task and per rank.  Each (row, rank) total
  // is 0 + the reduced chain of each fold segment in order, whatever order the blocks run
  // in, so the walks below give the same bits.
  const int64_t nrows = pos_end - pos_begin, nranks = r_end - r_begin;
  uint64_t fallbacks = 0;
  for (int64_t pos = pos_begin; pos < pos_end; ++pos) std::fill(z_row(pos) + r_begin, z_row(pos) + r_end, 0.0);
  if (nrows <= kFlagRows && nranks <= kFlagRanks) {
    uint64_t xflags[kFlagRows / 64] = {}, aflags[kFlagRanks / 64] = {};
    // x rows: screened below as their segments are copied (or here, for the few-rows walks).
    const bool few_rows_nd = !nz && nrows >= 1 && nrows <= 2;
    const bool seg_major = nrows > 1 && !few_rows_nd;
    if (!seg_major)
      for (int64_t i = 0; i < nrows; ++i)
        if (RunHasTiny(x_row(pos_begin + i) + h_begin, h_end - h_begin)) xflags[i / 64] |= uint64_t{1} << (i % 64);
    if (nz && nrows == 1) {  // decode: screened as the products are formed
      if (DotOneRowNz(x_row(pos_begin), abase + r_begin * 16, nranks, cs, h_begin, h_end, z_row(pos_begin) + r_begin))
        ScreenRanksNz(abase + r_begin * 16, nranks, cs, h_begin, h_end, aflags);
    } else if (nz) {
      ScreenRanksNz(abase + r_begin * 16, nranks, cs, h_begin, h_end, aflags);
    } else if (few_rows_nd) {  // (multi-adapter) decode over ND A: screened as it goes
      const uint16_t* xr[2] = {x_row(pos_begin), x_row(pos_end - 1)};
      double* zr[2] = {z_row(pos_begin) + r_begin, z_row(pos_end - 1) + r_begin};
      const uint16_t* a0 = abase + r_begin * row_step;
      // Whole fold segments (two or more): A in address order; else eight rank rows at a time.
      const bool in_order = (h_end - h_begin) % kSeg == 0 && h_end - h_begin >= 2 * kSeg;
      const bool tiny = in_order ? (nrows == 1 ? DotRowsInOrder<1>(xr, a0, row_step, nranks, h_begin, h_end, zr)
                                               : DotRowsInOrder<2>(xr, a0, row_step, nranks, h_begin, h_end, zr))
                        : nrows == 1 ? DotFewRowsNd<1>(xr, a0, row_step, nranks, h_begin, h_end, zr)
                                     : DotFewRowsNd<2>(xr, a0, row_step, nranks, h_begin, h_end, zr);
      if (tiny)
        for (int64_t r0 = r_begin; r0 < r_end; r0 += kRanks) {
          const uint16_t* ar[kRanks];
          rank_rows(r0, ranks_in(r0), ar);
          const int64_t fi = r0 - r_begin;
          aflags[fi / 64] |= uint64_t{RanksWithTiny(ar, ranks_in(r0), cs, h_begin, h_end)} << (fi % 64);
        }
    } else {
      ScreenRanksNd(abase + r_begin * row_step, row_step, nranks, h_begin, h_end, aflags);
    }
    // Fold segment by fold segment (outermost), every row block over it, every rank block
    // over that: the task's A segment (R x 2 KiB) stays in L2 across the row blocks and a row
    // block's x segment, copied side by side (12 KiB), in L1 across the rank blocks.  The
    // copy lets the loop address the six rows from one register; with six row pointers it
    // spilled, and ran at ~0.6x (B=2048 R=64/128 H1=4096: 1.7x faster with the copy).
    alignas(64) uint16_t xseg[kRowsMax * kSeg];
    for (int64_t hs = h_begin; hs < h_end && seg_major; hs += kSeg) {
      const int64_t he = std::min(h_end, hs + kSeg);
      for (int64_t pos0 = pos_begin; pos0 < pos_end; pos0 += kRowsMax) {
        const int rows_valid = static_cast<int>(std::min<int64_t>(kRowsMax, pos_end - pos0));
        const uint16_t* xr[kRowsMax];
        block_rows(pos0, rows_valid, xr);
        // The rows' segment side by side (12 KiB, read by every rank block).
        for (int i = 0; i < kRowsMax; ++i) {
          const int64_t row = pos0 - pos_begin + i;
          if (CopyRunHasTiny(xseg + i * kSeg, xr[i] + hs, he - hs) && i < rows_valid)
            xflags[row / 64] |= uint64_t{1} << (row % 64);
        }
        const uint16_t* xs[1] = {xseg};
        // The next row block's segment (the first row block's next one after the last): each
        // of its lines once, an equal share of them before each rank block (48 lines each at
        // rank 16; all of them before the one rank block at ranks up to 4).  Without it the
        // copy waits on DRAM for every row block when x is not in the caches (bench/notes.md).
        const bool last_block = pos0 + kRowsMax >= pos_end;
        const int64_t npos = last_block ? pos_begin : pos0 + kRowsMax, nhs = last_block ? he : hs;
        const int64_t nrows_next = nhs < h_end ? std::min<int64_t>(kRowsMax, pos_end - npos) : 0;
        const int64_t seg_lines = (std::min(h_end, nhs + kSeg) - nhs + 31) / 32;  // lines of a row's segment
        const int64_t lines = nrows_next * seg_lines, nrb = (r_end - r_begin + kRanks - 1) / kRanks;
        const uint16_t* nx[kRowsMax];
        for (int64_t i = 0; i < nrows_next; ++i) nx[i] = x_row(npos + i) + nhs;
        int64_t issued = 0, row = 0, line = 0;  // row-major over the next rows' lines
        for (int64_t r0 = r_begin, rb = 1; r0 < r_end; r0 += kRanks, ++rb) {
          for (const int64_t target = lines * rb / nrb; issued < target; ++issued) {
            _mm_prefetch(reinterpret_cast<const char*>(nx[row] + 32 * line), _MM_HINT_T0);
            if (++line == seg_lines) line = 0, ++row;
          }
          add_block(pos0, rows_valid, xs, r0, hs, he, true);
        }
      }
    }
    // (row, rank) pairs with tiny inputs: the FMA fallback over the whole chunk.
    uint64_t any = 0;
    for (uint64_t f : xflags) any |= f;
    for (uint64_t f : aflags) any |= f;
    for (int64_t i = 0; i < nrows && any; ++i)
      for (int64_t r = r_begin; r < r_end; ++r) {
        const int64_t fi = r - r_begin;
        if (!(((xflags[i / 64] >> (i % 64)) | (aflags[fi / 64] >> (fi % 64))) & 1u)) continue;
        const uint16_t* ar[kRanks];
        rank_rows(r, 1, ar);
        z_row(pos_begin + i)[r] = FmaPair(x_row(pos_begin + i), ar[0], cs, h_begin, h_end);
        ++fallbacks;
      }
  } else {
    // Too many rows or ranks to keep their bits: row block by row block, rank block by rank
    // block, each screened as it comes.
    for (int64_t pos0 = pos_begin; pos0 < pos_end; pos0 += kRowsMax) {
      const int rows_valid = static_cast<int>(std::min<int64_t>(kRowsMax, pos_end - pos0));
      const uint16_t* xr[kRowsMax];
      block_rows(pos0, rows_valid, xr);
      unsigned xtiny = 0;
      for (int i = 0; i < rows_valid; ++i)
        if (RunHasTiny(xr[i] + h_begin, h_end - h_begin)) xtiny |= 1u << i;
      for (int64_t r0 = r_begin; r0 < r_end; r0 += kRanks) {
        add_block(pos0, rows_valid, xr, r0, h_begin, h_end);
        const int ranks_valid = ranks_in(r0);
        const uint16_t* ar[kRanks];
        rank_rows(r0, ranks_valid, ar);
        const unsigned atiny = RanksWithTiny(ar, ranks_valid, cs, h_begin, h_end);
        for (int i = 0; i < rows_valid; ++i)
          for (int j = 0; j < ranks_valid; ++j)
            if (((xtiny >> i) | (atiny >> j)) & 1u) {
              z_row(pos0 + i)[r0 + j] = FmaPair(xr[i], ar[j], cs, h_begin, h_end);
              ++fallbacks;
            }
      }
    }
  }
  if (fallbacks) g_fallbacks.fetch_add(fallbacks, std::memory_order_relaxed);
}

}  // namespace addlora::kernels::internal
