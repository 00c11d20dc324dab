// The expand phase, part of simd_kernels.cc: included inside its per-target namespace once
// per Highway target (hence no include guard).  Uses that file's loads, the accumulator
// policy and the prefetch helpers.
// NOLINT(build/header_guard)
//
// ---- expand: out[row, off+n] = y[row, off+n] + scale * sum_r z[pos][r] * B[adapter, n, r] ----
// One vector of kLanes consecutive n per step: kLanes dot products over the adapter's rank (z
// is fp32, zero past the rank up to rp), folded into one vector by SumEachToLane; B is
// converted as it is read, once per row, pair or four rows (ExpandDotChain).  Tiles with more
// rows take the outer-product form below (OuterMinRows); on AVX-512, tiles of 13-16 rows at
// ranks of exactly 48 or 64 the column form (expand_columns-inl.h, ColumnTile), and other
// tiles of 7-8 or 13-16 rows, and of 17-64 rows at ranks 65-128, the row-lane form
// (expand_rows-inl.h, RowLaneTile).

constexpr int64_t kBBuf = 512;  // widest rank of the outer-product form
// How far ahead (in B rows) the dot path prefetches.  FRACTAL_NZ: nearer, because a row's
// pieces lie H2 * 32 bytes apart, for H2 a power of two in the same cache sets, and lines
// prefetched further ahead are evicted before use (bench/notes.md).  ND: about 8 KiB of B
// ahead, 16 to 128 rows (256 rows at small ranks was slower on two threads, bench/notes.md).
HWY_INLINE int64_t PrefetchRowsAhead(const WeightRows& Bw, int64_t rank) {
  if (Bw.nz()) return 32;
  return std::clamp<int64_t>(8192 / std::max<int64_t>(1, rank * Bw.esize), 16, 128);
}

// B rows [n_lo, n_hi), ranks [0, rank).  FRACTAL_NZ: 16-rank chunk by chunk, where a chunk of
// consecutive rows is one contiguous run, so DRAM sees a few runs instead of requests hopping
// between blocks a whole NZ block column apart; a prefetch per cache line of each run (a 16-bit
// row's piece is half a line).  ND: a prefetch per cache line of each row's ranks.
// PrefetchBRanks: the same for ranks [r_lo, r_hi) only (r_lo a multiple of 16).
HWY_INLINE void PrefetchBRanks(const WeightRows& Bw, int64_t n_lo, int64_t n_hi, int64_t r_lo, int64_t r_hi) {
  if (Bw.nz()) {
    for (int64_t r = r_lo; r < r_hi; r += 16) PrefetchLines(Bw.base + Bw.off(n_lo, r) * Bw.esize, (n_hi - n_lo) * 16 * Bw.esize);
    return;
  }
  // ND: each row's ranks are one run; one prefetch per cache line of it (not per 16 ranks: at
  // 16-bit weights two of those share a line, and every extra prefetch takes a load slot).
  for (int64_t n = n_lo; n < n_hi; ++n) PrefetchLines(Bw.base + Bw.off(n, r_lo) * Bw.esize, (r_hi - r_lo) * Bw.esize);
}
HWY_INLINE void PrefetchBRows(const WeightRows& Bw, int64_t n_lo, int64_t n_hi, int64_t rank) {
  PrefetchBRanks(Bw, n_lo, n_hi, 0, rank);
}

// kZ rows of z (1, 2 or 4: rows z + i * zp) over kLanes / kZ B rows br[j]: lane i * kLanes / kZ
// + j of the result = sum over r in [r_lo, r_hi) of z_i[r] * B row j (chunk-structured as in
// WeightRows); r_lo a multiple of kLanes, r_hi - r_lo <= kSegCols (one fp32 chain).  With more
// rows each B vector is converted once for all; every lane sums the same products in the same
// order through the same lane tree either way, so the bits do not depend on kZ.
template <DType TB, int kZ>
HWY_INLINE VF ExpandDotChain(const float* z, int64_t zp, const unsigned char* const* br, int64_t chunk_step,
                             int64_t r_lo, int64_t r_hi) {
  static_assert((kZ == 1 || kZ == 2 || kZ == 4) && kLanes >= static_cast<size_t>(kZ), "one, two or four rows");
  const DF df;
  constexpr int64_t kB = static_cast<int64_t>(kLanes) / kZ;
  VF acc[kLanes];
  for (size_t j = 0; j < kLanes; ++j) acc[j] = hn::Zero(df);
  auto step = [&](int64_t r, auto whole) {  // whole: a full vector of ranks from r
    VF zv[kZ];
    for (int i = 0; i < kZ; ++i) zv[i] = hn::LoadU(df, z + i * zp + r);
    const int64_t boff = (r >> 4) * chunk_step + (r & 15);
    for (int64_t j = 0; j < kB; ++j) {
      const VF b = decltype(whole)::value ? LoadF<TB>(br[j], boff) : LoadTailF<TB>(br[j], boff, r_hi - r);
      for (int i = 0; i < kZ; ++i) acc[i * kB + j] = hn::MulAdd(zv[i], b, acc[i * kB + j]);
    }
  };
  const int64_t r_full = r_lo + ((r_hi - r_lo) / static_cast<int64_t>(kLanes)) * static_cast<int64_t>(kLanes);
  for (int64_t r = r_lo; r < r_full; r += kLanes) step(r, std::true_type{});
  if (r_full < r_hi) step(r_full, std::false_type{});  // ragged end of the rank
  return SumEachToLane(df, acc);
}

