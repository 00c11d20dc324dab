// AddLora public C++ API: the multi-LoRA "batch gather matmul" on the CPU.
//
//   for each row b with i = indices[b] in [0, W):
//     z = weight_a ? x[b] . weight_a[i, layer]^T : x[b]            (length R)
//     out[b, y_offset + n] = y[b, y_offset + n] + scale * (z . weight_b[i, layer]^T)[n],  n < S
//   every other element of out equals y.
//
// Two rule sets: Rules::cann enforces exactly what aclnnAddLora accepts on the NPU (docs/contract.md §2);
// Rules::general lifts the hardware-driven limits (x16 alignment, R <= 128, W/L <= 32) and
// accepts fp16, bf16 and fp32 tensors.  Validation happens once, in make_plan(); run() never
// fails on a valid plan.  No SIMD and no third-party type leaks through this header.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

namespace addlora {

// Values equal CANN's aclDataType / aclFormat so the aclnn layer can cast.
enum class DType : int32_t { f32 = 0, f16 = 1, i32 = 3, i64 = 9, bf16 = 27 };
enum class Layout : int32_t { nd = 2, fractal_nz = 29 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

// A strided view into a buffer.  dims/strides/offset are in elements of dtype.
// For Layout::fractal_nz (weights only) dims are the logical ND shape and strides are ignored:
// the storage is the packed NZ layout of docs/contract.md §5 starting at data + offset.
struct TensorView {
  void* data = nullptr;          // base of the storage; nullptr = absent (optional inputs only)
  DType dtype = DType::f16;
  int32_t ndim = 0;
  int64_t dims[8] = {};          // ndim <= 8; validation checks the rank each input needs
  int64_t strides[8] = {};
  int64_t offset = 0;            // elements from data to element [0,...,0]
  Layout layout = Layout::nd;
  int64_t storage_elems = -1;    // elements available from data; -1 = unknown (not checked)

  // Contiguous (row-major) view over `data`.
  static TensorView contiguous(void* data, DType dtype, std::initializer_list<int64_t> dims);
};

// Status codes equal the aclnnStatus values the aclnn entry point returns.
enum class Status : int32_t {
  ok = 0,
  null_pointer = 161001,      // a required tensor (or its data) is missing
  invalid_param = 161002,     // dtype / format / layout not supported, dtypes disagree
  internal = 561000,          // allocation failure and other internal errors
  invalid_shape = 561002,     // any shape or attribute rule (CANN: ACLNN_ERR_INNER_TILING_ERROR)
};

enum class Rules { cann, general };

// Which group of rules a failure broke, independent of the status code (invalid_param covers
// both a wrong dtype and a bad stride).  Lets a caller choose an exception type without
// reading the message (e.g. Python: type -> TypeError, internal -> RuntimeError, the rest ->
// ValueError).
enum class ErrorKind : int32_t {
  none = 0,      // success
  null = 1,      // a required tensor, its data or an output pointer is missing
  type = 2,      // a dtype or format outside what the rules accept, or dtypes that disagree
  shape = 3,     // a rank, shape or attribute rule (layerIdx, yOffset, ySliceSize, limits, ...)
  memory = 4,    // strides, storage offset, storage bounds, out overlapping itself or an input
  internal = 5,  // allocation failure and other internal errors
};

// A failure as data: what make_plan() and add_lora() report through their Error& overloads.
// On success status == Status::ok, kind == ErrorKind::none and message is empty.
struct Error {
  Status status = Status::ok;
  ErrorKind kind = ErrorKind::none;
  std::string message;   // "AddLora: <rule> (<values>)", the same text as the std::string* overloads
};

// One precision contract for every entry point and dtype (docs/contract.md §1): every element
// within 1 ulp(result) + 2^-16·M of the exact result.  exact and fast are aliases of it, kept
// so existing callers compile; both are accepted under either rule set.
enum class Precision { exact, fast };

struct Arguments {
  TensorView y;          // [B, H3]
  TensorView x;          // [B, H1]
  TensorView weight_b;   // [W, L, H2, R]
  TensorView indices;    // [B] int32 (Rules::general also accepts int64)
  TensorView weight_a;   // [W, L, R, H1]; data == nullptr and ndim == 0 -> absent
  TensorView out;        // [B, H3]; may be the same view as y (in place)
  int64_t layer_idx = 0;
  double scale = 1.0;
  int64_t y_offset = 0;
  int64_t y_slice_size = -1;   // -1 -> H2
  Precision precision = Precision::exact;
  // Optional per-adapter settings (Rules::general only; data == nullptr -> absent):
  TensorView ranks;    // [W] int32: adapter i uses only the first ranks[i] of its R ranks
                       // (values are read at run time and clamped to [0, R]; the rest of A
                       // and B is not read, so adapters of different ranks share one padded
                       // tensor without paying for the padding)
  TensorView scales;   // [W] fp32: adapter i's delta is multiplied by scale * scales[i]
};

// Input positions for Plan::set_input_data (same order as aclnnAddLora's inputs).
enum InputIndex { kInputY = 0, kInputX = 1, kInputWeightB = 2, kInputIndices = 3, kInputWeightA = 4 };

class Plan {
 public:
  Plan();
  ~Plan();
  Plan(Plan&&) noexcept;
  Plan& operator=(Plan&&) noexcept;
  bool valid() const;
  // An independent copy (same arguments, same buffers): e.g. to capture a plan's pointers
  // before re-pointing the original.
  Plan clone() const;
  // Scratch bytes run() needs (may be 0).  Depends only on the shapes.
  uint64_t workspace_bytes() const;
  // Executes on the calling thread (using the library's worker pool).  `workspace` must hold
  // workspace_bytes() bytes, 64-byte alignment recommended.  Never fails for a valid plan.
  void run(void* workspace) const;
  // Re-point a buffer (the view's offset/strides are kept).  Returns false for a bad index.
  bool set_input_data(int index, void* data);
  bool set_output_data(int index, void* data);

