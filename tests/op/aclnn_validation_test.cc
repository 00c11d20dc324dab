// One test per validation rule of docs/contract.md §2, through aclnnAddLoraGetWorkspaceSize: the exact
// status code, and a non-empty aclGetRecentErrMsg() naming the parameter.  Each case starts
// from a valid call (B 4, H1 32, H2 32, H3 48, R 16, W 2, L 2, with weight A) and breaks one
// thing.  Data is zero: validation must not depend on it.
#include <gtest/gtest.h>

#include <cctype>
#include <functional>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "acl_case.h"
#include "aclnnop/aclnn_add_lora.h"

namespace {

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new optest::AclEnvironment);

struct Desc {
  Desc(std::vector<int64_t> d, aclDataType t = ACL_FLOAT16) : dims(std::move(d)), dtype(t) {}
  std::vector<int64_t> dims;
  aclDataType dtype = ACL_FLOAT16;
  aclFormat format = ACL_FORMAT_ND;
  std::vector<int64_t> storage;  // empty: flat, just large enough
  std::vector<int64_t> strides;  // empty: contiguous (null stride pointer)
  bool null = false;
};

struct Call {
  Desc y{{4, 48}}, x{{4, 32}}, wb{{2, 2, 32, 16}}, idx{{4}, ACL_INT32}, wa{{2, 2, 16, 32}}, out{{4, 48}};
  bool has_a = true;
  int64_t layer = 1, y_offset = 16, y_slice = -1;
  double scale = 0.5;
  bool null_ws_size = false, null_exec = false;
  bool out_is_y = false;     // pass y's tensor as out
  int64_t out_in_y = -1;     // >= 0: a separate out tensor over y's memory, this many elements in
  bool out_on_x = false;     // out's data inside x's buffer (overlap)
};

// `word` appears in `msg` as a whole word (so "x" is not satisfied by "index" or "max").
bool has_word(const std::string& msg, const std::string& word) {
  auto is_id = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  for (size_t p = msg.find(word); p != std::string::npos; p = msg.find(word, p + 1)) {
    const bool left = p == 0 || !is_id(msg[p - 1]);
    const bool right = p + word.size() == msg.size() || !is_id(msg[p + word.size()]);
    if (left && right) return true;
  }
  return false;
}

int64_t dtype_bytes(aclDataType t) { return t == ACL_FLOAT || t == ACL_INT32 ? 4 : t == ACL_INT64 || t == ACL_DOUBLE ? 8 : 2; }

struct Made {
  void* dev = nullptr;
  aclTensor* t = nullptr;
};

Made make(const Desc& d, void* data_override = nullptr) {
  Made m;
  if (d.null) return m;
  int64_t numel = 1;
  for (int64_t v : d.dims) numel *= v;
  // NZ may need padding up to 16x16 blocks: allocate generously.
  int64_t elems = numel;
  if (d.dims.size() >= 2) {
    const size_t n = d.dims.size();
    int64_t t = 1;
    for (size_t k = 0; k + 2 < n; ++k) t *= d.dims[k];
    elems = std::max(elems, t * ((d.dims[n - 1] + 15) / 16) * ((d.dims[n - 2] + 15) / 16) * 256);
  }
  if (!d.storage.empty()) {  // a declared storage is always backed by real memory
    int64_t declared = 1;
    for (int64_t v : d.storage) declared *= v;
    elems = std::max(elems, declared);
  }
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(elems, 1) * dtype_bytes(d.dtype));
  if (!data_override) {
    if (aclrtMalloc(&m.dev, bytes, ACL_MEM_MALLOC_HUGE_FIRST) != 0) return m;
    aclrtMemset(m.dev, bytes, 0, bytes);
  }
  const std::vector<int64_t> storage = d.storage.empty() ? std::vector<int64_t>{elems} : d.storage;
  // (x_storage_too_small declares less than it allocates: only the declaration is checked.)
  m.t = aclCreateTensor(d.dims.data(), d.dims.size(), d.dtype, d.strides.empty() ? nullptr : d.strides.data(), 0,
                        d.format, storage.data(), storage.size(), data_override ? data_override : m.dev);
  return m;
}

