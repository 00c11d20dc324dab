// Fuzz harness: planning with arbitrary dims, strides, offsets, storage sizes, dtypes (incl.
// values outside the enum), layouts and attributes, under both rule sets.  Each tensor's data
// points at a real buffer of exactly storage_elems elements, so when a plan is accepted and
// run, any access outside the declared storage is caught by AddressSanitizer.  Every result
// must be a documented status; a rejected call must not touch out.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "addlora/addlora.h"

using namespace addlora;

namespace {

constexpr int64_t kMaxStorage = 1 << 14;  // elements per buffer

int64_t fuzz_dim(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 7)) {
    case 0: return in.ConsumeIntegral<int64_t>();                 // anything, incl. negative
    case 1: return int64_t{1} << in.ConsumeIntegralInRange(0, 62);  // powers of two up to 2^62
    default: return in.ConsumeIntegralInRange<int64_t>(0, 40);
  }
}

struct Buffer {
  std::vector<uint64_t> words;  // 8-byte elements cover every dtype
};

TensorView fuzz_view(FuzzedDataProvider& in, int rank_hint, Buffer* buf) {
  TensorView v;
  const int32_t dtypes[] = {0, 1, 3, 9, 27, 2, 11, -1};
  v.dtype = static_cast<DType>(dtypes[in.ConsumeIntegralInRange(0, 7)]);
  v.layout = static_cast<Layout>(in.ConsumeIntegralInRange(0, 5) == 0 ? 29 : (in.ConsumeIntegralInRange(0, 9) ? 2 : 0));
  v.ndim = in.ConsumeIntegralInRange(0, 9) ? rank_hint : in.ConsumeIntegralInRange(0, 8);
  for (int i = 0; i < v.ndim; ++i) v.dims[i] = fuzz_dim(in);
  int64_t s = 1;  // contiguous strides by default, sometimes arbitrary
  for (int i = v.ndim - 1; i >= 0; --i) {
    v.strides[i] = in.ConsumeIntegralInRange(0, 5) ? s : fuzz_dim(in);
    if (v.dims[i] > 0 && v.dims[i] < (int64_t{1} << 20) && s < (int64_t{1} << 40)) s *= v.dims[i];
  }
  v.offset = in.ConsumeIntegralInRange(0, 5) ? in.ConsumeIntegralInRange<int64_t>(0, 8) : fuzz_dim(in);
  const int64_t elems = in.ConsumeIntegralInRange<int64_t>(0, kMaxStorage);
  buf->words.assign(static_cast<size_t>(elems), 0x3c003c003c003c00ull);  // fp16 ones
  v.data = buf->words.empty() ? nullptr : buf->words.data();
  // Declared storage in elements of the declared dtype, never more than the buffer holds.
  const size_t es = dtype_size(v.dtype);
  v.storage_elems = static_cast<int64_t>(buf->words.size() * 8 / (es ? es : 1));
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Buffer by, bx, bb, bi, ba, bo;
  Arguments args;
  args.y = fuzz_view(in, 2, &by);
  args.x = fuzz_view(in, 2, &bx);
  args.weight_b = fuzz_view(in, 4, &bb);
  args.indices = fuzz_view(in, 1, &bi);
  if (in.ConsumeBool()) args.weight_a = fuzz_view(in, 4, &ba);
  args.out = in.ConsumeIntegralInRange(0, 3) == 0 ? args.y : fuzz_view(in, 2, &bo);
  args.layer_idx = in.ConsumeIntegralInRange<int64_t>(-2, 4);
  args.y_offset = in.ConsumeIntegralInRange(0, 3) ? in.ConsumeIntegralInRange<int64_t>(-2, 40) : in.ConsumeIntegral<int64_t>();
  args.y_slice_size = in.ConsumeIntegralInRange<int64_t>(-3, 40);
  args.scale = in.ConsumeFloatingPoint<double>();
  const Rules rules = in.ConsumeBool() ? Rules::cann : Rules::general;
  // Index values: anything (the kernels must treat out-of-range indices as "no adapter").
  for (auto& w : bi.words) w = in.ConsumeIntegral<uint64_t>();

  const std::vector<uint64_t> out_before = bo.words;
  std::string msg;
  const Status st = add_lora(args, rules, &msg);
  switch (st) {
    case Status::ok:
      break;
    case Status::null_pointer:
    case Status::invalid_param:
    case Status::invalid_shape:
    case Status::internal:
      if (msg.rfind("AddLora: ", 0) != 0) {
        std::fprintf(stderr, "FINDING: status %d without a message\n", static_cast<int>(st));
        std::abort();
      }
      if (bo.words != out_before) {
        std::fprintf(stderr, "FINDING: rejected call wrote out: %s\n", msg.c_str());
        std::abort();
      }
      break;
    default:
      std::fprintf(stderr, "FINDING: undocumented status %d\n", static_cast<int>(st));
      std::abort();
  }
  return 0;
}
