// The shrink phase, part of simd_kernels.cc: included inside its per-target namespace once
// per Highway target (hence no include guard).  Uses that file's loads.
// NOLINT(build/header_guard)
//
// ---- shrink: zpart[k][pos][r] = sum over h in K chunk k of x[row, h] * A[adapter, r, h] ------
// fp32 products and FMA sums in register blocks of 6 rows x 4 ranks (8 x 3 for tasks of 7-8
// rows, kTallRows); every kSegCols columns
// (kChain products per lane, counted from the start of the K chunk) each accumulator is
// reduced and folded into an fp64 sum (work.h, the accumulator policy).  A is widened as it
// streams (each A vector serves every row of the block; tasks of many rows keep what their first
// row block widened, kKeepA).  16-bit x is widened the same way in
// ND tasks of several rows (ShrinkStepsNd) and tasks of many rows over few ranks
// (kConvertXRanks); the decode and FRACTAL_NZ paths first widen the rows' x chunk to fp32 in a
// stack buffer, once per row block (but two decode rows in address order read theirs as TX).
// On AVX-512, tasks of many rows over ranks in whole 64-rank panels take the outer-product
// form instead (shrink_outer-inl.h, ShrinkOuterTask; Shrink below).

#if HWY_TARGET == HWY_AVX3
}  // namespace addlora::kernels::HWY_NAMESPACE (declarations of the bf16 dot-product shrink)
#include "kernels/shrink_bf16.h"  // NOLINT(build/include)
namespace addlora::kernels::HWY_NAMESPACE {
#endif

constexpr int kShrinkRanks = 4;  // ranks per register block (FRACTAL_NZ one-row blocks: kNzRowRanks)
constexpr int kNzRowRanks = 16;  // one NZ fractal row: 16 ranks of a 16-column chunk are contiguous
// ND tasks of at most kFewRows rows stream A internal::kFewRowsRanks rows at a time (work.h;
// two rows: 2 x 8 accumulators plus 8 A vectors, only with 32 vector registers).
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr int kFewRows = 1;
#else
constexpr int kFewRows = 2;
#endif
using internal::kFewRowsAhead;
using internal::kFewRowsRanks;
constexpr int64_t kXBuf = 4096;  // widest K chunk that takes the pre-widened path (dispatch.cc kWholeRow)
// Tasks of more than kConvertXMinRows rows (split-K: rank-split groups are smaller) over at
// most kConvertXRanks ranks read 16-bit x in the FMA loop instead of widening it first.
constexpr int64_t kConvertXRanks = 32;
constexpr int64_t kConvertXMinRows = 12;
// And ND tasks of more than kFewRows rows, except on the portable targets (which convert fp16
// lane by lane): ShrinkTask.
constexpr bool kConvertXInLoop = HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128;
// FRACTAL_NZ traversal (ForEachShrinkBlock, ShrinkOneRowNz): ranks per group, columns per
// panel, and how far ahead (columns) the first row block prefetches; chosen by measurement
// (bench/features_bench NZ rows; 128- and 512-column panels and 2-panel distances were slower).
constexpr int64_t kNzGroupRanks = 128;
constexpr int64_t kNzPanel = 256;
constexpr int64_t kNzAhead = 256;

constexpr int kShrinkRows = 6;  // rows per register block
// An ND task of 7 or 8 rows (converting x in the loop) runs as one block of kTallRows rows by
// kTallRanks ranks, so that A streams once for all its rows: as 6 + 2 rows, the second block
// re-read A after the first had waited on DRAM, and the FMAs of the two did not overlap the
// stream (bench/notes.md).  Only with 32 vector registers (AVX-512, where it was measured).
// Over 3k + 1 ranks the last four take two blocks of kTallRows x 2 (block, in ShrinkTask).
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr int kTallRows = 0;
#else
constexpr int kTallRows = 8;
#endif
constexpr int kTallRanks = 3;
// Fewest ranks over which an 8-row block copies x into padded rows (ShrinkTask): the copy is a
// pass over x before any FMA, which fewer ranks did not repay (bench/notes.md).
constexpr int64_t kPadXMinRanks = 64;
constexpr int kMaxBlockRows = kTallRows > kShrinkRows ? kTallRows : kShrinkRows;
// Tasks of at least kKeepAMinRows rows over 16-bit ND A keep the A their first row block widens
// (ShrinkTask), when it takes at most kKeepAMaxBytes as fp32 (R=64 over a 4096-column K chunk;
// about L2's size); AVX-512 only, where it was measured.
constexpr bool kKeepA = HWY_TARGET == HWY_AVX3;
constexpr int64_t kKeepAMinRows = 64;
constexpr size_t kKeepAMaxBytes = size_t{5} << 18;
// How one register block of the shrink starts and ends, and which A it prefetches as it goes
// (x prefetches are XAhead's).  Passed by reference and never copied after its fields are
// set: a whole-struct copy of freshly stored fields stalls on store forwarding (bench/notes.md).
struct BlockIo {
  using V = VF;
  // A rows to prefetch at the offsets the block reads from ar (the caller points them at the
  // next rank block, or NZ panels ahead), whenever (h & apf_mask) == 0 and h < apf_until;
  // one per rank of the block.
  const unsigned char* const* apf = nullptr;
  int64_t apf_mask = 0;
  int64_t apf_until = INT64_MAX;
  // ShrinkStepsNd: the apf prefetches stop at L2.  A whole rank block ahead, prefetched into L1
  // they evicted the block's own x and A (measured 10-25 % slower when A sat in L3; the same
  // from DRAM).
  bool apf_l2 = false;
  int apf_ranks = kNzRowRanks;  // how many of the apf rows exist (the next block may be short)
  // A contiguous run of A to prefetch, spread evenly over the block's steps (NZ panels ahead).
  const unsigned char* run = nullptr;
  int64_t run_bytes = 0;
  // NZ panels: resume these accumulators and fp64 totals instead of zeros, and/or store them
  // to `keep` instead of reducing them into out.  Laid out [kRows][kRanks] as acc below.  Each
  // lane then sums the same products in the same order, with the same folds, as one pass over
  // the whole K chunk would.
  const V* init = nullptr;
  const double* init_total = nullptr;
  V* keep = nullptr;
  double* keep_total = nullptr;
  // ND whole-vector blocks (ShrinkStepsNd): each A vector as widened to fp32 is also stored
  // at keep_a[j] + column, one row per rank of the block (ShrinkTask's kept A).
  float* const* keep_a = nullptr;
};

// A row of the next row block's x (its bytes at h0), prefetched a line per 64 bytes of
// progress: spreads those misses over the FMA loop instead of stalling on them later.  row2:
// a second row, the same way (fewer rank blocks than rows).  ShrinkStepsNd prefetches them into
// L2 (NdPrefetch), the general loop of ShrinkBlock into L1.
struct XAhead {
  const unsigned char* row = nullptr;
  const unsigned char* row2 = nullptr;
  int64_t esize = 2;
};

// Prefetches of ShrinkStepsNd, once per pair of steps: x_lines lines into L2 at x and at x2
// (null: none), both advancing x_esize bytes per column; and a_lines lines at each rank's A
// position moved by a_delta bytes for the first a_ranks ranks, while the column is below
// a_until (into L2 only if a_l2).
struct NdPrefetch {
  const unsigned char* x = nullptr;
  const unsigned char* x2 = nullptr;
  int64_t x_esize = 2;
  int64_t x_lines = 0;
  int64_t a_delta = 0;
  int64_t a_until = 0;
  int64_t a_lines = 0;
  bool a_l2 = false;  // A prefetches into L2 only (BlockIo::apf_l2)
  int a_ranks = 0;    // ranks whose A is prefetched (the first a_ranks of the block)
};

// A whole register block over ND A, columns [h, h_end) in whole vectors: x row i at xr[i],
// read as TX (column h at element h - xoff), rank j's A row at ar[j].  Each accumulator starts
// at zero and is folded into total (fp64, [kRows][kRanks], accumulated into; room for
// FoldRoom(kRows * kRanks)) at every fold boundary from seg0 and at the end, as ShrinkBlock
// folds (same bits); h - seg0 is a whole number of vectors.  Its own function so
// that it compiles to a loop of little more than loads and FMAs, one index for every row:
// ShrinkBlock's general loop recomputes FRACTAL_NZ offsets and tests each prefetch at every
// step, about as many scalar instructions as vector ones (bench/notes.md).
template <DType TX, DType TA, int kRows, int kRanks, bool kStoreA = false>
HWY_NOINLINE void ShrinkStepsNd(double* total, const unsigned char* const* xr, int64_t xoff, const unsigned char* const* ar,
                                int64_t seg0, int64_t h, int64_t h_end, const NdPrefetch& pf,
                                float* const* keep_a = nullptr) {
  using V = VF;
  const DF d;
  constexpr int64_t step = static_cast<int64_t>(kLanes);
  constexpr int kAccs = kRows * kRanks;
  const unsigned char* xp[kRows];  // at column h; t below counts columns from there
  const unsigned char* ap[kRanks];
  for (int i = 0; i < kRows; ++i) xp[i] = xr[i] + (h - xoff) * static_cast<int64_t>(ElemSize<TX>());
  for (int j = 0; j < kRanks; ++j) ap[j] = ar[j] + h * static_cast<int64_t>(ElemSize<TA>());
  V r[kRows][kRanks];
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < kRanks; ++j) r[i][j] = hn::Zero(d);
  float* kp[kRanks];  // kStoreA: where column h goes for each rank
  if constexpr (kStoreA)
    for (int j = 0; j < kRanks; ++j) kp[j] = keep_a[j] + h;
  auto one = [&](int64_t t) {
    V av[kRanks];
    for (int j = 0; j < kRanks; ++j) av[j] = LoadF<TA>(ap[j], t);
    if constexpr (kStoreA)
      for (int j = 0; j < kRanks; ++j) hn::StoreU(av[j], d, kp[j] + t);
    for (int i = 0; i < kRows; ++i) {
      const V xv = LoadF<TX>(xp[i], t);
      for (int j = 0; j < kRanks; ++j) r[i][j] = hn::MulAdd(xv, av[j], r[i][j]);
    }
  };
  auto fold = [&] {
    FoldAccs<kAccs>([&](int n) { return r[n / kRanks][n % kRanks]; }, total);
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kRanks; ++j) r[i][j] = hn::Zero(d);
  };
  const unsigned char* px = pf.x;
  const unsigned char* px2 = pf.x2;
  const int64_t x_lines = pf.x_lines, a_lines = pf.a_lines, a_delta = pf.a_delta;
  const int64_t x_bytes = 2 * step * pf.x_esize, aes = static_cast<int64_t>(ElemSize<TA>());
  const int64_t t_end = h_end - h, t_apf = pf.a_until - h;  // prefetch A while t < t_apf
  const bool a_l2 = pf.a_l2;
  const int a_ranks = std::min(kRanks, pf.a_ranks);
  for (int64_t t = 0; t < t_end;) {
    const int64_t te = std::min(t_end, NextFold(seg0, h + t) - h);
    for (; t + 2 * step <= te; t += 2 * step) {
      if (px) {
        for (int64_t l = 0; l < x_lines; ++l) {  // into L2: in L1 they would evict the block's own x and A
          PrefetchL2(px + 64 * l);
          if (px2) PrefetchL2(px2 + 64 * l);
        }
        px += x_bytes;
        if (px2) px2 += x_bytes;
      }
      if (t < t_apf)
        for (int j = 0; j < a_ranks; ++j)
          for (int64_t l = 0; l < a_lines; ++l) {
            const unsigned char* q = ap[j] + t * aes + a_delta + 64 * l;
            if (a_l2) PrefetchL2(q);
            else hwy::Prefetch(q);
          }
      one(t);
      one(t + step);
    }
    if (t < te) {  // an odd step
      one(t);
      t += step;
    }
    fold();  // a whole segment, or the end of the block
  }
}