// The same over r < rank, one chain per kSegCols ranks folded into fp64 (ranks > kSegCols:
// the general API's wide ranks, and x as the rank vector without weight A).  One-row FRACTAL_NZ
// full blocks of ranks <= kSegCols take NzDotSteps instead (expand_nz-inl.h), with these bits.
template <DType TB, int kZ = 1>
HWY_INLINE VF ExpandDot(const float* z, int64_t zp, const unsigned char* const* br, int64_t chunk_step,
                        int64_t rank) {
  if (rank <= kSegCols) return ExpandDotChain<TB, kZ>(z, zp, br, chunk_step, 0, rank);
  HWY_ALIGN double total[kLanes] = {};
  for (int64_t r0 = 0; r0 < rank; r0 += kSegCols)
    FoldLanes(ExpandDotChain<TB, kZ>(z, zp, br, chunk_step, r0, std::min(rank, r0 + kSegCols)), total);
  return RoundLanes(total);
}

// ExpandDotChain<TB, kZ> over kLanes / kZ rows of ND B, `pitch` elements apart (packed: kRank),
// from b, for rows z + i * zp: the B rows addressed from one pointer, at constant offsets
// when packed (a pointer per row spills registers).  The same products, order and reduction as
// ExpandDotChain, so the same bits.
template <DType TB, int64_t kRank, int kZ = 1>
HWY_INLINE VF ExpandDotRun(const float* z, int64_t zp, const unsigned char* b, int64_t pitch = kRank) {
  static_assert(kRank % static_cast<int64_t>(kLanes) == 0 && kRank <= kSegCols, "whole vectors, one chain");
  static_assert((kZ == 1 || kZ == 2 || kZ == 4) && kLanes >= static_cast<size_t>(kZ), "one, two or four rows");
  const DF df;
  constexpr size_t kB = kLanes / kZ;
  VF acc[kLanes];
  for (size_t j = 0; j < kLanes; ++j) acc[j] = hn::Zero(df);
  for (int64_t r = 0; r < kRank; r += static_cast<int64_t>(kLanes)) {
    VF zv[kZ];
    for (int i = 0; i < kZ; ++i) zv[i] = hn::LoadU(df, z + i * zp + r);
    for (size_t j = 0; j < kB; ++j) {
      const VF bv = LoadF<TB>(b, static_cast<int64_t>(j) * pitch + r);
      for (int i = 0; i < kZ; ++i) acc[i * kB + j] = hn::MulAdd(zv[i], bv, acc[i * kB + j]);
    }
  }
  return SumEachToLane(df, acc);
}

// Dot tiles of ranks above 64 take rows four at a time on AVX-512 (each B vector converted once
// for four rows; at rank 64 four rows ran slower than two pairs, bench/notes.md).
#if HWY_ARCH_X86_64 && HWY_TARGET <= HWY_AVX3
constexpr bool kDotQuads = kLanes == 16;
#else
constexpr bool kDotQuads = false;
#endif

// d[q] from four calls of the kZ = 4 forms over B rows 4q + j: lane 4i + j holds row i, column
// 4q + j.  Regrouped in place so that d[i] holds row i's 16 columns in order: a 4 x 4
// transpose of 128-bit blocks (block moves only).  Where kDotQuads holds.
HWY_INLINE void QuadsToRows(VF* d) {
#if HWY_ARCH_X86_64 && HWY_TARGET <= HWY_AVX3
  if constexpr (kLanes == 16) {
    constexpr int kLo = _MM_SHUFFLE(1, 0, 1, 0), kHi = _MM_SHUFFLE(3, 2, 3, 2);
    constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0), kOdd = _MM_SHUFFLE(3, 1, 3, 1);
    const __m512 t0 = _mm512_shuffle_f32x4(d[0].raw, d[1].raw, kLo), t1 = _mm512_shuffle_f32x4(d[0].raw, d[1].raw, kHi);
    const __m512 t2 = _mm512_shuffle_f32x4(d[2].raw, d[3].raw, kLo), t3 = _mm512_shuffle_f32x4(d[2].raw, d[3].raw, kHi);
    d[0].raw = _mm512_shuffle_f32x4(t0, t2, kEven);
    d[1].raw = _mm512_shuffle_f32x4(t0, t2, kOdd);
    d[2].raw = _mm512_shuffle_f32x4(t1, t3, kEven);
    d[3].raw = _mm512_shuffle_f32x4(t1, t3, kOdd);
  }
#endif
  (void)d;
}

#include "kernels/expand_nz-inl.h"  // NOLINT(build/include)