// Calls phase one; returns the status and leaves the message in *msg.
aclnnStatus call(const Call& c, std::string* msg) {
  Made y = make(c.y), x = make(c.x), wb = make(c.wb), idx = make(c.idx);
  Made wa = c.has_a ? make(c.wa) : Made{};
  Made out = c.out_is_y ? Made{} : make(c.out, c.out_on_x ? x.dev : c.out_in_y >= 0 ? static_cast<char*>(y.dev) + 2 * c.out_in_y : nullptr);
  uint64_t ws = 0;
  aclOpExecutor* exec = nullptr;
  const aclnnStatus st = aclnnAddLoraGetWorkspaceSize(y.t, x.t, wb.t, idx.t, wa.t, c.layer, c.scale, c.y_offset,
                                                      c.y_slice, c.out_is_y ? y.t : out.t,
                                                      c.null_ws_size ? nullptr : &ws, c.null_exec ? nullptr : &exec);
  *msg = aclGetRecentErrMsg();
  if (st == 0 && exec) {  // release a successful single-use executor by running it
    void* w = nullptr;
    if (ws) aclrtMalloc(&w, ws, ACL_MEM_MALLOC_HUGE_FIRST);
    aclnnAddLora(w, ws, exec, nullptr);
    aclrtSynchronizeStream(nullptr);
    if (w) aclrtFree(w);
  }
  for (Made* m : {&y, &x, &wb, &idx, &wa, &out}) {
    if (m->t) aclDestroyTensor(m->t);
    if (m->dev) aclrtFree(m->dev);
  }
  return st;
}

struct Rule {
  const char* name;
  std::function<void(Call&)> breaks;
  aclnnStatus code;
  const char* word;  // the message must contain it as a whole word
};

void PrintTo(const Rule& r, std::ostream* os) { *os << r.name; }

constexpr aclnnStatus kShape = 561002, kParam = 161002, kNull = 161001;

