// entry_bench: what a user pays, per call, through the two C-level doors of the installed
// library, beside this machine's roofline measured in the same process:
//   aclnn   a CANN client: aclnnAddLoraGetWorkspaceSize + aclnnAddLora on a stream for each of
//           32 layers, then one aclrtSynchronizeStream (the time per call includes planning,
//           the executor, the stream hop and the join);
//   c++     addlora::add_lora (plans and runs each call), fp16 and bf16 (aclnnAddLora takes
//           fp16 only).
// Weights and activations rotating over more bytes than the last-level cache holds, so they
// come from DRAM as in a model's forward pass (the tiny row keeps its data in cache).
// %roof = max(bytes / bandwidth, compute at the fp32 FMA peak) / time, where bf16's compute
// counts the shrink at twice the peak (vdpbf16ps forms two products per lane); each row is
// repeated (rounds) and reported as median [min-max].
//   entry_bench [--rounds N] [--threads 1,2] [--md FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnnop/aclnn_add_lora.h"
#include "addlora/addlora.h"
#include "machine.h"

namespace {

using bench::Clock;
using bench::random_bf16;
using bench::random_half;
using bench::seconds_since;
using bench::Stat;
using bench::stat;

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #cond, aclGetRecentErrMsg()); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

struct Shape {
  const char* what;
  int64_t B, R, W, H1, H2;
  double bytes(int64_t distinct) const { return double(distinct) * R * (H1 + H2) * 2 + double(B) * (H1 + 2 * H2) * 2; }
  // Seconds of compute at fp32 FMA peak `peak`; bf16: the shrink at twice that rate.
  double compute(double peak, bool bf16) const { return 2.0 * B * R * (bf16 ? H1 / 2.0 + H2 : H1 + H2) / peak; }
};

constexpr int kLayers = 32;          // calls queued on the stream before one synchronize
const double kRotateBytes = bench::beyond_cache_bytes(256.0 * (1 << 20));  // far past the L3 (machine.h)

// One slot of data: a layer's weights and its activations, as device memory and aclTensors.
struct Slot {
  void *x, *y, *a, *b, *idx;
  aclTensor *tx, *ty, *ta, *tb, *tidx;
};

aclTensor* tensor(void* data, std::vector<int64_t> dims, aclDataType t) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
  return aclCreateTensor(dims.data(), dims.size(), t, strides.data(), 0, ACL_FORMAT_ND, dims.data(), dims.size(), data);
}

void* device_random(size_t elems, std::mt19937& g, bool bf16) {
  void* p = nullptr;
  CHECK(aclrtMalloc(&p, elems * 2, ACL_MEM_MALLOC_HUGE_FIRST) == ACL_SUCCESS);
  uint16_t* h = static_cast<uint16_t*>(p);  // host memory on this runtime; written directly
  for (size_t i = 0; i < elems; ++i) h[i] = bf16 ? random_bf16(g) : random_half(g);
  return p;
}

struct Data {
  Shape s;
  bool bf16;
  std::vector<Slot> slots;
  int64_t distinct = 0;
  Data(const Shape& shape, std::mt19937& g, bool bf16_data = false) : s(shape), bf16(bf16_data) {
    const double per_slot = s.bytes(std::min(s.W, s.B));
    // Enough slots that even the smallest decode call's rotation exceeds the L3.  The tiny row
    // measures the per-call cost with its data in cache: two slots.
    const bool tiny = s.H1 < 1024;
    const int n = tiny ? 2 : static_cast<int>(std::max(2.0, std::min(4096.0, kRotateBytes / per_slot + 1)));
    std::vector<int32_t> idx(static_cast<size_t>(s.B));
    for (int64_t b = 0; b < s.B; ++b) idx[b] = static_cast<int32_t>(b % s.W);  // every adapter in use
    distinct = std::min(s.W, s.B);
    for (int i = 0; i < n; ++i) {
      Slot sl{};
      sl.x = device_random(s.B * s.H1, g, bf16);
      sl.y = device_random(s.B * s.H2, g, bf16);
      sl.a = device_random(s.W * s.R * s.H1, g, bf16);
      sl.b = device_random(s.W * s.H2 * s.R, g, bf16);
      CHECK(aclrtMalloc(&sl.idx, idx.size() * 4, ACL_MEM_MALLOC_HUGE_FIRST) == ACL_SUCCESS);
      std::memcpy(sl.idx, idx.data(), idx.size() * 4);
      const aclDataType t = bf16 ? ACL_BF16 : ACL_FLOAT16;
      sl.tx = tensor(sl.x, {s.B, s.H1}, t);
      sl.ty = tensor(sl.y, {s.B, s.H2}, t);
      sl.ta = tensor(sl.a, {s.W, 1, s.R, s.H1}, t);
      sl.tb = tensor(sl.b, {s.W, 1, s.H2, s.R}, t);
      sl.tidx = tensor(sl.idx, {s.B}, ACL_INT32);
      CHECK(sl.tx && sl.ty && sl.ta && sl.tb && sl.tidx);
      slots.push_back(sl);
    }
  }
  ~Data() {
    for (Slot& sl : slots) {
      for (aclTensor* t : {sl.tx, sl.ty, sl.ta, sl.tb, sl.tidx}) aclDestroyTensor(t);
      for (void* p : {sl.x, sl.y, sl.a, sl.b, sl.idx}) aclrtFree(p);
    }
  }
};