// Outer-product form for tiles with many rows: B's kOpN x R block is widened and transposed
// once into bt[r][n] (fp32), then every row block accumulates acc[row][n-vector] +=
// z[row][r] * bt[r][:] -- no horizontal reductions, one broadcast per kOpVecs FMAs.  With 32
// registers a 6 x 4 block: 24 accumulators, the 4 vectors of bt[r] and the broadcast all stay
// in registers (a 12 x 2 block takes a broadcast per 2 FMAs: 7-20 % slower, bench/notes.md).
// Every output is one chain over r in order, whatever the block.
constexpr int kOpRows = kLanes >= 16 ? 6 : 4;
constexpr int kOpVecs = kLanes >= 16 ? 4 : 2;
constexpr int64_t kOpN = kOpVecs * static_cast<int64_t>(kLanes);
// Panels of B sized for about 64 KiB (32 KiB below AVX3), at least one block: the buffer
// holds one block of the widest rank.
constexpr int64_t kPanelFloats = 2 * static_cast<int64_t>(kLanes) * kBBuf;
constexpr int64_t kBtFloats = std::max(kPanelFloats, kOpN * kBBuf);
constexpr int64_t kOneSweepPanel = 64;  // columns per panel when one row block sweeps it (ExpandPanels)
// Rank of the dot path's run form (ExpandDotRun): a block of kLanes B rows is one run of
// kLanes x kRunRank elements in ND B of that row pitch and in FRACTAL_NZ B alike (wider ND
// pitches: the same form, row by row).
constexpr int64_t kRunRank = 16;
// Fewest rows for which the transposed block pays off over the dot products, rows in pairs or
// fours (measured; see bench/notes.md): at rank 16 two rows take the run form row by row (the
// pack alone cost more than both rows' dot products); at ranks 65-128 on AVX-512, with rows in
// fours, the dot products win up to 13 rows (wider ranks were not measured: 6).  A function of
// the adapter's rank only, so results stay independent of R (per-adapter ranks), the layout
// and the thread count.
HWY_INLINE int64_t OuterMinRows(int64_t rank) {
  const int64_t rank_p = (rank + 15) & ~int64_t{15};
  return rank == kRunRank ? 3 : rank_p <= 16 ? 2 : rank_p <= 32 ? 3 : rank_p <= 64 || rank_p > 128 || !kDotQuads ? 6 : 14;
}
constexpr int64_t kPackAhead = 2;  // blocks of B prefetched ahead of the pack
// The next panel's B is prefetched a few lines every kAheadRanks rank steps of a block, spread
// over the FMAs: with few row blocks per panel, one step per block would be a burst of ~100.
constexpr int64_t kAheadRanks = 8;

// Byte runs prefetched a few lines at a time as the work proceeds, in proportion to it: the
// next panel or column tile's B while this one computes (a burst would overflow the miss
// buffers, and the surplus would be dropped).  Whichever core takes that tile finds the lines
// in this core's L2 or the L3.
struct RunPrefetch {
  static constexpr int kMaxRuns = static_cast<int>(kBBuf / 16);
  static constexpr int64_t kOne = int64_t{1} << 16;  // a line, in the fixed point of `credit`
  uintptr_t at[kMaxRuns], end[kMaxRuns];
  int n = 0, cur = 0;
  int64_t per_unit = kOne, credit = 0;
  void add(const unsigned char* p, int64_t bytes) {
    if (n == kMaxRuns || bytes <= 0) return;
    at[n] = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63};
    end[n++] = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes);
  }
  // Every line by the time `units` units of work have been stepped.
  void spread(int64_t units) {
    int64_t lines = 0;
    for (int i = 0; i < n; ++i) lines += static_cast<int64_t>((end[i] - at[i] + 63) / 64);
    per_unit = (lines * kOne + units - 1) / std::max<int64_t>(1, units);
  }
  HWY_INLINE void step(int64_t units) {
    for (credit += per_unit * units; credit >= kOne && cur < n; credit -= kOne) {
      hwy::Prefetch(reinterpret_cast<const unsigned char*>(at[cur]));
      if ((at[cur] += 64) >= end[cur]) ++cur;
    }
  }
};

// B rows [n_lo, n_hi) of ranks [0, rank) as runs: in FRACTAL_NZ one run per 16-rank chunk, in
// ND one run over the rows (ranks past `rank` included, when the adapter's rank is below R).
HWY_INLINE void AddBRuns(const WeightRows& Bw, int64_t n_lo, int64_t n_hi, int64_t rank, RunPrefetch* rp) {
  if (n_lo >= n_hi || rank <= 0) return;
  if (Bw.nz()) {
    for (int64_t r = 0; r < rank; r += 16) rp->add(Bw.base + Bw.off(n_lo, r) * Bw.esize, (n_hi - n_lo) * 16 * Bw.esize);
    return;
  }
  rp->add(Bw.row(n_lo), ((n_hi - 1 - n_lo) * Bw.row_step + rank) * Bw.esize);
}

struct ExpandCtx {
  RunPrefetch* ahead = nullptr;  // stepped every kAheadRanks ranks of each outer-product row
  const Problem* p;
  const Work* w;
  VF scale;
  int64_t rank;  // the adapter's ranks (Problem::ranks); B columns past it are not read
  const unsigned char* ybase;
  unsigned char* obase;
  int64_t yes;  // bytes per y (and out) element
};

// acc[i][v] += z[i][r] * bt[r][v-th vector] for r in [r0, r1) (a function, not a lambda, so
// that it is always inlined and acc stays in registers).
template <int kRows>
HWY_INLINE void OuterChain(const float* bt, const float* const* z, int64_t r0, int64_t r1, VF (*acc)[kOpVecs],
                           RunPrefetch* ahead) {
  const DF df;
  for (int64_t r = r0; r < r1; ++r) {
    if (ahead && (r & (kAheadRanks - 1)) == 0) ahead->step(kRows);  // a unit per row
    VF bv[kOpVecs];
    for (int v = 0; v < kOpVecs; ++v) bv[v] = hn::Load(df, bt + r * kOpN + v * kLanes);
    for (int i = 0; i < kRows; ++i) {
      const VF zb = hn::Set(df, z[i][r]);
      for (int v = 0; v < kOpVecs; ++v) acc[i][v] = hn::MulAdd(zb, bv[v], acc[i][v]);
    }
  }
}