// out[i][j] = sum over h in [h0, h1) of x_i[h - xoff] * A row j, folded every kSegCols columns
// from seg0 (the K chunk's first column).  kXWide: the x rows are buffers already widened to
// fp32 (zero padded to a whole vector); else x is read as TX.  nz: A is FRACTAL_NZ, so rank j
// of the block lies 16 elements after rank j - 1 in every chunk.  io: A prefetches and NZ
// panel state; xa: a row (or two) of the next row block's x to prefetch.  One function on
// purpose (~100 lines): the accumulators must stay in registers across the whole segment loop.
template <DType TX, DType TA, int kRows, int kRanks, bool kXWide>
HWY_INLINE void ShrinkBlock(const unsigned char* const* xr, int64_t xoff, const unsigned char* const* ar,
                            int64_t a_chunk_step, bool nz, int64_t seg0, int64_t h0, int64_t h1, double* const* out,
                            int rows_valid, int ranks_valid, const BlockIo& io, const XAhead& xa = XAhead()) {
  using V = VF;
  const DF d;
  constexpr int64_t step = static_cast<int64_t>(kLanes);
  const int64_t pf_mask = 64 / xa.esize - 1;
  auto load_x = [&](int i, int64_t h) {
    if constexpr (kXWide) return hn::LoadU(d, reinterpret_cast<const float*>(xr[i]) + (h - xoff));
    else return LoadF<TX>(xr[i], h - xoff);
  };
  const unsigned char* run = io.run;
  const unsigned char* const run_end = io.run + io.run_bytes;
  const int64_t run_lines = (io.run_bytes + 63) / 64, steps = std::max<int64_t>(1, (h1 - h0) / step);
  const int64_t run_step = (run_lines + steps - 1) / steps * 64;  // bytes per step, whole lines
  // The prefetches due at column h, ahead of `nsteps` vector steps of work (see BlockIo, XAhead).
  auto prefetch_ahead = [&](int64_t h, int64_t nsteps) {
    if (xa.row && ((h - h0) & pf_mask) == 0) {
      hwy::Prefetch(xa.row + (h - h0) * xa.esize);
      if (xa.row2) hwy::Prefetch(xa.row2 + (h - h0) * xa.esize);
    }
    if (run < run_end) {
      const int64_t n = std::min<int64_t>(run_step * nsteps, run_end - run);
      for (int64_t b = 0; b < n; b += 64) hwy::Prefetch(run + b);
      run += n;
    }
    if (io.apf && (h & io.apf_mask) == 0 && h < io.apf_until) {
      const int64_t off = ((h >> 4) * a_chunk_step + (h & 15)) * static_cast<int64_t>(ElemSize<TA>());
      for (int j = 0; j < kRanks; ++j) {
        if (io.apf_l2) PrefetchL2(io.apf[j] + off);
        else hwy::Prefetch(io.apf[j] + off);
      }
    }
  };
  constexpr int kAccs = kRows * kRanks;
  V acc[kRows][kRanks];
  HWY_ALIGN double total[FoldRoom(kAccs)];  // [kRows][kRanks], as acc
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < kRanks; ++j) acc[i][j] = io.init ? io.init[i * kRanks + j] : hn::Zero(d);
  for (int n = 0; n < FoldRoom(kAccs); ++n) total[n] = 0.0;
  if (io.init_total) std::copy(io.init_total, io.init_total + kAccs, total);
  auto fold = [&] {  // every accumulator into its total; the chains restart
    FoldAccs<kAccs>([&](int n) { return acc[n / kRanks][n % kRanks]; }, total);
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kRanks; ++j) acc[i][j] = hn::Zero(d);
  };
  // ND A, whole vectors from a fold-aligned start, no vector accumulators carried in or out:
  // ShrinkStepsNd runs it.  Not the decode blocks (kFewRowsRanks wide, one or two rows,
  // streaming A from DRAM): there the general loop's prefetch, one per step every 64 bytes,
  // measured 7-20 % faster.  Nor the FRACTAL_NZ one-row blocks (kNzRowRanks wide).
  constexpr bool kNdSteps = kRanks != kFewRowsRanks && kRanks != kNzRowRanks;
  const bool nd_steps = kNdSteps && !nz && (h1 - h0) % step == 0 && (h0 - seg0) % step == 0 && !io.init && !io.keep;
  if constexpr (kNdSteps) {
   if (nd_steps) {
    const int64_t aes = static_cast<int64_t>(ElemSize<TA>());
    NdPrefetch pf;
    if (xa.row) {
      pf.x = xa.row;
      pf.x2 = xa.row2;
      pf.x_esize = xa.esize;
      pf.x_lines = std::max<int64_t>(1, 2 * step * xa.esize / 64);
    }
    if (io.apf) {  // each rank's prefetch is its own row moved by the same distance (apf_ranks of them)
      pf.a_delta = io.apf[0] - ar[0];
      pf.a_until = io.apf_until;
      pf.a_lines = std::max<int64_t>(1, 2 * step * aes / 64);
      pf.a_l2 = io.apf_l2;
      pf.a_ranks = io.apf_ranks;
    }
    // keep_a is only ever set where nd_steps holds (ShrinkTask's conditions for kept A), and
    // only 16-bit A read in place is kept: the storing loop exists for those blocks alone.
    bool stored = false;
    if constexpr (kKeepA && ElemSize<TA>() == 2 && !kXWide) {
      if (io.keep_a) {
        ShrinkStepsNd<TX, TA, kRows, kRanks, true>(total, xr, xoff, ar, seg0, h0, h1, pf, io.keep_a);
        stored = true;
      }
    }
    if (!stored) ShrinkStepsNd<TX, TA, kRows, kRanks>(total, xr, xoff, ar, seg0, h0, h1, pf);
   }
  }
  // Columns [hs, he), inside one fold segment.  hs is a multiple of 16 unless it is h0.
  for (int64_t hs = nd_steps ? h1 : h0; hs < h1;) {
    const int64_t next = NextFold(seg0, hs), he = std::min(h1, next);
    int64_t h = hs;
    const int64_t h_full = hs + ((he - hs) / step) * step;
    if (nz && ranks_valid == kRanks && (hs & 15) == 0) {
      // FRACTAL_NZ, whole chunks: the block's ranks are 16-element pieces side by side, so one
      // pointer per chunk and constant offsets address them all (per-rank pointers spilled
      // registers), and the prefetch bookkeeping runs once per chunk instead of once per vector.
      constexpr int64_t kPiece = 16 * static_cast<int64_t>(ElemSize<TA>());
      const int64_t cs = a_chunk_step * static_cast<int64_t>(ElemSize<TA>());
      const unsigned char* a = ar[0] + (hs >> 4) * cs;
      const int64_t h_chunks = hs + ((he - hs) / 16) * 16;
      for (; h < h_chunks; h += 16, a += cs) {
        prefetch_ahead(h, 16 / step);
        for (int64_t s = 0; s < 16; s += step) {
          V av[kRanks];
          for (int j = 0; j < kRanks; ++j) av[j] = LoadF<TA>(a + j * kPiece, s);
          for (int i = 0; i < kRows; ++i) {
            const V xv = load_x(i, h + s);
            for (int j = 0; j < kRanks; ++j) acc[i][j] = hn::MulAdd(xv, av[j], acc[i][j]);
          }
        }
      }
    }
    for (; h < h_full; h += step) {
      prefetch_ahead(h, 1);
      const int64_t aoff = (h >> 4) * a_chunk_step + (h & 15);
      V av[kRanks];
      for (int j = 0; j < kRanks; ++j) av[j] = LoadF<TA>(ar[j], aoff);
      for (int i = 0; i < kRows; ++i) {
        const V xv = load_x(i, h);
        for (int j = 0; j < kRanks; ++j) acc[i][j] = hn::MulAdd(xv, av[j], acc[i][j]);
      }
    }
    if (h_full < he) {  // ragged end of H1 (only the chunk's last span)
      const int64_t rem = he - h_full;
      const int64_t aoff = (h_full >> 4) * a_chunk_step + (h_full & 15);
      V av[kRanks];
      for (int j = 0; j < kRanks; ++j) av[j] = LoadTailF<TA>(ar[j], aoff, rem);
      for (int i = 0; i < kRows; ++i) {
        const V xv = kXWide ? load_x(i, h_full) : LoadTailF<TX>(xr[i], h_full - xoff, rem);
        for (int j = 0; j < kRanks; ++j) acc[i][j] = hn::MulAdd(xv, av[j], acc[i][j]);
      }
    }
    if (he == next) fold();  // a whole segment: kChain products per lane
    hs = he;
  }
  if (io.keep) {
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kRanks; ++j) {
        io.keep[i * kRanks + j] = acc[i][j];
        io.keep_total[i * kRanks + j] = total[i * kRanks + j];
      }
    return;
  }
  if (!nd_steps) fold();  // adds 0 if the last segment was whole and folded
  for (int i = 0; i < rows_valid; ++i)
    for (int j = 0; j < ranks_valid; ++j) out[i][j] = total[i * kRanks + j];
}

