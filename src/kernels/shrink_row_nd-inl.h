// One row over ND A in address order (decode), part of simd_kernels.cc: included inside its
// per-target namespace by shrink-inl.h once per Highway target (hence no include guard).
// Uses that file's loads, SumEachToLane and FoldLanes.
// NOLINT(build/header_guard)
//
// The general decode block streams kFewRowsRanks A rows side by side, eight streams a row apart
// (about 27 GB/s from DRAM on one core, where the expand's single B stream reads 40+).  Here a
// rank row is read whole before the next, two fold segments at a time (the two chains give the
// FMA latency a second stream; one chain alone would cap the rate), with software prefetches
// in address order a fixed distance ahead.  Each lane still sums its segment's products in
// order, and each segment's accumulator goes through the same lane tree and is added to its
// rank's fp64 total in segment order, so the bits are those of ShrinkBlock.

// Bytes of A prefetched ahead, in address order: 8 KiB measured best of 2, 4, 8, 12, 16 and 24
// (bench/notes.md).
constexpr int64_t kRowNdAhead = 8192;

// Prefetches one line at a time along rows [r, r_end) of `bytes` each, `pitch` bytes apart.
struct RowLines {
  const unsigned char* row;
  int64_t off, bytes, pitch, rows_left;
  HWY_INLINE void skip() {
    if ((off += 64) >= bytes) {
      off -= bytes;
      row += pitch;
      --rows_left;
    }
  }
  HWY_INLINE void next() {
    if (rows_left <= 0) return;
    hwy::Prefetch(row + off);
    skip();
  }
};

// x: the row widened to fp32, column h at x[h - h_begin]; columns [h_begin, h_end), a whole
// number of fold segments (kSegCols), at least two; ranks [r_begin, r_end); out[r] = z[r].
template <DType TA>
HWY_NOINLINE void ShrinkOneRowNd(const WeightRows& A, const float* x, int64_t h_begin, int64_t h_end, int64_t r_begin,
                                 int64_t r_end, double* out) {
  const DF d;
  constexpr int64_t kL = static_cast<int64_t>(kLanes), aes = static_cast<int64_t>(ElemSize<TA>());
  constexpr int64_t kLinesPerStep = std::max<int64_t>(1, 2 * kL * aes / 64);  // two vectors' bytes
  const int64_t len = h_end - h_begin, segs = len / kSegCols, row_bytes = len * aes;
  const int64_t pitch = A.row_step * aes;
  // Start kRowNdAhead bytes past the first rank's start (the first lines come on demand).
  RowLines pf{A.base + r_begin * pitch + h_begin * aes, 0, row_bytes, pitch, r_end - r_begin};
  for (int64_t b = 0; b < kRowNdAhead; b += 64) pf.skip();
  VF pending[kLanes];  // finished chains, folded kLanes at a time
  int64_t pending_rank[kLanes];
  int n_pending = 0;
  for (int64_t r = r_begin; r < r_end; ++r) out[r] = 0.0;
  auto flush = [&] {
    for (int i = n_pending; i < static_cast<int>(kLanes); ++i) pending[i] = hn::Zero(d);
    HWY_ALIGN float sums[kLanes];
    hn::Store(SumEachToLane(d, pending), d, sums);
    for (int i = 0; i < n_pending; ++i) out[pending_rank[i]] += static_cast<double>(sums[i]);  // segment order
    n_pending = 0;
  };
  for (int64_t r = r_begin; r < r_end; ++r) {
    const unsigned char* row = A.base + r * pitch;
    for (int64_t s = 0; s < segs; s += 2) {
      const bool two = s + 1 < segs;
      const int64_t h0 = h_begin + s * kSegCols, h1 = h0 + kSegCols;
      VF acc0 = hn::Zero(d), acc1 = hn::Zero(d);
      if (two) {
        for (int64_t t = 0; t < kSegCols; t += kL) {
          for (int64_t l = 0; l < kLinesPerStep; ++l) pf.next();
          acc0 = hn::MulAdd(hn::LoadU(d, x + (h0 - h_begin) + t), LoadF<TA>(row, h0 + t), acc0);
          acc1 = hn::MulAdd(hn::LoadU(d, x + (h1 - h_begin) + t), LoadF<TA>(row, h1 + t), acc1);
        }
      } else {
        for (int64_t t = 0; t < kSegCols; t += kL) {
          if ((t / kL) % 2 == 0) for (int64_t l = 0; l < kLinesPerStep; ++l) pf.next();
          acc0 = hn::MulAdd(hn::LoadU(d, x + (h0 - h_begin) + t), LoadF<TA>(row, h0 + t), acc0);
        }
      }
      pending[n_pending] = acc0;
      pending_rank[n_pending++] = r;
      if (two) {
        pending[n_pending] = acc1;
        pending_rank[n_pending++] = r;
      }
      if (n_pending + 2 > static_cast<int>(kLanes)) flush();
    }
  }
  if (n_pending > 0) flush();
}