// Rows [pos_begin, pos_end) over the columns [n_lo, n_hi) of one packed panel: column block
// cb (kOpN columns from n_lo + cb * kOpN) is bt + cb * pitch.  A row block's z stays in
// registers and L1 while it sweeps the panel, and its y rows are read as runs of the panel's
// width (one row block ahead is prefetched as it goes); the panel stays in L2 for every row
// block.  kFolds: the rank is longer than one chain (kChain): partial chains go to fp64 totals.
// TY: y's (and out's) dtype.
template <DType TY, int kRows, bool kFolds>
void ExpandOuterBlock(const ExpandCtx& c, const float* bt, int64_t pitch, int64_t pos_begin, int64_t pos_end,
                      int64_t n_lo, int64_t n_hi) {
  const DF df;
  const Work& w = *c.w;
  const Problem& p = *c.p;
  constexpr int64_t yes = static_cast<int64_t>(ElemSize<TY>()), kL = static_cast<int64_t>(kLanes);
  for (int64_t pos0 = pos_begin; pos0 < pos_end; pos0 += kRows) {
    const int rows_valid = static_cast<int>(std::min<int64_t>(kRows, pos_end - pos0));
    const float* z[kRows];
    for (int i = 0; i < kRows; ++i) z[i] = w.z + (pos0 + std::min(i, rows_valid - 1)) * w.rp;
    const unsigned char* yrow[kRows];
    unsigned char* orow[kRows];
    for (int i = 0; i < rows_valid; ++i) {
      yrow[i] = c.ybase + w.order[pos0 + i] * p.y.row_stride * yes;
      orow[i] = c.obase + w.order[pos0 + i] * p.out.row_stride * yes;
    }
    const int64_t next_end = std::min<int64_t>(pos_end, pos0 + 2 * kRows);
    for (int64_t n0 = n_lo, cb = 0; n0 < n_hi; n0 += kOpN, ++cb) {
      const int64_t valid = std::min<int64_t>(kOpN, n_hi - n0), col = p.y_offset + n0;
      for (int64_t pos = pos0 + kRows; pos < next_end; ++pos) {  // the next row block's y, these columns
        const int64_t row = w.order[pos];
        for (int64_t b = 0; b < kOpN * yes; b += 64) {
          hwy::Prefetch(c.ybase + (row * p.y.row_stride + col) * yes + b);
          if (!p.in_place) hwy::Prefetch(c.obase + (row * p.out.row_stride + col) * yes + b);
        }
      }
      const float* btc = bt + cb * pitch;
      VF acc[kRows][kOpVecs];
      for (int i = 0; i < kRows; ++i)
        for (int v = 0; v < kOpVecs; ++v) acc[i][v] = hn::Zero(df);
      if constexpr (!kFolds) {
        OuterChain<kRows>(btc, z, 0, c.rank, acc, c.ahead);
      } else {  // one fp32 chain per kChain ranks, each folded into total
        HWY_ALIGN double total[kRows][kOpN] = {};
        for (int64_t r0 = 0; r0 < c.rank; r0 += internal::kChain) {
          OuterChain<kRows>(btc, z, r0, std::min(c.rank, r0 + internal::kChain), acc, c.ahead);
          for (int i = 0; i < kRows; ++i)
            for (int v = 0; v < kOpVecs; ++v) {
              FoldLanes(acc[i][v], &total[i][v * kLanes]);
              acc[i][v] = hn::Zero(df);
            }
        }
        for (int i = 0; i < kRows; ++i)
          for (int v = 0; v < kOpVecs; ++v) acc[i][v] = RoundLanes(&total[i][v * kLanes]);
      }
      // y straight from its row: a y buffer filled before the block's stores (against 4 KiB
      // aliasing between rows 2^k bytes apart) measured slower on every rank (bench/notes.md).
      // Whole blocks of whole rows apart, so that the stores unroll and acc stays in registers.
      // On the whole-block path every y vector is loaded into acc before the first store, so
      // that no load waits behind a store to another row at the same address modulo 4 KiB
      // (rows of a power-of-two pitch; bench/notes.md).
      if (valid == kOpN && rows_valid == kRows) {
        HWY_UNROLL(8)  // 8 >= kRows: fully unrolled, acc stays in registers (bf16's long rounding kept it rolled)
        for (int i = 0; i < kRows; ++i)
          HWY_UNROLL(8)
          for (int v = 0; v < kOpVecs; ++v) acc[i][v] = hn::MulAdd(acc[i][v], c.scale, LoadF<TY>(yrow[i], col + v * kL));
        HWY_UNROLL(8)
        for (int i = 0; i < kRows; ++i)
          HWY_UNROLL(8)
          for (int v = 0; v < kOpVecs; ++v) StoreF<TY>(acc[i][v], orow[i], col + v * kL);
      } else {
        // acc goes to a tile first: the tails' memcpy calls clobber every vector register, and
        // acc live across them makes the compiler spill it on the whole-block path too.
        HWY_ALIGN float tile[kRows][kOpN];
        for (int i = 0; i < kRows; ++i)
          for (int v = 0; v < kOpVecs; ++v) hn::Store(acc[i][v], df, &tile[i][v * kL]);
        for (int i = 0; i < rows_valid; ++i)
          for (int v = 0; v < kOpVecs; ++v) {
            const int64_t lanes = std::min<int64_t>(kL, valid - v * kL);
            const VF a = hn::Load(df, &tile[i][v * kL]);
            if (lanes == kL) StoreF<TY>(hn::MulAdd(a, c.scale, LoadF<TY>(yrow[i], col + v * kL)), orow[i], col + v * kL);
            else if (lanes > 0)
              StoreTailF<TY>(hn::MulAdd(a, c.scale, LoadTailF<TY>(yrow[i], col + v * kL, lanes)), orow[i], col + v * kL, lanes);
          }
      }
    }
  }
}

