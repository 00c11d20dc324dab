// Precision::exact kernels (fp64 sums), part of simd_kernels.cc: included inside its per-target
// namespace once per Highway target (hence no include guard).  Uses that file's helpers.
// NOLINT(build/header_guard)

// ---- Precision::exact: the expand with fp64 sums (the shrink is shrink-inl.h, both precisions)
// Inputs are widened exactly (16-bit -> f32 -> f64); products and sums in f64 (kLanesD lanes);
// the result is rounded f64 -> f32 -> output dtype.  That second rounding can only add
// 2^-24 relative to the first, far inside SPEC §1's 1 ulp of a 16-bit output.

// Outer-product form with fp64 accumulators (see ExpandOuter): kExOpRows rows x kOpN columns.
constexpr int kExOpRows = kLanes >= 16 ? 6 : 2;
constexpr int64_t kExOpVecs = kOpN / static_cast<int64_t>(kLanesD);

template <int kRows>
void ExpandOuterExactBlock(const Work& w, const double* bt, int64_t pos_begin, int64_t pos_end, int64_t n0,
                           int64_t valid, int64_t rank, VD scale) {
  const DD dd;
  const Problem& p = *w.p;
  const int64_t yes = p.y.dtype == DType::f32 ? 4 : 2;
  const int64_t oes = p.out.dtype == DType::f32 ? 4 : 2;
  const unsigned char* ybase = static_cast<const unsigned char*>(p.y.base);
  unsigned char* obase = static_cast<unsigned char*>(const_cast<void*>(p.out.base));
  for (int64_t pos0 = pos_begin; pos0 < pos_end; pos0 += kRows) {
    const int rows_valid = static_cast<int>(std::min<int64_t>(kRows, pos_end - pos0));
    const double* z[kRows];
    for (int i = 0; i < kRows; ++i) z[i] = w.zpart_d + (pos0 + std::min(i, rows_valid - 1)) * w.rp;
    HWY_ALIGN double yb[kRows][kOpN];  // y read before the block's stores (see ExpandOuter)
    for (int i = 0; i < rows_valid; ++i) {
      const unsigned char* yrow = ybase + w.order[pos0 + i] * p.y.row_stride * yes;
      for (int v = 0; v < kExOpVecs; ++v) {
        const int64_t lanes = std::min<int64_t>(kLanesD, valid - v * static_cast<int64_t>(kLanesD));
        if (lanes > 0) hn::Store(LoadAnyD(p.y.dtype, yrow, p.y_offset + n0 + v * kLanesD, lanes), dd, &yb[i][v * kLanesD]);
      }
    }
    VD acc[kRows][kExOpVecs];
    for (int i = 0; i < kRows; ++i)
      for (int v = 0; v < kExOpVecs; ++v) acc[i][v] = hn::Zero(dd);
    for (int64_t r = 0; r < rank; ++r) {
      VD bv[kExOpVecs];
      for (int v = 0; v < kExOpVecs; ++v) bv[v] = hn::Load(dd, bt + r * kOpN + v * kLanesD);
      for (int i = 0; i < kRows; ++i) {
        const VD zb = hn::Set(dd, z[i][r]);
        for (int v = 0; v < kExOpVecs; ++v) acc[i][v] = hn::MulAdd(zb, bv[v], acc[i][v]);
      }
    }
    for (int i = 0; i < rows_valid; ++i) {
      const int64_t row = w.order[pos0 + i];
      for (int v = 0; v < kExOpVecs; ++v) {
        const int64_t lanes = std::min<int64_t>(kLanesD, valid - v * static_cast<int64_t>(kLanesD));
        if (lanes <= 0) continue;
        const int64_t col = p.y_offset + n0 + v * kLanesD;
        const VD yv = hn::Load(dd, &yb[i][v * kLanesD]);
        StoreAnyD(p.out.dtype, hn::MulAdd(acc[i][v], scale, yv), obase + row * p.out.row_stride * oes, col, lanes);
      }
    }
  }
}

void ExpandOuterExact(const Work& w, const double* bt, int64_t pos_begin, int64_t pos_end, int64_t n0,
                      int64_t valid, int64_t rank, VD scale) {
  constexpr int kSmall = kExOpRows < 2 ? kExOpRows : 2;
  const int64_t full_end = pos_begin + ((pos_end - pos_begin) / kExOpRows) * kExOpRows;
  if (full_end > pos_begin) ExpandOuterExactBlock<kExOpRows>(w, bt, pos_begin, full_end, n0, valid, rank, scale);
  if (full_end < pos_end) ExpandOuterExactBlock<kSmall>(w, bt, full_end, pos_end, n0, valid, rank, scale);
}

