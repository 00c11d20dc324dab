// The shrink of tasks with many rows in the outer-product form, part of simd_kernels.cc:
// included inside its per-target namespace after expand-inl.h, whose panel pack (PackTransposed)
// and chain (OuterChain) it reuses with x in z's place and A in B's.  No include guard.
// NOLINT(build/header_guard)
//
// zpart[k][pos][r] = sum over h in K chunk k of x[row, h] * A[adapter, r, h].  The chunk is
// walked kOuterCols columns (a column panel) at a time.  The task's x rows over those columns
// are widened into xw (fp32, kOuterMaxRows x kOuterCols: 64 KiB, in L2); for each kOpN ranks,
// A's piece is widened and transposed into a panel at[h][r] (32 KiB: stays in L1 while every
// row block sweeps it); a block of kOpRows rows then accumulates acc[row][rank vector] +=
// x[row][h] * at[h][:], one broadcast per kOpVecs FMAs and no horizontal reduction.  The
// dot-product blocks of shrink-inl.h read x and A from L2 on every rank block and convert
// 16-bit x as they go; on a core with two 512-bit FMA ports this form runs those tasks faster
// (bench/notes.md).
// Accumulator policy (work.h): each lane is one (row, rank) chain of kChain consecutive
// columns, counted from the start of the K chunk, folded lane-wise into that row's fp64
// totals in zpart, in column order.  So a result does not depend on the row blocking, and
// FRACTAL_NZ A, which the pack reads piece by piece as it reads ND A, gives the ND bits.
// The buffers live on the stack (96 KiB, as ShrinkTask's widened x rows): no scratch, so no
// path without it.

constexpr int64_t kOuterCols = 2 * internal::kChain;  // columns per panel (a multiple of kChain)
constexpr int64_t kOuterMaxRows = internal::kRowTile;  // rows per task at most
// Fewest rows of a task (an adapter's rows in one row tile) that repay the pack, which widens
// and transposes kOpN x kOuterCols of A per panel once for all the task's rows: the
// dot-product blocks were faster at 16 rows, as fast at 24, slower at 32 (bench/notes.md).
constexpr int64_t kOuterMinRows = 32;

// Only on AVX-512, where it was measured (32 registers: 24 accumulators, 4 panel vectors, the
// broadcast); the other targets keep the dot-product blocks, and compile none of this.
#if HWY_TARGET == HWY_AVX3
// Whether a task of `rows` rows over an adapter of rank `rank` takes this form: ranks in whole
// panels (a 64-rank panel of which half were padding would waste half the FMAs).  A function of
// the shapes and the indices only, never the thread count.
HWY_INLINE bool ShrinkOuterFits(int64_t rows, int64_t rank) {
  return rows >= kOuterMinRows && rows <= kOuterMaxRows && rank > 0 && ((rank + 15) & ~int64_t{15}) % kOpN == 0;
}

// One block of kRows rows (x rows at xw + i * kOuterCols, the last repeated past rows_valid)
// over one panel of `cols` columns: a chain per kChain columns, folded into tot[i] + vector.
template <int kRows>
HWY_INLINE void OuterShrinkBlock(const float* at, const float* xw, int64_t cols, double* const* tot, int rows_valid,
                                 RunPrefetch* ahead) {
  const DF df;
  const float* z[kRows];
  for (int i = 0; i < kRows; ++i) z[i] = xw + std::min(i, rows_valid - 1) * kOuterCols;
  for (int64_t c0 = 0; c0 < cols; c0 += internal::kChain) {
    VF acc[kRows][kOpVecs];
    for (int i = 0; i < kRows; ++i)
      for (int v = 0; v < kOpVecs; ++v) acc[i][v] = hn::Zero(df);
    OuterChain<kRows>(at, z, c0, std::min(cols, c0 + internal::kChain), acc, ahead);
    HWY_UNROLL(8)
    for (int i = 0; i < kRows; ++i)
      if (i < rows_valid)
        for (int v = 0; v < kOpVecs; ++v) FoldLanes(acc[i][v], tot[i] + v * static_cast<int64_t>(kLanes));
  }
}

