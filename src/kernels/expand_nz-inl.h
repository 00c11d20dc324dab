// The one-row (decode) expand over FRACTAL_NZ B (ranks <= kSegCols: one fp32 chain per lane),
// part of simd_kernels.cc:
// included inside its per-target namespace once per Highway target (hence no include guard).
// Uses that file's loads and SumEachToLane.
// NOLINT(build/header_guard)
//
// Why a separate walk: a B row's 16-rank pieces lie a whole NZ block column (H2 x 32 bytes for
// 16-bit B) apart.  Read row block by row block, all chunks' streams sit at the same offset
// within their columns; for H2 a multiple of 128 (column stride a multiple of 4 KiB) they share
// L1 sets (one thread, fast, R=128 W=8 B=1: NZ 59-72 us at H2=4096 and 58-63 at H2=4352, but
// 54-55 at H2=4112; ND 46-53 at all three).  So the chunks are taken in groups of kNzSkewGroup
// ranks (wider past kNzMaxGroups groups), and group g works g * kNzSkewBytes of B behind group
// 0, as if the columns were not a multiple of 4 KiB apart.  A row block's partial sums wait in
// a ring between groups; each lane still adds its ranks in ascending order, so the bits are
// those of ExpandDot (FRACTAL_NZ equals ND bitwise).  Measured (R=128 W=8 H2=4096, weights from
// DRAM, alternated with the unskewed walk): groups of 16 or 32 ranks cost more in ring traffic
// than they saved; skews of 512 B and 1 KiB were a little slower than 2 KiB.

constexpr int64_t kNzSkewGroup = 64;     // ranks per group: 4 chunks (R=64 NZ was not slowed)
constexpr int64_t kNzSkewBytes = 2048;   // between groups: 64 rows of 16-bit B, 32 of fp32
// At most this many groups, so the ring has a fixed size: ranks above 8 x 64 (the general
// API takes any R) widen the groups instead.
constexpr int64_t kNzMaxGroups = 8;

// One vector of B in fp32: the full and the partial load.
template <DType TB, class D>
HWY_INLINE hn::Vec<D> LoadB(const unsigned char* row, int64_t off) { return LoadF<TB>(row, off); }
template <DType TB, class D>
HWY_INLINE hn::Vec<D> LoadTailB(const unsigned char* row, int64_t off, int64_t count) {
  return LoadTailF<TB>(row, off, count);
}

// acc[j] += z[r] * B row j for r in [r_lo, r_hi) (r_hi <= rank), rows j = 0..kL-1 consecutive
// NZ rows from row0; a ragged end of the rank (r_hi == rank) is read partially.
template <DType TB, class D>
HWY_INLINE void NzDotSteps(D d, const hn::TFromD<D>* z, const unsigned char* row0, int64_t chunk_step, int64_t r_lo,
                           int64_t r_hi, hn::Vec<D>* acc) {
  constexpr int64_t kL = static_cast<int64_t>(hn::MaxLanes(D()));
  constexpr int64_t kRowBytes = 16 * static_cast<int64_t>(ElemSize<TB>());
  const int64_t r_full = r_lo + (r_hi - r_lo) / kL * kL;
  for (int64_t r = r_lo; r < r_full; r += kL) {
    const auto zv = hn::LoadU(d, z + r);
    const int64_t boff = (r >> 4) * chunk_step + (r & 15);
    for (int64_t j = 0; j < kL; ++j) acc[j] = hn::MulAdd(zv, LoadB<TB, D>(row0 + j * kRowBytes, boff), acc[j]);
  }
  if (r_full < r_hi) {
    const auto zv = hn::LoadU(d, z + r_full);
    const int64_t boff = (r_full >> 4) * chunk_step + (r_full & 15);
    for (int64_t j = 0; j < kL; ++j)
      acc[j] = hn::MulAdd(zv, LoadTailB<TB, D>(row0 + j * kRowBytes, boff, r_hi - r_full), acc[j]);
  }
}

// Rows [n_begin, n_begin + blocks * kL) of the slice for one output row: finish(n0, v) gets
// lane j = sum over r < rank of z[r] * B row n0 + j.  z is padded with zeros to a multiple of kL.
template <DType TB, class D, class Finish>
HWY_INLINE void ExpandOneRowNz(D d, const hn::TFromD<D>* z, const WeightRows& Bw, int64_t rank, int64_t n_begin,
                               int64_t blocks, int64_t ahead_rows, const Finish& finish) {
  using T = hn::TFromD<D>;
  using V = hn::Vec<D>;
  constexpr int64_t kL = static_cast<int64_t>(hn::MaxLanes(D()));
  const int64_t skew_rows = kNzSkewBytes / (16 * static_cast<int64_t>(ElemSize<TB>()));
  const int64_t skew = std::max<int64_t>(1, skew_rows / kL);  // in blocks
  constexpr int64_t kRingMax = (kNzMaxGroups - 1) * std::max<int64_t>(1, kNzSkewBytes / 32 / kL) + 1;
  const int64_t per_group = std::max(kNzSkewGroup, (rank + 16 * kNzMaxGroups - 1) / (16 * kNzMaxGroups) * 16);
  const int64_t groups = (rank + per_group - 1) / per_group;  // 1..kNzMaxGroups (rank >= 1)
  const int64_t ring = (groups - 1) * skew + 1;  // blocks between a block's first and last group
  HWY_ALIGN T partial[kRingMax * kL * kL];
  const int64_t n_end = n_begin + blocks * kL;
  PrefetchBRows(Bw, n_begin, std::min(n_end, n_begin + ahead_rows), rank);
  for (int64_t step = 0; step < blocks + (groups - 1) * skew; ++step) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t blk = step - g * skew;
      if (blk < 0) break;  // later groups are further behind
      if (blk >= blocks) continue;
      const int64_t n0 = n_begin + blk * kL, r_lo = g * per_group;
      const int64_t r_hi = std::min(rank, r_lo + per_group);
      if (n0 + ahead_rows < n_end)
        PrefetchBRanks(Bw, n0 + ahead_rows, std::min(n_end, n0 + ahead_rows + kL), r_lo, r_hi);
      T* slot = partial + (blk % ring) * kL * kL;
      V acc[kL];
      for (int64_t j = 0; j < kL; ++j) acc[j] = g == 0 ? hn::Zero(d) : hn::Load(d, slot + j * kL);
      NzDotSteps<TB>(d, z, Bw.row(n0), Bw.chunk_step, r_lo, r_hi, acc);
      if (g + 1 < groups) {
        for (int64_t j = 0; j < kL; ++j) hn::Store(acc[j], d, slot + j * kL);
      } else {
        finish(n0, SumEachToLane(d, acc));
      }
    }
  }
}
