// See machine.h.  Kept apart from the harness so that benchmarks linking the installed
// library (not the kernels' objects) can measure the same roofline.
#include "machine.h"

// GCC 12's AVX-512 headers trip -Wuninitialized inside the intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
std::atomic<uint64_t> g_sink{0};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

template <class T>
T* alloc(size_t n) {
  void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
  if (!p) std::abort();
  return static_cast<T*>(p);
}

// ---- machine ------------------------------------------------------------------------------

__attribute__((target("avx512f"))) double fma_loop_avx512(int64_t iters) {
  __m512 a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx512f"))) double fma_loop_avx512_f64(int64_t iters) {
  __m512d a[16];
  for (int i = 0; i < 16; ++i) a[i] = _mm512_set1_pd(1.0 + i * 1e-3);
  const __m512d m = _mm512_set1_pd(0.999999), c = _mm512_set1_pd(1e-7);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 16; ++i) a[i] = _mm512_fmadd_pd(a[i], m, c);
  __m512d s = a[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_pd(s, a[i]);
  return _mm512_reduce_add_pd(s);
}
__attribute__((target("avx2,fma"))) double fma_loop_avx2_f64(int64_t iters) {
  __m256d a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_pd(1.0 + i * 1e-3);
  const __m256d m = _mm256_set1_pd(0.999999), c = _mm256_set1_pd(1e-7);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_pd(a[i], m, c);
  double out[4];
  __m256d s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_pd(s, a[i]);
  _mm256_storeu_pd(out, s);
  return out[0];
}
__attribute__((target("avx2,fma"))) double fma_loop_avx2(int64_t iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  float out[8];
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  _mm256_storeu_ps(out, s);
  return out[0];
}

template <class F>
double run_threads(int n, F f) {  // wall seconds of f(thread) on n threads started together
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < n; ++t)
    ts.emplace_back([&, t] {
      ++ready;
      while (!go) {}
      f(t);
    });
  while (ready < n) {}
  const auto t0 = Clock::now();
  go = true;
  for (auto& t : ts) t.join();
  return seconds_since(t0);
}

}  // namespace

Machine measure_machine(int threads) {
  Machine m;
  m.threads = threads;
  // Bandwidth: each thread streams its slice of a 512 MiB buffer; best of 3 passes.
  const size_t words = (size_t{512} << 20) / 8;
  static uint64_t* buf = [&] {
    uint64_t* b = alloc<uint64_t>(words);
    for (size_t i = 0; i < words; ++i) b[i] = i * 0x9E3779B97F4A7C15ull;
    return b;
  }();
  double best = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    const double s = run_threads(threads, [&](int t) {
      const size_t lo = words * t / threads, hi = words * (t + 1) / threads;
      uint64_t acc[8] = {};
      for (size_t i = lo; i < hi; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += buf[i + k];
      uint64_t s2 = 0;
      for (uint64_t v : acc) s2 += v;
      g_sink += s2;
    });
    best = std::min(best, s);
  }
  m.bw = words * 8.0 / best;
  // FMA peak: independent FMA chains on every thread (AVX-512 if present, else AVX2).
  const bool avx512 = __builtin_cpu_supports("avx512f");
  m.simd = avx512 ? "AVX-512" : "AVX2+FMA";
  const int64_t iters = 20'000'000;
  const double flops_per_iter = avx512 ? 16 * 16 * 2 : 12 * 8 * 2;
  best = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    const double s = run_threads(threads, [&](int) {
      const double r = avx512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
      g_sink += static_cast<uint64_t>(r);
    });
    best = std::min(best, s);
  }
  m.peak = threads * iters * flops_per_iter / best;
  best = 1e30;
  for (int pass = 0; pass < 3; ++pass) {
    const double s = run_threads(threads, [&](int) {
      const double r = avx512 ? fma_loop_avx512_f64(iters) : fma_loop_avx2_f64(iters);
      g_sink += static_cast<uint64_t>(r);
    });
    best = std::min(best, s);
  }
  m.peak64 = threads * iters * (flops_per_iter / 2) / best;
  return m;
}

}  // namespace bench
