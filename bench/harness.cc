// See harness.h.  The peers are written here, on the same data as the library:
//   plain   the portable kernel (scalar loops, one thread): what a straightforward port does;
//   gather  per token: copy (and widen to fp32) its adapter's A and B into a buffer, then two
//           matvecs (OpenBLAS sgemv) -- the per-token gather + batched matvec of common
//           serving stacks' CPU path;
//   blas    grouped GEMM: rows pre-grouped by adapter (not timed), two cblas_sgemm per
//           adapter on fp32 copies of the data (BLAS has no fp16), so it moves 2x the bytes.
#include "harness.h"

#include <cblas.h>
// GCC 12's AVX-512 headers trip -Wuninitialized inside _mm512_cvtph_ps and friends.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "model/numeric.h"
#include "model/problem.h"
#include "kernels/kernels.h"

extern "C" void openblas_set_num_threads(int);

namespace bench {
namespace {


template <class T>
T* alloc(size_t n) {
  const size_t bytes = ((n * sizeof(T) + 4095) / 4096) * 4096;
  return static_cast<T*>(std::aligned_alloc(4096, bytes ? bytes : 4096));
}

// Random fp16 in +-[0.5, 1) * 2^-e (cheap: one xorshift per four elements).
void fill_half(uint16_t* p, size_t n, uint64_t seed, int exp_bias) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  const uint16_t e = static_cast<uint16_t>((14 - exp_bias) << 10);
  for (size_t i = 0; i < n; i += 4) {
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    for (size_t k = 0; k < 4 && i + k < n; ++k) {
      const uint16_t r = static_cast<uint16_t>(s >> (16 * k));
      p[i + k] = static_cast<uint16_t>((r & 0x8000u) | e | (r & 0x3ffu));
    }
  }
}

__attribute__((target("avx512f"))) void widen_avx512(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  for (; i < n; ++i) dst[i] = addlora::numeric::half_to_float(src[i]);
}
void widen(const uint16_t* src, float* dst, size_t n) {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) return widen_avx512(src, dst, n);
  for (size_t i = 0; i < n; ++i) dst[i] = addlora::numeric::half_to_float(src[i]);
}


}  // namespace


std::string Shape::str() const {
  char b[128];
  std::snprintf(b, sizeof b, "R=%lld W=%lld B=%lld %s", (long long)R, (long long)W, (long long)B,
                pop == Popularity::uniform ? "uniform" : "skewed");
  return b;
}

const char* impl_name(Impl i) {
  switch (i) {
    case Impl::addlora: return "addlora";
    case Impl::plain: return "plain loop";
    case Impl::gather: return "per-token gather";
    default: return "grouped sgemm";
  }
}

void set_threads(int n) {
  addlora::kernels::set_num_threads(n);
  openblas_set_num_threads(n);
}

// ---- data ---------------------------------------------------------------------------------

struct Dataset::Impl_ {
  Shape s;
  int nw = 1, na = 1;           // rotation slots: weights, activations
  int64_t wa_elems = 0, wb_elems = 0;
  std::vector<uint16_t*> A, Bw, X, Y;
  std::vector<int32_t> idx;
  std::vector<std::vector<int32_t>> idx_shift;  // idx relabelled (i + s) % W, s < W
  int shift = 0;                                // relabelling of the current call
  float scale = 1e-3f;
  void* ws = nullptr;
  int64_t calls = 0;
  // peers
  std::vector<float*> Af, Bf, Xg, Yg;   // fp32 copies; X/Y grouped by adapter
  std::vector<int64_t> gstart, gadapter;
  float *bufA = nullptr, *bufB = nullptr, *xv = nullptr, *zv = nullptr, *dv = nullptr, *zg = nullptr;

  addlora::detail::Problem problem(int w, int a) const {
    addlora::detail::Problem p;
    p.B = s.B; p.H1 = s.H1; p.H2 = s.H2; p.H3 = s.H2; p.R = s.R; p.W = s.W; p.S = s.H2;
    p.scale = scale;
    p.x = {X[a], addlora::DType::f16, s.H1, 1};
    p.y = {Y[a], addlora::DType::f16, s.H2, 1};
    p.out = p.y;
    p.in_place = true;
    p.indices = idx_shift[shift].data();
    p.has_a = true;
    p.a = {A[w], addlora::DType::f16, addlora::Layout::nd, s.R * s.H1, s.H1, 1};
    p.b = {Bw[w], addlora::DType::f16, addlora::Layout::nd, s.H2 * s.R, s.R, 1};
    return p;
  }
};

