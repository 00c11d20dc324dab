// Internal contract between the scheduler (dispatch.cc) and the per-target SIMD kernels
// (simd_kernels.cc).  Not part of the library's interface.
//
// The scheduler groups rows by adapter (positions in `order`), then runs three phases on the
// pool, each split into tasks whose results do not depend on which thread runs them:
//   shrink  (group, row tile, K chunk) -> zpart[k][pos][0..rank)  fp64 partial sums
//   combine (row range)                -> z[pos] = fp32(zpart[0][pos] + ... + zpart[nk-1][pos])
//                                         (fixed order; or z = x when there is no weight A)
//   expand  (group, row tile, n tile)  -> out[row, y_offset + n]
// Accumulator policy (docs/contract.md §1, the one precision): products and sums in fp32 FMA
// chains of at most kChain products per accumulator lane, each chain then folded into fp64;
// chain boundaries sit at fixed multiples of kChain * lanes from the start of the sum (a lane
// per column residue: dot-product blocks), or of kChain (a lane per output: outer-product
// blocks), so they depend on the shapes, the indices (which form a task takes) and the SIMD
// target only.
// Per-adapter ranks (Problem::ranks): the kernels of adapter a compute and read only ranks
// [0, rank_of(a)) -- A rows and B columns past it are never loaded -- and the combine sets
// z[pos][rank..rp) to zero.  Path choices in the expand depend on the rank, so a rank-limited
// adapter gives the same bits as a tensor of that rank.  The delta is scaled by scale_of(a).
// K chunk boundaries depend only on H1 and the number of row tiles, and the choice between
// split-K and the rank split (see Work::rank_split) only on the number and sizes of the groups,
// and the rank groups on the ranks in use -- never on the thread count, so results are bitwise identical for any.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/problem.h"

namespace addlora::kernels::internal {

constexpr int64_t kRowTile = 128;   // rows per task (x / z tile reused across A / B blocks)
constexpr int64_t kRankGroup = 16;  // ranks per shrink task in rank-split mode
constexpr int64_t kChain = 64;      // fp32 products per accumulator lane before an fp64 fold
// Shrink tasks of one or two rows over ND A (decode) that do not read A in address order
// (shrink_row_nd-inl.h; DotRowsInOrder in shrink_bf16.cc) stream this many A rows at a time,
// each prefetched kFewRowsAhead bytes ahead: more streams than the hardware prefetcher keeps
// ahead of.
constexpr int kFewRowsRanks = 8;
constexpr int64_t kFewRowsAhead = 1024;  // bytes (512 to 4096 measured, bench/notes.md)

struct Work {
  const detail::Problem* p = nullptr;
  const int32_t* order = nullptr;        // [rows_with_adapter] row index at each position
  const int32_t* group_start = nullptr;  // [ngroups + 1] first position of each group
  const int32_t* group_adapter = nullptr;// [ngroups]
  int64_t ngroups = 0;
  int64_t kc = 0;                        // K chunk length (multiple of 16)
  int64_t nk = 1;                        // number of K chunks
  int64_t rp = 0;                        // padded rank (multiple of 16): row pitch of z
  double* zpart = nullptr;               // [nk][B][rp] (B as below): fp64 partial sums
  float* z = nullptr;                    // [B][rp]: the combined z, rounded once to fp32
  int64_t B = 0;                         // rows with an adapter: K-chunk planes are B*rp apart
  // Rank split instead of split-K (several groups, each of few rows: multi-adapter decode).
  // Shrink task k then covers ranks [k*rank_group, ...) over all of H1 and writes z directly
  // (nk is 1).  rank_group: kRankGroup or a multiple of it (dispatch.cc).
  bool rank_split = false;
  int64_t rank_group = kRankGroup;
};

// Kernels of one SIMD target.  All ranges are half-open; positions index `order`.
struct TargetKernels {
  const char* name;
  void (*shrink)(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t k);
  void (*expand)(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter,
                 int64_t n_begin, int64_t n_end);
  // The expand phase of a shrink-only call (Problem::shrink_only), arguments as expand's.
  void (*write_scaled_z)(const Work& w, int64_t pos_begin, int64_t pos_end, int64_t adapter, int64_t n_begin,
                         int64_t n_end);
};

// Per-target kernel tables compiled into this build and supported by this CPU, best first.
std::vector<const TargetKernels*> supported_targets();

// The table execute() uses now: the forced one (below), else ADDLORA_SIMD_TARGET if available,
// else the best supported (targets.cc).
const TargetKernels* current_target();

// Test hook: run subsequent execute() calls on the named target ("" or nullptr = automatic
// choice, which honours ADDLORA_SIMD_TARGET).  Returns false if that target is not
// available here (the choice is then unchanged).
bool force_simd_target(const char* name);
std::vector<std::string> available_simd_targets();

// How the row-lane expand (expand_rows-inl.h) feeds a single row group over whole ND rows of B:
// each quad widened as it is read (in place) or each block widened once into a buffer.  The
// same products in the same order, so the bits do not depend on it; the faster one depends on
// the core (bench/notes.md): in place on AMD, the buffer elsewhere (targets.cc).
bool row_lane_reads_b_in_place();
// Test hook: force one feed (true: in place, false: the buffer), or nullopt for the CPU's.
void force_row_lane_feed(std::optional<bool> in_place);
// Whether the CPU's vendor is AMD: the tuning choices that differ between AMD and Intel cores
// (this feed, the bf16 shrink's vdpbf16ps default) key on it.
bool amd_cpu();

// Test hook: shrink tasks run in the outer-product form (shrink_outer-inl.h) by this process,
// and the count's increment (called once per such task).
uint64_t outer_shrink_tasks();
void count_outer_shrink_task();

}  // namespace addlora::kernels::internal
