// Shared by the decode shrinks that read A one rank row after another (shrink_row_nd-inl.h for
// fp32 FMAs, shrink_bf16.cc for vdpbf16ps): software prefetch of weights into L2 -- one line
// (PrefetchL2), and a walk along weight rows in address order (RowLines) -- and the queue of
// finished chains that they reduce 16 at a time (QueueChains).  Not part of the library's
// interface.
#pragma once
#include <cstdint>

namespace addlora::kernels::internal {

// A weight line ahead of its use, into L2 (prefetcht1): weight streams prefetched into L1
// evict the lines the loops are reading (bench/notes.md).
__attribute__((always_inline)) inline void PrefetchL2(const void* p) { __builtin_prefetch(p, 0, 2); }

// Bytes of A prefetched ahead, in address order: 8 KiB measured best of 2, 4, 8, 12, 16 and 24
// (bench/notes.md).
constexpr int64_t kRowNdAhead = 8192;

// Prefetches one line at a time into L2 along rows [r, r_end) of `bytes` each, `pitch` bytes
// apart.
struct RowLines {
  const unsigned char* row;
  int64_t off, bytes, pitch, rows_left;
  __attribute__((always_inline)) void skip() {
    if ((off += 64) >= bytes) {
      off -= bytes;
      row += pitch;
      --rows_left;
    }
  }
  __attribute__((always_inline)) void next() {
    if (rows_left <= 0) return;
    PrefetchL2(row + off);
    skip();
  }
  // Rows of `bytes` each from `first`, the first kRowNdAhead bytes skipped (those lines come
  // on demand).
  static RowLines ahead_of(const unsigned char* first, int64_t bytes, int64_t pitch, int64_t rows) {
    RowLines pf{first, 0, bytes, pitch, rows};
    for (int64_t b = 0; b < kRowNdAhead; b += 64) pf.skip();
    return pf;
  }
};

// Appends kRows finished chains, acc[i] to be added to out[i][at], to the pending list (n
// entries so far) that the caller reduces through one lane tree once it is full.
template <int kRows, class V>
__attribute__((always_inline)) inline void QueueChains(V* pending, double** pending_out, int* n, const V* acc,
                                                       double* const* out, int64_t at) {
  for (int i = 0; i < kRows; ++i) {
    pending[*n] = acc[i];
    pending_out[(*n)++] = &out[i][at];
  }
}

}  // namespace addlora::kernels::internal
