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
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace bench {
namespace {

std::atomic<uint64_t> g_sink{0};

template <class T>
T* alloc(size_t n) {
  void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
  if (!p) std::abort();
  return static_cast<T*>(p);
}

// ---- machine ------------------------------------------------------------------------------

// One FMA loop for every precision and width: kChains independent chains a = a * m + c on
// vectors of T (GCC vector types), unrolled so every chain lives in a register.  GCC fuses
// a * m + c into one FMA instruction where the target has it (the wrappers below enable it).
// Returns a value depending on every lane so nothing is optimised away.
template <class T, int kBytes, int kChains>
__attribute__((always_inline)) inline double fma_chains(int64_t iters) {
  typedef T V __attribute__((vector_size(kBytes)));
  constexpr int kLanes = kBytes / static_cast<int>(sizeof(T));
  V a[kChains];
  for (int i = 0; i < kChains; ++i) a[i] = V{} + static_cast<T>(1.0 + i * 1e-3);
  const V m = V{} + static_cast<T>(0.999999), c = V{} + static_cast<T>(1e-7);
  for (int64_t k = 0; k < iters; ++k) {
#pragma GCC unroll 32
    for (int i = 0; i < kChains; ++i) a[i] = a[i] * m + c;
  }
  V s = a[0];
  for (int i = 1; i < kChains; ++i) s += a[i];
  double r = 0;
  for (int l = 0; l < kLanes; ++l) r += static_cast<double>(s[l]);
  return r;
}

// The widest FMA code of this CPU: 16 chains of 512-bit vectors (32 registers), else 12 of
// 256-bit (16 registers), enough independent chains to cover the FMA latency.
struct FmaLoops {
  const char* simd;
  double (*f32)(int64_t iters);
  double (*f64)(int64_t iters);
  double flops_f32, flops_f64;  // per iteration
};
__attribute__((target("avx512f"))) double fma_f32_avx512(int64_t n) { return fma_chains<float, 64, 16>(n); }
__attribute__((target("avx512f"))) double fma_f64_avx512(int64_t n) { return fma_chains<double, 64, 16>(n); }
__attribute__((target("avx2,fma"))) double fma_f32_avx2(int64_t n) { return fma_chains<float, 32, 12>(n); }
__attribute__((target("avx2,fma"))) double fma_f64_avx2(int64_t n) { return fma_chains<double, 32, 12>(n); }

FmaLoops fma_loops() {
  if (__builtin_cpu_supports("avx512f"))
    return {"AVX-512", fma_f32_avx512, fma_f64_avx512, 16 * 16 * 2, 16 * 8 * 2};
  return {"AVX2+FMA", fma_f32_avx2, fma_f64_avx2, 12 * 8 * 2, 12 * 4 * 2};
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

size_t last_level_cache_bytes() {
  static const size_t bytes = [] {
    size_t best = 0;
    for (int i = 0; i < 16; ++i) {  // sysfs: "491520K", "2048K", ...
      std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/size");
      std::string v;
      if (!(f >> v) || v.empty()) continue;
      size_t n = std::strtoull(v.c_str(), nullptr, 10);
      const char unit = v.back();
      n <<= unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : 0;
      best = std::max(best, n);
    }
    return best ? best : size_t{32} << 20;
  }();
  return bytes;
}

double beyond_cache_bytes(double floor) { return std::max(floor, 2.0 * static_cast<double>(last_level_cache_bytes())); }

Machine measure_machine(int threads) {
  Machine m;
  m.threads = threads;
  // Bandwidth: each thread streams its slice of a buffer of 512 MiB or twice the L3, whichever
  // is larger; best of 3 passes.
  static const size_t words = static_cast<size_t>(beyond_cache_bytes(512.0 * (1 << 20))) / 64 * 8;
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
  // FMA peaks: the same loop on every thread, best of 3 passes, once per precision.
  const FmaLoops loops = fma_loops();
  m.simd = loops.simd;
  const int64_t iters = 20'000'000;
  auto peak = [&](double (*loop)(int64_t), double flops_per_iter) {
    double fastest = 1e30;
    for (int pass = 0; pass < 3; ++pass) {
      const double s = run_threads(threads, [&](int) { g_sink += static_cast<uint64_t>(loop(iters)); });
      fastest = std::min(fastest, s);
    }
    return threads * iters * flops_per_iter / fastest;
  };
  m.peak = peak(loops.f32, loops.flops_f32);
  m.peak64 = peak(loops.f64, loops.flops_f64);
  return m;
}

std::vector<int> thread_list(const char* s) {
  std::vector<int> out;
  for (const char* p = s; *p;) {
    out.push_back(std::max(1, std::atoi(p)));
    while (*p && *p != ',') ++p;
    if (*p) ++p;
  }
  return out;
}

Stat stat(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

uint16_t random_half(std::mt19937& g) {
  const uint16_t man = static_cast<uint16_t>(g() & 0x3ff);
  return static_cast<uint16_t>(((g() & 1) << 15) | (11u << 10) | man);
}
uint16_t random_bf16(std::mt19937& g) {
  const uint16_t man = static_cast<uint16_t>(g() & 0x7f);
  return static_cast<uint16_t>(((g() & 1) << 15) | (123u << 7) | man);
}

}  // namespace bench
