// Benchmark harness shared by the CLI (addlora_bench) and the Google Benchmark binary:
// machine rooflines measured in-process, rotating data sets (weights and activations come
// from DRAM, not cache), and the implementations compared on the same data.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "machine.h"

namespace bench {

enum class Popularity { uniform, skewed };

struct Shape {
  int64_t B = 1, H1 = 4096, H2 = 4096, R = 16, W = 1;
  Popularity pop = Popularity::uniform;
  std::string str() const;
  // Roofline model of the issue: distinct adapters' weights once, activations once.
  double bytes(int64_t distinct) const { return double(distinct) * R * (H1 + H2) * 2 + double(B) * (H1 + 2 * H2) * 2; }
  double flops() const { return 2.0 * B * R * (H1 + H2); }
};

enum class Impl { addlora, plain, gather, blas };  // addlora: the library's kernels (one precision)
const char* impl_name(Impl i);

// Allocated data for one shape, rotating over enough copies to exceed the last-level cache.
class Dataset {
 public:
  Dataset(const Shape& s, bool with_fp32_copies);
  ~Dataset();
  int64_t distinct_adapters() const;
  // One call of `impl` on the next rotation slot (fp16 in place update of y).
  void run(Impl impl);
  // Seconds per call: median of calls until min_seconds passed (at least min_calls).
  double time(Impl impl, double min_seconds, int min_calls);
  uint64_t rotation_bytes() const;
  struct Impl_;
 private:
  std::unique_ptr<Impl_> d_;
};

void set_threads(int n);  // addlora and OpenBLAS

}  // namespace bench
