// The row-lane form of the expand, part of simd_kernels.cc: included inside its per-target
// namespace once per Highway target (hence no include guard).  Uses that file's loads and
// TransposeBlocks, and ExpandCtx and the prefetch helpers of expand-inl.h.
// NOLINT(build/header_guard)
//
// For tiles of a few rows per adapter (8-row groups of multi-adapter batches), and at ranks
// above 64 for up to eight such groups.  The outer
// product pays for a transposed pack of B that only a few rows reuse; the dot products pay a
// lane tree for every output.  Here a vector holds 4 rows x 4 ranks instead, two such vectors
// per group of kRowLanes rows (s = 0, 1: rows 4s..4s+3):
//   acc[s][j] lane (4b + i) += z[row 4s + b][4q + i] * B[n0 + j, 4q + i]     for rank quads q
// with z laid out once per tile as zt[s][q][4b + i], and each quad of B broadcast to the four
// 128-bit blocks: from a block of B widened once (not transposed) for every row group, or, for a
// single row group of ND rows on AMD cores, widened as it is read (RowLaneBlockInPlace).  One
// broadcast feeds both vectors' FMAs (a broadcast per FMA, as a pair of ranks would need,
// holds the FMA rate well below its peak: bench/notes.md), and every FMA does kLanes useful
// products.  Each output then sums its four rank residues as (r0 + r2) + (r1 + r3), within
// 128-bit blocks, and block moves gather the rows.  Each lane is one fp32 chain over rank_p / 4
// products, within kChain at every rank the form takes.

constexpr bool kRowLaneTarget = kLanes == 16;  // measured on AVX-512 only; ExpandT skips it elsewhere
constexpr int64_t kRowLanes = std::max<int64_t>(1, static_cast<int64_t>(kLanes) / 2);  // rows per group
constexpr int64_t kRowLaneMaxGroups = 8;  // 64 rows (zt: 4 KiB per group)
constexpr int64_t kRowLaneMaxRank = 128;  // bf and zt sizes; chains of rank_p / 4 <= kChain
constexpr int64_t kRowLaneAheadCols = 128;  // y prefetched this many columns ahead
static_assert(kRowLaneMaxRank / 4 <= internal::kChain, "one fp32 chain per lane");

// The tiles this form takes, on AVX-512: 7 or 8 rows at ranks 17 to 128; 13 to 16 rows (a
// second group at least 5/8 full) at ranks 33 to 128; and 17 to 64 rows at ranks 65 to 128.
// Measured against the outer product and the dot products (bench/notes.md): faster there;
// slower at rank 16, with a second group half full or less, and for 16 rows at rank 32; on Zen
// 4 slower with a third group at rank 64, on an Intel core as fast with 3-8 groups at rank 64
// and faster at rank 128 (the outer product's transposed pack of B and fp64 folds cost more
// there than this form's lane sums), and slower with 16 groups.  13-16 rows at ranks 48 and 64
// take the column form instead (ColumnTile, checked first).  A function of the rank and the
// tile's rows only, like OuterMinRows.
HWY_INLINE bool RowLaneTile(int64_t rank_p, int64_t rows) {
  if (!kRowLaneTarget || rank_p <= 16 || rank_p > kRowLaneMaxRank) return false;
  if (rows == kRowLanes - 1 || rows == kRowLanes) return true;
  if (rank_p > 64 && rows > 2 * kRowLanes) return rows <= kRowLaneMaxGroups * kRowLanes;
  return rank_p > 32 && rows > kRowLanes + kRowLanes / 2 && rows <= 2 * kRowLanes;
}

