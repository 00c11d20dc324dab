// This machine's roofline, measured in-process: streaming read bandwidth and FMA peaks; and
// the small helpers the command-line benchmarks share.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace bench {

struct Machine {
  double bw = 0;      // bytes/s, streaming reads of a buffer far larger than the caches
  double peak = 0;    // fp32 FMA flop/s: the compute roof of every kernel (one precision)
  double peak64 = 0;  // fp64 FMA flop/s (reported beside it)
  int threads = 1;
  std::string simd;   // widest FMA code the peak loop used
};
Machine measure_machine(int threads);

// Bytes of the largest cache the CPU reports (its L3 where it has one; sysfs, else 32 MiB).
size_t last_level_cache_bytes();
// Bytes a rotation of copies must span so that each call reads its data from DRAM: at least
// `floor`, and twice the last-level cache (an L3 may hold several hundred MiB).
double beyond_cache_bytes(double floor);

// "1,2" -> {1, 2}: a --threads list (each at least 1).
std::vector<int> thread_list(const char* s);

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Median and range of repeated timings.
struct Stat {
  double med, lo, hi;
};
Stat stat(std::vector<double> v);

// Random 16-bit values of magnitude [0.5, 1) * 2^-4 and either sign: sums stay well inside fp16.
uint16_t random_half(std::mt19937& g);
uint16_t random_bf16(std::mt19937& g);  // the same range in bf16

}  // namespace bench
