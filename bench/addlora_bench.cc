// addlora_bench: measures this machine's roofline, runs the grid, prints a table.
//   addlora_bench [--full] [--min-time S] [--md FILE] [--csv FILE] [--commit SHA]
// Default grid (short, < 1 min): fp16, H1=H2=4096, a few R/W/B; --full: the grid
// (R {16,64,128} x W {1,8,32} x B {1,16,64,256,2048} x uniform/skewed x 1/all threads).
// Peers run on the same data in the same process (see harness.cc).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "kernels/kernels.h"

using namespace bench;

namespace {

struct Row {
  Shape s;
  int threads;
  int64_t distinct;
  double t, t_roof, bytes, flops;
  bool mem_bound;
  double t_plain = 0, t_gather = 0, t_blas = 0;  // 0 = not run
};

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string ratio(double peer, double ours) { return peer > 0 ? fmt("%.1fx", peer / ours) : "-"; }

}  // namespace

int main(int argc, char** argv) {
  bool full = false;
  double min_time = 0.05;
  std::string md, csv, commit = "unknown";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--full") full = true;
    else if (a == "--min-time" && i + 1 < argc) min_time = std::atof(argv[++i]);
    else if (a == "--md" && i + 1 < argc) md = argv[++i];
    else if (a == "--csv" && i + 1 < argc) csv = argv[++i];
    else if (a == "--commit" && i + 1 < argc) commit = argv[++i];
    else { std::fprintf(stderr, "usage: %s [--full] [--min-time S] [--md FILE] [--csv FILE] [--commit SHA]\n", argv[0]); return 2; }
  }
  const int all = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<int> thread_counts = {all};
  if (all > 1) thread_counts.insert(thread_counts.begin(), 1);

  std::vector<Machine> machine;
  for (int t : thread_counts) machine.push_back(measure_machine(t));
  for (const Machine& m : machine)
    std::printf("machine, %d thread(s): read bandwidth %.1f GB/s, FMA peak fp32 %.1f / fp64 %.1f GFLOP/s (%s)\n",
                m.threads, m.bw / 1e9, m.peak / 1e9, m.peak64 / 1e9, m.simd.c_str());
  std::printf("addlora SIMD target: %s\n", addlora::kernels::simd_target());

  std::vector<Shape> shapes;
  const std::vector<int64_t> Rs = full ? std::vector<int64_t>{16, 64, 128} : std::vector<int64_t>{16, 128};
  const std::vector<int64_t> Ws = full ? std::vector<int64_t>{1, 8, 32} : std::vector<int64_t>{1, 32};
  const std::vector<int64_t> Bs = full ? std::vector<int64_t>{1, 16, 64, 256, 2048} : std::vector<int64_t>{1, 64, 2048};
  for (int64_t R : Rs)
    for (int64_t W : Ws)
      for (int64_t B : Bs)
        for (Popularity pop : {Popularity::uniform, Popularity::skewed}) {
          if (!full && pop == Popularity::skewed) continue;
          if (W == 1 && pop == Popularity::skewed) continue;  // same as uniform
          Shape s;
          s.R = R; s.W = W; s.B = B; s.pop = pop;
          shapes.push_back(s);
        }

  std::printf("\n%%roof vs the bandwidth and the fp32 FMA peak of the same thread count (one precision)\n");
  std::printf("%-30s %3s %9s %8s %9s %6s %4s %8s %8s %8s\n", "shape (fp16, H1=H2=4096)", "thr",
              "us", "GB/s", "GFLOP/s", "%roof", "bnd", "vs plain", "vs gathr", "vs sgemm");
  std::vector<Row> rows;
  // Untimed warm-up at every thread count: the first timed rows otherwise ran measurably slower
  // (18.5 us where the same work later took 11.9 us) right after the machine measurement.
  if (!shapes.empty()) {
    Dataset warm(shapes.front(), false);
    for (int t : thread_counts) {
      set_threads(t);
      warm.time(Impl::addlora, min_time, 5);
    }
  }
  for (const Shape& s : shapes) {
    const bool decode = s.B <= 64;
    Dataset data(s, /*fp32 copies for BLAS*/ true);
    for (size_t ti = 0; ti < thread_counts.size(); ++ti) {
      const int t = thread_counts[ti];
      set_threads(t);
      Row r;
      r.s = s;
      r.threads = t;
      r.distinct = data.distinct_adapters();
      r.bytes = s.bytes(r.distinct);
      r.flops = s.flops();
      const double tm = r.bytes / machine[ti].bw, tc = r.flops / machine[ti].peak;
      r.t_roof = std::max(tm, tc);  // fp32 FMAs: the fp32 peak
      r.mem_bound = tm >= tc;
      r.t = data.time(Impl::addlora, min_time, 5);
      if (t == all) {  // peers at full machine width (plain loop is single-threaded by design)
        if (r.flops <= 4e8) r.t_plain = data.time(Impl::plain, min_time, 2);
        if (decode) r.t_gather = data.time(Impl::gather, min_time, 2);
        r.t_blas = data.time(Impl::blas, min_time, 3);
        // OpenBLAS's threads busy-wait for a while after a call; let them go idle so that they
        // do not compete with the next shape's addlora timings for the cores.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
      std::printf("%-30s %3d %9.1f %8.1f %9.1f %5.0f%% %4s %8s %8s %8s\n", s.str().c_str(), t,
                  r.t * 1e6, r.bytes / r.t / 1e9, r.flops / r.t / 1e9, 100 * r.t_roof / r.t, r.mem_bound ? "mem" : "fma",
                  ratio(r.t_plain, r.t).c_str(), ratio(r.t_gather, r.t).c_str(), ratio(r.t_blas, r.t).c_str());
      std::fflush(stdout);
      rows.push_back(r);
    }
  }

  if (!csv.empty()) {
    std::ofstream f(csv);
    f << "R,W,B,pop,threads,distinct,bytes,flops,seconds,roof_seconds,bw,peak,plain,gather,blas\n";
    for (const Row& r : rows) {
      const Machine& m = machine[r.threads == all ? machine.size() - 1 : 0];
      f << r.s.R << ',' << r.s.W << ',' << r.s.B << ',' << (r.s.pop == Popularity::uniform ? "uniform" : "skewed") << ','
        << r.threads << ',' << r.distinct << ',' << r.bytes << ',' << r.flops << ',' << r.t << ',' << r.t_roof << ','
        << m.bw << ',' << m.peak << ',' << r.t_plain << ',' << r.t_gather << ',' << r.t_blas << '\n';
    }
  }
  if (!md.empty()) {
    std::ofstream f(md);
    const std::time_t now = std::time(nullptr);
    char date[64];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    f << "# AddLora CPU kernel benchmark\n\n";
    f << "Generated by `bench/addlora_bench" << (full ? " --full" : "") << "` on " << date << ", commit `" << commit
      << "`.\n\n";
    f << "## Machine (measured in the same run)\n\n";
    f << "- CPU: " << cpu_model() << ", " << all << " hardware threads; addlora SIMD target "
      << addlora::kernels::simd_target() << "\n";
    for (const Machine& m : machine)
      f << "- " << m.threads << " thread(s): streaming read bandwidth " << fmt("%.1f", m.bw / 1e9)
        << " GB/s, FMA peak fp32 " << fmt("%.1f", m.peak / 1e9) << " / fp64 " << fmt("%.1f", m.peak64 / 1e9)
        << " GFLOP/s (" << m.simd << " FMA chains)\n";
    f << "\n## Method\n\n"
         "- fp16 everywhere, H1 = H2 = H3 = 4096, y updated in place, scale 1e-3, weight A present.\n"
         "- bytes = distinct adapters x R x (H1+H2) x 2 + B x (H1 + 2 x H2) x 2; flops = 2 x B x R x (H1+H2);\n"
         "  roofline time = max(bytes / bandwidth, flops / peak) with the bandwidth and peak of the same thread count;\n"
         "  % roof = roofline time / measured time (median of repeated calls).  The peak is the fp32 FMA peak:\n"
         "  every call does its FMAs in fp32 (chains of at most 64 folded into fp64, docs/contract.md §1.3).\n"
         "- Weights rotate over enough copies (>= " << fmt("%.0f", beyond_cache_bytes(256.0 * (1 << 20)) / (1 << 20))
      << " MiB: 256 MiB or twice this CPU's " << fmt("%.0f", last_level_cache_bytes() / double(1 << 20))
      << " MiB L3) that every call reads its weights from DRAM; activations rotate over up to 64 copies\n"
         "  (>= 128 MiB where that many reach it).\n"
         "- Peers on the same data, same process, all threads: *plain loop* = the portable scalar kernel\n"
         "  (single-threaded, fp64 sums; only run up to 4e8 flops); *per-token gather* = for each row copy its\n"
         "  adapter's A and B (widened to fp32) into a buffer, then two OpenBLAS sgemv (decode shapes only);\n"
         "  *grouped sgemm* = rows pre-grouped by adapter outside the timing, two cblas_sgemm per adapter on\n"
         "  fp32 copies of all data (BLAS has no fp16, so it moves twice the bytes).  Ratios are peer time /\n"
         "  addlora time (higher = addlora faster).\n\n";
    f << "## Results\n\n";
    f << "Times are medians per call of the kernels (`kernels::execute` on a planned problem; what a client pays\n"
         "per call through the entry points is in the entry-point table below).\n\n";
    f << "| R | W | B | popularity | threads | distinct | time (us) | GB/s | GFLOP/s | % roofline | bound | vs plain | vs gather | vs sgemm |\n";
    f << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Row& r : rows)
      f << "| " << r.s.R << " | " << r.s.W << " | " << r.s.B << " | "
        << (r.s.pop == Popularity::uniform ? "uniform" : "skewed") << " | " << r.threads << " | " << r.distinct
        << " | " << fmt("%.1f", r.t * 1e6) << " | " << fmt("%.1f", r.bytes / r.t / 1e9) << " | "
        << fmt("%.1f", r.flops / r.t / 1e9) << " | " << fmt("%.0f%%", 100 * r.t_roof / r.t) << " | "
        << (r.mem_bound ? "memory" : "compute") << " | " << ratio(r.t_plain, r.t) << " | " << ratio(r.t_gather, r.t)
        << " | " << ratio(r.t_blas, r.t) << " |\n";
  }
  return 0;
}