std::vector<Rule> rules() {
  return {
      // ranks
      {"y_not_2d", [](Call& c) { c.y.dims = {4, 48, 1}; }, kShape, "y"},
      {"x_not_2d", [](Call& c) { c.x.dims = {4, 32, 1}; }, kShape, "x"},
      {"weightB_not_4d", [](Call& c) { c.wb.dims = {2, 32, 16}; }, kShape, "weightB"},
      {"weightA_not_4d", [](Call& c) { c.wa.dims = {2, 2, 16, 32, 1}; }, kShape, "weightA"},
      {"indices_not_1d", [](Call& c) { c.idx.dims = {4, 1}; }, kShape, "indices"},
      {"out_not_2d", [](Call& c) { c.out.dims = {4, 48, 1}; }, kShape, "out"},
      // shapes
      {"out_shape_differs", [](Call& c) { c.out.dims = {4, 64}; }, kShape, "out"},
      {"x_B_differs", [](Call& c) { c.x.dims = {5, 32}; }, kShape, "x"},
      {"indices_B_differs", [](Call& c) { c.idx.dims = {3}; }, kShape, "indices"},
      {"H2_greater_than_H3", [](Call& c) { c.wb.dims = {2, 2, 64, 16}; c.wa.dims = {2, 2, 16, 32}; c.y_offset = 0; }, kShape, "H2"},
      {"weightA_W_differs", [](Call& c) { c.wa.dims = {3, 2, 16, 32}; }, kShape, "weightA"},
      {"weightA_L_differs", [](Call& c) { c.wa.dims = {2, 3, 16, 32}; }, kShape, "weightA"},
      {"weightA_R_differs", [](Call& c) { c.wa.dims = {2, 2, 32, 32}; }, kShape, "weightA"},
      {"weightA_H1_differs", [](Call& c) { c.wa.dims = {2, 2, 16, 48}; }, kShape, "weightA"},
      {"no_weightA_H1_not_R", [](Call& c) { c.has_a = false; }, kShape, "H1"},
      // attributes
      {"layerIdx_negative", [](Call& c) { c.layer = -1; }, kShape, "layerIdx"},
      {"layerIdx_equals_L", [](Call& c) { c.layer = 2; }, kShape, "layerIdx"},
      {"yOffset_negative", [](Call& c) { c.y_offset = -1; }, kShape, "yOffset"},
      {"yOffset_equals_H3", [](Call& c) { c.y_offset = 48; }, kShape, "yOffset"},
      {"ySliceSize_below_minus_one", [](Call& c) { c.y_slice = -2; }, kShape, "ySliceSize"},
      {"ySliceSize_above_H2", [](Call& c) { c.y_slice = 33; }, kShape, "ySliceSize"},
      {"yOffset_plus_H2_above_H3", [](Call& c) { c.y_offset = 17; }, kShape, "yOffset"},
      // NPU limits
      {"R_not_multiple_of_16", [](Call& c) { c.wb.dims[3] = 24; c.wa.dims[2] = 24; }, kShape, "R"},
      {"R_above_128_with_weightA", [](Call& c) { c.wb.dims[3] = 144; c.wa.dims[2] = 144; }, kShape, "R"},
      {"W_above_32", [](Call& c) { c.wb.dims[0] = 33; c.wa.dims[0] = 33; }, kShape, "W"},
      {"L_above_32", [](Call& c) { c.wb.dims[1] = 33; c.wa.dims[1] = 33; }, kShape, "L"},
      {"H1_not_multiple_of_16", [](Call& c) { c.x.dims[1] = 40; c.wa.dims[3] = 40; }, kShape, "H1"},
      {"H2_not_multiple_of_16", [](Call& c) { c.wb.dims[2] = 24; }, kShape, "H2"},
      {"H3_not_multiple_of_16", [](Call& c) { c.y.dims[1] = 50; c.out.dims[1] = 50; }, kShape, "H3"},
      {"H1_above_131072", [](Call& c) { c.x.dims = {1, 131088}; c.wa.dims[3] = 131088; c.y.dims[0] = c.out.dims[0] = 1; c.idx.dims = {1}; }, kShape, "H1"},
      {"H2_above_131072", [](Call& c) {
         c.wb.dims[2] = 131088; c.y.dims = {1, 131088}; c.out.dims = {1, 131088}; c.x.dims[0] = 1; c.idx.dims = {1};
         c.y_offset = 0; }, kShape, "H2"},
      {"H3_above_131072", [](Call& c) { c.y.dims = {1, 131088}; c.out.dims = {1, 131088}; c.x.dims[0] = 1; c.idx.dims = {1}; }, kShape, "H3"},
      {"B_above_65536", [](Call& c) { c.y.dims[0] = c.x.dims[0] = c.out.dims[0] = c.idx.dims[0] = 65537; }, kShape, "B"},
      {"empty_batch", [](Call& c) { c.y.dims[0] = c.x.dims[0] = c.out.dims[0] = c.idx.dims[0] = 0; }, kShape, "empty"},
      {"empty_weightB", [](Call& c) { c.wb.dims[0] = 0; c.wa.dims[0] = 0; }, kShape, "weightB"},
      // dtypes and formats
      {"indices_int64", [](Call& c) { c.idx.dtype = ACL_INT64; }, kParam, "indices"},
      {"fp32_everywhere", [](Call& c) { c.y.dtype = c.x.dtype = c.wb.dtype = c.wa.dtype = c.out.dtype = ACL_FLOAT; }, kParam, "dtype"},
      {"bf16_everywhere", [](Call& c) { c.y.dtype = c.x.dtype = c.wb.dtype = c.wa.dtype = c.out.dtype = ACL_BF16; }, kParam, "dtype"},
      {"weightB_dtype_disagrees", [](Call& c) { c.wb.dtype = ACL_BF16; }, kParam, "weightB"},
      {"out_dtype_disagrees", [](Call& c) { c.out.dtype = ACL_FLOAT; }, kParam, "out"},
      {"x_format_NCHW", [](Call& c) { c.x.format = ACL_FORMAT_NCHW; }, kParam, "x"},
      {"weightB_format_NC1HWC0", [](Call& c) { c.wb.format = ACL_FORMAT_NC1HWC0; }, kParam, "weightB"},
      {"x_format_NZ", [](Call& c) { c.x.format = ACL_FORMAT_FRACTAL_NZ; }, kParam, "x"},
      {"y_format_NZ", [](Call& c) { c.y.format = ACL_FORMAT_FRACTAL_NZ; }, kParam, "y"},
      {"out_format_NZ", [](Call& c) { c.out.format = ACL_FORMAT_FRACTAL_NZ; }, kParam, "out"},
      {"indices_format_NZ", [](Call& c) { c.idx.format = ACL_FORMAT_FRACTAL_NZ; }, kParam, "indices"},
      {"weightB_NZ_storage_too_small", [](Call& c) { c.wb.format = ACL_FORMAT_FRACTAL_NZ; c.wb.storage = {2 * 2 * 32 * 16 - 1}; }, kParam, "weightB"},
      {"x_storage_too_small", [](Call& c) { c.x.storage = {4 * 32 - 1}; }, kParam, "x"},
      // null arguments
      {"null_y", [](Call& c) { c.y.null = true; }, kNull, "y"},
      {"null_x", [](Call& c) { c.x.null = true; }, kNull, "x"},
      {"null_weightB", [](Call& c) { c.wb.null = true; }, kNull, "weightB"},
      {"null_indices", [](Call& c) { c.idx.null = true; }, kNull, "indices"},
      {"null_out", [](Call& c) { c.out.null = true; }, kNull, "out"},
      {"null_workspaceSize", [](Call& c) { c.null_ws_size = true; }, kNull, "workspaceSize"},
      {"null_executor", [](Call& c) { c.null_exec = true; }, kNull, "executor"},
  };
}