// One row over FRACTAL_NZ A, whole 16-column chunks (decode): walks A in address order, two
// chunks at a time with every rank of the group in each, so the reads form one sequential
// stream (the panel walk below reads each rank block's pieces a whole chunk apart -- for
// R=128 fp16, 512 bytes of every 4 KiB -- which measured 0.85-0.93x of ND when A sat in the
// L3).  Each rank's vector accumulator waits in a stack buffer between chunk pairs; each lane
// sums the same products in the same order, with the same folds, as ShrinkBlock, so the bits
// are the same.  x as in ShrinkBlock: kXWide, a row widened to fp32, else the row read as TX;
// column h at h - xoff.
template <DType TX, DType TA, bool kXWide>
HWY_NOINLINE void ShrinkOneRowNz(const WeightRows& A, const unsigned char* xr, int64_t xoff, int64_t h_begin,
                                 int64_t h_end, int64_t r_begin, int64_t r_end, double* out) {
  using V = VF;
  const DF d;
  constexpr int64_t kStep = static_cast<int64_t>(kLanes);
  static_assert(kStep <= 16 && 16 % kStep == 0, "a 16-column chunk must be whole vectors");
  constexpr int64_t kVecs = 16 / kStep;
  constexpr int64_t kPiece = 16 * static_cast<int64_t>(ElemSize<TA>());
  const int64_t cs = A.chunk_step * static_cast<int64_t>(ElemSize<TA>());
  const int64_t ahead = kNzAhead / 16;  // chunks ahead to prefetch
  auto load_x = [&](int64_t h) {
    if constexpr (kXWide) return hn::LoadU(d, reinterpret_cast<const float*>(xr) + (h - xoff));
    else return LoadF<TX>(xr, h - xoff);
  };
  for (int64_t g0 = r_begin; g0 < r_end; g0 += kNzGroupRanks) {
    const int64_t n = std::min<int64_t>(kNzGroupRanks, r_end - g0);
    // The ranks' accumulators folded kLanes at a time, as ShrinkBlock folds them (same bits):
    // n rounded up to whole groups, zeros past n.
    const int64_t n_folded = (n + static_cast<int64_t>(kLanes) - 1) / static_cast<int64_t>(kLanes) * static_cast<int64_t>(kLanes);
    HWY_ALIGN V acc[kNzGroupRanks];
    HWY_ALIGN double total[kNzGroupRanks];
    for (int64_t r = 0; r < n_folded; ++r) {
      acc[r] = hn::Zero(d);
      total[r] = 0;
    }
    auto fold_group = [&] {
      for (int64_t r = 0; r < n; r += static_cast<int64_t>(kLanes))
        FoldAccs<static_cast<int>(kLanes)>([&](int l) { return acc[r + l]; }, total + r);
      for (int64_t r = 0; r < n_folded; ++r) acc[r] = hn::Zero(d);
    };
    // kC (1, 2 or 4) chunks from column h at a, every rank of the group; pf[c]: prefetch the same
    // ranks `ahead` chunks on, a line per 64 bytes read (a burst would overflow the miss buffers).
    auto chunks = [&](auto kC, int64_t h, const unsigned char* a, const bool* pf) {
      constexpr int64_t C = decltype(kC)::value;
      V xv[C][kVecs];
      for (int64_t c = 0; c < C; ++c)
        for (int64_t s = 0; s < kVecs; ++s) xv[c][s] = load_x(h + 16 * c + s * kStep);
      for (int64_t r = 0; r < n; ++r) {
        if (((r * kPiece) & 63) == 0)
          for (int64_t c = 0; c < C; ++c)
            if (pf[c]) hwy::Prefetch(a + (ahead + c) * cs + r * kPiece);
        V v = acc[r];
        for (int64_t c = 0; c < C; ++c)
          for (int64_t s = 0; s < kVecs; ++s)
            v = hn::MulAdd(xv[c][s], LoadF<TA>(a + c * cs + r * kPiece, s * kStep), v);
        acc[r] = v;
      }
    };
    const unsigned char* a = A.base + g0 * kPiece + (h_begin >> 4) * cs;
    int64_t h = h_begin;
    // kC chunks per visit of each rank's accumulator (one load and one store of it per visit):
    // 4 measured faster than 2 above 16 ranks and slower at 16 (bench/notes.md).  Fold
    // segments are whole visits (kSegCols is a multiple of 64 columns); the shorter visits
    // take what is left.
    auto walk = [&](auto kC) {
      constexpr int64_t C = decltype(kC)::value;
      for (; h + 16 * C <= h_end; h += 16 * C, a += C * cs) {
        bool pf[C];
        for (int64_t c = 0; c < C; ++c) pf[c] = h + (ahead + 1 + c) * 16 <= h_end;  // inside A's range
        chunks(kC, h, a, pf);
        if ((h + 16 * C - h_begin) % kSegCols == 0) fold_group();  // a whole fold segment
      }
    };
    if (n > 16) walk(std::integral_constant<int64_t, 4>());
    walk(std::integral_constant<int64_t, 2>());
    walk(std::integral_constant<int64_t, 1>());
    fold_group();
    for (int64_t r = 0; r < n; ++r) out[g0 + r] = total[r];
  }
}