template <DType TX, DType TA>
HWY_NOINLINE void ShrinkOuter(const Work& w, int64_t pos_begin, int64_t pos_end, const WeightRows& A, int64_t h_begin,
                              int64_t h_end, int64_t rank, double* zk) {
  const DF df;
  const Problem& p = *w.p;
  const int64_t rows = pos_end - pos_begin, rank_p = (rank + 15) & ~int64_t{15};
  constexpr int64_t xes = static_cast<int64_t>(ElemSize<TX>()), aes = static_cast<int64_t>(ElemSize<TA>());
  const unsigned char* xbase = static_cast<const unsigned char*>(p.x.base);
  HWY_ALIGN float at[kOuterCols * kOpN];
  HWY_ALIGN float xw[kOuterMaxRows * kOuterCols];
  const unsigned char* xrow[kOuterMaxRows];
  for (int64_t i = 0; i < rows; ++i) {
    xrow[i] = xbase + w.order[pos_begin + i] * p.x.row_stride * xes;
    std::fill_n(zk + (pos_begin + i) * w.rp, rank_p, 0.0);  // folded into below
  }
  auto widen = [&](int64_t i0, int64_t i1, int64_t h0) {  // x rows [i0, i1) over the panel from h0
    const int64_t cols = std::min(kOuterCols, h_end - h0);
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t c = 0; c < cols; c += static_cast<int64_t>(kLanes))
        hn::Store(LoadUpToF<TX>(xrow[i], h0 + c, cols - c), df, xw + i * kOuterCols + c);
  };
  // During the last rank panel of a column panel, each row block, once done with its x rows,
  // widens them for the next column panel; as it computes, their lines and a share of the next
  // A piece are prefetched a few at a time (a burst per block stalled the FMAs behind the
  // misses).  A piece: ND one run per rank row, FRACTAL_NZ one run per 16-column chunk (every
  // rank's piece of it side by side).
  const int64_t blocks = (rows + kOpRows - 1) / kOpRows;
  auto next_runs = [&](int64_t h_next, int64_t block, int64_t i1, RunPrefetch* rp) {
    const int64_t n = std::min(kOuterCols, h_end - h_next);
    for (int64_t i = block * kOpRows; i < i1; ++i) rp->add(xrow[i] + h_next * xes, n * xes);
    const int64_t units = A.nz() ? (n + 15) / 16 : rank, u0 = units * block / blocks, u1 = units * (block + 1) / blocks;
    for (int64_t u = u0; u < u1; ++u) {
      if (A.nz()) rp->add(A.base + A.off(0, h_next + 16 * u) * aes, rank * 16 * aes);
      else rp->add(A.base + A.off(u, h_next) * aes, n * aes);
    }
  };
  widen(0, rows, h_begin);
  for (int64_t h0 = h_begin; h0 < h_end; h0 += kOuterCols) {
    const int64_t cols = std::min(kOuterCols, h_end - h0), h_next = h0 + kOuterCols;
    WeightRows Ah = A;  // columns from h0 (a multiple of 16: a piece boundary in both layouts)
    Ah.base += A.off(0, h0) * aes;
    for (int64_t r0 = 0; r0 < rank; r0 += kOpN) {
      PackTransposed<TA>(Ah, cols, r0, rank, at);
      const bool refill = r0 + kOpN >= rank && h_next < h_end;  // the last rank panel, more columns
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t pos0 = pos_begin + b * kOpRows, i1 = std::min(rows, (b + 1) * kOpRows);
        const int rows_valid = static_cast<int>(i1 - b * kOpRows);
        // A short last block computes duplicated rows (not folded), as the expand's (RestBlockRows).
        const int block_rows = RestBlockRows(rows_valid);
        RunPrefetch ahead;  // stepped a unit per row every kAheadRanks columns (OuterChain)
        if (refill) {
          next_runs(h_next, b, i1, &ahead);
          ahead.spread((cols + kAheadRanks - 1) / kAheadRanks * block_rows);
        }
        double* tot[kOpRows];
        for (int i = 0; i < kOpRows; ++i) tot[i] = zk + (pos0 + std::min(i, rows_valid - 1)) * w.rp + r0;
        const float* xb = xw + b * kOpRows * kOuterCols;
        if (block_rows == kOpRows) OuterShrinkBlock<kOpRows>(at, xb, cols, tot, rows_valid, &ahead);
        else if (block_rows == 4) OuterShrinkBlock<4>(at, xb, cols, tot, rows_valid, &ahead);
        else OuterShrinkBlock<2>(at, xb, cols, tot, rows_valid, &ahead);
        if (refill) widen(b * kOpRows, i1, h_next);
      }
    }
  }
}

#endif  // HWY_TARGET == HWY_AVX3

// The task if it takes this form (see ShrinkOuterFits; split-K tasks only, rank-split ones
// being groups of few rows); false leaves it to ShrinkTask.
bool ShrinkOuterTask(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t k) {
#if HWY_TARGET != HWY_AVX3
  (void)w, (void)pos_begin, (void)pos_end, (void)adapter, (void)k;
  return false;
#else
  const Problem& p = *w.p;
  const int64_t rank = detail::rank_of(p, adapter);
  if (w.rank_split || !ShrinkOuterFits(pos_end - pos_begin, rank)) return false;
  const int64_t h_begin = k * w.kc, h_end = std::min<int64_t>(p.H1, h_begin + w.kc);
  const WeightRows A = Rows(p.a, p.R, adapter);
  double* zk = w.zpart + k * w.B * w.rp;
  internal::count_outer_shrink_task();
  model::visit_float(p.x.dtype, [&](auto tx) {
    model::visit_float(p.a.dtype, [&](auto ta) {
      ShrinkOuter<decltype(tx)::value, decltype(ta)::value>(w, pos_begin, pos_end, A, h_begin, h_end, rank, zk);
    });
  });
  return true;
#endif
}
