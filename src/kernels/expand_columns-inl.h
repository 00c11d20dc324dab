// The column form of the expand, part of simd_kernels.cc: included inside its per-target
// namespace once per Highway target (hence no include guard).  Uses that file's loads and
// Transpose, expand-inl.h's ExpandCtx and prefetch helpers, and expand_rows-inl.h's
// RowLaneWiden and row-group constants (kRowLaneTarget, kRowLanes, kRowLaneMaxGroups,
// kRowLaneAheadCols).
// NOLINT(build/header_guard)
//
// For tiles of 13-16 rows at ranks of exactly 48 or 64.  A vector holds one output column of
// every row of the tile: acc[j] lane i += z[row i][r] * B[n0 + j, r], the B value a broadcast
// folded into the FMA as a memory operand, for 16 columns j at a time.  The loop is FMAs,
// loads and the next block's widening (one conversion and store per step): no rank residues
// to sum (the row-lane form's epilogue) and no transposed pack of B (the outer product's),
// just one 16 x 16 transpose of the results per block.  Widening the next block inside the
// current block's loop, one vector per rank step, lets the conversions overlap the FMAs
// instead of waiting between blocks.  Every output is one fp32 chain over r in order: the
// same sums as the outer product, so the same bits.  Above rank 64 the chains would fold into
// fp64 (kChain), and with that the form measured slower than the row-lane form
// (bench/notes.md).
constexpr int64_t kColumnMinRank = 48, kColumnMaxRank = 64;
static_assert(kColumnMaxRank <= internal::kChain, "one fp32 chain per output, as the outer product below kChain");

// The tiles this form takes: AVX-512, rank 48 or 64 (no zero padding in the chain; the block
// functions are instantiated per rank), 13 to 16 rows (a row per lane of zt and res).  A
// function of the adapter's rank and the tile's rows only, like RowLaneTile.
HWY_INLINE bool ColumnTile(int64_t rank, int64_t rows) {
  return kRowLaneTarget && rank % 16 == 0 && rank >= kColumnMinRank && rank <= kColumnMaxRank &&
         rows > kRowLanes + kRowLanes / 2 && rows <= static_cast<int64_t>(kLanes);
}

// One block of 16 columns: res[i] = row i's 16 sums.  acc[j] += zt[r] * bf[j * kRank + r] for
// every r; with kWiden the step also widens vector r of the next block: nb[16 r ..] = B row
// r / (kRank / 16) of `next`, ranks 16 (r % (kRank / 16)) on.
template <DType TB, int64_t kRank, bool kWiden>
HWY_NOINLINE void ColumnBlock(const float* zt, const float* bf, const unsigned char* next, int64_t rs, int64_t cs,
                              float* nb, VF* res) {
#if HWY_TARGET > HWY_AVX3
  (void)zt, (void)bf, (void)next, (void)rs, (void)cs, (void)nb, (void)res;  // never called: ColumnTile
#else
  const DF df;
  constexpr int64_t kL = static_cast<int64_t>(kLanes), kPieces = kRank / 16;
  VF acc[kLanes];
  for (int64_t j = 0; j < kL; ++j) acc[j] = hn::Zero(df);
  for (int64_t r = 0; r < kRank; ++r) {
    const VF zv = hn::Load(df, zt + r * kL);
    if constexpr (kWiden) hn::Store(LoadF<TB>(next + (r / kPieces) * rs, (r % kPieces) * cs), df, nb + r * kL);
    HWY_UNROLL(16)
    for (int64_t j = 0; j < kL; ++j) acc[j] = hn::MulAdd(zv, hn::Set(df, bf[j * kRank + r]), acc[j]);
  }
  Transpose(df, acc, res);
#endif
}

struct ColumnFns {
  void (*block)(const float*, const float*, const unsigned char*, int64_t, int64_t, float*, VF*) = nullptr;
  void (*block_widen)(const float*, const float*, const unsigned char*, int64_t, int64_t, float*, VF*) = nullptr;
  void (*widen)(const WeightRows&, int64_t, int64_t, int64_t, float*) = nullptr;
};
template <DType TB, int64_t... kR>
HWY_INLINE ColumnFns ColumnFnsFor(int64_t rank, std::integer_sequence<int64_t, kR...>) {
  ColumnFns f;
  ((rank == kColumnMinRank + kR * 16 ? (f.block = &ColumnBlock<TB, kColumnMinRank + kR * 16, false>,
                                        f.block_widen = &ColumnBlock<TB, kColumnMinRank + kR * 16, true>,
                                        f.widen = &RowLaneWiden<TB, kColumnMinRank + kR * 16>, 0)
                                     : 0),
   ...);
  return f;
}