class ValidationRule : public ::testing::TestWithParam<Rule> {};

}  // namespace

TEST(AclnnValidation, BaselineIsValid) {
  std::string msg;
  EXPECT_EQ(call(Call{}, &msg), 0) << msg;
  Call in_place;
  in_place.out_is_y = true;
  EXPECT_EQ(call(in_place, &msg), 0) << msg;
  Call nz;  // NZ weights with NZ-shaped storage dims: [W, L, ceil(N/16), ceil(M/16), 16, 16]
  nz.wb.format = nz.wa.format = ACL_FORMAT_FRACTAL_NZ;
  nz.wb.storage = {2, 2, 1, 2, 16, 16};
  nz.wa.storage = {2, 2, 2, 1, 16, 16};
  EXPECT_EQ(call(nz, &msg), 0) << msg;
  Call no_a;  // without weight A, H1 == R up to 256
  no_a.has_a = false;
  no_a.x.dims = {4, 256};
  no_a.wb.dims = {2, 2, 32, 256};
  EXPECT_EQ(call(no_a, &msg), 0) << msg;
  Call slice;  // ySliceSize -1, 0 and H2 are legal; yOffset + H2 == H3 is legal
  slice.y_slice = 0;
  EXPECT_EQ(call(slice, &msg), 0) << msg;
  slice.y_slice = 32;
  EXPECT_EQ(call(slice, &msg), 0) << msg;
  Call same_view;  // out a different aclTensor handle with y's exact view: in place
  same_view.out_in_y = 0;
  EXPECT_EQ(call(same_view, &msg), 0) << msg;
}