// Full blocks of kOpRows rows, then the rest in one block of 2, 4 or kOpRows rows, the
// smallest that holds it (a short block computes duplicated rows: 8 rows as 6 + 4 would waste
// a fifth of the FMAs, 6 + 2 none).  RestBlockRows: that block's rows (0: no rest);
// OuterBlockRows: the rows all the blocks compute.
HWY_INLINE int RestBlockRows(int64_t rest) { return rest > 4 ? kOpRows : rest > 2 ? 4 : rest > 0 ? 2 : 0; }
HWY_INLINE int64_t OuterBlockRows(int64_t rows) { return rows - rows % kOpRows + RestBlockRows(rows % kOpRows); }
template <DType TY>
void ExpandOuter(const ExpandCtx& c, const float* bt, int64_t pitch, int64_t pos_begin, int64_t pos_end,
                 int64_t n_lo, int64_t n_hi) {
  const int64_t full_end = pos_begin + ((pos_end - pos_begin) / kOpRows) * kOpRows, rest = pos_end - full_end;
  const bool folds = c.rank > internal::kChain;
  auto run = [&](auto rows, int64_t b, int64_t e) {
    constexpr int kRows = decltype(rows)::value;
    (folds ? ExpandOuterBlock<TY, kRows, true> : ExpandOuterBlock<TY, kRows, false>)(c, bt, pitch, b, e, n_lo, n_hi);
  };
  if (full_end > pos_begin) run(std::integral_constant<int, kOpRows>{}, pos_begin, full_end);
  const int rest_rows = RestBlockRows(rest);  // kOpRows may be 4 itself (AVX2)
  if (rest_rows == kOpRows) run(std::integral_constant<int, kOpRows>{}, full_end, pos_end);
  else if (rest_rows == 4) run(std::integral_constant<int, 4>{}, full_end, pos_end);
  else if (rest_rows == 2) run(std::integral_constant<int, 2>{}, full_end, pos_end);
}

// bt[r][j] = B[n0 + j, r] (fp32) for j < kOpN (columns past n_end repeat the last one), r < R
// (the adapter's rank: B columns past it are not read; rows up to the next vector are zeros).
// Each kLanes x kLanes tile goes from the loads straight through the register transpose: a
// vector of one B row's ranks is one piece of a chunk in either layout.
template <DType TB>
void PackTransposed(const WeightRows& Bw, int64_t R, int64_t n0, int64_t n_end, float* bt) {
  const DF df;
  constexpr int64_t kL = static_cast<int64_t>(kLanes), kEs = static_cast<int64_t>(ElemSize<TB>());
  const bool nz = Bw.nz();
  // Prefetch the block kPackAhead blocks ahead, the same tile as this one, spread over the
  // tiles (a burst of a whole block would overflow the miss buffers, and the surplus
  // prefetches would be dropped).  In FRACTAL_NZ a tile's rows are one contiguous run.
  const int64_t ahead = n0 + kPackAhead * kOpN;
  const unsigned char* src[kOpN];
  for (int64_t j = 0; j < kOpN; ++j) src[j] = Bw.row(std::min<int64_t>(n0 + j, n_end - 1));
  for (int64_t r0 = 0; r0 < R; r0 += kL) {
    const int64_t boff = (r0 >> 4) * Bw.chunk_step + (r0 & 15);
    for (int64_t half = 0; half < kOpVecs; ++half) {
      const int64_t a0 = ahead + half * kL;
      if (nz && a0 < n_end && (r0 & 15) == 0)
        PrefetchLines(Bw.base + Bw.off(a0, r0) * kEs, std::min<int64_t>(kL, n_end - a0) * 16 * kEs);
      else if (!nz && r0 % (64 / kEs) == 0) {
        for (int64_t i = 0; i < kL && a0 + i < n_end; ++i) hwy::Prefetch(Bw.base + Bw.off(a0 + i, r0) * kEs);
      }
      const unsigned char* const* rows = src + half * kL;
      float* const dst = bt + r0 * kOpN + half * kL;  // rank r0 + m at dst + m * kOpN
      const bool whole = r0 + kL <= R;
#if HWY_TARGET == HWY_AVX3
      if constexpr (kEs == 2) {  // transposed as 16-bit values, then widened (half-width shuffles)
        if (whole) {
          VU16 in16[kLanes], out16[kLanes];
          for (int64_t i = 0; i < kL; ++i) in16[i] = hn::LoadU(DU16(), reinterpret_cast<const uint16_t*>(rows[i]) + boff);
          Transpose16(in16, out16);
          for (int64_t m = 0; m < kL; ++m) hn::Store(WidenBits<TB>(out16[m]), df, dst + m * kOpN);
          continue;
        }
      }
#endif
      VF in[kLanes], out[kLanes];
      for (int64_t i = 0; i < kL; ++i) in[i] = whole ? LoadF<TB>(rows[i], boff) : LoadTailF<TB>(rows[i], boff, R - r0);
      Transpose(df, in, out);
      for (int64_t m = 0; m < kL; ++m) hn::Store(out[m], df, dst + m * kOpN);
    }
  }
}