// Lane j of the result = sum over r < rank of z[r] * B row j, with B read directly (16-bit or
// fp32, chunk-structured as in WeightRows): the fp64 counterpart of ExpandDot.
template <DType TB>
HWY_INLINE VD ExpandDotExact(const double* z, const unsigned char* const* br, int64_t chunk_step, int64_t rank) {
  const DD dd;
  constexpr int64_t kL = static_cast<int64_t>(kLanesD);
  VD acc[kL];
  for (int64_t j = 0; j < kL; ++j) acc[j] = hn::Zero(dd);
  const int64_t r_full = rank / kL * kL;
  for (int64_t r = 0; r < r_full; r += kL) {
    const VD zv = hn::LoadU(dd, z + r);
    const int64_t boff = (r >> 4) * chunk_step + (r & 15);
    for (int64_t j = 0; j < kL; ++j) acc[j] = hn::MulAdd(zv, LoadD<TB>(br[j], boff), acc[j]);
  }
  if (r_full < rank) {  // ragged end of the rank
    const VD zv = hn::LoadU(dd, z + r_full);
    const int64_t boff = (r_full >> 4) * chunk_step + (r_full & 15);
    for (int64_t j = 0; j < kL; ++j)
      acc[j] = hn::MulAdd(zv, LoadTailD<TB>(br[j], boff, rank - r_full), acc[j]);
  }
  return SumEachToLane(dd, acc);
}

// The dot-product path in fp64 (see ExpandDotRows): y/out dtype fixed at compile time; a
// single row streams B, several rows share its block widened once to fp32.
template <DType TB, DType TY, bool kOneRow>
void ExpandDotRowsExact(const Work& w, const WeightRows& Bw, int64_t rank, VD scale, int64_t pos_begin,
                        int64_t pos_end, int64_t n_begin, int64_t n_end) {
  const DD dd;
  const DFH dfh;
  const Problem& p = *w.p;
  constexpr int64_t kL = static_cast<int64_t>(kLanesD), yes = ElemSize<TY>();
  const int64_t rank_p = (rank + 15) & ~int64_t{15};
  const bool widen_b = !kOneRow && rank_p <= kBBuf;
  const unsigned char* ybase = static_cast<const unsigned char*>(p.y.base);
  unsigned char* obase = static_cast<unsigned char*>(const_cast<void*>(p.out.base));
  HWY_ALIGN float bf[kOneRow ? 1 : kLanesD * kBBuf];  // the block of B, widened: kLanesD rows of rank_p
  auto y_row = [&](int64_t pos) { return ybase + w.order[pos] * p.y.row_stride * yes; };
  auto out_row = [&](int64_t pos) { return obase + w.order[pos] * p.out.row_stride * yes; };
  const unsigned char* const y0 = y_row(pos_begin);  // one row: its pointers once
  unsigned char* const o0 = out_row(pos_begin);
  // Columns [n0, n0 + kL) of every row of the tile; kFull: all kL of them are in the slice.
  auto block = [&](int64_t n0, const unsigned char* const* br, auto full) {
    constexpr bool kFull = decltype(full)::value;
    if (widen_b) {
      for (int64_t j = 0; j < kL; ++j) {
        float* dst = bf + j * rank_p;
        for (int64_t r = 0; r < rank_p; r += kLanes)
          hn::Store(r < rank ? LoadAnyF(TB, br[j], (r >> 4) * Bw.chunk_step + (r & 15), rank - r) : hn::Zero(DF()),
                    DF(), dst + r);
      }
    }
    const int64_t col = p.y_offset + n0;
    for (int64_t pos = pos_begin; pos < (kOneRow ? pos_begin + 1 : pos_end); ++pos) {
      const double* z = w.zpart_d + pos * w.rp;
      VD d;
      if (widen_b) {
        VD acc[kL];
        for (int64_t j = 0; j < kL; ++j) acc[j] = hn::Zero(dd);
        for (int64_t r = 0; r < rank_p; r += kL) {
          const VD zv = hn::LoadU(dd, z + r);
          for (int64_t j = 0; j < kL; ++j)
            acc[j] = hn::MulAdd(zv, hn::PromoteTo(dd, hn::LoadU(dfh, bf + j * rank_p + r)), acc[j]);
        }
        d = SumEachToLane(dd, acc);
      } else {
        d = ExpandDotExact<TB>(z, br, Bw.chunk_step, rank);
      }
      const unsigned char* yrow = kOneRow ? y0 : y_row(pos);
      unsigned char* orow = kOneRow ? o0 : out_row(pos);
      if constexpr (kFull) {
        StoreF<TY, DFH>(hn::DemoteTo(dfh, hn::MulAdd(d, scale, LoadD<TY>(yrow, col))), orow, col);
      } else {
        const int64_t valid = n_end - n0;
        const VD yv = hn::PromoteTo(dd, LoadTailF<TY, DFH>(yrow, col, valid));
        StoreTailF<TY, DFH>(hn::DemoteTo(dfh, hn::MulAdd(d, scale, yv)), orow, col, valid);
      }
    }
  };
  const int64_t ahead_rows = PrefetchRowsAhead(Bw);
  int64_t n0 = n_begin;
  if (kOneRow && Bw.nz() && rank > 0) {  // full blocks skewed by chunk group (expand_nz-inl.h)
    const int64_t blocks = (n_end - n_begin) / kL;
    ExpandOneRowNz<TB>(dd, w.zpart_d + pos_begin * w.rp, Bw, rank, n_begin, blocks, ahead_rows, [&](int64_t nb, VD d) {
      const int64_t col = p.y_offset + nb;
      StoreF<TY, DFH>(hn::DemoteTo(dfh, hn::MulAdd(d, scale, LoadD<TY>(y0, col))), o0, col);
    });
    n0 += blocks * kL;
  } else {
    PrefetchBRows(Bw, n_begin + kL, std::min<int64_t>(n_end, n_begin + ahead_rows), rank);
  }
  const int64_t rs = Bw.row_step * Bw.esize;
  const unsigned char* br[kL];
  for (; n0 + kL <= n_end; n0 += kL) {
    if (n0 + ahead_rows < n_end)
      PrefetchBRows(Bw, n0 + ahead_rows, std::min<int64_t>(n_end, n0 + ahead_rows + kL), rank);
    for (int64_t j = 0; j < kL; ++j) br[j] = Bw.row(n0) + j * rs;
    block(n0, br, std::true_type{});
  }
  if (n0 == n_end) return;
  for (int64_t j = 0; j < kL; ++j) br[j] = Bw.row(std::min<int64_t>(n0 + j, n_end - 1));  // repeat the last
  block(n0, br, std::false_type{});
}

