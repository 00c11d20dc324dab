// Fuzz harness: execution through the C++ API with arbitrary index data, slices, strides,
// dtypes and layouts on small shapes, checked against the fp64 oracle.  Every tensor lives
// in a sentinel-guarded buffer: a write outside out's view, a changed input or a result
// outside the precision contract (docs/contract.md §1.2) aborts.  Invalid attribute combinations must be rejected with a
// documented status instead.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "addlora/addlora.h"
#include "reference/check.h"
#include "reference/reference.h"
#include "reference/testdata.h"

using namespace addlora;

namespace {

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "FINDING: %s\n%s\n", what, detail.c_str());
  std::abort();
}

DType pick_float(FuzzedDataProvider& in) {
  const DType t[] = {DType::f16, DType::bf16, DType::f32};
  return t[in.ConsumeIntegralInRange(0, 2)];
}

ref::TestTensor matrix(FuzzedDataProvider& in, DType t, int64_t rows, int64_t cols) {
  const int64_t col = in.ConsumeIntegralInRange<int64_t>(1, 3);
  const int64_t pad = in.ConsumeIntegralInRange<int64_t>(0, 5);
  const int64_t off = in.ConsumeIntegralInRange<int64_t>(0, 7);
  return ref::TestTensor::nd(t, {rows, cols}, ref::padded_strides({rows, cols}, col, pad), off);
}

ref::TestTensor weight(FuzzedDataProvider& in, DType t, std::vector<int64_t> dims) {
  if (ref::element_size(t) == 2 && in.ConsumeBool())
    return ref::TestTensor::nz(t, dims, in.ConsumeIntegralInRange<int64_t>(0, 5));
  const int64_t col = in.ConsumeIntegralInRange<int64_t>(1, 2);
  return ref::TestTensor::nd(t, dims, ref::padded_strides(dims, col, in.ConsumeIntegralInRange<int64_t>(0, 3)),
                             in.ConsumeIntegralInRange<int64_t>(0, 5));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int64_t B = in.ConsumeIntegralInRange<int64_t>(1, 12);
  const int64_t W = in.ConsumeIntegralInRange<int64_t>(1, 4);
  const int64_t L = in.ConsumeIntegralInRange<int64_t>(1, 3);
  const bool has_a = in.ConsumeBool();
  const int64_t R = in.ConsumeIntegralInRange<int64_t>(1, 40);
  const int64_t H1 = has_a ? in.ConsumeIntegralInRange<int64_t>(1, 70) : R;
  const int64_t H2 = in.ConsumeIntegralInRange<int64_t>(1, 50);
  const int64_t H3 = H2 + in.ConsumeIntegralInRange<int64_t>(0, 20);
  const DType act = pick_float(in), wt = pick_float(in);
  const bool in_place = in.ConsumeBool();

  ref::Rng rng(in.ConsumeIntegral<uint64_t>());
  ref::TestTensor x = matrix(in, act, B, H1), y = matrix(in, act, B, H3), out = matrix(in, act, B, H3);
  ref::TestTensor b = weight(in, wt, {W, L, H2, R});
  ref::TestTensor a = has_a ? weight(in, wt, {W, L, R, H1}) : ref::TestTensor::nd(wt, {1, 1, 1, 1});
  for (ref::TestTensor* t : {&x, &y, &out, &a, &b}) t->fill_uniform(rng, -1, 1);
  const bool i64 = in.ConsumeBool();
  ref::TestTensor idx = ref::TestTensor::nd(i64 ? DType::i64 : DType::i32, {B},
                                            {in.ConsumeIntegralInRange<int64_t>(1, 3)}, 0);
  std::vector<int64_t> values(B);
  for (auto& v : values)
    v = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(-2, W + 1)
                         : (i64 ? in.ConsumeIntegral<int64_t>() : in.ConsumeIntegral<int32_t>());
  idx.fill_ints(values, -77);

  Arguments args;
  args.x = x.view();
  args.y = y.view();
  args.out = in_place ? args.y : out.view();
  args.weight_b = b.view();
  if (has_a) args.weight_a = a.view();
  args.indices = idx.view();
  args.layer_idx = in.ConsumeIntegralInRange<int64_t>(-1, L);
  args.y_offset = in.ConsumeIntegralInRange<int64_t>(-1, H3 - H2 + 1);
  args.y_slice_size = in.ConsumeIntegralInRange<int64_t>(-2, H2 + 1);
  args.scale = in.ConsumeFloatingPointInRange<double>(-4, 4);

  const bool valid = args.layer_idx >= 0 && args.layer_idx < L && args.y_offset >= 0 &&
                     args.y_offset + H2 <= H3 && args.y_slice_size >= -1 && args.y_slice_size <= H2;
  ref::Expected expected;
  if (valid) expected = ref::compute(args);
  const auto x0 = x.image_bytes(), y0 = y.image_bytes(), out0 = out.image_bytes(), a0 = a.image_bytes(),
             b0 = b.image_bytes(), i0 = idx.image_bytes();

  std::string msg;
  const Status st = add_lora(args, Rules::general, &msg);
  if (!valid) {
    if (st != Status::invalid_shape) finding("invalid attributes not rejected with 561002", msg);
    if (!out.changes(out0).empty() || !y.changes(y0).empty()) finding("rejected call wrote memory", "");
    return 0;
  }
  if (st != Status::ok) finding("valid call rejected", msg);
  const ref::CheckResult r = ref::check_out(expected, args.out);
  if (!r.ok) finding("result outside the precision contract", r.report);
  const ref::TestTensor& written = in_place ? y : out;
  if (std::string c = written.changes_outside_view(in_place ? y0 : out0); !c.empty()) finding("stray write", c);
  if (!in_place && !y.changes(y0).empty()) finding("y written out of place", y.changes(y0));
  if (!x.changes(x0).empty() || !a.changes(a0).empty() || !b.changes(b0).empty() || !idx.changes(i0).empty())
    finding("an input was modified", "");
  return 0;
}