// Rows [pos_begin, pos_end) (ColumnTile), columns [n_begin, n_end).  TY: y's (and out's) dtype.
template <DType TB, DType TY>
void ExpandColumns(const ExpandCtx& c, const WeightRows& Bw, int64_t pos_begin, int64_t pos_end, int64_t n_begin,
                   int64_t n_end) {
  static_assert(kRowLaneTarget || TB != TB, "AVX-512 only (ColumnTile); TB makes it checked per instantiation");
  const Problem& p = *c.p;
  const Work& w = *c.w;
  constexpr int64_t kL = static_cast<int64_t>(kLanes), yes = static_cast<int64_t>(ElemSize<TY>());
  const int64_t rank = c.rank, rows = pos_end - pos_begin;
  HWY_ALIGN float zt[kColumnMaxRank * kLanes];  // zt[r * kL + i] = z[row i][r]; past the tile, its last row
  for (int64_t i = 0; i < kL; ++i) {
    const float* z = w.z + (pos_begin + std::min(i, rows - 1)) * w.rp;
    for (int64_t r = 0; r < rank; ++r) zt[r * kL + i] = z[r];
  }
  const unsigned char* yrow[kLanes];
  unsigned char* orow[kLanes];
  for (int64_t i = 0; i < rows; ++i) {
    yrow[i] = c.ybase + w.order[pos_begin + i] * p.y.row_stride * yes;
    orow[i] = c.obase + w.order[pos_begin + i] * p.out.row_stride * yes;
  }
  constexpr int64_t kRanks = (kColumnMaxRank - kColumnMinRank) / 16 + 1;
  const ColumnFns fns = ColumnFnsFor<TB>(rank, std::make_integer_sequence<int64_t, kRanks>());
  const int64_t ahead_rows = PrefetchRowsAhead(Bw, rank), rs = Bw.row_step * Bw.esize, cs = Bw.chunk_step;
  PrefetchBRows(Bw, n_begin, std::min<int64_t>(n_end, n_begin + ahead_rows), rank);
  HWY_ALIGN float bf[2][kLanes * kColumnMaxRank];  // B's block n0 (fp32), and the next one
  fns.widen(Bw, n_begin, n_end, rank, bf[0]);
  int cur = 0;
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kL, cur ^= 1) {
    if (n0 + ahead_rows < p.S) PrefetchBRows(Bw, n0 + ahead_rows, std::min<int64_t>(p.S, n0 + ahead_rows + kL), rank);
    const int64_t valid = std::min<int64_t>(kL, n_end - n0), col = p.y_offset + n0, next = n0 + kL;
    for (int64_t i = 0; i < rows; ++i) {
      hwy::Prefetch(yrow[i] + (col + kRowLaneAheadCols) * yes);
      if (!p.in_place) hwy::Prefetch(orow[i] + (col + kRowLaneAheadCols) * yes);
    }
    VF res[kLanes];
    if (next + kL <= n_end) {  // the next block is whole: widened during this one
      fns.block_widen(zt, bf[cur], Bw.row(next), rs, cs, bf[cur ^ 1], res);
    } else {
      fns.block(zt, bf[cur], nullptr, rs, cs, nullptr, res);
      if (next < n_end) fns.widen(Bw, next, n_end, rank, bf[cur ^ 1]);
    }
    if (valid == kL) {
      // Every y vector loaded before the first store: rows of a power-of-two pitch would
      // otherwise wait on stores at the same address modulo 4 KiB (as in the outer product).
      VF yv[kLanes];
      for (int64_t i = 0; i < rows; ++i) yv[i] = LoadF<TY>(yrow[i], col);
      for (int64_t i = 0; i < rows; ++i) StoreF<TY>(hn::MulAdd(res[i], c.scale, yv[i]), orow[i], col);
    } else {
      for (int64_t i = 0; i < rows; ++i)
        StoreTailF<TY>(hn::MulAdd(res[i], c.scale, LoadTailF<TY>(yrow[i], col, valid)), orow[i], col, valid);
    }
  }
}
