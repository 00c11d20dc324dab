// Scheduler: chooses the SIMD target, owns the persistent thread pool, groups rows by adapter
// and splits the work into tasks (see work.h).  Determinism: every output element and every
// partial sum is computed by exactly one task with a fixed loop order, and K chunks depend on
// H1 only, so results are bitwise identical whatever the thread count or scheduling.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>

#include <strings.h>

#include "core/numeric.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "kernels/work.h"

namespace addlora::kernels {

uint64_t workspace_bytes_portable(const detail::Problem& p);

namespace {

using detail::Problem;
using internal::TargetKernels;
using internal::Work;

constexpr int64_t kRowTile = 128;     // rows per task (x / z tile reused across A / B blocks)
constexpr int64_t kNTile = 256;       // output columns per expand task
constexpr int64_t kMaxKChunks = 8;    // split-K for the shrink (bounded: scratch stays O(B*R))
constexpr int64_t kMinKChunk = 1024;  // shortest K chunk worth a task (reductions amortised)
constexpr int64_t kWholeRow = 4096;   // longest K chunk (simd_kernels.cc kXBuf)
constexpr int64_t kMinShrinkTasks = 16;  // fixed, not the thread count: results stay identical
constexpr int64_t kRankSplitMaxRows = 8;  // groups up to this size: rank split (work.h)
constexpr int64_t kMaxCountingW = int64_t{1} << 20;
constexpr double kInlineBytes = 96 * 1024;  // below both: single-threaded (decided by shape only)
constexpr double kInlineFlops = 4e6;

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

struct Layout_ {
  int64_t counts, order, group_start, group_adapter, tile_start, zpart, total;
};

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

Layout_ carve(const Problem& p) {
  Layout_ l{};
  int64_t at = 0;
  l.counts = at;        at += p.W <= kMaxCountingW ? align64((p.W + 1) * 4) : 0;
  l.order = at;         at += align64(p.B * 4);
  l.group_start = at;   at += align64((p.B + 1) * 4);
  l.group_adapter = at; at += align64(p.B * 4);
  l.tile_start = at;    at += align64((p.B + 1) * 4);
  l.zpart = at;         at += align64(zpart_rows(p) * round16(p.R) * 8);  // fp64 when exact
  l.total = at;
  return l;
}

// ---- SIMD target choice -------------------------------------------------------------------

std::atomic<const TargetKernels*> g_forced{nullptr};

const TargetKernels* by_name(const char* name) {
  for (const TargetKernels* t : internal::supported_targets())
    if (strcasecmp(t->name, name) == 0) return t;
  // EMU128 and SCALAR both mean "the portable baseline target".
  if (strcasecmp(name, "EMU128") == 0 || strcasecmp(name, "SCALAR") == 0)
    return internal::supported_targets().back();
  return nullptr;
}

const TargetKernels* automatic_target() {
  static const TargetKernels* chosen = [] {
    const auto all = internal::supported_targets();
    const char* env = std::getenv("ADDLORA_SIMD_TARGET");
    if (env && *env) {
      if (const TargetKernels* t = by_name(env)) return t;
      std::fprintf(stderr, "addlora: ADDLORA_SIMD_TARGET=%s is not available here; using %s\n", env,
                   all.front()->name);
    }
    return all.front();
  }();
  return chosen;
}

const TargetKernels* current_target() {
  const TargetKernels* f = g_forced.load();
  return f ? f : automatic_target();
}

// ---- thread pool --------------------------------------------------------------------------

struct Pool {
  std::shared_mutex mu;  // execute() shares it; resizing takes it exclusively
  std::unique_ptr<ThreadPool> pool;