  struct Impl;
 private:
  std::unique_ptr<Impl> impl_;
  friend Status make_plan(const Arguments*, size_t, Rules, Plan*, Error&);
  friend struct PlanAccess;  // the library's own calls (shrink) reach Impl through it
};

// Validates `args` under `rules` and builds a plan.  On failure returns the status and, if
// `message` is non-null, a sentence naming the parameter, the value and the rule.
Status make_plan(const Arguments& args, Rules rules, Plan* plan, std::string* message);

// One-shot convenience: validate, allocate the workspace, run.
Status add_lora(const Arguments& args, Rules rules = Rules::general, std::string* message = nullptr);

// Multi-slice: several LoRA pairs added into several column slices of the same y in one call
// (e.g. q, k, v of a fused QKV projection).  Every element of `slices` describes one pair and
// must share y, x, indices, out, layer_idx and precision (same views); weights, scale,
// y_offset and y_slice_size differ.  The written column ranges must not overlap.  The result
// equals consecutive single calls (the first out of place, the rest in place on out).
Status make_plan(const Arguments* slices, size_t num_slices, Rules rules, Plan* plan, std::string* message);
Status add_lora(const Arguments* slices, size_t num_slices, Rules rules = Rules::general,
                std::string* message = nullptr);

// The same four calls reporting a failure as an Error (status, kind and message); `error` is
// reset on entry.
Status make_plan(const Arguments& args, Rules rules, Plan* plan, Error& error);
Status make_plan(const Arguments* slices, size_t num_slices, Rules rules, Plan* plan, Error& error);
Status add_lora(const Arguments& args, Rules rules, Error& error);
Status add_lora(const Arguments* slices, size_t num_slices, Rules rules, Error& error);

// FRACTAL_NZ (docs/contract.md §5) conversion of a stack of 16-bit matrices [..., M, N].
// nz_elements: elements of the packed NZ storage for logical `dims` (0 on overflow).
int64_t nz_elements(const int64_t* dims, int ndim);
// Packs the ND view `src` (fp16/bf16, any strides) into `dst` (dst_elems elements, zero padded).
Status nd_to_nz(const TensorView& src, void* dst, int64_t dst_elems, std::string* message = nullptr);
// Unpacks NZ storage `src` (src_elems elements) into the ND view `dst` (its dims give the shape).
Status nz_to_nd(const void* src, int64_t src_elems, const TensorView& dst, std::string* message = nullptr);
// The same two conversions reporting a failure as an Error (status, kind and message).
Status nd_to_nz(const TensorView& src, void* dst, int64_t dst_elems, Error& error);
Status nz_to_nd(const void* src, int64_t src_elems, const TensorView& dst, Error& error);

// Worker threads used by run(): default = hardware threads, or ADDLORA_NUM_THREADS.
void set_num_threads(int n);
int num_threads();
// SIMD target the kernels dispatch to on this CPU (e.g. "AVX3", "AVX2", "SCALAR").
// ADDLORA_SIMD_TARGET=<name> forces a lower compiled target.
const char* simd_target();
const char* version();

// ---- Shrink only and expand only (appended: the two halves of a LoRA, e.g. vLLM's punica ops) ----
//
// Both run the same planning and kernels as add_lora (shrink is add_lora with weight_a in the
// place of weight_b and no weight_a; expand is add_lora without weight_a), Rules::general, and
// skip every row whose index is outside [0, W): such rows of z / out are not written at all.
// Errors name these structs' fields.  Nothing is written unless the call succeeds.

// z[b, :R] (+)= scale * (x[b] . weight_a[i, layer_idx]^T), i = indices[b].
struct ShrinkArguments {
  TensorView x;          // [B, H1]
  TensorView weight_a;   // [W, L, R, H1]
  TensorView indices;    // [B] int32 or int64
  TensorView z;          // [B, Rz], Rz >= R; columns [0, R) are written (fp32 keeps the most)
  int64_t layer_idx = 0;
  double scale = 1.0;
  bool accumulate = false;   // false: z[b, :R] = ...; true: z[b, :R] += ...
  Precision precision = Precision::exact;
};
Status shrink(const ShrinkArguments& args, std::string* message = nullptr);
Status shrink(const ShrinkArguments& args, Error& error);  // the failure as data

// out[b, y_offset : y_offset + S] (+)= scale * (z[b] . weight_b[i, layer_idx]^T)[:S], i = indices[b].
struct ExpandArguments {
  TensorView z;          // [B, R]
  TensorView weight_b;   // [W, L, H2, R]
  TensorView indices;    // [B] int32 or int64
  TensorView out;        // [B, H3]; y_offset + S <= H3 (ND weight_b: S may be < H2, only its first S rows are
                         // read; FRACTAL_NZ weight_b: y_offset + H2 <= H3 as in add_lora)
  int64_t layer_idx = 0;
  double scale = 1.0;
  int64_t y_offset = 0;
  int64_t y_slice_size = -1;  // S; -1 means H2
  bool accumulate = true;     // true: out[...] += ...; false: out[...] = ...
  Precision precision = Precision::exact;
};
Status expand(const ExpandArguments& args, std::string* message = nullptr);
Status expand(const ExpandArguments& args, Error& error);  // the failure as data

}  // namespace addlora
