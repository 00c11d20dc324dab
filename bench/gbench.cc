// The benchmark cases under Google Benchmark (same harness as addlora_bench).  Counters:
// bytes and flops per second of the roofline model (see harness.h).
//   addlora_gbench --benchmark_filter=addlora/R:128
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <thread>

#include "harness.h"

namespace {

void run_case(benchmark::State& st, bench::Impl impl) {
  bench::Shape s;
  s.R = st.range(0);
  s.W = st.range(1);
  s.B = st.range(2);
  const int threads = static_cast<int>(st.range(3));
  bench::set_threads(threads);
  bench::Dataset data(s, impl == bench::Impl::blas);
  data.run(impl);  // warm-up
  for (auto _ : st) data.run(impl);
  const double calls = static_cast<double>(st.iterations());
  st.counters["bytes/s"] = benchmark::Counter(calls * s.bytes(data.distinct_adapters()), benchmark::Counter::kIsRate);
  st.counters["flop/s"] = benchmark::Counter(calls * s.flops(), benchmark::Counter::kIsRate);
}

void args(benchmark::internal::Benchmark* b) {
  const int all = static_cast<int>(std::thread::hardware_concurrency());
  for (int64_t R : {16, 64, 128})
    for (int64_t W : {1, 8, 32})
      for (int64_t B : {1, 16, 64, 256, 2048})
        for (int t : {1, all}) b->Args({R, W, B, t});
  b->ArgNames({"R", "W", "B", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

BENCHMARK_CAPTURE(run_case, addlora, bench::Impl::addlora)->Apply(args);
BENCHMARK_CAPTURE(run_case, grouped_sgemm, bench::Impl::blas)->Apply(args);

}  // namespace

BENCHMARK_MAIN();