  Pool() {
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("ADDLORA_NUM_THREADS")) {
      const int v = std::atoi(env);
      if (v > 0) n = v;
    }
    resize_locked(n < 1 ? 1 : n);
  }
  void resize_locked(int n) {
    pool.reset();
    pool = std::make_unique<ThreadPool>(n);
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: safe for calls during static destruction
  return *p;
}

template <class F>
void parallel_for(ThreadPool* tp, int64_t n, F& f) {
  if (n <= 0) return;
  if (!tp || n == 1) {  // nothing to share: skip waking the workers
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  tp->run([](void* ctx, int64_t i) { (*static_cast<F*>(ctx))(i); }, &f, n);
}

float load_scalar(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::f16: return numeric::half_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::bf16: return numeric::bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

size_t esize(DType t) { return t == DType::f32 ? 4 : 2; }

void copy_row(const Problem& p, int64_t b) {  // out[b, :] = y[b, :]
  const size_t es = esize(p.y.dtype);
  const auto* src = static_cast<const unsigned char*>(p.y.base) + b * p.y.row_stride * es;
  auto* dst = static_cast<unsigned char*>(const_cast<void*>(p.out.base)) +
              b * p.out.row_stride * esize(p.out.dtype);
  if (p.y.dtype == p.out.dtype && p.y.col_stride == 1 && p.out.col_stride == 1) {
    std::memcpy(dst, src, static_cast<size_t>(p.H3) * es);
    return;
  }
  for (int64_t c = 0; c < p.H3; ++c) {
    const float v = load_scalar(src, p.y.dtype, c * p.y.col_stride);
    const int64_t o = c * p.out.col_stride;
    switch (p.out.dtype) {
      case DType::f16: reinterpret_cast<uint16_t*>(dst)[o] = numeric::float_to_half(v); break;
      case DType::bf16: reinterpret_cast<uint16_t*>(dst)[o] = numeric::float_to_bf16(v); break;
      default: reinterpret_cast<float*>(dst)[o] = v; break;
    }
  }
}

// Rows with an adapter, sorted by (adapter, row) (stable counting sort), and the groups.
int64_t group_rows(const Problem& p, const Layout_& l, char* ws, Work* w) {
  auto* order = reinterpret_cast<int32_t*>(ws + l.order);
  auto* gstart = reinterpret_cast<int32_t*>(ws + l.group_start);
  auto* gadapter = reinterpret_cast<int32_t*>(ws + l.group_adapter);
  int64_t n = 0;
  if (p.W <= kMaxCountingW) {
    auto* count = reinterpret_cast<int32_t*>(ws + l.counts);
    std::fill(count, count + p.W + 1, 0);
    for (int64_t b = 0; b < p.B; ++b) {
      const int64_t a = detail::adapter_of(p, b);
      if (a >= 0) ++count[a + 1];
    }
    for (int64_t a = 0; a < p.W; ++a) count[a + 1] += count[a];
    n = count[p.W];
    for (int64_t b = 0; b < p.B; ++b) {
      const int64_t a = detail::adapter_of(p, b);
      if (a >= 0) order[count[a]++] = static_cast<int32_t>(b);
    }
  } else {
    for (int64_t b = 0; b < p.B; ++b)
      if (detail::adapter_of(p, b) >= 0) order[n++] = static_cast<int32_t>(b);
    std::stable_sort(order, order + n, [&](int32_t x, int32_t y) {
      return detail::adapter_of(p, x) < detail::adapter_of(p, y);
    });
  }
  int64_t g = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = detail::adapter_of(p, order[i]);
    if (i == 0 || a != gadapter[g - 1]) {
      gstart[g] = static_cast<int32_t>(i);
      gadapter[g++] = static_cast<int32_t>(a);
    }
  }
  gstart[g] = static_cast<int32_t>(n);
  w->order = order;
  w->group_start = gstart;
  w->group_adapter = gadapter;
  w->ngroups = g;
  return n;
}

}  // namespace

uint64_t workspace_bytes(const Problem& p) {
  return std::max<uint64_t>(static_cast<uint64_t>(carve(p).total), workspace_bytes_portable(p));
}

void execute(const Problem& p, void* workspace) {
  if (!simd_eligible(p)) { execute_portable(p, workspace); return; }
  const TargetKernels* kt = current_target();
  Pool& pl = pool();
  std::shared_lock<std::shared_mutex> lock(pl.mu);
  // Waking the workers costs microseconds (much more when the cores are oversubscribed):
  // problems smaller than that run on the calling thread.
  const double bytes = double(p.W) * p.R * (p.H1 + p.H2) * 2 + double(p.B) * (p.H1 + 2 * p.S) * 2;
  const double flops = 2.0 * p.B * p.R * (p.H1 + p.H2);
  ThreadPool* tp = (bytes < kInlineBytes && flops < kInlineFlops) ? nullptr : pl.pool.get();

  char* ws = static_cast<char*>(workspace);
  const Layout_ l = carve(p);
  Work w;
  w.p = &p;
  w.rp = round16(p.R);
  w.zpart = reinterpret_cast<float*>(ws + l.zpart);
  w.zpart_d = reinterpret_cast<double*>(ws + l.zpart);
  w.exact = !p.fast_accumulate;  // Precision::exact (the default): fp64 sums

  // out = y everywhere first (out of place only); the expand then overwrites the slices.
  if (!p.in_place) {
    auto copy = [&](int64_t t) {
      for (int64_t b = t * kRowTile, e = std::min(p.B, b + kRowTile); b < e; ++b) copy_row(p, b);
    };
    parallel_for(tp, (p.B + kRowTile - 1) / kRowTile, copy);
  }
  const int64_t rows = group_rows(p, l, ws, &w);
  if (rows == 0 || p.S == 0) return;

  // Row tiles of every group: tile_start[g] = first tile index of group g.
  auto* tile_start = reinterpret_cast<int32_t*>(ws + l.tile_start);
  tile_start[0] = 0;
  for (int64_t g = 0; g < w.ngroups; ++g) {
    const int64_t len = w.group_start[g + 1] - w.group_start[g];
    tile_start[g + 1] = tile_start[g] + static_cast<int32_t>((len + kRowTile - 1) / kRowTile);
  }
  const int64_t tiles = tile_start[w.ngroups];
  int64_t largest = 0;
  for (int64_t g = 0; g < w.ngroups; ++g) largest = std::max<int64_t>(largest, w.group_start[g + 1] - w.group_start[g]);
  // Few rows per adapter (decode): nothing to block for, so split the ranks and stream each
  // A row in one run instead of K-chunk pieces.  A function of the indices, not of threads.
  k_split(p, tiles, &w.kc, &w.nk);
  w.rank_split = p.has_a && largest <= kRankSplitMaxRows;
  if (w.rank_split) w.nk = 1;
  w.B = rows;  // K-chunk planes are rows * rp apart (carve() sized them with zpart_rows)
  auto tile = [&](int64_t t, int64_t* g, int64_t* pb, int64_t* pe) {
    *g = std::upper_bound(tile_start, tile_start + w.ngroups + 1, static_cast<int32_t>(t)) -
         tile_start - 1;
    *pb = w.group_start[*g] + (t - tile_start[*g]) * kRowTile;
    *pe = std::min<int64_t>(w.group_start[*g + 1], *pb + kRowTile);
  };

  if (p.has_a) {
    const int64_t per_tile = w.rank_split ? (p.R + internal::kRankGroup - 1) / internal::kRankGroup : w.nk;
    auto shrink_tasks = [&](int64_t t) {
      int64_t g, pb, pe;
      tile(t / per_tile, &g, &pb, &pe);
      (w.exact ? kt->shrink_exact : kt->shrink)(w, pb, pe, w.group_adapter[g], t % per_tile);
    };
    parallel_for(tp, tiles * per_tile, shrink_tasks);
  }
  // combine the K chunks in a fixed order (or z = x), zero the padding lanes
  auto combine_rows = [&](auto* z0, int64_t t) {
    for (int64_t pos = t * kRowTile, e = std::min(rows, pos + kRowTile); pos < e; ++pos) {
      auto* z = z0 + pos * w.rp;
      const int64_t row = w.order[pos];
      // Ranks past the adapter's own (Problem::ranks) were not computed: they become zeros,
      // so the expand's vector tails can sum over a whole vector of z.
      const int64_t rank = detail::rank_of(p, detail::adapter_of(p, row));
      if (p.has_a) {
        for (int64_t k = 1; k < w.nk; ++k) {
          const auto* zk = z + k * w.B * w.rp;
          for (int64_t r = 0; r < rank; ++r) z[r] += zk[r];
        }
      } else {
        for (int64_t r = 0; r < rank; ++r)
          z[r] = load_scalar(p.x.base, p.x.dtype, row * p.x.row_stride + r * p.x.col_stride);
      }
      for (int64_t r = rank; r < w.rp; ++r) z[r] = 0;
    }
  };
  auto combine = [&](int64_t t) {
    if (w.exact) combine_rows(w.zpart_d, t);
    else combine_rows(w.zpart, t);
  };
  // (a few adds per row: not worth a parallel region unless there are many rows)
  parallel_for(rows * p.R * w.nk < (int64_t{1} << 18) ? nullptr : tp, (rows + kRowTile - 1) / kRowTile, combine);

  const int64_t ntiles = (p.S + kNTile - 1) / kNTile;
  auto expand = [&](int64_t t) {
    int64_t g, pb, pe;
    tile(t / ntiles, &g, &pb, &pe);
    const int64_t nb = (t % ntiles) * kNTile;
    (w.exact ? kt->expand_exact : kt->expand)(w, pb, pe, w.group_adapter[g], nb, std::min(p.S, nb + kNTile));
  };
  parallel_for(tp, tiles * ntiles, expand);
}

void set_num_threads(int n) {
  Pool& pl = pool();
  std::unique_lock<std::shared_mutex> lock(pl.mu);
  pl.resize_locked(n < 1 ? 1 : n);
}

int num_threads() {
  Pool& pl = pool();
  std::shared_lock<std::shared_mutex> lock(pl.mu);
  return pl.pool->threads();
}

const char* simd_target() { return current_target()->name; }

namespace internal {

bool force_simd_target(const char* name) {
  if (!name || !*name) { g_forced = nullptr; return true; }
  const TargetKernels* t = by_name(name);
  if (!t) return false;
  g_forced = t;
  return true;
}

std::vector<std::string> available_simd_targets() {
  std::vector<std::string> names;
  for (const TargetKernels* t : supported_targets()) names.emplace_back(t->name);
  return names;
}

}  // namespace internal
}  // namespace addlora::kernels
