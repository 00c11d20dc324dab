// phase_bench: where a call's time goes, through the C++ API.  For each shape it times
//   call         addlora::add_lora (shrink, combine and expand in one call);
//   shrink       addlora::shrink alone, called back to back;
//   expand       addlora::expand alone (fp32 z in, y updated in place), back to back;
//   in order     shrink then expand, alternately, each timed on its own: what each phase costs
//                when the other one ran just before it (its caches, its prefetcher state);
// with the data cold (weights rotating over >= 256 MiB of copies and twice the L3, activations
// over >= 128 MiB, as the kernel grid does) or, with --warm, one copy of everything
// (cache-resident where it fits).  Each time is the median [min-max] of --rounds rounds; %roof is each phase's own
// roofline, max(its bytes / read bandwidth, its flops / fp32 FMA peak), both measured in this
// process at this thread count (bf16: the shrink's flops at twice the peak, vdpbf16ps).
// Indices put row b on adapter b % W, so each adapter's rows are spread over the batch.
//   phase_bench [--threads 1,2] [--rounds 5] [--dtype fp16|bf16] [--h 4096] [--warm]
//               [--md FILE] [B:R:W ...]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "addlora/addlora.h"
#include "machine.h"

namespace {

using bench::Clock;
using bench::seconds_since;
using bench::Stat;
using bench::stat;

struct Shape {
  int64_t B, R, W;
};

// One shape's tensors: `copies` copies of the weights and `xcopies` of x / y, and the views of
// the copy a call uses.
struct Data {
  Shape s;
  int64_t H;
  addlora::DType dt;
  size_t wsz, asz;  // elements of one copy of a weight, of x (= of y)
  int copies, xcopies;
  std::vector<uint16_t> a, b, x, y;
  std::vector<float> z;
  std::vector<int32_t> idx;

  Data(Shape shape, int64_t h, bool bf16, bool warm) : s(shape), H(h), dt(bf16 ? addlora::DType::bf16 : addlora::DType::f16) {
    wsz = static_cast<size_t>(s.W * s.R * H);
    asz = static_cast<size_t>(s.B * H);
    const double kWeights = bench::beyond_cache_bytes(256.0 * (1 << 20)), kActs = 128.0 * (1 << 20);
    copies = warm ? 1 : std::max(1, static_cast<int>(kWeights / (4.0 * wsz)));
    xcopies = warm ? 1 : std::max(1, static_cast<int>(kActs / (4.0 * asz)));
    std::mt19937 g(7);
    auto fill = [&](std::vector<uint16_t>& v, size_t n) {
      v.resize(n);
      for (auto& e : v) e = bf16 ? bench::random_bf16(g) : bench::random_half(g);
    };
    fill(a, wsz * copies);
    fill(b, wsz * copies);
    fill(x, asz * xcopies);
    fill(y, asz * xcopies);
    z.assign(static_cast<size_t>(s.B * s.R), 0.f);
    idx.resize(static_cast<size_t>(s.B));
    for (int64_t i = 0; i < s.B; ++i) idx[i] = static_cast<int32_t>(i % s.W);
  }
  addlora::TensorView act(std::vector<uint16_t>& v, int64_t call) {
    return addlora::TensorView::contiguous(v.data() + (call % xcopies) * asz, dt, {s.B, H});
  }
  addlora::TensorView weight(std::vector<uint16_t>& v, int64_t call, bool is_b) {
    uint16_t* p = v.data() + (call % copies) * wsz;
    return is_b ? addlora::TensorView::contiguous(p, dt, {s.W, 1, H, s.R}) : addlora::TensorView::contiguous(p, dt, {s.W, 1, s.R, H});
  }
  addlora::TensorView zv() { return addlora::TensorView::contiguous(z.data(), addlora::DType::f32, {s.B, s.R}); }
  addlora::TensorView iv() { return addlora::TensorView::contiguous(idx.data(), addlora::DType::i32, {s.B}); }

