// This machine's roofline, measured in-process: streaming read bandwidth and FMA peaks.
#pragma once
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

// "1,2" -> {1, 2}: a --threads list (each at least 1).
std::vector<int> thread_list(const char* s);

}  // namespace bench
