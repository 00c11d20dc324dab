// features_bench: the library-API features of the "beyond the seed" issue, timed on the same
// data in one run through the public C++ API (addlora.h):
//   * FRACTAL_NZ weights vs the same weights in ND;
//   * multi-slice (q, k, v of a fused projection in one call) vs three consecutive calls;
//   * per-adapter ranks (adapters using a quarter of a padded rank) vs the full rank.
// fp16, H1 = 4096.  Weights rotate over copies larger than the L3 cache, with the adapters
// relabelled each round, so they come from DRAM (except the rows marked L3).  Prints a
// markdown table (median time per call, ratio).
//   features_bench [--min-time S]
#include <addlora/addlora.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "machine.h"

namespace {

using addlora::Arguments;
using addlora::DType;
using addlora::TensorView;

// Rotate over 96 MiB or twice the L3, whichever is larger (machine.h).
const int64_t kCacheBytes = static_cast<int64_t>(bench::beyond_cache_bytes(96.0 * (1 << 20)));

std::vector<uint16_t> random_half(size_t n, std::mt19937& gen) {
  std::uniform_int_distribution<int> u(-1000, 1000);
  std::vector<uint16_t> v(n);
  for (auto& e : v) {
    const float f = static_cast<float>(u(gen)) / 4000.0f;
    // Round to fp16 through the library-independent route: small values only.
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    const float a = std::fabs(f);
    if (a < 6.1e-5f) {
      e = static_cast<uint16_t>(sign);
      continue;
    }
    int exp;
    const float m = std::frexp(a, &exp);  // a = m * 2^exp, m in [0.5, 1)
    const uint32_t mant = static_cast<uint32_t>(std::lround((m * 2 - 1) * 1024)) ;
    e = static_cast<uint16_t>(sign | ((static_cast<uint32_t>(exp - 1 + 15) << 10) + mant));
  }
  return v;
}

double median_seconds(const std::function<void(int)>& call, double min_time) {
  std::vector<double> t;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; (i < 5 || std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < min_time) &&
                  i < 100000;
       ++i) {
    const auto a = std::chrono::steady_clock::now();
    call(i);
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

void check(addlora::Status st, const std::string& msg) {
  if (st != addlora::Status::ok) {
    std::fprintf(stderr, "features_bench: %s\n", msg.c_str());
    std::exit(1);
  }
}

// One adapter family [W, 1, M, N] per rotation slot, ND and NZ.
struct Weights {
  int64_t W, M, N, copies;
  std::vector<std::vector<uint16_t>> nd, nz;
  // rotate = false: one copy, so the calls cycle through its W adapters only (weights that the
  // L3 holds, for the rows that say so).
  Weights(int64_t w, int64_t m, int64_t n, std::mt19937& gen, bool with_nz, bool rotate = true) : W(w), M(m), N(n) {
    const int64_t bytes = W * M * N * 2;
    copies = rotate ? std::max<int64_t>(2, kCacheBytes / std::max<int64_t>(bytes, 1) + 1) : 1;
    const int64_t dims[4] = {W, 1, M, N};
    for (int64_t c = 0; c < copies; ++c) {
      nd.push_back(random_half(static_cast<size_t>(W * M * N), gen));
      if (with_nz) {
        std::vector<uint16_t> packed(static_cast<size_t>(addlora::nz_elements(dims, 4)));
        TensorView v = TensorView::contiguous(nd.back().data(), DType::f16, {W, 1, M, N});
        check(addlora::nd_to_nz(v, packed.data(), static_cast<int64_t>(packed.size())), "nd_to_nz");
        nz.push_back(std::move(packed));
      }
    }
  }
  TensorView view(int64_t slot, bool as_nz) {
    TensorView v = TensorView::contiguous((as_nz ? nz : nd)[slot % copies].data(), DType::f16, {W, 1, M, N});
    if (as_nz) v.layout = addlora::Layout::fractal_nz;
    return v;
  }
};

struct Activations {
  int64_t B, H1, H3, W;
  std::vector<uint16_t> x, y;
  std::vector<int32_t> idx;
  Activations(int64_t b, int64_t h1, int64_t h3, int64_t w, std::mt19937& gen) : B(b), H1(h1), H3(h3), W(w) {
    x = random_half(static_cast<size_t>(B * H1), gen);
    y = random_half(static_cast<size_t>(B * H3), gen);
    idx.resize(static_cast<size_t>(B));
  }
  // Call i uses rotation slot i % copies with row b on adapter (b + shift) % W, shift = (i /
  // copies) % W: when the rows use fewer than W adapters (B=1), successive visits of a slot
  // still touch different adapters, so the rotation reads all of kCacheBytes, not the used
  // share of it (B=1 W=8 would otherwise cycle through 1/8 of it, which the L3 largely holds).
  void relabel(int i, int64_t copies) {
    const int64_t shift = (i / copies) % W;
    for (int64_t b = 0; b < B; ++b) idx[b] = static_cast<int32_t>((b + shift) % W);
  }
  void fill(Arguments* g) {
    g->x = TensorView::contiguous(x.data(), DType::f16, {B, H1});
    g->y = TensorView::contiguous(y.data(), DType::f16, {B, H3});
    g->out = g->y;  // in place
    g->indices = TensorView::contiguous(idx.data(), DType::i32, {B});
    g->scale = 1e-3;
  }
};

// The two variants of a row, timed in 5 alternating rounds (first/second, then second/first):
// each gets the median of its round medians, so a slow phase of this shared machine hits both
// alike instead of whichever happened to run then.
void paired(const std::function<void(int)>& first, const std::function<void(int)>& second, double min_time,
            double* t_first, double* t_second) {
  std::vector<double> a, b;
  for (int round = 0; round < 5; ++round) {
    if (round % 2 == 0) {
      a.push_back(median_seconds(first, min_time / 5));
      b.push_back(median_seconds(second, min_time / 5));
    } else {
      b.push_back(median_seconds(second, min_time / 5));
      a.push_back(median_seconds(first, min_time / 5));
    }
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  *t_first = a[2];
  *t_second = b[2];
}

// One in-place call with the weights of rotation slot i, ND or NZ, with optional per-adapter
// ranks.
std::function<void(int)> single_call(Activations& act, Weights& A, Weights& Bw, bool nz,
                                     const std::vector<int32_t>* ranks) {
  return [&act, &A, &Bw, nz, ranks](int i) {
    Arguments g;
    act.relabel(i, A.copies);
    act.fill(&g);
    g.weight_a = A.view(i, nz);
    g.weight_b = Bw.view(i, nz);
    if (ranks) g.ranks = TensorView::contiguous(const_cast<int32_t*>(ranks->data()), DType::i32, {A.W});
    std::string m;
    check(addlora::add_lora(g, addlora::Rules::general, &m), m);
  };
}

void row(const char* what, const char* shape, double base, double t, const char* base_name, const char* name) {
  std::printf("| %s | %s | %s %.1f us | %s %.1f us | %.2fx |\n", what, shape, base_name, base * 1e6, name, t * 1e6,
              base / t);
}

}  // namespace

int main(int argc, char** argv) {
  double min_time = 1.0;  // per variant, over 5 rounds
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--min-time") == 0 && i + 1 < argc) min_time = std::atof(argv[++i]);
  std::mt19937 gen(7);
  std::printf("\n## Library-API features (bench/features_bench, %d threads, SIMD target %s)\n\n",
              addlora::num_threads(), addlora::simd_target());
  std::printf("fp16, H1 = 4096, in place, weights rotating over "
              "> %lld MiB (DRAM) unless the shape says L3.  "
              "Ratio = first / second (above 1: the second is faster).\n\n",
              static_cast<long long>(kCacheBytes >> 20));
  std::printf("| feature | shape | first | second | ratio |\n|---|---|---|---|---|\n");

  // ---- FRACTAL_NZ vs ND ---------------------------------------------------------------------
  struct NzRow { int64_t B, R; bool hot; };
  for (const NzRow nzr : {NzRow{1, 64, false}, {64, 64, false}, {1, 128, false}, {8, 128, false}, {8, 64, false},
                          {1, 128, true}}) {
    const int64_t W = 8, H = 4096, B = nzr.B, R = nzr.R;
    Weights A(W, R, H, gen, true, !nzr.hot), Bw(W, H, R, gen, true, !nzr.hot);
    Activations act(B, H, H, W, gen);
    double t[2];
    paired(single_call(act, A, Bw, false, nullptr), single_call(act, A, Bw, true, nullptr), min_time, &t[0], &t[1]);
    char shape[96];
    std::snprintf(shape, sizeof shape, "B=%lld W=%lld R=%lld H2=4096%s", static_cast<long long>(B),
                  static_cast<long long>(W), static_cast<long long>(R), nzr.hot ? ", 16 MiB of weights (L3)" : "");
    row("FRACTAL_NZ weights", shape, t[0], t[1], "ND", "NZ");
  }

  // ---- multi-slice vs consecutive calls ----------------------------------------------------
  for (const int64_t B : {1, 64}) {
    const int64_t W = 8, R = 16, H1 = 4096, h2[3] = {4096, 1024, 1024}, H3 = 6144;
    std::vector<Weights> as, bs;
    for (int k = 0; k < 3; ++k) {
      as.emplace_back(W, R, H1, gen, false);
      bs.emplace_back(W, h2[k], R, gen, false);
    }
    Activations act(B, H1, H3, W, gen);
    auto slices = [&](int i) {
      std::vector<Arguments> s(3);
      int64_t off = 0;
      act.relabel(i, as[0].copies);  // the slices share the indices (as[k] are alike)
      for (int k = 0; k < 3; ++k) {
        act.fill(&s[k]);
        s[k].weight_a = as[k].view(i, false);
        s[k].weight_b = bs[k].view(i, false);
        s[k].y_offset = off;
        off += h2[k];
      }
      return s;
    };
    double t_single, t_multi;
    paired(
        [&](int i) {
          for (const Arguments& g : slices(i)) {
            std::string m;
            check(addlora::add_lora(g, addlora::Rules::general, &m), m);
          }
        },
        [&](int i) {
          const std::vector<Arguments> s = slices(i);
          std::string m;
          check(addlora::add_lora(s.data(), s.size(), addlora::Rules::general, &m), m);
        },
        min_time, &t_single, &t_multi);
    char shape[96];
    std::snprintf(shape, sizeof shape, "B=%lld q/k/v 4096+1024+1024 R=16 W=8", static_cast<long long>(B));
    row("multi-slice", shape, t_single, t_multi, "3 calls", "1 call");
  }

  // ---- per-adapter ranks -------------------------------------------------------------------
  for (const int64_t B : {1, 16}) {
    const int64_t W = 8, R = 64, H = 4096;
    Weights A(W, R, H, gen, false), Bw(W, H, R, gen, false);
    Activations act(B, H, H, W, gen);
    std::vector<int32_t> full(static_cast<size_t>(W), static_cast<int32_t>(R)),
        quarter(static_cast<size_t>(W), static_cast<int32_t>(R / 4));
    double t[2];
    paired(single_call(act, A, Bw, false, &full), single_call(act, A, Bw, false, &quarter), min_time, &t[0], &t[1]);
    char shape[96];
    std::snprintf(shape, sizeof shape, "B=%lld W=8 R=64, ranks 64 vs 16", static_cast<long long>(B));
    row("per-adapter ranks", shape, t[0], t[1], "rank 64", "rank 16");
  }
  std::printf("\nThe per-adapter rows compare the same kernels with ranks 64 and 16 on a rank-64 tensor: the "
              "ratio is the saving from not reading the padded ranks.  Multi-slice groups the rows once and runs "
              "each phase (shrink, combine, expand) of all slices in one parallel region: it saves two thirds of "
              "the thread wake-ups and barriers, not weight traffic.  NZ and ND give the same bits.\n");
  return 0;
}