  void check(addlora::Status st, const std::string& msg) {
    if (st != addlora::Status::ok) {
      std::fprintf(stderr, "phase_bench: call failed: %s\n", msg.c_str());
      std::exit(1);
    }
  }
  void call(int64_t c) {
    addlora::Arguments ar;
    ar.x = act(x, c);
    ar.y = act(y, c);
    ar.out = ar.y;
    ar.weight_a = weight(a, c, false);
    ar.weight_b = weight(b, c, true);
    ar.indices = iv();
    ar.scale = 1e-3;
    std::string msg;
    check(addlora::add_lora(ar, addlora::Rules::general, &msg), msg);
  }
  void shrink(int64_t c) {
    addlora::ShrinkArguments sa;
    sa.x = act(x, c);
    sa.weight_a = weight(a, c, false);
    sa.indices = iv();
    sa.z = zv();
    std::string msg;
    check(addlora::shrink(sa, &msg), msg);
  }
  void expand(int64_t c) {
    addlora::ExpandArguments ea;
    ea.z = zv();
    ea.weight_b = weight(b, c, true);
    ea.indices = iv();
    ea.out = act(y, c);
    ea.scale = 1e-3;
    std::string msg;
    check(addlora::expand(ea, &msg), msg);
  }
};

// Seconds per call of f over `calls` calls (call numbers from `first`, so copies rotate).
template <class F>
double per_call(int64_t calls, int64_t first, F f) {
  const auto t0 = Clock::now();
  for (int64_t c = 0; c < calls; ++c) f(first + c);
  return seconds_since(t0) / static_cast<double>(calls);
}

struct Row {
  Stat call, shrink, expand, ord_shrink, ord_expand;
};

Row measure(Data& d, int rounds) {
  // Calls per round: about 50 ms of the whole call, at least 3.
  d.call(0);
  const double one = per_call(3, 1, [&](int64_t c) { d.call(c); });
  const int64_t calls = std::max<int64_t>(3, static_cast<int64_t>(0.05 / std::max(one, 1e-7)));
  std::vector<double> tc, ts, te, os, oe;
  int64_t next = 4;
  for (int r = 0; r < rounds; ++r) {  // the phases interleaved in every round
    tc.push_back(per_call(calls, next, [&](int64_t c) { d.call(c); }));
    next += calls;
    ts.push_back(per_call(calls, next, [&](int64_t c) { d.shrink(c); }));
    next += calls;
    te.push_back(per_call(calls, next, [&](int64_t c) { d.expand(c); }));
    next += calls;
    double sum_s = 0, sum_e = 0;
    for (int64_t c = 0; c < calls; ++c, ++next) {
      const auto t0 = Clock::now();
      d.shrink(next);
      const auto t1 = Clock::now();
      d.expand(next);
      sum_s += std::chrono::duration<double>(t1 - t0).count();
      sum_e += seconds_since(t1);
    }
    os.push_back(sum_s / calls);
    oe.push_back(sum_e / calls);
  }
  return {stat(tc), stat(ts), stat(te), stat(os), stat(oe)};
}

std::string fmt(const Stat& s, double roof) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.1f [%.1f-%.1f] %.0f%%", s.med * 1e6, s.lo * 1e6, s.hi * 1e6, 100.0 * roof / s.med);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  int64_t H = 4096;
  bool bf16 = false, warm = false;
  std::vector<int> thread_counts = {1, 2};
  std::vector<Shape> shapes;
  std::string md;
  auto usage = [&] {
    std::fprintf(stderr,
                 "usage: %s [--threads 1,2] [--rounds N] [--dtype fp16|bf16] [--h H] [--warm] [--md FILE] [B:R:W ...]\n",
                 argv[0]);
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string o = argv[i];
    if (o == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (o == "--h" && i + 1 < argc) H = std::max(16, std::atoi(argv[++i]));
    else if (o == "--dtype" && i + 1 < argc) {
      const std::string v = argv[++i];
      if (v != "fp16" && v != "bf16") return usage();
      bf16 = v == "bf16";
    } else if (o == "--warm") warm = true;
    else if (o == "--md" && i + 1 < argc) md = argv[++i];
    else if (o == "--threads" && i + 1 < argc) {
      thread_counts = bench::thread_list(argv[++i]);
      if (thread_counts.empty()) return usage();
    } else {
      long long b = 0, r = 0, w = 0;
      if (std::sscanf(o.c_str(), "%lld:%lld:%lld", &b, &r, &w) != 3 || b < 1 || r < 1 || w < 1) return usage();
      shapes.push_back({b, r, w});
    }
  }
  if (shapes.empty())
    shapes = {{1, 16, 1},  {1, 128, 1},  {16, 16, 16},  {16, 64, 1},    {64, 16, 8},
              {64, 128, 8}, {256, 16, 8}, {256, 64, 8}, {2048, 16, 1}, {2048, 64, 8}};
  std::string table = "| B | R | W | threads | call us | shrink us | expand us | in order: shrink us | in order: expand us |\n"
                      "|---|---|---|---|---|---|---|---|---|\n";
  char line[512];
  std::snprintf(line, sizeof line, "phase_bench: %s, H1 = H2 = %lld, %s data, SIMD target %s, %d rounds\n",
                bf16 ? "bf16" : "fp16", static_cast<long long>(H), warm ? "warm" : "cold (rotating)", addlora::simd_target(),
                rounds);
  std::string head = line;
  head += "each cell: median [min-max] us per call, and that phase's roofline over the median\n";
  for (int t : thread_counts) {
    addlora::set_num_threads(t);
    const bench::Machine m = bench::measure_machine(t);
    std::snprintf(line, sizeof line, "%d thread(s): read bandwidth %.1f GB/s, fp32 FMA peak %.1f GFLOP/s\n", t, m.bw / 1e9,
                  m.peak / 1e9);
    head += line;
    for (const Shape& s : shapes) {
      Data d(s, H, bf16, warm);
      const Row row = measure(d, rounds);
      const double distinct = static_cast<double>(std::min(s.B, s.W)), elem = 2;
      const double wbytes = distinct * static_cast<double>(s.R * H) * elem, zbytes = static_cast<double>(s.B * s.R) * 4;
      const double shrink_bytes = wbytes + static_cast<double>(s.B * H) * elem + zbytes;
      const double expand_bytes = wbytes + 2.0 * static_cast<double>(s.B * H) * elem + zbytes;
      const double flops = 2.0 * static_cast<double>(s.B * s.R * H);
      const double shrink_roof = std::max(shrink_bytes / m.bw, flops / (bf16 ? 2 * m.peak : m.peak));
      const double expand_roof = std::max(expand_bytes / m.bw, flops / m.peak);
      const double call_roof = std::max((2 * wbytes + 3.0 * static_cast<double>(s.B * H) * elem) / m.bw,
                                        flops / (bf16 ? 2 * m.peak : m.peak) + flops / m.peak);
      std::snprintf(line, sizeof line, "| %lld | %lld | %lld | %d | %s | %s | %s | %s | %s |\n", static_cast<long long>(s.B),
                    static_cast<long long>(s.R), static_cast<long long>(s.W), t, fmt(row.call, call_roof).c_str(),
                    fmt(row.shrink, shrink_roof).c_str(), fmt(row.expand, expand_roof).c_str(),
                    fmt(row.ord_shrink, shrink_roof).c_str(), fmt(row.ord_expand, expand_roof).c_str());
      table += line;
      std::fputs(line, stdout);
      std::fflush(stdout);
    }
  }
  const std::string out = head + "\n" + table;
  std::printf("\n%s", out.c_str());
  if (!md.empty()) {
    std::ofstream f(md, std::ios::app);
    f << out << "\n";
  }
  return 0;
}