// The outer-product path over the tile: panels of as many kOpN-column blocks as kPanelFloats
// holds at this rank (R=64: 4 blocks; for a tile of one row block, at most kOneSweepPanel
// columns), each packed once and swept by every row block of the tile.
template <DType TB, DType TY>
void ExpandPanels(ExpandCtx& c, const WeightRows& Bw, float* bt, int64_t rank_p, int64_t pos_begin, int64_t pos_end,
                  int64_t n_begin, int64_t n_end) {
  const Problem& p = *c.p;
  const int64_t pitch = std::max<int64_t>(16, rank_p) * kOpN;  // rank 0: B unread
  // One row block sweeps each panel once: then short panels, packed and swept while still in
  // L1, the next one's B prefetched during this one's FMAs (64 KiB panels, packed to L2 and
  // read back once, took up to a third longer from DRAM; bench/notes.md).
  const int64_t blocks = std::max<int64_t>(1, kPanelFloats / pitch);  // what the buffer holds
  const bool one_sweep = pos_end - pos_begin <= kOpRows;
  const int64_t panel = (one_sweep ? std::min(blocks, std::max<int64_t>(1, kOneSweepPanel / kOpN)) : blocks) * kOpN;
  for (int64_t np = n_begin; np < n_end; np += panel) {
    const int64_t np_end = std::min(n_end, np + panel);
    RunPrefetch next;  // the next panel of this adapter's B (past n_end: the next column tile's)
    AddBRuns(Bw, np_end, std::min<int64_t>(p.S, np_end + panel), c.rank, &next);
    next.spread(OuterBlockRows(pos_end - pos_begin) * ((np_end - np + kOpN - 1) / kOpN) *
                ((c.rank + kAheadRanks - 1) / kAheadRanks));
    c.ahead = &next;
    for (int64_t n0 = np, cb = 0; n0 < np_end; n0 += kOpN, ++cb) PackTransposed<TB>(Bw, c.rank, n0, n_end, bt + cb * pitch);
    ExpandOuter<TY>(c, bt, pitch, pos_begin, pos_end, np, np_end);
  }
}

#include "kernels/expand_rows-inl.h"  // NOLINT(build/include)
#include "kernels/expand_columns-inl.h"  // NOLINT(build/include)