#include "kernels/shrink_row_nd-inl.h"  // NOLINT(build/include)

// Calls block(r0, h0, h1, io) for every rank block r0 (block_ranks ranks) of [r_begin, r_end)
// over [h_begin, h_end), in the order that suits A's layout, with A prefetches set in io.
// first_row_block: this row block brings A from DRAM and prefetches (later ones find A in the
// cache; an ND task of kFewRows rows or fewer passes false and prefetches its A rows itself,
// a short way ahead: ShrinkTask).
// kStashVecs: accumulators of one kShrinkRanks-wide block (a wider block uses several slots).
template <int kStashVecs, class Block>
HWY_INLINE void ForEachShrinkBlock(const WeightRows& A, bool nz, bool first_row_block,
                                   int64_t block_ranks, int64_t r_begin, int64_t r_end, int64_t h_begin,
                                   int64_t h_end, Block& block) {
  const int64_t aes = A.esize;
  if (nz && first_row_block) {
    // FRACTAL_NZ: a rank row is 16-element pieces a whole block apart, so walking it row by
    // row (as for ND) touches one small piece per block and defeats the hardware prefetchers.
    // Instead, for each group of kNzGroupRanks ranks (all of them for R <= 128), walk panels of
    // kNzPanel columns and run every rank block of the group over the panel: the panel is
    // then read as a whole (for R <= 128 one contiguous run), and prefetched as one.  The
    // accumulators wait in `stash` between panels.  Later row blocks find the task's slice of
    // A in L2 and take the ND order below (whole K per rank block, no stash): measured faster.
    HWY_ALIGN VF stash[kNzGroupRanks / kShrinkRanks * kStashVecs];
    double stash_total[kNzGroupRanks / kShrinkRanks * kStashVecs];
    for (int64_t g0 = r_begin; g0 < r_end; g0 += kNzGroupRanks) {
      const int64_t g1 = std::min<int64_t>(r_end, g0 + kNzGroupRanks);
      const bool whole = g0 == 0 && g1 * 16 >= A.chunk_step;  // the group holds every rank of a block
      const int64_t nrb = (g1 - g0 + block_ranks - 1) / block_ranks;
      const int64_t ahead = (kNzAhead / 16) * A.chunk_step * aes;  // bytes
      for (int64_t hp = h_begin; hp < h_end; hp += kNzPanel) {
        const int64_t hq = std::min<int64_t>(h_end, hp + kNzPanel);
        // Whole group: the columns kNzAhead ahead are one contiguous run; each rank block
        // prefetches its share, spread over its steps (a burst would overflow the miss
        // buffers and stall).
        const int64_t hn = hp + kNzAhead;
        const int64_t bytes = whole && hn < h_end ? ((std::min(h_end, hn + (hq - hp)) - hn + 15) / 16) * A.chunk_step * aes : 0;
        const int64_t share = (bytes / nrb + 63) & ~int64_t{63};
        const unsigned char* next = A.base + (hn / 16) * A.chunk_step * aes;
        for (int64_t r0 = g0, rb = 0; r0 < g1; r0 += block_ranks, ++rb) {
          BlockIo io;
          const int64_t slot = (r0 - g0) / kShrinkRanks * kStashVecs;
          io.init = hp > h_begin ? stash + slot : nullptr;
          io.init_total = hp > h_begin ? stash_total + slot : nullptr;
          io.keep = hq < h_end ? stash + slot : nullptr;
          io.keep_total = hq < h_end ? stash_total + slot : nullptr;
          const unsigned char* apf[kNzRowRanks];
          if (bytes > 0) {
            io.run = next + std::min(bytes, rb * share);
            io.run_bytes = std::min(bytes, (rb + 1) * share) - std::min(bytes, rb * share);
          } else if (!whole) {  // the same rank rows ahead, a piece per 16-column chunk
            for (int64_t j = 0; j < block_ranks; ++j)
              apf[j] = A.base + std::min<int64_t>(r0 + j, g1 - 1) * A.row_step * aes + ahead;
            io.apf = apf;
            io.apf_mask = 15;
            io.apf_until = h_end - kNzAhead;
          }
          block(r0, hp, hq, io);
        }
      }
    }
    return;
  }
  for (int64_t r0 = r_begin; r0 < r_end; r0 += block_ranks) {
    BlockIo io;
    // The first row block prefetches the next rank block's rows as it goes, a line per 64
    // bytes of progress.  (A burst of them before each block, tried for the rank split, was
    // up to 30 % slower: it overflows the miss buffers.)
    const unsigned char* apf[kNzRowRanks];
    if (first_row_block && r0 + block_ranks < r_end) {
      for (int64_t j = 0; j < block_ranks; ++j)
        apf[j] = A.base + std::min<int64_t>(r0 + block_ranks + j, r_end - 1) * A.row_step * aes;
      io.apf = apf;
      io.apf_mask = 64 / aes - 1;
      io.apf_l2 = true;
      io.apf_ranks = static_cast<int>(std::min<int64_t>(block_ranks, r_end - r0 - block_ranks));
    }
    block(r0, h_begin, h_end, io);
  }
}

