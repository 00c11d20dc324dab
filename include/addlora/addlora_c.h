/* AddLora C API: the same operation as addlora.h for C callers and FFI (ctypes, cffi).
 * Status values equal the C++ addlora::Status / aclnnStatus codes; 0 is success. */
#ifndef ADDLORA_ADDLORA_C_H_
#define ADDLORA_ADDLORA_C_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dtype: 0 fp32, 1 fp16, 3 int32, 9 int64, 27 bf16 (aclDataType values).
 * layout: 2 ND, 29 FRACTAL_NZ.  dims/strides/offset in elements; strides all 0 = contiguous.
 * storage_elems: elements available from data, or -1 when unknown. */
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
/* The calling thread's last error message ("" when the last call succeeded). */
const char *addlora_last_error(void);
void addlora_set_num_threads(int32_t n);
int32_t addlora_num_threads(void);
const char *addlora_simd_target(void);

#ifdef __cplusplus
}
#endif

#endif /* ADDLORA_ADDLORA_C_H_ */