template <DType TB>
void ExpandExactT(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t n_begin,
                  int64_t n_end) {
  const Problem& p = *w.p;
  const DD dd;
  const DFH dfh;
  const WeightRows Bw = Rows(p.b, p.H2, adapter);
  // Per-adapter rank and scale; path choices by the rank (see ExpandT).
  const int64_t rank = detail::rank_of(p, adapter);
  const int64_t rank_p = (rank + 15) & ~int64_t{15};  // <= w.rp; z is zero in [rank, w.rp)
  const VD scale = hn::Set(dd, detail::scale_of(p, adapter));
  const int64_t yes = p.y.dtype == DType::f32 ? 4 : 2;
  const unsigned char* ybase = static_cast<const unsigned char*>(p.y.base);
  for (int64_t pos = pos_begin; pos < pos_end; ++pos) {
    const unsigned char* yrow = ybase + (w.order[pos] * p.y.row_stride + p.y_offset) * yes;
    for (int64_t n = n_begin; n < n_end; n += 64 / yes) hwy::Prefetch(yrow + n * yes);
  }
  if (rank_p <= kBBuf && pos_end - pos_begin >= OuterMinRows(rank_p)) {
    HWY_ALIGN float bf[kOpN * kBBuf];
    HWY_ALIGN double bt64[kOpN * kBBuf];  // the transposed block in fp64: no widening in the FMA loop
    for (int64_t n0 = n_begin; n0 < n_end; n0 += kOpN) {
      PackTransposed<TB>(Bw, rank, n0, n_end, bf);
      for (int64_t i = 0; i < rank * kOpN; i += kLanesD)
        hn::Store(hn::PromoteTo(dd, hn::Load(dfh, bf + i)), dd, bt64 + i);
      ExpandOuterExact(w, bt64, pos_begin, pos_end, n0, std::min<int64_t>(kOpN, n_end - n0), rank, scale);
    }
    return;
  }
  const bool one = pos_end - pos_begin == 1;  // decode: B streamed, no widening, one row
  switch (p.y.dtype) {
    case DType::f16:
      return (one ? ExpandDotRowsExact<TB, DType::f16, true> : ExpandDotRowsExact<TB, DType::f16, false>)(
          w, Bw, rank, scale, pos_begin, pos_end, n_begin, n_end);
    case DType::bf16:
      return (one ? ExpandDotRowsExact<TB, DType::bf16, true> : ExpandDotRowsExact<TB, DType::bf16, false>)(
          w, Bw, rank, scale, pos_begin, pos_end, n_begin, n_end);
    default:
      return (one ? ExpandDotRowsExact<TB, DType::f32, true> : ExpandDotRowsExact<TB, DType::f32, false>)(
          w, Bw, rank, scale, pos_begin, pos_end, n_begin, n_end);
  }
}

void ExpandExact(const Work& w, int64_t pb, int64_t pe, int64_t adapter, int64_t nb, int64_t ne) {
  switch (w.p->b.dtype) {
    case DType::f16: return ExpandExactT<DType::f16>(w, pb, pe, adapter, nb, ne);
    case DType::bf16: return ExpandExactT<DType::bf16>(w, pb, pe, adapter, nb, ne);
    default: return ExpandExactT<DType::f32>(w, pb, pe, adapter, nb, ne);
  }
}