// The dot-product path: tiles with fewer rows than the outer product pays for, and decode.
// The y/out dtype is fixed at compile time (out has y's dtype): at small ranks a per-block
// dtype switch cost as much as the FMAs.  The rows convert B as they read it (once per pair or
// four): widening each block into a buffer once for a tile of 2-5 rows cost 13-35 % more
// (bench/notes.md; the row-lane form does widen, for 7-8 and 13-16 rows).
template <DType TB, DType TY, bool kOneRow>
void ExpandDotRows(const ExpandCtx& c, const WeightRows& Bw, int64_t pos_begin, int64_t pos_end, int64_t n_begin,
                   int64_t n_end) {
  const DF df;
  const Problem& p = *c.p;
  const Work& w = *c.w;
  constexpr int64_t kL = static_cast<int64_t>(kLanes), yes = ElemSize<TY>();
  const int64_t rank = c.rank;
  auto y_row = [&](int64_t pos) { return c.ybase + w.order[pos] * p.y.row_stride * yes; };
  auto out_row = [&](int64_t pos) { return c.obase + w.order[pos] * p.out.row_stride * yes; };
  const unsigned char* const y0 = y_row(pos_begin);  // one row: its pointers once
  unsigned char* const o0 = out_row(pos_begin);
#if HWY_TARGET != HWY_SCALAR
  // Two rows' dot products over kL / 2 B rows from br[0]: as one run at the common ranks of
  // packed ND B (whole blocks: a ragged block's pointers repeat its last row), else through
  // the pointers.
  const bool pair_run = !Bw.nz() && Bw.row_step == rank && (rank == 32 || rank == 64 || (rank == 128 && 128 <= kSegCols));
  auto pair_dot = [&](const float* z0, const unsigned char* const* brh, bool whole) {
    if (pair_run && whole) {
      if (rank == 32) return ExpandDotRun<TB, 32, 2>(z0, w.rp, brh[0]);
      if (rank == 64) return ExpandDotRun<TB, 64, 2>(z0, w.rp, brh[0]);
      if constexpr (128 <= kSegCols) return ExpandDotRun<TB, 128, 2>(z0, w.rp, brh[0]);
    }
    return ExpandDot<TB, 2>(z0, w.rp, brh, Bw.chunk_step, rank);
  };
  // The same for four rows over kL / 4 B rows (ranks above 64: kDotQuads).
  auto quad_dot = [&](const float* z0, const unsigned char* const* brq, bool whole) {
    if constexpr (128 <= kSegCols)
      if (pair_run && whole && rank == 128) return ExpandDotRun<TB, 128, 4>(z0, w.rp, brq[0]);
    return ExpandDot<TB, 4>(z0, w.rp, brq, Bw.chunk_step, rank);
  };
  (void)pair_dot;  // unused by one-row tiles
  (void)quad_dot;
#endif
  // Columns [n0, n0 + kL) of every row of the tile; kFull: all kL of them are in the slice.
  auto block = [&](int64_t n0, const unsigned char* const* br, auto full) {
    constexpr bool kFull = decltype(full)::value;
    const int64_t col = p.y_offset + n0;
    auto put_row = [&](VF d, const unsigned char* yrow, unsigned char* orow) {  // one row's columns
      if constexpr (kFull) {
        StoreF<TY>(hn::MulAdd(d, c.scale, LoadF<TY>(yrow, col)), orow, col);
      } else {
        const int64_t valid = n_end - n0;
        StoreTailF<TY>(hn::MulAdd(d, c.scale, LoadTailF<TY>(yrow, col, valid)), orow, col, valid);
      }
    };
    int64_t pos = pos_begin;
#if HWY_TARGET != HWY_SCALAR
    if constexpr (!kOneRow) {  // rows two at a time, half a block of columns per step
      constexpr int64_t kPairCols = kL / 2;
      const hn::Half<DF> dh;
      const auto scale = hn::LowerHalf(dh, c.scale);
      auto put = [&](hn::Vec<hn::Half<DF>> d, const unsigned char* yrow, unsigned char* orow, int64_t q, int64_t lanes) {
        if (kFull || lanes == kPairCols) StoreF<TY, hn::Half<DF>>(hn::MulAdd(d, scale, LoadF<TY, hn::Half<DF>>(yrow, q)), orow, q);
        else StoreTailF<TY, hn::Half<DF>>(hn::MulAdd(d, scale, LoadTailF<TY, hn::Half<DF>>(yrow, q, lanes)), orow, q, lanes);
      };
      if constexpr (kDotQuads) for (; rank > 64 && pos + 4 <= pos_end; pos += 4) {  // four rows, a quarter block of columns per call
        const float* z0 = w.z + pos * w.rp;
        VF d[4];
        for (int q = 0; q < 4; ++q) d[q] = quad_dot(z0, br + q * (kL / 4), kFull);
        QuadsToRows(d);
        for (int i = 0; i < 4; ++i) put_row(d[i], y_row(pos + i), out_row(pos + i));
      }
      for (; pos + 2 <= pos_end; pos += 2) {
        const float* z0 = w.z + pos * w.rp;
        const unsigned char *y0r = y_row(pos), *y1r = y_row(pos + 1);
        unsigned char *o0r = out_row(pos), *o1r = out_row(pos + 1);
        for (int64_t h = 0; h < kL; h += kPairCols) {
          const int64_t lanes = kFull ? kPairCols : std::min<int64_t>(kPairCols, n_end - n0 - h);
          if (lanes <= 0) break;
          const VF d = pair_dot(z0, br + h, kFull);
          put(hn::LowerHalf(dh, d), y0r, o0r, col + h, lanes);
          put(hn::UpperHalf(dh, d), y1r, o1r, col + h, lanes);
        }
      }
    }
#endif
    for (; pos < (kOneRow ? pos_begin + 1 : pos_end); ++pos) {
      const float* z = w.z + pos * w.rp;
      const VF d = ExpandDot<TB>(z, 0, br, Bw.chunk_step, rank);
      put_row(d, kOneRow ? y0 : y_row(pos), kOneRow ? o0 : out_row(pos));
    }
  };
  // B rows ahead (PrefetchRowsAhead): a block's dot products take far less than a DRAM round trip.
  const int64_t ahead_rows = PrefetchRowsAhead(Bw, rank);
  int64_t n0 = n_begin;
  if (kOneRow && Bw.nz() && rank > 0 && rank <= kSegCols) {  // full blocks skewed (expand_nz-inl.h)
    const int64_t blocks = (n_end - n_begin) / kL;
    const float* z = w.z + pos_begin * w.rp;
    ExpandOneRowNz<TB>(df, z, Bw, rank, n_begin, blocks, ahead_rows, [&](int64_t nb, VF d) {
      const int64_t col = p.y_offset + nb;
      StoreF<TY>(hn::MulAdd(d, c.scale, LoadF<TY>(y0, col)), o0, col);
    });
    n0 += blocks * kL;
  } else {
    PrefetchBRows(Bw, n_begin + kL, std::min<int64_t>(n_end, n_begin + ahead_rows), rank);
  }
  // Rank kRunRank: whole blocks through ExpandDotRun, row after row (a block is read from DRAM
  // once, then from L1).  A block is one run in packed ND B and in FRACTAL_NZ (16 rows of ranks
  // 0-15), prefetched as such; ND B of a wider pitch (ranks limited to 16) is read row by row.
  // Only at rank 16 do the dot products rather than DRAM set the pace; at wider ranks this loop
  // was no faster (bench/notes.md).  (One row over FRACTAL_NZ has taken its full blocks above.)
  if (rank == kRunRank) {
    const int64_t pos_last = kOneRow ? pos_begin + 1 : pos_end;
    const bool packed = Bw.row_step == kRunRank;
    for (; n0 + kL <= n_end; n0 += kL) {
      if (n0 + ahead_rows < p.S) {
        const int64_t ahead_end = std::min<int64_t>(p.S, n0 + ahead_rows + kL);
        if (packed) PrefetchLines(Bw.row(n0 + ahead_rows), (ahead_end - n0 - ahead_rows) * kRunRank * Bw.esize);
        else PrefetchBRows(Bw, n0 + ahead_rows, ahead_end, rank);
      }
      const int64_t col = p.y_offset + n0;
      for (int64_t pos = pos_begin; pos < pos_last; ++pos) {
        const VF d = packed ? ExpandDotRun<TB, kRunRank>(w.z + pos * w.rp, 0, Bw.row(n0))
                            : ExpandDotRun<TB, kRunRank>(w.z + pos * w.rp, 0, Bw.row(n0), Bw.row_step);
        const unsigned char* yrow = kOneRow ? y0 : y_row(pos);
        unsigned char* orow = kOneRow ? o0 : out_row(pos);
        StoreF<TY>(hn::MulAdd(d, c.scale, LoadF<TY>(yrow, col)), orow, col);
      }
    }
  }
  const int64_t rs = Bw.row_step * Bw.esize;
  const unsigned char* br[kL];
  for (; n0 + kL <= n_end; n0 += kL) {
    if (n0 + ahead_rows < p.S)
      PrefetchBRows(Bw, n0 + ahead_rows, std::min<int64_t>(p.S, n0 + ahead_rows + kL), rank);  // on into the next tile
    for (int64_t j = 0; j < kL; ++j) br[j] = Bw.row(n0) + j * rs;
    block(n0, br, std::true_type{});
  }
  if (n0 == n_end) return;
  for (int64_t j = 0; j < kL; ++j) br[j] = Bw.row(std::min<int64_t>(n0 + j, n_end - 1));  // repeat the last
  block(n0, br, std::false_type{});
}

