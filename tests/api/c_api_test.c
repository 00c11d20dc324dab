/* Compiled as C: the C header is usable from C and the call works end to end. */
#include "addlora/addlora_c.h"

#include <string.h>

/* The smoke problem's shapes on a zeroed struct: one row, W = L = 1, R = 1, H1 = H2 = H3 = 2,
 * fp32 tensors (dtype 0), int32 indices, scale 0.5; layout and storage_elems left at 0. */
static void smoke_args(addlora_args* args, float* x, float* a, float* b, float* y, float* out, int32_t* idx) {
  memset(args, 0, sizeof *args);
  args->y.data = y, args->y.ndim = 2, args->y.dims[0] = 1, args->y.dims[1] = 2;
  args->out = args->y, args->out.data = out;
  args->x.data = x, args->x.ndim = 2, args->x.dims[0] = 1, args->x.dims[1] = 2;
  args->weight_a.data = a, args->weight_a.ndim = 4;
  args->weight_a.dims[0] = 1, args->weight_a.dims[1] = 1, args->weight_a.dims[2] = 1, args->weight_a.dims[3] = 2;
  args->weight_b.data = b, args->weight_b.ndim = 4;
  args->weight_b.dims[0] = 1, args->weight_b.dims[1] = 1, args->weight_b.dims[2] = 2, args->weight_b.dims[3] = 1;
  args->indices.data = idx, args->indices.ndim = 1, args->indices.dims[0] = 1, args->indices.dtype = ADDLORA_DTYPE_I32;
  args->scale = 0.5;
  args->y_slice_size = -1;
}

/* out[0, 0..1] = y + scale * (x . A^T) . B^T for one row, W = L = 1, R = 1, H1 = H2 = H3 = 2,
 * fp32.  x = [1, 2], A = [[3, 4]] -> z = 11; B = [[1], [2]] -> d = [11, 22]; scale 0.5;
 * y = [100, 200] -> out = [105.5, 211].  Returns 0 when the values match exactly. */
int addlora_c_api_smoke(void) {
  float x[2] = {1, 2}, a[2] = {3, 4}, b[2] = {1, 2}, y[2] = {100, 200}, out[2] = {0, 0};
  int32_t idx[1] = {0};
  addlora_args args;
  smoke_args(&args, x, a, b, y, out, idx);
  addlora_tensor* ts[] = {&args.y, &args.x, &args.weight_b, &args.indices, &args.weight_a, &args.out};
  for (int i = 0; i < 6; ++i) ts[i]->layout = ADDLORA_LAYOUT_ND, ts[i]->storage_elems = -1;  /* explicit, as before */
  if (addlora_run(&args, 0) != 0) return 1;
  if (out[0] != 105.5f || out[1] != 211.0f) return 2;
  if (y[0] != 100.0f || y[1] != 200.0f) return 3;
  /* The same call under the NPU's rules fails: fp32 is not accepted there. */
  if (addlora_run(&args, 1) != 161002) return 4;
  if (strstr(addlora_last_error(), "dtype") == NULL) return 5;
  if (addlora_run(NULL, 0) != 161001) return 6;
  return 0;
}

/* The halves from C: shrink z = 0.5 * x . A^T (x = [1, 2], A = [[3, 4]] -> z = [5.5]), then expand
 * out += z . B^T (B = [[1], [2]] -> out = [100 + 5.5, 200 + 11]).  0 when the values match. */
int addlora_c_api_halves_smoke(void) {
  float x[2] = {1, 2}, a[2] = {3, 4}, b[2] = {1, 2}, z[1] = {-1}, out[2] = {100, 200};
  int64_t idx[1] = {0};
  addlora_shrink_args s;
  addlora_expand_args e;
  memset(&s, 0, sizeof s);
  memset(&e, 0, sizeof e);
  addlora_tensor* ts[] = {&s.x, &s.weight_a, &s.indices, &s.z, &e.z, &e.weight_b, &e.indices, &e.out};
  for (int i = 0; i < 8; ++i) ts[i]->layout = 2, ts[i]->storage_elems = -1, ts[i]->dtype = 0;
  s.x.data = x, s.x.ndim = 2, s.x.dims[0] = 1, s.x.dims[1] = 2;
  s.weight_a.data = a, s.weight_a.ndim = 4;
  s.weight_a.dims[0] = 1, s.weight_a.dims[1] = 1, s.weight_a.dims[2] = 1, s.weight_a.dims[3] = 2;
  s.indices.data = idx, s.indices.ndim = 1, s.indices.dims[0] = 1, s.indices.dtype = 9;
  s.z.data = z, s.z.ndim = 2, s.z.dims[0] = 1, s.z.dims[1] = 1;
  s.scale = 0.5;
  if (addlora_shrink(&s) != 0) return 1;
  if (z[0] != 5.5f) return 2;
  e.z = s.z, e.indices = s.indices;
  e.weight_b.data = b, e.weight_b.ndim = 4;
  e.weight_b.dims[0] = 1, e.weight_b.dims[1] = 1, e.weight_b.dims[2] = 2, e.weight_b.dims[3] = 1;
  e.out.data = out, e.out.ndim = 2, e.out.dims[0] = 1, e.out.dims[1] = 2;
  e.scale = 1.0, e.y_slice_size = -1, e.accumulate = 1;
  if (addlora_expand(&e) != 0) return 3;
  if (out[0] != 105.5f || out[1] != 211.0f) return 4;
  idx[0] = -1; /* no adapter: nothing written */
  if (addlora_expand(&e) != 0 || out[0] != 105.5f) return 5;
  if (addlora_shrink(NULL) != 161001 || strstr(addlora_last_error(), "args") == NULL) return 6;
  return 0;
}

/* A zeroed struct needs only data, shapes and the dtypes that are not fp32: layout 0 is ND and
 * storage_elems 0 is unknown.  The smoke problem above (fp32, int32 indices): out = [105.5, 211].  A layout that is neither ND nor FRACTAL_NZ is refused with a message
 * naming the format, and out is left alone.  0 when all of that holds. */
int addlora_c_api_zeroed_defaults(void) {
  float x[2] = {1, 2}, a[2] = {3, 4}, b[2] = {1, 2}, y[2] = {100, 200}, out[2] = {-7, -7};
  int32_t idx[1] = {0};
  addlora_args args;
  smoke_args(&args, x, a, b, y, out, idx);
  args.weight_b.layout = 1; /* NCHW: refused */
  if (addlora_run(&args, 0) != 161002) return 1;
  if (strstr(addlora_last_error(), "weightB format must be ND or FRACTAL_NZ (got format 1)") == NULL) return 2;
  if (out[0] != -7.0f || out[1] != -7.0f) return 3;
  args.weight_b.layout = 0;
  if (addlora_run(&args, 0) != 0) return 4;
  if (out[0] != 105.5f || out[1] != 211.0f) return 5;
  args.weight_b.layout = ADDLORA_LAYOUT_ND;
  args.weight_b.storage_elems = 1; /* a stated storage too small for [1, 1, 2, 1] */
  if (addlora_run(&args, 0) == 0) return 6;
  return 0;
}