// One shrink task: rows order[pos_begin, pos_end) of one adapter, K chunk k (or rank group k).
// (~150 lines: most of it is the table that picks one ShrinkBlock instantiation per block.)
template <DType TX, DType TA>
void ShrinkTask(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t k) {
  constexpr int kRows = kShrinkRows;
  const Problem& p = *w.p;
  const WeightRows A = Rows(p.a, p.R, adapter);
  const bool nz = p.a.layout == Layout::fractal_nz;
  const int64_t rows = pos_end - pos_begin;
  // One or two rows of 16-bit x over ND A and columns of whole fold segments (decode): A read
  // in address order by ShrinkRowsNd below (shrink_row_nd-inl.h); such tiles take widen_x.
  static_assert(kConvertXMinRows >= 2, "such tiles take widen_x (small_ranks never applies to them)");
  auto rows_nd = [&](int64_t cols) {
    return kLanes >= 4 && !nz && TX != DType::f32 && rows <= 2 && !(kConvertXInLoop && rows > kFewRows) && cols <= kXBuf &&
           cols % kSegCols == 0 && cols >= 2 * kSegCols;
  };
  // Such a tile under split-K takes ranks instead: task k, its share of the adapter's ranks
  // over every chunk, each chunk's sums going to that chunk's plane, so that A streams whole
  // rows in address order (chunk by chunk, each row's piece is a page of its own a row apart,
  // a pattern that streamed much slower from DRAM; bench/notes.md).  The same sums as the
  // chunk tasks, in the same order.
  const bool by_ranks = !w.rank_split && w.nk > 1 && w.kc % kSegCols == 0 && rows_nd(p.H1);
  // Split-K task: all ranks over K chunk k.  Rank-split task (small groups): ranks
  // [k * rank_group, ...) over all of H1, so each A row streams as one long run.
  const bool all_h = w.rank_split || by_ranks;
  const int64_t h_begin = all_h ? 0 : k * w.kc;
  const int64_t h_end = all_h ? p.H1 : std::min<int64_t>(p.H1, h_begin + w.kc);
  // Only the adapter's own ranks (Problem::ranks): A rows past them are never read (A is still
  // addressed with the full R above: NZ chunk pitch).  The combine zeroes the rest of z.
  const int64_t rank = detail::rank_of(p, adapter);
  const int64_t share = w.rank_split ? w.rank_group : (rank + w.nk - 1) / w.nk;
  const int64_t r_begin = all_h ? k * share : 0;
  const int64_t r_end = all_h ? std::min<int64_t>(rank, r_begin + share) : rank;
  if (r_begin >= r_end) return;
  if (all_h) k = 0;
  const int64_t len = h_end - h_begin;
  // Few rank blocks per row block (small ranks, many rows): converting x in each of them costs
  // less than widening the rows once into xf (the same products in the same order).
  const bool small_ranks = r_end - r_begin <= kConvertXRanks && pos_end - pos_begin > kConvertXMinRows;
  // ND tasks of more than kFewRows rows convert 16-bit x in the FMA loop too (ShrinkStepsNd):
  // half the bytes of a widened row through L1, which limited the loop, and no widening pass.
  const bool convert_x = kConvertXInLoop && !nz && pos_end - pos_begin > kFewRows;
  const bool widen_x = TX != DType::f32 && len <= kXBuf && !small_ranks && !convert_x;
  // Row blocks prefetch the next row block's x when it is 16-bit, widened first or converted in
  // the loop (measured there; fp32 x was not).
  const bool x_ahead = TX != DType::f32 && (widen_x || convert_x);
  const int64_t xes = ElemSize<TX>(), aes = ElemSize<TA>();
  const unsigned char* xbase = static_cast<const unsigned char*>(p.x.base);
  double* zk = w.zpart + k * w.B * w.rp;
  HWY_ALIGN float xf[kRows][kXBuf];  // x rows widened once per row block: 96 KiB

  const bool tall = kTallRows > 0 && convert_x && pos_end - pos_begin > kRows && pos_end - pos_begin <= kTallRows;
  const int height = tall ? kTallRows : kRows;  // rows per row block
  // An 8-row block whose x rows lie a multiple of 4 KiB apart reads them, at every column, in
  // one L1 set, beside its A rows and their prefetches: more lines than the set's ways, which
  // evict each other (bench/notes.md).  Over enough ranks their columns are copied first into
  // rows a line more than their length apart (xf's storage, unused by tall blocks; six-row
  // blocks gained nothing from such a copy).
  const bool pad_x = tall && ElemSize<TX>() == 2 && r_end - r_begin >= kPadXMinRanks && len <= kXBuf &&
                     (p.x.row_stride * xes) % 4096 == 0;
  // Many rows over 16-bit ND A (kKeepA): the first row block stores every A vector it widens
  // into `kept` (rows kept_pitch floats apart), and the later row blocks read A there as fp32,
  // so that their loop converts only x, if anything (measured faster, bench/notes.md).  The same products in
  // the same order: the same bits.  Widened as the first block streams A, so no separate pass
  // waits on DRAM.  Whole vectors from column 0 and rank 0, so every block of the task takes
  // ShrinkStepsNd (which does the storing) and the buffer is addressed like ND A.
  const int64_t kept_pitch = len + 16;  // a line more than a row: rows fall in different L1 sets
  float* kept = nullptr;
  if constexpr (kKeepA && ElemSize<TA>() == 2) {
    const size_t bytes = static_cast<size_t>(r_end * kept_pitch) * sizeof(float);
    if (!nz && convert_x && !tall && rows >= kKeepAMinRows && h_begin == 0 && r_begin == 0 &&
        len % static_cast<int64_t>(kLanes) == 0 && bytes <= kKeepAMaxBytes)
      kept = static_cast<float*>(internal::thread_scratch(bytes));
  }
  for (int64_t pos0 = pos_begin; pos0 < pos_end; pos0 += height) {
    const int rows_valid = static_cast<int>(std::min<int64_t>(height, pos_end - pos0));
    // Short blocks repeat their last row; those results are not stored.
    const unsigned char* xr[kMaxBlockRows];
    for (int i = 0; i < kMaxBlockRows; ++i) xr[i] = xbase + w.order[pos0 + std::min(i, rows_valid - 1)] * p.x.row_stride * xes;
    if (!widen_x)
      PrefetchRunHeads(xbase, w.order, p.x.row_stride * xes, pos0 + height,
                       std::min<int64_t>(pos_end, pos0 + 2 * height), h_begin * xes, h_end * xes);
    int64_t xoff = 0;  // column h of x at h - xoff
    if (pad_x) {
      const int64_t bytes = len * xes, pitch = (bytes + 63) / 64 * 64 + 64;
      static_assert(kTallRows * (kXBuf * 2 + 128) <= kRows * kXBuf * 4, "xf holds 8 padded 16-bit rows");
      unsigned char* buf = reinterpret_cast<unsigned char*>(xf);
      for (int i = 0; i < rows_valid; ++i) {
        std::memcpy(buf + i * pitch, xr[i] + h_begin * xes, static_cast<size_t>(bytes));
        xr[i] = buf + i * pitch;
      }
      for (int i = rows_valid; i < kMaxBlockRows; ++i) xr[i] = xr[rows_valid - 1];
      xoff = h_begin;
    }
    // Two rows in address order read the caller's 16-bit rows (ShrinkRowsNd), not widened ones,
    // where the target converts 16-bit vectors (the portable targets convert lane by lane).
    constexpr bool kTwoRows16 = kConvertXInLoop && kFewRows >= 2 && TX != DType::f32;
    const bool two_rows_nd = kTwoRows16 && rows == 2 && rows_nd(len);
    if (widen_x && !two_rows_nd) {
      for (int i = 0; i < rows_valid; ++i) {
        for (int64_t h = 0; h < len; h += static_cast<int64_t>(kLanes))
          hn::Store(LoadUpToF<TX>(xr[i], h_begin + h, len - h), DF(), &xf[i][h]);
        xr[i] = reinterpret_cast<const unsigned char*>(xf[i]);
      }
      for (int i = rows_valid; i < kRows; ++i) xr[i] = xr[rows_valid - 1];
    }
    double* out[kMaxBlockRows];
    for (int i = 0; i < kMaxBlockRows; ++i) out[i] = zk + (pos0 + i) * w.rp;
    // One row over FRACTAL_NZ A in whole chunks (decode): one sequential stream.
    if (nz && pos_end - pos_begin == 1 && (len & 15) == 0) {
      if (widen_x) ShrinkOneRowNz<DType::f32, TA, true>(A, xr[0], h_begin, h_begin, h_end, r_begin, r_end, out[0]);
      else ShrinkOneRowNz<TX, TA, false>(A, xr[0], 0, h_begin, h_end, r_begin, r_end, out[0]);
      continue;
    }
    // One or two rows over ND A, whole fold segments (decode, multi-adapter decode; 16-bit x,
    // widened above unless two_rows_nd): A in address order (shrink_row_nd-inl.h).
    if constexpr (kLanes >= 4) {
      if (widen_x && rows_nd(len)) {
        const int64_t plane_segs = by_ranks ? w.kc / kSegCols : 0, plane_pitch = w.B * w.rp;
        if constexpr (kTwoRows16) {
          if (two_rows_nd) {
            const unsigned char* x16[2];
            for (int r = 0; r < 2; ++r) x16[r] = xbase + (w.order[pos0 + r] * p.x.row_stride + h_begin) * xes;
            ShrinkRowsNd<TX, TA, 2>(A, x16, h_begin, h_end, r_begin, r_end, out, plane_segs, plane_pitch);
            continue;
          }
        }
        if (rows == 2) ShrinkRowsNd<DType::f32, TA, 2>(A, xr, h_begin, h_end, r_begin, r_end, out, plane_segs, plane_pitch);
        else ShrinkRowsNd<DType::f32, TA, 1>(A, xr, h_begin, h_end, r_begin, r_end, out, plane_segs, plane_pitch);
        continue;
      }
    }
    // A single row over FRACTAL_NZ weights with a ragged end of H1 (else ShrinkOneRowNz above)
    // takes whole NZ fractal rows (16 ranks, one contiguous piece per chunk): 4x fewer blocks
    // per panel, each with 4x the work.  Other tasks of one or two rows over ND weights (fp32
    // x, ragged fold segments) stream kFewRowsRanks A rows at a time, each prefetched a short
    // way ahead (bench/notes.md).
    const bool few_rows_nd = !nz && widen_x && pos_end - pos_begin <= kFewRows;
    const int64_t block_ranks = nz && widen_x && rows_valid == 1 ? kNzRowRanks
                                : few_rows_nd                     ? kFewRowsRanks
                                : tall                            ? kTallRanks
                                                                  : kShrinkRanks;
    // One register block: ranks [r0, r0 + block_ranks) over h in [h0, h1).  Rank block rb
    // prefetches row rb of the next row block's x (one row per rank block).
    auto block = [&](int64_t r0, int64_t h0, int64_t h1, const BlockIo& io) {
      const int ranks_valid = static_cast<int>(std::min<int64_t>(block_ranks, r_end - r0));
      const unsigned char* ar[kNzRowRanks];
      for (int j = 0; j < block_ranks; ++j) ar[j] = A.base + (r0 + std::min(j, ranks_valid - 1)) * A.row_step * aes;
      double* o[kMaxBlockRows];
      for (int i = 0; i < kMaxBlockRows; ++i) o[i] = out[i] + r0;
      // Rank block rb prefetches row rb of the next row block, and row rb + nrb too when there
      // are fewer rank blocks than rows (R=16: 4 rank blocks for 6 rows); 16-bit x only.
      const int64_t rb = (r0 - r_begin) / block_ranks, nrb = (r_end - r_begin + block_ranks - 1) / block_ranks;
      auto next_x = [&](int64_t i) {
        return x_ahead && i < kRows && pos0 + height + i < pos_end ? xbase + (w.order[pos0 + height + i] * p.x.row_stride + h0) * xes
                                                                   : nullptr;
      };
      XAhead xa;
      xa.row = next_x(rb);
      xa.row2 = xa.row && nrb < kRows ? next_x(rb + nrb) : nullptr;
      xa.esize = xes;
      constexpr int R4 = kShrinkRanks;
      // Few rows over ND A (a default io: never the first row block, never NZ): each of the
      // block's rows prefetched kFewRowsAhead bytes on.
      const unsigned char* apf[kFewRowsRanks];
      BlockIo few;
      if (block_ranks == kFewRowsRanks && h1 - h0 > kFewRowsAhead / aes) {  // else none is due (apf_until)
        for (int j = 0; j < kFewRowsRanks; ++j) apf[j] = ar[j] + kFewRowsAhead;
        few.apf = apf;
        few.apf_mask = 64 / aes - 1;
        few.apf_until = h1 - kFewRowsAhead / aes;
      }
      // Blocks reading x as TX: A as the tag's dtype from a[] (chunk step cs, FRACTAL_NZ if a_nz).
      auto x_as_read = [&](auto ta, const unsigned char* const* a, int64_t cs, bool a_nz, const BlockIo& bio) {
        constexpr DType T = decltype(ta)::value;
        if (rows_valid == 1) return ShrinkBlock<TX, T, 1, R4, false>(xr, 0, a, cs, a_nz, h_begin, h0, h1, o, 1, ranks_valid, bio);
        if (rows_valid <= kRows / 2)  // a task's short last block: half the FMAs
          return ShrinkBlock<TX, T, kRows / 2, R4, false>(xr, 0, a, cs, a_nz, h_begin, h0, h1, o, rows_valid, ranks_valid, bio);
        if (rows_valid == 4)  // 16 rows as 6 + 6 + 4
          return ShrinkBlock<TX, T, 4, R4, false>(xr, 0, a, cs, a_nz, h_begin, h0, h1, o, 4, ranks_valid, bio);
        return ShrinkBlock<TX, T, kRows, R4, false>(xr, 0, a, cs, a_nz, h_begin, h0, h1, o, rows_valid, ranks_valid, bio, xa);
      };
      if constexpr (kKeepA && ElemSize<TA>() == 2) {
        if (kept) {
          auto kept_row = [&](int j) { return kept + (r0 + std::min(j, ranks_valid - 1)) * kept_pitch; };
          if (pos0 == pos_begin) {  // a whole block (rows >= kKeepAMinRows): stores A as it widens it
            float* keep_a[R4];
            for (int j = 0; j < R4; ++j) keep_a[j] = kept_row(j);
            BlockIo first = io;  // once per rank block of the task's first row block
            first.keep_a = keep_a;
            return x_as_read(std::integral_constant<DType, TA>(), ar, A.chunk_step, nz, first);
          }
          const unsigned char* ka[R4];
          for (int j = 0; j < R4; ++j) ka[j] = reinterpret_cast<const unsigned char*>(kept_row(j));
          return x_as_read(std::integral_constant<DType, DType::f32>(), ka, 16, false, io);
        }
      }
      // Pre-widened x rows are read as fp32 whatever TX was (one instantiation for all TX).
      // A single row (decode) takes the 1-row kernel: no duplicated rows' FMAs.
      if constexpr (kTallRows > 0) {
        if (tall && (r_end - r_begin) % kTallRanks == 1 && r_end - r_begin > kTallRanks) {
          // A task of 3k + 1 ranks (e.g. R = 16 or 64, or rank groups of 16): the last four as
          // two blocks of 2, not 3 and a lone rank computed as 3 (fewer FMAs; every sum is its
          // own chain, so the same bits).  The first takes io's prefetches (the lone rank's row,
          // apf_ranks = 1); the second has none due.
          if (r_end - r0 == 1) return;
          if (r_end - r0 == 4) {
            const unsigned char* ar2[2] = {ar[2], A.base + (r0 + 3) * A.row_step * aes};
            double* o2[kMaxBlockRows];
            for (int i = 0; i < kMaxBlockRows; ++i) o2[i] = o[i] + 2;
            ShrinkBlock<TX, TA, kTallRows, 2, false>(xr, xoff, ar, A.chunk_step, nz, h_begin, h0, h1, o, rows_valid, 2, io);
            const BlockIo none;
            return ShrinkBlock<TX, TA, kTallRows, 2, false>(xr, xoff, ar2, A.chunk_step, nz, h_begin, h0, h1, o2, rows_valid, 2, none);
          }
        }
        if (tall) return ShrinkBlock<TX, TA, kTallRows, kTallRanks, false>(xr, xoff, ar, A.chunk_step, nz, h_begin, h0, h1, o, rows_valid,
                                                                           ranks_valid, io);
      }
      if (block_ranks == kFewRowsRanks && rows_valid == 2)
        ShrinkBlock<DType::f32, TA, 2, kFewRowsRanks, true>(xr, h_begin, ar, A.chunk_step, nz, h_begin, h0, h1, o, 2, ranks_valid, few);
      else if (block_ranks == kFewRowsRanks)
        ShrinkBlock<DType::f32, TA, 1, kFewRowsRanks, true>(xr, h_begin, ar, A.chunk_step, nz, h_begin, h0, h1, o, 1, ranks_valid, few);
      else if (block_ranks == kNzRowRanks)
        ShrinkBlock<DType::f32, TA, 1, kNzRowRanks, true>(xr, h_begin, ar, A.chunk_step, nz, h_begin, h0, h1, o, 1, ranks_valid, io);
      else if (widen_x && rows_valid == 1)
        ShrinkBlock<DType::f32, TA, 1, R4, true>(xr, h_begin, ar, A.chunk_step, nz, h_begin, h0, h1, o, 1, ranks_valid, io);
      else if (widen_x && rows_valid == 4)  // 16 rows as 6 + 6 + 4, not three full blocks
        ShrinkBlock<DType::f32, TA, 4, R4, true>(xr, h_begin, ar, A.chunk_step, nz, h_begin, h0, h1, o, 4, ranks_valid, io);
      else if (widen_x && rows_valid <= kRows / 2)  // short last block: half the FMAs
        ShrinkBlock<DType::f32, TA, kRows / 2, R4, true>(xr, h_begin, ar, A.chunk_step, nz, h_begin, h0, h1, o, rows_valid,
                                                    ranks_valid, io);
      else if (widen_x)
        ShrinkBlock<DType::f32, TA, kRows, R4, true>(xr, h_begin, ar, A.chunk_step, nz, h_begin, h0, h1, o, rows_valid, ranks_valid,
                                                io, xa);
      else
        x_as_read(std::integral_constant<DType, TA>(), ar, A.chunk_step, nz, io);
    };
    ForEachShrinkBlock<kRows * kShrinkRanks>(A, nz, pos0 == pos_begin && !few_rows_nd, block_ranks, r_begin, r_end,
                                                h_begin, h_end, block);
  }
}

// Tasks of many rows over whole 64-rank panels: the outer-product form (shrink_outer-inl.h,
// after the expand's panel helpers it shares); false if the task does not take it.
bool ShrinkOuterTask(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t k);

void Shrink(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t k) {
#if HWY_TARGET == HWY_AVX3
  // bf16 x bf16 where vdpbf16ps is on (shrink_bf16.h: AMD CPUs with AVX512_BF16 by default):
  // same chains and folds.
  if (w.p->x.dtype == DType::bf16 && w.p->a.dtype == DType::bf16 && internal::bf16_dot_usable())
    return internal::shrink_bf16_dot(w, pb, pe, adapter, k);
#endif
  if (ShrinkOuterTask(w, pb, pe, adapter, k)) return;
  model::visit_float(w.p->x.dtype, [&](auto tx) {
    model::visit_float(w.p->a.dtype, [&](auto ta) {
      ShrinkTask<decltype(tx)::value, decltype(ta)::value>(w, pb, pe, adapter, k);
    });
  });
}