// One row group over one block: res[b] = row b's kLanes columns.  The rank is a template
// argument so that every column's B quads sit at constant offsets from one pointer (a pointer
// per column spilled to the stack).  Half a block of columns at a time: 2 x 8 accumulators.
// quad(c, q): column c's ranks 4q..4q+3 (fp32) in each of the four 128-bit blocks.
template <int64_t kRankP, class Quad>
HWY_INLINE void RowLaneTileBlock(const float* zg, const Quad& quad, VF* res) {
#if HWY_TARGET > HWY_AVX3
  (void)zg, (void)quad, (void)res;  // never called: RowLaneTile is false for fewer than 16 lanes
#else
  const DF df;
  const hn::Repartition<double, DF> dd;
  constexpr int64_t kL = static_cast<int64_t>(kLanes), kQuads = kRankP / 4, kHalf = kL / 2;
  VF u[2][4];  // u[s][c] lane 4b + i: row 4s + b, column 4c + i
  for (int64_t h = 0; h < 2; ++h) {
    VF a0[kHalf], a1[kHalf];
    for (int64_t j = 0; j < kHalf; ++j) a0[j] = a1[j] = hn::Zero(df);
    for (int64_t q = 0; q < kQuads; ++q) {
      const VF z0 = hn::Load(df, zg + q * kL), z1 = hn::Load(df, zg + (kQuads + q) * kL);
      HWY_UNROLL(8)
      for (int64_t j = 0; j < kHalf; ++j) {
        const VF bq = quad(h * kHalf + j, q);  // one broadcast, two FMAs
        a0[j] = hn::MulAdd(z0, bq, a0[j]);
        a1[j] = hn::MulAdd(z1, bq, a1[j]);
      }
    }
    // Each lane's four rank residues summed as (r0 + r2) + (r1 + r3), columns gathered by four.
    for (int64_t s = 0; s < 2; ++s) {
      const VF* a = s == 0 ? a0 : a1;
      for (int64_t c = 0; c < 2; ++c) {
        const VF* v = a + 4 * c;
        const VF p0 = hn::Add(hn::InterleaveLower(df, v[0], v[1]), hn::InterleaveUpper(df, v[0], v[1]));
        const VF p1 = hn::Add(hn::InterleaveLower(df, v[2], v[3]), hn::InterleaveUpper(df, v[2], v[3]));
        u[s][2 * h + c] = hn::Add(hn::BitCast(df, hn::InterleaveLower(dd, hn::BitCast(dd, p0), hn::BitCast(dd, p1))),
                                  hn::BitCast(df, hn::InterleaveUpper(dd, hn::BitCast(dd, p0), hn::BitCast(dd, p1))));
      }
    }
  }
  for (int64_t s = 0; s < 2; ++s) TransposeBlocks(df, u[s], res + 4 * s, 1);
#endif
}
// Over a block of B widened into bf (RowLaneWiden).
template <int64_t kRankP>
HWY_NOINLINE void RowLaneBlock(const float* zg, const float* bf, VF* res) {
  RowLaneTileBlock<kRankP>(zg, [bf](int64_t c, int64_t q) { return hn::LoadDup128(DF(), bf + c * kRankP + 4 * q); }, res);
}
// Over kLanes whole ND rows of B in place, `rs` bytes apart from b: each quad is broadcast and
// widened as it is read (a load and a conversion per two FMAs) instead of passing through bf,
// for a row group that would use bf once.
template <DType TB, int64_t kRankP>
HWY_NOINLINE void RowLaneBlockInPlace(const float* zg, const unsigned char* b, int64_t rs, VF* res) {
#if HWY_TARGET > HWY_AVX3
  (void)zg, (void)b, (void)rs, (void)res;
#else
  constexpr int64_t es = static_cast<int64_t>(ElemSize<TB>());
  RowLaneTileBlock<kRankP>(zg, [b, rs](int64_t c, int64_t q) {
    const unsigned char* p = b + c * rs + 4 * q * es;
    if constexpr (TB == DType::f32) {
      return hn::LoadDup128(DF(), reinterpret_cast<const float*>(p));
    } else {  // the quad's four 16-bit values, four times, widened
      uint64_t bits;
      std::memcpy(&bits, p, sizeof bits);
      if constexpr (TB == DType::bf16) {
        // Each value as the high half of its fp32 lane: one in-block unpack with zeros, where
        // WidenBits' zero-extension and shift take two ops (measured slower, bench/notes.md).
        const hn::Repartition<uint16_t, DF> dw;
        const auto quads = hn::BitCast(dw, hn::Set(hn::Repartition<uint64_t, DF>(), bits));
        return hn::BitCast(DF(), hn::InterleaveLower(dw, hn::Zero(dw), quads));
      } else {
        const hn::Rebind<uint16_t, DF> dh;  // half a vector of 16-bit lanes
        return WidenBits<TB>(hn::BitCast(dh, hn::Set(hn::Repartition<uint64_t, decltype(dh)>(), bits)));
      }
    }
  }, res);
#endif
}
// bf[j * kRankP + r] = B[n0 + j, r] for j < kLanes (rows past n_end repeat the last), r < rank
// (ranks past it up to kRankP: zeros).  Unrolled at compile-time ranks: a rolled loop per row
// cost as much as the FMAs at 8 rows.
template <DType TB, int64_t kRankP>
HWY_NOINLINE void RowLaneWiden(const WeightRows& Bw, int64_t n0, int64_t n_end, int64_t rank, float* bf) {
  const DF df;
  constexpr int64_t kL = static_cast<int64_t>(kLanes);
  const int64_t rs = Bw.row_step * Bw.esize, cs = Bw.chunk_step;
  const unsigned char* row0 = Bw.row(n0);
  if (rank == kRankP && n0 + kL <= n_end) {
    HWY_UNROLL(16)
    for (int64_t j = 0; j < kL; ++j)
      HWY_UNROLL(8)
      for (int64_t r = 0; r < kRankP; r += kL)
        hn::Store(LoadF<TB>(row0 + j * rs, (r >> 4) * cs + (r & 15)), df, bf + j * kRankP + r);
    return;
  }
  for (int64_t j = 0; j < kL; ++j) {
    const unsigned char* row = Bw.row(std::min<int64_t>(n0 + j, n_end - 1));
    float* dst = bf + j * kRankP;
    int64_t r = 0;
    for (; r + kL <= rank; r += kL) hn::Store(LoadF<TB>(row, (r >> 4) * cs + (r & 15)), df, dst + r);
    if (r < rank) {
      hn::Store(LoadTailF<TB>(row, (r >> 4) * cs + (r & 15), rank - r), df, dst + r);
      r += kL;
    }
    for (; r < kRankP; r += kL) hn::Store(hn::Zero(df), df, dst + r);
  }
}
struct RowLaneFns {
  void (*block)(const float*, const float*, VF*) = nullptr;
  void (*widen)(const WeightRows&, int64_t, int64_t, int64_t, float*) = nullptr;
  void (*in_place)(const float*, const unsigned char*, int64_t, VF*) = nullptr;
};
template <DType TB, int64_t... kR>
HWY_INLINE RowLaneFns RowLaneFnsFor(int64_t rank_p, std::integer_sequence<int64_t, kR...>) {
  RowLaneFns f;
  ((rank_p == (kR + 1) * 16 ? (f.block = &RowLaneBlock<(kR + 1) * 16>, f.widen = &RowLaneWiden<TB, (kR + 1) * 16>,
                               f.in_place = &RowLaneBlockInPlace<TB, (kR + 1) * 16>, 0)
                            : 0),
   ...);
  return f;
}

