// Scheduler: groups rows by adapter and splits the work into tasks (see work.h), run on the
// SIMD target (targets.cc) and the shared pool (thread_pool.cc) of this machine.  Determinism:
// every output element and every partial sum is computed by exactly one task with a fixed loop
// order, and K chunks depend on H1 only, so results are bitwise identical whatever the thread
// count or scheduling.
#include <algorithm>
#include <new>
#include <shared_mutex>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/row_ops.h"
#include "kernels/thread_pool.h"
#include "kernels/work.h"

namespace addlora::kernels {

namespace {

using detail::Problem;
using internal::TargetKernels;
using internal::Work;

using internal::kRowTile;            // rows per task (work.h)
constexpr int64_t kNTile = 256;       // output columns per expand task, at least (SliceRun::ncols)
constexpr int64_t kMaxNTile = 4096;   // and at most
constexpr int64_t kExpandTasksPerThread = 1;  // wider column tiles while at least this many tasks each
constexpr int64_t kMinExpandTasks = 2;         // and at least this many in all
constexpr int64_t kMaxKChunks = 8;    // split-K for the shrink (bounded: scratch stays O(B*R))
constexpr int64_t kMinKChunk = 2048;  // shortest K chunk worth a task (reductions amortised, A runs long enough to stream)
constexpr int64_t kWholeRow = 4096;   // longest K chunk (simd_kernels.cc kXBuf)
constexpr int64_t kMinShrinkTasks = 16;  // fixed, not the thread count: results stay identical
constexpr int64_t kRankSplitMaxRows = 8;  // groups up to this size: rank split (work.h)
constexpr int64_t kMinRankTasks = 4;      // rank split: fewest tasks left by wider groups
constexpr int64_t kMaxCountingW = int64_t{1} << 20;
constexpr double kInlineBytes = 96 * 1024;  // below both: single-threaded (decided by shape only)
constexpr double kInlineFlops = 4e6;
constexpr size_t kMaxFused = 8;       // slices sharing one set of parallel phases (more: in batches)

int64_t align64(int64_t n) { return (n + 63) & ~int64_t{63}; }
int64_t round16(int64_t n) { return (n + 15) & ~int64_t{15}; }

// K chunking: a function of the shapes and of the number of row tiles (from the indices),
// never of the thread count.  tiles < 0: the most chunks any call may use (workspace sizing).
// Many tiles already give enough tasks, so the chunks grow up to whole rows of x (<= kWholeRow
// elements): long runs stream from DRAM, and the per-chunk reductions amortise.
void k_split(const Problem& p, int64_t tiles, int64_t* kc, int64_t* nk) {
  if (!p.has_a) { *kc = p.H1; *nk = 1; return; }
  const int64_t most = std::min<int64_t>(kMaxKChunks, std::max<int64_t>(1, p.H1 / kMinKChunk));
  int64_t n = most;
  if (tiles > 0)
    n = std::min(most, std::max((kMinShrinkTasks + tiles - 1) / tiles, (p.H1 + kWholeRow - 1) / kWholeRow));
  *kc = round16((p.H1 + n - 1) / n);
  *nk = (p.H1 + *kc - 1) / *kc;
}

// The SIMD path needs unit column strides (or NZ weights); anything else runs the portable
// kernel (correct for any strides, fp64 sums, single-threaded).
bool simd_eligible(const Problem& p) {
  auto unit = [](int64_t stride, int64_t cols) { return stride == 1 || cols == 1; };
  if (!unit(p.y.col_stride, p.H3) || !unit(p.out.col_stride, p.H3)) return false;
  if (p.b.layout == Layout::nd && !unit(p.b.col_stride, p.R)) return false;
  if (p.has_a) {
    if (!unit(p.x.col_stride, p.H1)) return false;
    if (p.a.layout == Layout::nd && !unit(p.a.col_stride, p.H1)) return false;
  }
  return true;
}

// Workspace: the grouping, shared by every slice of a call (they share indices), then each
// slice's partial sums.
struct Shared {
  int64_t counts, order, group_start, group_adapter, tile_start, end;
};

int64_t max_adapters(const Problem* ps, size_t n) {
  int64_t w = 0;
  for (size_t k = 0; k < n; ++k) w = std::max(w, ps[k].W);
  return w;
}

Shared carve_shared(int64_t B, int64_t W) {
  Shared l{};
  int64_t at = 0;
  l.counts = at;        at += W <= kMaxCountingW ? align64((W + 1) * 4) : 0;
  l.order = at;         at += align64(B * 4);
  l.group_start = at;   at += align64((B + 1) * 4);
  l.group_adapter = at; at += align64(B * 4);
  l.tile_start = at;    at += align64((B + 1) * 4);
  l.end = at;
  return l;
}

// Most z elements the partial sums ever need: nk * rows * rp over every possible row count
// (rows with an adapter <= B, in >= ceil(rows / kRowTile) tiles).  Many rows mean many tiles
// and so few K chunks, which keeps this near B * rp instead of kMaxKChunks * B * rp.
int64_t zpart_rows(const Problem& p) {
  int64_t most = 0, kc, nk;
  for (int64_t tiles = 1; (tiles - 1) * kRowTile < p.B; ++tiles) {
    k_split(p, tiles, &kc, &nk);
    most = std::max(most, nk * std::min(p.B, tiles * kRowTile));
  }
  return most;
}

// The fp64 partial sums, then the combined fp32 z (one row per row with an adapter <= B).
int64_t zpart_bytes(const Problem& p) { return align64(zpart_rows(p) * round16(p.R) * 8); }
int64_t z_bytes(const Problem& p) { return align64(p.B * round16(p.R) * 4); }
int64_t slice_bytes(const Problem& p) { return zpart_bytes(p) + z_bytes(p); }

template <class F>
void parallel_for(ThreadPool* tp, int64_t n, F& f) {
  if (n <= 0) return;
  if (!tp || n == 1) {  // nothing to share: skip waking the workers
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  tp->run([](void* ctx, int64_t i) { (*static_cast<F*>(ctx))(i); }, &f, n);
}


// Rows by adapter: order[] holds the rows with an index in [0, W), sorted by (index, row)
// (stable counting sort), cut into groups of one adapter each, and the groups into row tiles.
// Groups are sorted by adapter, so a slice with fewer adapters uses a prefix of them.
struct Groups {
  const int32_t* order;
  const int32_t* start;    // [n + 1] first position of each group
  const int32_t* adapter;  // [n]
  const int32_t* tile;     // [n + 1] first row tile of each group
  int64_t n;
};

Groups group_rows(const Problem& p, int64_t W, const Shared& l, char* ws) {
  auto* order = reinterpret_cast<int32_t*>(ws + l.order);
  auto* gstart = reinterpret_cast<int32_t*>(ws + l.group_start);
  auto* gadapter = reinterpret_cast<int32_t*>(ws + l.group_adapter);
  auto* tile_start = reinterpret_cast<int32_t*>(ws + l.tile_start);
  int64_t n = 0;
  if (W <= kMaxCountingW) {
    auto* count = reinterpret_cast<int32_t*>(ws + l.counts);
    std::fill(count, count + W + 1, 0);
    for (int64_t b = 0; b < p.B; ++b) {
      const int64_t a = detail::adapter_of(p, b, W);
      if (a >= 0) ++count[a + 1];
    }
    for (int64_t a = 0; a < W; ++a) count[a + 1] += count[a];
    n = count[W];
    for (int64_t b = 0; b < p.B; ++b) {
      const int64_t a = detail::adapter_of(p, b, W);
      if (a >= 0) order[count[a]++] = static_cast<int32_t>(b);
    }
  } else {
    for (int64_t b = 0; b < p.B; ++b)
      if (detail::adapter_of(p, b, W) >= 0) order[n++] = static_cast<int32_t>(b);
    std::stable_sort(order, order + n, [&](int32_t x, int32_t y) {
      return detail::adapter_of(p, x, W) < detail::adapter_of(p, y, W);
    });
  }
  int64_t g = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = detail::adapter_of(p, order[i], W);
    if (i == 0 || a != gadapter[g - 1]) {
      gstart[g] = static_cast<int32_t>(i);
      gadapter[g++] = static_cast<int32_t>(a);
    }
  }
  gstart[g] = static_cast<int32_t>(n);
  tile_start[0] = 0;
  for (int64_t k = 0; k < g; ++k)
    tile_start[k + 1] = tile_start[k] + static_cast<int32_t>((gstart[k + 1] - gstart[k] + kRowTile - 1) / kRowTile);
  return Groups{order, gstart, gadapter, tile_start, g};
}

// One slice's part of a call: its Work and its task counts in each phase.
struct SliceRun {
  Work w;
  const int32_t* tile_start = nullptr;
  int64_t rows = 0;       // positions with an adapter of this slice
  int64_t tiles = 0;      // row tiles of its groups
  int64_t per_tile = 0;   // shrink tasks per row tile (K chunks, or rank groups)
  int64_t ncols = kNTile; // columns per expand task
  int64_t ntiles = 0;     // column tiles of the expand
  int64_t shrink_tasks() const { return w.p->has_a ? tiles * per_tile : 0; }
  int64_t combine_tasks() const { return (rows + kRowTile - 1) / kRowTile; }
  int64_t expand_tasks() const { return tiles * ntiles; }
  // Row tile t -> its group and positions [pb, pe).
  void tile(int64_t t, int64_t* g, int64_t* pb, int64_t* pe) const {
    *g = std::upper_bound(tile_start, tile_start + w.ngroups + 1, static_cast<int32_t>(t)) - tile_start - 1;
    *pb = w.group_start[*g] + (t - tile_start[*g]) * kRowTile;
    *pe = std::min<int64_t>(w.group_start[*g + 1], *pb + kRowTile);
  }
};

// Sets up slice p over the shared groups (the prefix with adapters below p.W).  Every choice
// here depends on this slice's shapes and groups only, exactly as for a call of its own, so a
// multi-slice call gives the same bits as consecutive single calls.
SliceRun plan_slice(const Problem& p, const Groups& gr, char* zpart, int threads) {
  SliceRun s;
  Work& w = s.w;
  w.p = &p;
  w.rp = round16(p.R);
  w.zpart = reinterpret_cast<double*>(zpart);
  w.z = reinterpret_cast<float*>(zpart + zpart_bytes(p));
  w.order = gr.order;
  w.group_start = gr.start;
  w.group_adapter = gr.adapter;
  w.ngroups = std::lower_bound(gr.adapter, gr.adapter + gr.n, static_cast<int32_t>(std::min<int64_t>(p.W, INT32_MAX))) - gr.adapter;
  s.tile_start = gr.tile;
  if (gr.start[w.ngroups] == 0 || p.S == 0) return s;  // nothing to compute: no tasks at all
  s.rows = gr.start[w.ngroups];
  s.tiles = gr.tile[w.ngroups];
  int64_t largest = 0, max_rank = 0;
  for (int64_t g = 0; g < w.ngroups; ++g) {
    largest = std::max<int64_t>(largest, gr.start[g + 1] - gr.start[g]);
    max_rank = std::max(max_rank, detail::rank_of(p, gr.adapter[g]));
  }
  // Shrink tasks: (row tile, K chunk), few tiles (decode) getting more chunks.  When every
  // adapter has few rows and there are several of them (multi-adapter decode), split the ranks
  // instead: a task streams its adapter's A rows whole, prefetching the next rank block's rows
  // as it goes (longer DRAM runs; measurements in bench/notes.md).  A single tile (one adapter)
  // keeps split-K at rank 16 (one rank group would be one task).
  // Decided on the shapes, the indices and the ranks in use, never the thread count.
  k_split(p, s.tiles, &w.kc, &w.nk);
  // One adapter splits its ranks too when that leaves two tasks or more: over ND A, whole A
  // rows (one contiguous run per task) stream faster than K chunks of every row
  // (bench/notes.md, 2026-12-05).  NZ takes the same split, because NZ and ND must give the
  // same bits (docs/contract.md §1.4), though its chunked walk was a little faster there.
  const bool one_adapter = s.tiles == 1 && max_rank > internal::kRankGroup;
  w.rank_split = p.has_a && (s.tiles > 1 || one_adapter) && largest <= kRankSplitMaxRows;
  if (w.rank_split) w.nk = 1;
  // Rank groups as wide as leave kMinRankTasks tasks: fewer, longer streams.  Over FRACTAL_NZ
  // A a 16-rank group would be a sparse 512 bytes of every R x 32 (R=64 W=8 fast, B=4/8/32:
  // NZ 0.84-0.95x of ND with 16-rank groups, 0.96-1.1x with 64); over ND, wider groups with
  // the spread prefetch were faster too.  Each rank's sum is the same whatever the grouping
  // and the layout (FractalNzEqualsNdBitwise covers groups of 32 to 256).
  w.rank_group = internal::kRankGroup;
  if (w.rank_split)
    while (w.rank_group < max_rank &&
           s.tiles * ((max_rank + 2 * w.rank_group - 1) / (2 * w.rank_group)) >= kMinRankTasks)
      w.rank_group *= 2;
  w.B = s.rows;  // K-chunk planes are rows * rp apart (zpart_rows sized them)
  // Rank groups past every adapter's rank would be empty tasks.
  s.per_tile = w.rank_split ? std::max<int64_t>(1, (max_rank + w.rank_group - 1) / w.rank_group) : w.nk;
  // Expand tasks: column tiles as wide as still leave kExpandTasksPerThread tasks per thread.
  // A task then streams one long run of its adapter's B and its prefetches run on into its own
  // columns, instead of threads interleaving narrow tiles of one adapter's B (measured at decode,
  // bench/notes.md).  Each output column is computed alike whatever the tiling: the bits do not
  // depend on it, so the thread count may.
  const int64_t min_tasks = std::max<int64_t>(kMinExpandTasks, kExpandTasksPerThread * threads);
  while (s.ncols < kMaxNTile && s.ncols < p.S && s.tiles * ((p.S + 2 * s.ncols - 1) / (2 * s.ncols)) >= min_tasks)
    s.ncols *= 2;
  s.ntiles = (p.S + s.ncols - 1) / s.ncols;
  return s;
}

// Runs phase(slice, task) for every task of every slice as one parallel region: one wake-up
// and one barrier per phase for the whole call, however many slices.
template <class Count, class Body>
void for_all_tasks(ThreadPool* tp, SliceRun* run, size_t n, Count count, Body body) {
  int64_t first[kMaxFused + 1];
  first[0] = 0;
  for (size_t k = 0; k < n; ++k) first[k + 1] = first[k] + count(run[k]);
  auto task = [&](int64_t t) {
    const size_t k = static_cast<size_t>(std::upper_bound(first, first + n + 1, t) - first - 1);
    body(run[k], t - first[k]);
  };
  parallel_for(tp, first[n], task);
}

void combine(const SliceRun& s, int64_t t) {  // K chunks summed in a fixed order (or z = x)
  const Problem& p = *s.w.p;
  const Work& w = s.w;
  for (int64_t pos = t * kRowTile, e = std::min(s.rows, pos + kRowTile); pos < e; ++pos) {
    float* z = w.z + pos * w.rp;
    const int64_t row = w.order[pos];
    // Ranks past the adapter's own (Problem::ranks) were not computed: they become zeros,
    // so the expand's vector tails can sum over a whole vector of z.
    const int64_t rank = detail::rank_of(p, detail::adapter_of(p, row));
    if (p.has_a) {
      const double* zp = w.zpart + pos * w.rp;
      for (int64_t r = 0; r < rank; ++r) {
        double sum = zp[r];
        for (int64_t k = 1; k < w.nk; ++k) sum += zp[k * w.B * w.rp + r];
        z[r] = static_cast<float>(sum);
      }
    } else {
      model::visit_float(p.x.dtype, [&](auto tx) {
        for (int64_t r = 0; r < rank; ++r)
          z[r] = model::load_float<decltype(tx)::value>(p.x.base, row * p.x.row_stride + r * p.x.col_stride);
      });
    }
    for (int64_t r = rank; r < w.rp; ++r) z[r] = 0;
  }
}

// Bytes and flops the call will move, from its groups: only the adapters in use, each at its
// own rank (the single-thread threshold must not count padded ranks or idle adapters).

void estimate_cost(const SliceRun* run, size_t n, double* bytes, double* flops) {
  for (size_t k = 0; k < n; ++k) {
    const SliceRun& s = run[k];
    const Problem& p = *s.w.p;
    if (s.tiles == 0) continue;
    for (int64_t g = 0; g < s.w.ngroups; ++g) {
      const double rank = static_cast<double>(detail::rank_of(p, s.w.group_adapter[g]));
      const double len = s.w.group_start[g + 1] - s.w.group_start[g];
      *bytes += rank * ((p.has_a ? p.H1 : 0) + p.H2) * 2;
      *flops += 2.0 * len * rank * ((p.has_a ? p.H1 : 0) + p.H2);
    }
    *bytes += double(s.rows) * (p.H1 + 2 * p.S) * 2;
  }
}

}  // namespace

uint64_t workspace_bytes(const Problem* ps, size_t n) {
  if (n == 0) return 0;
  // The grouping, then the partial sums of the largest batch of kMaxFused slices (batches run
  // one after another, each slice's sums consumed within its batch).
  uint64_t batch = 0, largest = 0, portable = 0;
  for (size_t k = 0; k < n; ++k) {
    if (k % kMaxFused == 0) batch = 0;
    batch += static_cast<uint64_t>(slice_bytes(ps[k]));
    largest = std::max(largest, batch);
    portable = std::max(portable, workspace_bytes_portable(ps[k]));
  }
  return std::max(static_cast<uint64_t>(carve_shared(ps[0].B, max_adapters(ps, n)).end) + largest, portable);
}

uint64_t workspace_bytes(const Problem& p) { return workspace_bytes(&p, 1); }

void execute(const Problem* ps, size_t n, void* workspace) {
  if (n == 0 || ps[0].B == 0) return;
  // A slice the SIMD kernels do not take (strides) runs on its own; so do all when one does.
  for (size_t k = 0; k < n; ++k)
    if (!simd_eligible(ps[k])) {
      for (size_t j = 0; j < n; ++j) {
        if (simd_eligible(ps[j])) execute(&ps[j], 1, workspace);
        else execute_portable(ps[j], workspace);
      }
      return;
    }
  const Problem& p0 = ps[0];
  const TargetKernels* kt = internal::current_target();
  SharedPool& pl = shared_pool();
  std::shared_lock<std::shared_mutex> lock(pl.mu);
  char* ws = static_cast<char*>(workspace);
  const int64_t W = max_adapters(ps, n);
  const Shared l = carve_shared(p0.B, W);
  const Groups gr = group_rows(p0, W, l, ws);

  for (size_t k0 = 0; k0 < n; k0 += kMaxFused) {
    const size_t m = std::min(kMaxFused, n - k0);
    char* zpart = ws + l.end;  // the previous batch's partial sums are consumed
    // Room for kMaxFused, constructed for this batch's m only (initialising all of them cost a
    // measurable part of a tiny call).
    static_assert(std::is_trivially_destructible_v<SliceRun>, "run[] is never destroyed");
    alignas(SliceRun) unsigned char room[kMaxFused * sizeof(SliceRun)];
    for (size_t k = 0; k < m; ++k) {
      new (room + k * sizeof(SliceRun)) SliceRun(plan_slice(ps[k0 + k], gr, zpart, pl.pool ? pl.pool->threads() : 1));
      zpart += slice_bytes(ps[k0 + k]);
    }
    SliceRun* const run = std::launder(reinterpret_cast<SliceRun*>(room));
    // Waking the workers costs microseconds (much more when the cores are oversubscribed):
    // calls smaller than that run on the calling thread.  Decided by shapes and indices only.
    double bytes = 0, flops = 0;
    estimate_cost(run, m, &bytes, &flops);
    const bool copy = k0 == 0 && !p0.in_place;  // later slices update out in place (plan.cc)
    if (copy) bytes += double(p0.B) * p0.H3 * 4;
    ThreadPool* tp = (bytes < kInlineBytes && flops < kInlineFlops) ? nullptr : pl.pool.get();

    // out = y everywhere first (out of place only); the expands then overwrite the slices.
    if (copy) {
      auto copy_rows = [&](int64_t t) {
        for (int64_t b = t * kRowTile, e = std::min(p0.B, b + kRowTile); b < e; ++b) internal::copy_row(p0, b);
      };
      parallel_for(tp, (p0.B + kRowTile - 1) / kRowTile, copy_rows);
    }
    for_all_tasks(tp, run, m, [](const SliceRun& s) { return s.shrink_tasks(); },
                  [&](const SliceRun& s, int64_t t) {
                    int64_t g, pb, pe;
                    s.tile(t / s.per_tile, &g, &pb, &pe);
                    kt->shrink(s.w, pb, pe, s.w.group_adapter[g], t % s.per_tile);
                  });
    // (a few adds per row: not worth a parallel region unless there are many rows)
    double combine_work = 0;
    for (size_t k = 0; k < m; ++k) combine_work += double(run[k].rows) * run[k].w.p->R * run[k].w.nk;
    for_all_tasks(combine_work < double(int64_t{1} << 18) ? nullptr : tp, run, m,
                  [](const SliceRun& s) { return s.combine_tasks(); }, combine);
    for_all_tasks(tp, run, m, [](const SliceRun& s) { return s.expand_tasks(); },
                  [&](const SliceRun& s, int64_t t) {
                    int64_t g, pb, pe;
                    s.tile(t / s.ntiles, &g, &pb, &pe);
                    const int64_t nb = (t % s.ntiles) * s.ncols;
                    const int64_t ne = std::min(s.w.p->S, nb + s.ncols);
                    if (s.w.p->shrink_only) kt->write_scaled_z(s.w, pb, pe, s.w.group_adapter[g], nb, ne);
                    else kt->expand(s.w, pb, pe, s.w.group_adapter[g], nb, ne);
                  });
  }
}

void execute(const Problem& p, void* workspace) { execute(&p, 1, workspace); }

}  // namespace addlora::kernels