Dataset::Dataset(const Shape& s, bool fp32) : d_(new Impl_) {
  Impl_& d = *d_;
  d.s = s;
  d.wa_elems = s.W * s.R * s.H1;
  d.wb_elems = s.W * s.H2 * s.R;
  const double wbytes = double(d.wa_elems + d.wb_elems) * 2, abytes = double(s.B) * (s.H1 + s.H2) * 2;
  // Enough distinct slots that a full rotation of weights (256 MiB or twice the L3, whichever
  // is larger) is far beyond the L3: every call reads its weights from DRAM.  Activations
  // rotate over >= 128 MiB where 64 copies reach it.
  d.nw = static_cast<int>(std::clamp(std::ceil(beyond_cache_bytes(256.0 * (1 << 20)) / wbytes), 2.0, 4096.0));
  d.na = static_cast<int>(std::clamp(std::ceil(128.0 * (1 << 20) / abytes), 2.0, 64.0));
  for (int i = 0; i < d.nw; ++i) {
    d.A.push_back(alloc<uint16_t>(d.wa_elems));
    d.Bw.push_back(alloc<uint16_t>(d.wb_elems));
    fill_half(d.A.back(), d.wa_elems, 2 * i + 1, 0);
    fill_half(d.Bw.back(), d.wb_elems, 2 * i + 2, 0);
  }
  for (int i = 0; i < d.na; ++i) {
    d.X.push_back(alloc<uint16_t>(s.B * s.H1));
    d.Y.push_back(alloc<uint16_t>(s.B * s.H2));
    fill_half(d.X.back(), s.B * s.H1, 1000 + i, 0);
    fill_half(d.Y.back(), s.B * s.H2, 2000 + i, 0);
  }
  // adapters: uniform, or skewed (Zipf, exponent 1.5: a few adapters take most rows)
  std::mt19937_64 rng(42);
  std::vector<double> w(s.W);
  for (int64_t i = 0; i < s.W; ++i) w[i] = s.pop == Popularity::uniform ? 1.0 : 1.0 / std::pow(i + 1.0, 1.5);
  std::discrete_distribution<int> pick(w.begin(), w.end());
  d.idx.resize(s.B);
  for (auto& v : d.idx) v = pick(rng);
  // Call c uses weight slot c % nw with adapters relabelled by (c / nw) % W: successive calls
  // touch different adapters even when a call uses only a few of a slot's W adapters, so a
  // rotation touches every allocated weight byte and the working set stays far beyond L3.
  for (int64_t sh = 0; sh < s.W; ++sh) {
    d.idx_shift.push_back(d.idx);
    for (auto& v : d.idx_shift.back()) v = static_cast<int32_t>((v + sh) % s.W);
  }
  const auto p0 = d.problem(0, 0);
  d.ws = std::aligned_alloc(64, ((addlora::kernels::workspace_bytes(p0) + 63) / 64) * 64 + 64);

  // groups (for the BLAS peer): rows sorted by adapter
  std::vector<int32_t> order(s.B);
  for (int64_t b = 0; b < s.B; ++b) order[b] = static_cast<int32_t>(b);
  std::stable_sort(order.begin(), order.end(), [&](int32_t l, int32_t r) { return d.idx[l] < d.idx[r]; });
  for (int64_t k = 0; k < s.B; ++k)
    if (k == 0 || d.idx[order[k]] != d.idx[order[k - 1]]) {
      d.gstart.push_back(k);
      d.gadapter.push_back(d.idx[order[k]]);
    }
  d.gstart.push_back(s.B);
  if (fp32) {
    for (int i = 0; i < d.nw; ++i) {
      d.Af.push_back(alloc<float>(d.wa_elems));
      d.Bf.push_back(alloc<float>(d.wb_elems));
      widen(d.A[i], d.Af.back(), d.wa_elems);
      widen(d.Bw[i], d.Bf.back(), d.wb_elems);
    }
    for (int i = 0; i < d.na; ++i) {
      d.Xg.push_back(alloc<float>(s.B * s.H1));
      d.Yg.push_back(alloc<float>(s.B * s.H2));
      for (int64_t k = 0; k < s.B; ++k) {
        widen(d.X[i] + order[k] * s.H1, d.Xg.back() + k * s.H1, s.H1);
        widen(d.Y[i] + order[k] * s.H2, d.Yg.back() + k * s.H2, s.H2);
      }
    }
  }
  d.bufA = alloc<float>(s.R * s.H1);
  d.bufB = alloc<float>(s.H2 * s.R);
  d.xv = alloc<float>(s.H1);
  d.zv = alloc<float>(s.R);
  d.dv = alloc<float>(s.H2);
  d.zg = alloc<float>(s.B * s.R);
}