// Rows [pos_begin, pos_end) (at most kRowLaneMaxGroups * kRowLanes), columns [n_begin, n_end),
// ranks rank_p <= kRowLaneMaxRank.  TY: y's (and out's) dtype.
template <DType TB, DType TY>
void ExpandRowLanes(const ExpandCtx& c, const WeightRows& Bw, int64_t rank_p, int64_t pos_begin, int64_t pos_end,
                    int64_t n_begin, int64_t n_end) {
  static_assert(kRowLaneTarget || TB != TB, "AVX-512 only (RowLaneTile); TB makes it checked per instantiation");
  const Problem& p = *c.p;
  const Work& w = *c.w;
  constexpr int64_t kL = static_cast<int64_t>(kLanes), yes = static_cast<int64_t>(ElemSize<TY>());
  const int64_t rank = c.rank, quads = rank_p / 4, rows = pos_end - pos_begin;
  const int64_t groups = (rows + kRowLanes - 1) / kRowLanes;
  HWY_ALIGN float zt[kRowLaneMaxGroups][2 * (kRowLaneMaxRank / 4) * kL];  // zt[g]: [s][q][4b + i] as above
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t b = 0; b < kRowLanes; ++b) {
      // Past the tile's end the group repeats its last row (computed, never stored).
      const float* z = w.z + (pos_begin + std::min(g * kRowLanes + b, rows - 1)) * w.rp;
      float* dst = zt[g] + (b / 4) * quads * kL + 4 * (b % 4);
      for (int64_t q = 0; q < quads; ++q)
        for (int64_t i = 0; i < 4; ++i) dst[q * kL + i] = z[4 * q + i];
    }
  const unsigned char* yrow[kRowLaneMaxGroups * kRowLanes];
  unsigned char* orow[kRowLaneMaxGroups * kRowLanes];
  for (int64_t i = 0; i < rows; ++i) {
    yrow[i] = c.ybase + w.order[pos_begin + i] * p.y.row_stride * yes;
    orow[i] = c.obase + w.order[pos_begin + i] * p.out.row_stride * yes;
  }
  const RowLaneFns fns = RowLaneFnsFor<TB>(rank_p, std::make_integer_sequence<int64_t, kRowLaneMaxRank / 16>());
  const int64_t ahead_rows = PrefetchRowsAhead(Bw, rank);
  PrefetchBRows(Bw, n_begin, std::min<int64_t>(n_end, n_begin + ahead_rows), rank);
  HWY_ALIGN float bf[kL * kRowLaneMaxRank];  // bf[j * rank_p + r] = B[n0 + j, r], zero past rank
  // Two groups share one widened block (in place for both was faster at rank 64 only, slower at
  // 48 and 128).  One row group over whole ND rows reads B in place (full blocks of columns)
  // where that measured faster, on Zen 4: a conversion per two FMAs, which its FMA rate absorbs;
  // on an Intel core the conversions take the FMA ports and the buffer was faster (work.h,
  // bench/notes.md).
  const bool one_group_nd = groups == 1 && !Bw.nz() && rank == rank_p && internal::row_lane_reads_b_in_place();
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kL) {
    if (n0 + ahead_rows < p.S) PrefetchBRows(Bw, n0 + ahead_rows, std::min<int64_t>(p.S, n0 + ahead_rows + kL), rank);
    const int64_t valid = std::min<int64_t>(kL, n_end - n0), col = p.y_offset + n0;
    const bool in_place = one_group_nd && valid == kL;
    if (!in_place) fns.widen(Bw, n0, n_end, rank, bf);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t g_rows = std::min<int64_t>(kRowLanes, rows - g * kRowLanes);
      for (int64_t b = 0; b < g_rows; ++b) {
        hwy::Prefetch(yrow[g * kRowLanes + b] + (col + kRowLaneAheadCols) * yes);
        if (!p.in_place) hwy::Prefetch(orow[g * kRowLanes + b] + (col + kRowLaneAheadCols) * yes);
      }
      VF res[kRowLanes];
      if (in_place) fns.in_place(zt[g], Bw.row(n0), Bw.row_step * Bw.esize, res);
      else fns.block(zt[g], bf, res);
      for (int64_t b = 0; b < g_rows; ++b) {
        const VF d = res[b];
        const unsigned char* y = yrow[g * kRowLanes + b];
        unsigned char* out = orow[g * kRowLanes + b];
        if (valid == kL) StoreF<TY>(hn::MulAdd(d, c.scale, LoadF<TY>(y, col)), out, col);
        else StoreTailF<TY>(hn::MulAdd(d, c.scale, LoadTailF<TY>(y, col, valid)), out, col, valid);
      }
    }
  }
}
