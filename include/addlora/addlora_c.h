/* AddLora C API: the same operation as addlora.h for C callers and FFI (ctypes, cffi).
 * Status values equal the C++ addlora::Status / aclnnStatus codes; 0 is success. */
#ifndef ADDLORA_ADDLORA_C_H_
#define ADDLORA_ADDLORA_C_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dtype: 0 fp32, 1 fp16, 3 int32, 9 int64, 27 bf16 (aclDataType values).
 * layout: 2 ND, 29 FRACTAL_NZ (aclFormat values); 0 also means ND, so a zeroed struct is ND.
 * dims/strides/offset in elements; strides all 0 = contiguous.
 * storage_elems: elements available from data; -1 or 0 = unknown (not checked). */
#define ADDLORA_DTYPE_F32 0
#define ADDLORA_DTYPE_F16 1
#define ADDLORA_DTYPE_I32 3
#define ADDLORA_DTYPE_I64 9
#define ADDLORA_DTYPE_BF16 27
#define ADDLORA_LAYOUT_ND 2
#define ADDLORA_LAYOUT_FRACTAL_NZ 29
typedef struct addlora_tensor {
  void *data;
  int32_t dtype;
  int32_t ndim;
  int64_t dims[8];
  int64_t strides[8];
  int64_t offset;
  int32_t layout;
  int64_t storage_elems;
} addlora_tensor;

typedef struct addlora_args {
  addlora_tensor y, x, weight_b, indices, weight_a; /* weight_a.data == NULL && ndim == 0: absent */
  addlora_tensor out;                               /* may describe the same memory as y */
  int64_t layer_idx;
  double scale;
  int64_t y_offset;
  int64_t y_slice_size; /* -1 = H2 */
} addlora_args;

/* strict != 0: the NPU's rules (aclnnAddLora); 0: the general rules (bf16/fp32, any sizes). */
int32_t addlora_run(const addlora_args *args, int32_t strict);

/* The two halves of a LoRA (addlora::shrink / addlora::expand; general rules, fp16/bf16/fp32,
 * int32/int64 indices).  A row b whose index i = indices[b] is outside [0, W) is not written
 * at all.  Each call validates everything first: on failure it returns the status, sets
 * addlora_last_error() to a sentence naming the field (x, weight_a, z, indices, layer_idx,
 * weight_b, out, y_offset, y_slice_size, ...) and writes nothing.  Every element written is
 * within 1 ulp of its dtype + 2^-16 * M of the exact result (docs/contract.md §1).
 *
 * addlora_shrink: z[b, :R] = scale * (x[b] . weight_a[i, layer_idx]^T)   (accumulate == 0)
 *                 z[b, :R] += ...                                         (accumulate != 0)
 *   x [B, H1], weight_a [W, L, R, H1] (ND or FRACTAL_NZ), indices [B], z [B, Rz] with Rz >= R
 *   (columns R.. are not touched; an fp32 z keeps the most). */
typedef struct addlora_shrink_args {
  addlora_tensor x, weight_a, indices, z;
  int64_t layer_idx;
  double scale;
  int32_t accumulate;
} addlora_shrink_args;
int32_t addlora_shrink(const addlora_shrink_args *args);

/* addlora_expand: out[b, y_offset : y_offset + S] += scale * (z[b] . weight_b[i, layer_idx]^T)[:S]
 *                 (accumulate != 0), or = instead of += (accumulate == 0: NOTE a zeroed struct
 *                 overwrites, unlike the C++ ExpandArguments whose default is to accumulate).
 *   z [B, R], weight_b [W, L, H2, R], indices [B], out [B, H3]; S = y_slice_size (-1: H2),
 *   y_offset + S <= H3; with ND weight_b only its first S rows are read. */
typedef struct addlora_expand_args {
  addlora_tensor z, weight_b, indices, out;
  int64_t layer_idx;
  double scale;
  int64_t y_offset;
  int64_t y_slice_size; /* -1 = H2 */
  int32_t accumulate;
} addlora_expand_args;
int32_t addlora_expand(const addlora_expand_args *args);
/* The calling thread's last error message ("" when the last call succeeded). */
const char *addlora_last_error(void);
void addlora_set_num_threads(int32_t n);
int32_t addlora_num_threads(void);
const char *addlora_simd_target(void);

#ifdef __cplusplus
}
#endif

#endif /* ADDLORA_ADDLORA_C_H_ */