// Seconds per call: kLayers calls through aclnn on `stream`, one synchronize.
double time_aclnn(Data& d, aclrtStream stream, void* ws, uint64_t ws_bytes, size_t* slot) {
  const auto t0 = Clock::now();
  for (int l = 0; l < kLayers; ++l) {
    Slot& sl = d.slots[(*slot)++ % d.slots.size()];
    uint64_t need = 0;
    aclOpExecutor* ex = nullptr;
    CHECK(aclnnAddLoraGetWorkspaceSize(sl.ty, sl.tx, sl.tb, sl.tidx, sl.ta, 0, 1e-3, 0, -1, sl.ty, &need, &ex) == 0);
    CHECK(need <= ws_bytes);
    CHECK(aclnnAddLora(need ? ws : nullptr, need, ex, stream) == 0);
  }
  CHECK(aclrtSynchronizeStream(stream) == ACL_SUCCESS);
  return seconds_since(t0) / kLayers;
}

// Seconds per call through the C++ API (plan + run each call).
double time_cpp(Data& d, size_t* slot) {
  const auto t0 = Clock::now();
  for (int l = 0; l < kLayers; ++l) {
    Slot& sl = d.slots[(*slot)++ % d.slots.size()];
    const addlora::DType t = d.bf16 ? addlora::DType::bf16 : addlora::DType::f16;
    addlora::Arguments a;
    a.x = addlora::TensorView::contiguous(sl.x, t, {d.s.B, d.s.H1});
    a.y = addlora::TensorView::contiguous(sl.y, t, {d.s.B, d.s.H2});
    a.out = a.y;
    a.weight_a = addlora::TensorView::contiguous(sl.a, t, {d.s.W, 1, d.s.R, d.s.H1});
    a.weight_b = addlora::TensorView::contiguous(sl.b, t, {d.s.W, 1, d.s.H2, d.s.R});
    a.indices = addlora::TensorView::contiguous(sl.idx, addlora::DType::i32, {d.s.B});
    a.scale = 1e-3;
    std::string msg;
    if (addlora::add_lora(a, addlora::Rules::general, &msg) != addlora::Status::ok) {
      std::fprintf(stderr, "add_lora: %s\n", msg.c_str());
      std::exit(1);
    }
  }
  return seconds_since(t0) / kLayers;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7;
  std::vector<int> thread_counts = {1, 2};
  std::string md;
  auto usage = [&] {
    std::fprintf(stderr, "usage: %s [--rounds N] [--threads 1,2] [--md FILE]\n", argv[0]);
    return 2;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) rounds = std::max(1, std::atoi(argv[++i]));
    else if (a == "--threads" && i + 1 < argc) {
      thread_counts = bench::thread_list(argv[++i]);
      if (thread_counts.empty()) return usage();
    } else if (a == "--md" && i + 1 < argc) md = argv[++i];
    else return usage();
  }
  const Shape shapes[] = {
      {"tiny: per-call cost", 1, 16, 1, 64, 64},
      {"decode", 1, 16, 1, 4096, 4096},
      {"decode", 1, 64, 1, 4096, 4096},
      {"decode", 1, 128, 1, 4096, 4096},
      {"16 rows, one adapter", 16, 64, 1, 4096, 4096},
      {"decode, distinct adapters", 16, 16, 16, 4096, 4096},
      {"mid-size groups", 64, 16, 32, 4096, 4096},
      {"mid-size groups", 64, 64, 32, 4096, 4096},
      {"mid-size groups, 8 rows each", 256, 64, 32, 4096, 4096},
      {"batched", 256, 64, 8, 4096, 4096},
      {"prefill", 2048, 64, 4, 4096, 4096},
  };
  CHECK(aclInit(nullptr) == ACL_SUCCESS);
  CHECK(aclrtSetDevice(0) == ACL_SUCCESS);
  aclrtStream stream = nullptr;
  CHECK(aclrtCreateStream(&stream) == ACL_SUCCESS);
  std::mt19937 g(1);
  std::string table;
  char line[512];
  for (int threads : thread_counts) {
    const bench::Machine m = bench::measure_machine(threads);
    addlora::set_num_threads(threads);
    std::snprintf(line, sizeof line,
                  "\n%d thread(s): read bandwidth %.1f GB/s, fp32 FMA peak %.1f GFLOP/s (%s); %d rounds of %d calls\n\n",
                  threads, m.bw / 1e9, m.peak / 1e9, m.simd.c_str(), rounds, kLayers);
    table += line;
    table += "| shape | B | R | W | H | fp16 roofline (us) | aclnn fp16 us, median [min-max] | aclnn %roof | C++ fp16 us, median [min-max] | C++ %roof | bf16 roofline (us) | C++ bf16 us, median [min-max] | C++ bf16 %roof |\n";
    table += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Shape& s : shapes) {
      Data d(s, g), db(s, g, true);
      const double roof = std::max(s.bytes(d.distinct) / m.bw, s.compute(m.peak, false));
      const double roof_bf = std::max(s.bytes(db.distinct) / m.bw, s.compute(m.peak, true));
      uint64_t ws_bytes = 0;
      {
        aclOpExecutor* ex = nullptr;
        Slot& sl = d.slots[0];
        CHECK(aclnnAddLoraGetWorkspaceSize(sl.ty, sl.tx, sl.tb, sl.tidx, sl.ta, 0, 1e-3, 0, -1, sl.ty, &ws_bytes, &ex) == 0);
        CHECK(aclDestroyAclOpExecutor(ex) == 0 || true);
      }
      void* ws = nullptr;
      if (ws_bytes) CHECK(aclrtMalloc(&ws, ws_bytes, ACL_MEM_MALLOC_HUGE_FIRST) == ACL_SUCCESS);
      size_t slot = 0, slot_bf = 0;
      time_aclnn(d, stream, ws, ws_bytes, &slot);  // warm-up: pages, pool, caches of the code
      time_cpp(d, &slot);
      time_cpp(db, &slot_bf);
      std::vector<double> ta, tc, tb;
      for (int r = 0; r < rounds; ++r) {  // interleaved, so drifts of the shared VM hit all
        ta.push_back(time_aclnn(d, stream, ws, ws_bytes, &slot));
        tc.push_back(time_cpp(d, &slot));
        tb.push_back(time_cpp(db, &slot_bf));
      }
      if (ws) aclrtFree(ws);
      const Stat a = stat(ta), c = stat(tc), b = stat(tb);
      std::snprintf(line, sizeof line,
                    "| %s | %lld | %lld | %lld | %lld | %.1f | %.1f [%.1f-%.1f] | %.0f%% | %.1f [%.1f-%.1f] | %.0f%% "
                    "| %.1f | %.1f [%.1f-%.1f] | %.0f%% |\n",
                    s.what, (long long)s.B, (long long)s.R, (long long)s.W, (long long)s.H1, roof * 1e6, a.med * 1e6,
                    a.lo * 1e6, a.hi * 1e6, 100 * roof / a.med, c.med * 1e6, c.lo * 1e6, c.hi * 1e6,
                    100 * roof / c.med, roof_bf * 1e6, b.med * 1e6, b.lo * 1e6, b.hi * 1e6, 100 * roof_bf / b.med);
      table += line;
      std::fputs(line, stdout);
      std::fflush(stdout);
    }
  }
  CHECK(aclrtDestroyStream(stream) == ACL_SUCCESS);
  aclrtResetDevice(0);
  aclFinalize();
  std::printf("%s", table.c_str());
  if (!md.empty()) {
    std::ofstream f(md, std::ios::app);
    f << "\n## Through the entry points (bench/entry_bench)\n\nPer call, as a client pays it: aclnn = "
         "GetWorkspaceSize + aclnnAddLora for each of 32 layers on a stream, then one synchronize; C++ = "
         "addlora::add_lora (plans every call), fp16 and bf16 (aclnnAddLora takes fp16 only; bf16's roofline "
         "counts the shrink at twice the FMA peak).  Weights from DRAM, every adapter in use.\n"
      << table;
  }
  return 0;
}