template <DType TB>
void ExpandT(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t n_begin,
             int64_t n_end) {
  const Problem& p = *w.p;
  const DF df;
  const WeightRows Bw = Rows(p.b, p.H2, adapter);
  ExpandCtx c;
  c.p = &p;
  c.w = &w;
  // Per-adapter rank and scale (Problem::ranks / scales).  The path choices below depend on
  // the rank, not on R: a rank-limited adapter gives the same bits as a tensor of that rank.
  const int64_t rank = detail::rank_of(p, adapter);
  const int64_t rank_p = (rank + 15) & ~int64_t{15};  // <= w.rp; z is zero in [rank, w.rp)
  c.rank = rank;
  c.scale = hn::Set(df, static_cast<float>(detail::scale_of(p, adapter)));
  c.yes = static_cast<int64_t>(model::element_size(p.y.dtype));  // out has y's dtype (validation)
  c.ybase = static_cast<const unsigned char*>(p.y.base);
  c.obase = static_cast<unsigned char*>(const_cast<void*>(p.out.base));
  if constexpr (kRowLaneTarget) {
    if (ColumnTile(rank, pos_end - pos_begin)) {
      model::visit_float(p.y.dtype, [&](auto ty) {
        ExpandColumns<TB, decltype(ty)::value>(c, Bw, pos_begin, pos_end, n_begin, n_end);
      });
      return;
    }
    if (RowLaneTile(rank_p, pos_end - pos_begin)) {
      model::visit_float(p.y.dtype, [&](auto ty) {
        ExpandRowLanes<TB, decltype(ty)::value>(c, Bw, rank_p, pos_begin, pos_end, n_begin, n_end);
      });
      return;
    }
  }
  if (rank_p <= kBBuf && pos_end - pos_begin >= OuterMinRows(rank)) {
    HWY_ALIGN float bt[kBtFloats];  // 128 KiB on AVX3
    model::visit_float(p.y.dtype, [&](auto ty) {
      ExpandPanels<TB, decltype(ty)::value>(c, Bw, bt, rank_p, pos_begin, pos_end, n_begin, n_end);
    });
    return;
  }
  // Dot path: the tile's y (and out) lines are touched 64 bytes at a time, row after row --
  // too scattered for the hardware prefetcher, so request them up front.  (The outer-product
  // path prefetches per row block instead.)
  for (int64_t pos = pos_begin; pos < pos_end; ++pos) {
    const int64_t row = w.order[pos];
    const unsigned char* yrow = c.ybase + (row * p.y.row_stride + p.y_offset) * c.yes;
    const unsigned char* orow = c.obase + (row * p.out.row_stride + p.y_offset) * c.yes;
    for (int64_t n = n_begin; n < n_end; n += 64 / c.yes) hwy::Prefetch(yrow + n * c.yes);
    if (!p.in_place)
      for (int64_t n = n_begin; n < n_end; n += 64 / c.yes) hwy::Prefetch(orow + n * c.yes);
  }
  const bool one = pos_end - pos_begin == 1;  // decode: B streamed, no widening, one row
  model::visit_float(p.y.dtype, [&](auto ty) {
    constexpr DType TY = decltype(ty)::value;
    (one ? ExpandDotRows<TB, TY, true> : ExpandDotRows<TB, TY, false>)(c, Bw, pos_begin, pos_end, n_begin, n_end);
  });
}

void Expand(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t nb, int64_t ne) {
  model::visit_float(w.p->b.dtype, [&](auto tb) { ExpandT<decltype(tb)::value>(w, pb, pe, adapter, nb, ne); });
}

// The expand phase of a shrink-only call (row_ops.h): out = fma(z, scale, y) in fp32, rounded
// once, a vector at a time.  Bitwise the same as the portable loop, whose std::fma is a library
// call per element: only targets whose MulAdd is fused take it.  (Columns are unit-stride here,
// or a single column: dispatch.cc simd_eligible; out has y's dtype: validation.)
void WriteScaledZ(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t nb, int64_t ne) {
  const Problem& p = *w.p;
  if (!HWY_NATIVE_FMA) return internal::write_scaled_z(w, pb, pe, adapter, nb, ne);  // MulAdd would round twice
  const DF d;
  constexpr int64_t kL = static_cast<int64_t>(kLanes);
  const VF scale = hn::Set(d, static_cast<float>(detail::scale_of(p, adapter)));
  void* out = const_cast<void*>(p.out.base);
  model::visit_float(p.y.dtype, [&](auto ty) {
    constexpr DType TY = decltype(ty)::value;
    for (int64_t pos = pb; pos < pe; ++pos) {
      const int64_t row = w.order[pos];
      const float* z = w.z + pos * w.rp;
      const int64_t yoff = row * p.y.row_stride + p.y_offset, ooff = row * p.out.row_stride + p.y_offset;
      int64_t n = nb;
      for (; n + kL <= ne; n += kL)
        StoreF<TY>(hn::MulAdd(hn::LoadU(d, z + n), scale, LoadF<TY>(p.y.base, yoff + n)), out, ooff + n);
      if (n < ne) {
        const VF v = hn::MulAdd(LoadTailF<DType::f32>(z, n, ne - n), scale, LoadTailF<TY>(p.y.base, yoff + n, ne - n));
        StoreTailF<TY>(v, out, ooff + n, ne - n);
      }
    }
  });
}

