// The C API's shrink and expand (addlora_shrink / addlora_expand) against the fp64 oracle, and
// their bad-input behaviour: a status, a message naming the field, and nothing written.
//
// The oracle computes add_lora; each half is an add_lora without weight_a:
//   shrink: out = y + scale * x . weight_a^T      with y = z before (accumulate) or 0 where written
//   expand: out = y + scale * (z . weight_b^T)[:S] with y = out before (accumulate) or 0 where written
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "addlora/addlora.h"
#include "addlora/addlora_c.h"
#include "reference/check.h"
#include "reference/reference.h"
#include "reference/testdata.h"

using namespace addlora;
using ref::Rng;
using ref::TestTensor;

namespace {

addlora_tensor to_c(const TensorView& v) {
  addlora_tensor t;
  std::memset(&t, 0, sizeof t);
  t.data = v.data;
  t.dtype = static_cast<int32_t>(v.dtype);
  t.ndim = v.ndim;
  for (int d = 0; d < v.ndim; ++d) {
    t.dims[d] = v.dims[d];
    t.strides[d] = v.strides[d];
  }
  t.offset = v.offset;
  t.layout = static_cast<int32_t>(v.layout);
  t.storage_elems = -1;
  return t;
}

TestTensor indices_tensor(DType dt, const std::vector<int64_t>& values, bool strided) {
  const int64_t n = static_cast<int64_t>(values.size());
  TestTensor t = strided ? TestTensor::nd(dt, {n}, {2}, 1) : TestTensor::nd(dt, {n});
  t.fill_ints(values, -7);
  return t;
}

// A contiguous copy of `out` (same dtype) with zeros in the elements a call writes when it
// overwrites (rows with an adapter, columns [c0, c0 + S)), else out's values.
TestTensor base_for(const TestTensor& out, const std::vector<int64_t>& idx, int64_t W, int64_t c0, int64_t S,
                    bool accumulate) {
  const TensorView v = out.view();
  TestTensor y = TestTensor::nd(out.dtype(), {v.dims[0], v.dims[1]});
  for (int64_t b = 0; b < v.dims[0]; ++b)
    for (int64_t c = 0; c < v.dims[1]; ++c) {
      const bool written = idx[b] >= 0 && idx[b] < W && c >= c0 && c < c0 + S;
      y.set({b, c}, written && !accumulate ? 0.0 : ref::load(v, {b, c}));
    }
  return y;
}

// A [rows, cols] tensor of uniform values in [-range, range): contiguous, or (strided) with
// column stride `col`, `pad` extra elements after each row and storage offset `offset`.
TestTensor matrix(Rng& rng, DType dt, int64_t rows, int64_t cols, bool strided, int64_t col, int64_t pad,
                  int64_t offset, double range) {
  TestTensor t = strided ? TestTensor::nd(dt, {rows, cols}, ref::padded_strides({rows, cols}, col, pad), offset)
                         : TestTensor::nd(dt, {rows, cols});
  t.fill_uniform(rng, -range, range);
  return t;
}

struct HalfCase {
  DType dt;          // x / weights / z-in for expand
  DType zdt;         // shrink's output z
  DType idt;         // indices
  int64_t B, H1, R, W, L, layer;
  bool strided, accumulate;
};

std::vector<HalfCase> cases() {
  return {
      {DType::f16, DType::f32, DType::i32, 9, 37, 5, 3, 2, 1, false, false},
      {DType::f16, DType::f16, DType::i64, 6, 64, 16, 4, 1, 0, true, true},
      {DType::bf16, DType::f32, DType::i64, 5, 100, 7, 2, 3, 2, true, false},
      {DType::f32, DType::f32, DType::i32, 4, 17, 33, 3, 2, 0, false, true},
      {DType::bf16, DType::bf16, DType::i32, 1, 4097, 3, 5, 1, 0, false, true},
  };
}

std::vector<int64_t> row_indices(Rng& rng, int64_t B, int64_t W) {
  std::vector<int64_t> idx(static_cast<size_t>(B));
  for (auto& i : idx) i = rng.below(W);
  if (B > 1) idx[0] = -1;       // no adapter: not written
  if (B > 2) idx[2] = W;        // out of range: not written
  return idx;
}

TEST(CApiHalves, ShrinkMatchesTheOracle) {
  Rng rng(41);
  for (const HalfCase& c : cases()) {
    SCOPED_TRACE("H1=" + std::to_string(c.H1) + " R=" + std::to_string(c.R));
    const int64_t Rz = c.R + 3;
    TestTensor x = matrix(rng, c.dt, c.B, c.H1, c.strided, 2, 3, 5, 1);
    TestTensor wa = TestTensor::nd(c.dt, {c.W, c.L, c.R, c.H1});
    wa.fill_uniform(rng, -1, 1);
    TestTensor z = matrix(rng, c.zdt, c.B, Rz, c.strided, 1, 4, 2, 2);
    const std::vector<int64_t> idx_values = row_indices(rng, c.B, c.W);
    TestTensor idx = indices_tensor(c.idt, idx_values, c.strided);

    TestTensor y = base_for(z, idx_values, c.W, 0, c.R, c.accumulate);
    Arguments oracle;  // shrink as an add_lora: weight_a in weight_b's place, no weight_a
    oracle.y = y.view();
    oracle.out = z.view();
    oracle.x = x.view();
    oracle.weight_b = wa.view();
    oracle.indices = idx.view();
    oracle.layer_idx = c.layer;
    oracle.scale = 0.375;
    const ref::Expected e = ref::compute(oracle);
    ASSERT_GT(e.rows_with_adapter, 0);

    const std::vector<uint8_t> x_before = x.image_bytes(), wa_before = wa.image_bytes(), z_before = z.image_bytes();
    addlora_shrink_args a;
    std::memset(&a, 0, sizeof a);
    a.x = to_c(x.view());
    a.weight_a = to_c(wa.view());
    a.indices = to_c(idx.view());
    a.z = to_c(z.view());
    a.layer_idx = c.layer;
    a.scale = 0.375;
    a.accumulate = c.accumulate;
    ASSERT_EQ(addlora_shrink(&a), 0) << addlora_last_error();
    EXPECT_STREQ(addlora_last_error(), "");
    const ref::CheckResult r = ref::check_out(e, z.view());
    EXPECT_TRUE(r.ok) << r.report << "max error " << r.max_err_ulps << " ulp";
    EXPECT_NE(z.image_bytes(), z_before);  // something was written
    EXPECT_EQ(z.changes_outside_view(z_before), "");
    EXPECT_EQ(x.changes(x_before), "");
    EXPECT_EQ(wa.changes(wa_before), "");
  }
}

TEST(CApiHalves, ExpandMatchesTheOracle) {
  Rng rng(42);
  for (const HalfCase& c : cases()) {
    for (const int64_t slice : {int64_t{-1}, int64_t{2}}) {
      SCOPED_TRACE("H2=" + std::to_string(c.H1) + " R=" + std::to_string(c.R) + " slice=" + std::to_string(slice));
      const int64_t H2 = c.H1, S = slice == -1 ? H2 : std::min<int64_t>(slice, H2), y_offset = 3, H3 = H2 + 5;
      TestTensor zin = matrix(rng, c.zdt, c.B, c.R, c.strided, 2, 1, 3, 1);
      TestTensor wb = TestTensor::nd(c.dt, {c.W, c.L, H2, c.R});
      wb.fill_uniform(rng, -1, 1);
      TestTensor out = matrix(rng, c.dt, c.B, H3, c.strided, 1, 2, 4, 2);
      const std::vector<int64_t> idx_values = row_indices(rng, c.B, c.W);
      TestTensor idx = indices_tensor(c.idt, idx_values, c.strided);

      TestTensor y = base_for(out, idx_values, c.W, y_offset, S, c.accumulate);
      Arguments oracle;  // expand as an add_lora without weight_a
      oracle.y = y.view();
      oracle.out = out.view();
      oracle.x = zin.view();
      oracle.weight_b = wb.view();
      oracle.indices = idx.view();
      oracle.layer_idx = c.layer;
      oracle.scale = -1.25;
      oracle.y_offset = y_offset;
      oracle.y_slice_size = slice == -1 ? -1 : S;
      const ref::Expected e = ref::compute(oracle);

      const std::vector<uint8_t> z_before = zin.image_bytes(), out_before = out.image_bytes();
      addlora_expand_args a;
      std::memset(&a, 0, sizeof a);
      a.z = to_c(zin.view());
      a.weight_b = to_c(wb.view());
      a.indices = to_c(idx.view());
      a.out = to_c(out.view());
      a.layer_idx = c.layer;
      a.scale = -1.25;
      a.y_offset = y_offset;
      a.y_slice_size = slice == -1 ? -1 : S;
      a.accumulate = c.accumulate;
      ASSERT_EQ(addlora_expand(&a), 0) << addlora_last_error();
      const ref::CheckResult r = ref::check_out(e, out.view());
      EXPECT_TRUE(r.ok) << r.report << "max error " << r.max_err_ulps << " ulp";
      EXPECT_NE(out.image_bytes(), out_before);
      EXPECT_EQ(out.changes_outside_view(out_before), "");
      EXPECT_EQ(zin.changes(z_before), "");
    }
  }
}

// A valid shrink / expand pair to break one field at a time.
struct Valid {
  TestTensor x = TestTensor::nd(DType::f16, {3, 20});
  TestTensor wa = TestTensor::nd(DType::f16, {2, 1, 4, 20});
  TestTensor wb = TestTensor::nd(DType::f16, {2, 1, 20, 4});
  TestTensor idx = indices_tensor(DType::i32, {0, 1, -1}, false);
  TestTensor z = TestTensor::nd(DType::f32, {3, 4});
  TestTensor out = TestTensor::nd(DType::f16, {3, 24});
  Valid() {
    Rng rng(7);
    for (TestTensor* t : {&x, &wa, &wb, &z, &out}) t->fill_uniform(rng, -1, 1);
  }
  addlora_shrink_args shrink() const {
    addlora_shrink_args a;
    std::memset(&a, 0, sizeof a);
    a.x = to_c(x.view()), a.weight_a = to_c(wa.view()), a.indices = to_c(idx.view()), a.z = to_c(z.view());
    a.scale = 1.0;
    return a;
  }
  addlora_expand_args expand() const {
    addlora_expand_args a;
    std::memset(&a, 0, sizeof a);
    a.z = to_c(z.view()), a.weight_b = to_c(wb.view()), a.indices = to_c(idx.view()), a.out = to_c(out.view());
    a.scale = 1.0, a.y_slice_size = -1, a.accumulate = 1;
    return a;
  }
};

// Expects `status`, a message naming `field`, and no byte of z / out changed.
template <class Call>
void expect_refused(Call call, int32_t status, const char* field, Valid& v) {
  const std::vector<uint8_t> z_before = v.z.image_bytes(), out_before = v.out.image_bytes();
  EXPECT_EQ(call(), status) << addlora_last_error();
  const std::string msg = addlora_last_error();
  EXPECT_NE(msg.find(field), std::string::npos) << "message: " << msg;
  EXPECT_EQ(msg.rfind("AddLora: ", 0), 0u) << msg;
  EXPECT_EQ(v.z.changes(z_before), "");
  EXPECT_EQ(v.out.changes(out_before), "");
}

// with(change)(): `call` on a copy of the valid `base` arguments after `change` edited it.
template <class Args>
auto changed(Args base, int32_t (*call)(const Args*)) {
  return [base, call](auto change) {
    return [base, call, change] {
      Args a = base;
      change(a);
      return call(&a);
    };
  };
}

TEST(CApiHalves, ValidBaselineSucceeds) {
  Valid v;
  const addlora_shrink_args s = v.shrink();
  ASSERT_EQ(addlora_shrink(&s), 0) << addlora_last_error();
  const addlora_expand_args e = v.expand();
  ASSERT_EQ(addlora_expand(&e), 0) << addlora_last_error();
}

TEST(CApiHalves, ShrinkRefusesBadInput) {
  Valid v;
  expect_refused([] { return addlora_shrink(nullptr); }, 161001, "args", v);
  const auto with = changed(v.shrink(), addlora_shrink);
  expect_refused(with([](addlora_shrink_args& a) { a.x.data = nullptr; }), 161001, "x", v);
  expect_refused(with([](addlora_shrink_args& a) { a.z.data = nullptr; }), 161001, "z", v);
  expect_refused(with([](addlora_shrink_args& a) { a.weight_a.data = nullptr; }), 161001, "weight_a", v);
  expect_refused(with([](addlora_shrink_args& a) { a.indices.data = nullptr; }), 161001, "indices", v);
  expect_refused(with([](addlora_shrink_args& a) { a.x.dtype = 3; }), 161002, "x", v);             // int32 x
  expect_refused(with([](addlora_shrink_args& a) { a.indices.dtype = 0; }), 161002, "indices", v); // fp32 indices
  expect_refused(with([](addlora_shrink_args& a) { a.z.dtype = 12; }), 161002, "z", v);            // no such dtype
  expect_refused(with([](addlora_shrink_args& a) { a.weight_a.ndim = 3; }), 561002, "weight_a", v);
  expect_refused(with([](addlora_shrink_args& a) { a.z.dims[1] = 3; }), 561002, "z", v);           // Rz < R
  expect_refused(with([](addlora_shrink_args& a) { a.x.dims[1] = 19; }), 561002, "x", v);          // H1 differs
  expect_refused(with([](addlora_shrink_args& a) { a.indices.dims[0] = 2; }), 561002, "indices", v);
  expect_refused(with([](addlora_shrink_args& a) { a.layer_idx = 1; }), 561002, "layer_idx", v);
  expect_refused(with([](addlora_shrink_args& a) { a.layer_idx = -1; }), 561002, "layer_idx", v);
}

TEST(CApiHalves, ExpandRefusesBadInput) {
  Valid v;
  expect_refused([] { return addlora_expand(nullptr); }, 161001, "args", v);
  const auto with = changed(v.expand(), addlora_expand);
  expect_refused(with([](addlora_expand_args& a) { a.z.data = nullptr; }), 161001, "z", v);
  expect_refused(with([](addlora_expand_args& a) { a.out.data = nullptr; }), 161001, "out", v);
  expect_refused(with([](addlora_expand_args& a) { a.weight_b.data = nullptr; }), 161001, "weight_b", v);
  expect_refused(with([](addlora_expand_args& a) { a.out.dtype = 9; }), 161002, "out", v);          // int64 out
  expect_refused(with([](addlora_expand_args& a) { a.weight_b.dtype = 3; }), 161002, "weight_b", v);
  expect_refused(with([](addlora_expand_args& a) { a.weight_b.dims[3] = 5; }), 561002, "weight_b", v);  // R differs
  expect_refused(with([](addlora_expand_args& a) { a.y_offset = 5; }), 561002, "y_offset", v);      // 5 + 20 > 24
  expect_refused(with([](addlora_expand_args& a) { a.y_slice_size = 21; }), 561002, "y_slice_size", v);
  expect_refused(with([](addlora_expand_args& a) { a.y_offset = -1; }), 561002, "y_offset", v);
  expect_refused(with([](addlora_expand_args& a) { a.layer_idx = 2; }), 561002, "layer_idx", v);
  expect_refused(with([](addlora_expand_args& a) { a.out.ndim = 1; }), 561002, "out", v);
}

}  // namespace