TEST_P(ValidationRule, RejectedWithCodeAndMessage) {
  const Rule& r = GetParam();
  Call c;
  r.breaks(c);
  std::string msg;
  EXPECT_EQ(call(c, &msg), r.code);
  EXPECT_NE(msg, "");
  EXPECT_TRUE(has_word(msg, r.word)) << "message: " << msg;
}
INSTANTIATE_TEST_SUITE_P(Spec2, ValidationRule, ::testing::ValuesIn(rules()),
                         [](const ::testing::TestParamInfo<Rule>& i) { return std::string(i.param.name); });

// out may be y (identical tensor); any other overlap with an input is rejected.
TEST(AclnnValidation, OutOverlappingXIsRejected) {
  Call c;
  c.x.dims = {4, 48};  // out [4, 48] inside x's buffer
  c.wa.dims = {2, 2, 16, 48};
  c.out_on_x = true;
  std::string msg;
  const aclnnStatus st = call(c, &msg);
  EXPECT_NE(st, 0);
  EXPECT_TRUE(has_word(msg, "out")) << msg;
}

// Views that would make out write an element twice, or inputs with zero strides: rejected
// (docs/contract.md §4 allows any positive strides), with the parameter named.
TEST(AclnnValidation, NonPositiveStridesAndSelfOverlappingOut) {
  std::string msg;
  Call c;
  c.x.strides = {0, 1};  // every row of x is row 0
  EXPECT_NE(call(c, &msg), 0);
  EXPECT_TRUE(has_word(msg, "x")) << msg;
  Call o;
  o.out.strides = {16, 1};  // rows 48 wide, 16 apart: out overlaps itself
  o.out.storage = {3 * 16 + 48};
  EXPECT_NE(call(o, &msg), 0);
  EXPECT_TRUE(has_word(msg, "out")) << msg;
  Call p;  // out over y shifted by one row: neither in place nor disjoint
  p.y.storage = {5 * 48};  // y's buffer holds 5 rows; y's view is its first 4
  p.out_in_y = 48;
  EXPECT_NE(call(p, &msg), 0);
  EXPECT_TRUE(has_word(msg, "out")) << msg;
}

// A handle that is not a live aclTensor (destroyed, or never made by aclCreateTensor) in any
// position: 161002 naming the parameter, before anything reads the handle's fields (the
// sanitizer build would flag a read of the destroyed one).
TEST(AclnnValidation, DeadOrForeignTensorIsRejected) {
  const char* const names[] = {"y", "x", "weightB", "indices", "weightA", "out"};
  for (int pos = 0; pos < 6; ++pos) {
    for (bool destroyed : {true, false}) {
      Call c;
      Made y = make(c.y), x = make(c.x), wb = make(c.wb), idx = make(c.idx), wa = make(c.wa), out = make(c.out);
      aclTensor* args[] = {y.t, x.t, wb.t, idx.t, wa.t, out.t};
      Made dead = make(c.x);
      alignas(64) unsigned char foreign[256] = {};
      if (destroyed) {
        aclDestroyTensor(dead.t);
        args[pos] = dead.t;
      } else {
        args[pos] = reinterpret_cast<aclTensor*>(foreign);
      }
      uint64_t ws = 0;
      aclOpExecutor* exec = nullptr;
      const aclnnStatus st = aclnnAddLoraGetWorkspaceSize(args[0], args[1], args[2], args[3], args[4], c.layer, c.scale,
                                                          c.y_offset, c.y_slice, args[5], &ws, &exec);
      const std::string msg = aclGetRecentErrMsg();
      EXPECT_EQ(st, kParam) << names[pos] << (destroyed ? " destroyed" : " foreign");
      EXPECT_TRUE(has_word(msg, names[pos]) && msg.find("not a live aclTensor") != std::string::npos)
          << names[pos] << ": " << msg;
      EXPECT_EQ(exec, nullptr);
      for (Made* m : {&y, &x, &wb, &idx, &wa, &out}) {
        aclDestroyTensor(m->t);
        aclrtFree(m->dev);
      }
      if (!destroyed) aclDestroyTensor(dead.t);
      aclrtFree(dead.dev);
    }
  }
}
