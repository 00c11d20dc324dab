// One or two rows over ND A in address order (decode), part of simd_kernels.cc: included inside its
// per-target namespace by shrink-inl.h once per Highway target (hence no include guard).
// Uses that file's loads, SumEachToLane and FoldLanes, and RowLines and QueueChains (row_lines.h).
// NOLINT(build/header_guard)
//
// The general decode block streams kFewRowsRanks A rows side by side, eight streams a row apart
// (about 27 GB/s from DRAM on one core, where the expand's single B stream reads 40+).  Here a
// rank row is read whole before the next, two fold segments at a time (a second chain per row
// hides the FMA latency; one chain alone would cap the rate), with software prefetches
// in address order a fixed distance ahead.  Each lane still sums its segment's products in
// order, and each segment's accumulator goes through the same lane tree and is added to its
// rank's fp64 total in segment order, so the bits are those of ShrinkBlock.

// kRows (1 or 2) rows; x[i]: row i as TX, column h at element h - h_begin (one row: widened to
// fp32 by the caller; two rows: the caller's 16-bit rows on the SIMD targets, since two widened
// rows are 32 KiB, a whole 32 KiB L1, which A's stream evicts for every rank row;
// bench/notes.md); columns
// [h_begin, h_end), a whole number of fold segments (kSegCols), at least two; ranks [r_begin,
// r_end); out[i][r] = z of row i, rank r.  Two rows share every A load.  plane_segs > 0: the
// sums of segments [c * plane_segs, (c + 1) * plane_segs) go to out[i][r + c * plane_pitch]
// instead (the K chunks' partial sums, each started at zero as a task of that chunk starts).
template <DType TX, DType TA, int kRows>
HWY_NOINLINE void ShrinkRowsNd(const WeightRows& A, const unsigned char* const* x, int64_t h_begin, int64_t h_end,
                               int64_t r_begin, int64_t r_end, double* const* out, int64_t plane_segs = 0,
                               int64_t plane_pitch = 0) {
  static_assert(kRows == 1 || kRows == 2, "one or two rows");
  const DF d;
  constexpr int64_t kL = static_cast<int64_t>(kLanes), aes = static_cast<int64_t>(ElemSize<TA>());
  constexpr int64_t kVecBytes = kL * aes;  // A bytes per vector; a prefetch per 64 bytes read
  constexpr int kChains = 2 * kRows;  // per step: (row, segment) for two segments
  static_assert(kChains <= static_cast<int>(kLanes), "a fold group holds a step's chains");
  const int64_t len = h_end - h_begin, segs = len / kSegCols, row_bytes = len * aes;
  const int64_t pitch = A.row_step * aes;
  internal::RowLines pf = internal::RowLines::ahead_of(A.base + r_begin * pitch + h_begin * aes, row_bytes, pitch, r_end - r_begin);
  VF pending[kLanes];  // finished chains, folded kLanes at a time
  double* pending_out[kLanes];
  int n_pending = 0;
  int64_t credit = 0;  // A bytes read since the last prefetch
  if (plane_segs <= 0) plane_segs = segs;
  const int64_t planes = (segs + plane_segs - 1) / plane_segs;
  for (int i = 0; i < kRows; ++i)
    for (int64_t c = 0; c < planes; ++c)
      for (int64_t r = r_begin; r < r_end; ++r) out[i][r + c * plane_pitch] = 0.0;
  auto flush = [&] {
    for (int c = n_pending; c < static_cast<int>(kLanes); ++c) pending[c] = hn::Zero(d);
    HWY_ALIGN float sums[kLanes];
    hn::Store(SumEachToLane(d, pending), d, sums);
    for (int c = 0; c < n_pending; ++c) *pending_out[c] += static_cast<double>(sums[c]);  // segment order
    n_pending = 0;
  };
  for (int64_t r = r_begin; r < r_end; ++r) {
    const unsigned char* row = A.base + r * pitch;
    for (int64_t s = 0; s < segs; s += 2) {
      const bool two = s + 1 < segs;
      const int64_t h0 = s * kSegCols, h1 = h0 + kSegCols;  // x offsets (A: h_begin + those)
      VF acc0[kRows], acc1[kRows];
      for (int i = 0; i < kRows; ++i) acc0[i] = acc1[i] = hn::Zero(d);
      if (two) {
        for (int64_t t = 0; t < kSegCols; t += kL) {
          for (credit += 2 * kVecBytes; credit >= 64; credit -= 64) pf.next();
          const VF a0 = LoadF<TA>(row, h_begin + h0 + t), a1 = LoadF<TA>(row, h_begin + h1 + t);
          for (int i = 0; i < kRows; ++i) {
            acc0[i] = hn::MulAdd(LoadF<TX>(x[i], h0 + t), a0, acc0[i]);
            acc1[i] = hn::MulAdd(LoadF<TX>(x[i], h1 + t), a1, acc1[i]);
          }
        }
      } else {
        for (int64_t t = 0; t < kSegCols; t += kL) {
          for (credit += kVecBytes; credit >= 64; credit -= 64) pf.next();
          const VF a0 = LoadF<TA>(row, h_begin + h0 + t);
          for (int i = 0; i < kRows; ++i) acc0[i] = hn::MulAdd(LoadF<TX>(x[i], h0 + t), a0, acc0[i]);
        }
      }
      const int64_t at0 = r + s / plane_segs * plane_pitch, at1 = r + (s + 1) / plane_segs * plane_pitch;
      internal::QueueChains<kRows>(pending, pending_out, &n_pending, acc0, out, at0);
      if (two) internal::QueueChains<kRows>(pending, pending_out, &n_pending, acc1, out, at1);
      if (n_pending + kChains > static_cast<int>(kLanes)) flush();
    }
  }
  if (n_pending > 0) flush();
}