Dataset::~Dataset() {
  Impl_& d = *d_;
  for (auto* v : {&d.A, &d.Bw, &d.X, &d.Y}) for (auto* p : *v) std::free(p);
  for (auto* v : {&d.Af, &d.Bf, &d.Xg, &d.Yg}) for (auto* p : *v) std::free(p);
  for (void* p : {static_cast<void*>(d.bufA), static_cast<void*>(d.bufB), static_cast<void*>(d.xv),
                  static_cast<void*>(d.zv), static_cast<void*>(d.dv), static_cast<void*>(d.zg), d.ws})
    std::free(p);
}

int64_t Dataset::distinct_adapters() const { return static_cast<int64_t>(d_->gadapter.size()); }

uint64_t Dataset::rotation_bytes() const {
  const Impl_& d = *d_;
  return uint64_t(d.nw) * (d.wa_elems + d.wb_elems) * 2 + uint64_t(d.na) * d.s.B * (d.s.H1 + d.s.H2) * 2;
}

void Dataset::run(Impl impl) {
  Impl_& d = *d_;
  const Shape& s = d.s;
  const int w = static_cast<int>(d.calls % d.nw), a = static_cast<int>(d.calls % d.na);
  d.shift = static_cast<int>((d.calls / d.nw) % s.W);
  const std::vector<int32_t>& idx = d.idx_shift[d.shift];
  ++d.calls;
  switch (impl) {
    case Impl::addlora: addlora::kernels::execute(d.problem(w, a), d.ws); break;
    case Impl::plain: addlora::kernels::execute_portable(d.problem(w, a), d.ws); break;
    case Impl::gather:
      for (int64_t b = 0; b < s.B; ++b) {
        const int64_t i = idx[b];
        widen(d.A[w] + i * s.R * s.H1, d.bufA, s.R * s.H1);   // gather this token's adapter
        widen(d.Bw[w] + i * s.H2 * s.R, d.bufB, s.H2 * s.R);
        widen(d.X[a] + b * s.H1, d.xv, s.H1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, s.R, s.H1, 1.0f, d.bufA, s.H1, d.xv, 1, 0.0f, d.zv, 1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, s.H2, s.R, d.scale, d.bufB, s.R, d.zv, 1, 0.0f, d.dv, 1);
        uint16_t* y = d.Y[a] + b * s.H2;
        for (int64_t n = 0; n < s.H2; ++n)
          y[n] = addlora::numeric::float_to_half(addlora::numeric::half_to_float(y[n]) + d.dv[n]);
      }
      break;
    case Impl::blas:
      for (size_t g = 0; g + 1 < d.gstart.size(); ++g) {
        const int64_t k0 = d.gstart[g], rows = d.gstart[g + 1] - k0, i = (d.gadapter[g] + d.shift) % s.W;
        float* z = d.zg + k0 * s.R;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, s.R, s.H1, 1.0f, d.Xg[a] + k0 * s.H1,
                    s.H1, d.Af[w] + i * s.R * s.H1, s.H1, 0.0f, z, s.R);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, s.H2, s.R, d.scale, z, s.R,
                    d.Bf[w] + i * s.H2 * s.R, s.R, 1.0f, d.Yg[a] + k0 * s.H2, s.H2);
      }
      break;
  }
}

double Dataset::time(Impl impl, double min_seconds, int min_calls) {
  run(impl);  // warm-up (page faults, pool start)
  std::vector<double> t;
  const auto start = Clock::now();
  while (static_cast<int>(t.size()) < min_calls || seconds_since(start) < min_seconds) {
    const auto t0 = Clock::now();
    run(impl);
    t.push_back(seconds_since(t0));
    if (t.size() > 100000) break;
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

}  // namespace bench
