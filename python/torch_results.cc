// Results of the allocating calls under torch (see native.h for the module's layout).
#include "native.h"

namespace addlora_py {

// ---- results of the allocating calls --------------------------------------------------------------
// torch.empty_like goes through torch's dispatcher (~0.9 µs with its keyword).  A result for a
// torch y is instead one 64-byte-aligned block of our own (a DLPack header, then the elements)
// handed to torch._C._from_dlpack (~0.45 µs): the tensor owns the block and frees it through
// the DLPack deleter (no GIL needed).  Same dtype, shape, contiguous strides and CPU device as
// torch.empty_like(y, memory_format=torch.contiguous_format); its storage is not resizable
// (as for torch.from_numpy).  If anything fails here the caller uses torch.empty_like.
struct DLManaged {  // DLPack's DLManagedTensor (ABI-stable since DLPack 0.2)
  nb::dlpack::dltensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManaged*);
};
struct ResultBlock {
  DLManaged managed;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
};
constexpr size_t kResultHeader = (sizeof(ResultBlock) + 63) / 64 * 64;

void free_result(DLManaged* m) { std::free(m->manager_ctx); }

// A capsule torch did not consume (still named "dltensor") still owns its block.
void result_capsule_destructor(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, "dltensor")) return;  // consumed ("used_dltensor"): torch owns it
  if (auto* m = static_cast<DLManaged*>(PyCapsule_GetPointer(capsule, "dltensor"))) m->deleter(m);
}

bool dlpack_dtype_of(DType t, nb::dlpack::dtype* d) {
  d->lanes = 1;
  switch (t) {
    case DType::f16: d->code = static_cast<uint8_t>(nb::dlpack::dtype_code::Float); d->bits = 16; return true;
    case DType::f32: d->code = static_cast<uint8_t>(nb::dlpack::dtype_code::Float); d->bits = 32; return true;
    case DType::bf16: d->code = static_cast<uint8_t>(nb::dlpack::dtype_code::Bfloat); d->bits = 16; return true;
    default: return false;
  }
}

// A new contiguous torch CPU tensor shaped like `like`, or null (no Python error set) when this
// route is unavailable.  *data receives its first element.
PyObject* new_torch_result(const TensorView& like, void** data) {
  nb::dlpack::dtype dt;
  if (!g_torch.from_dlpack || !dlpack_dtype_of(like.dtype, &dt) || like.ndim < 0 ||
      like.ndim > static_cast<int32_t>(kMaxDims))
    return nullptr;
  size_t elements = 1;
  for (int32_t d = 0; d < like.ndim; ++d) elements *= static_cast<size_t>(like.dims[d] > 0 ? like.dims[d] : 0);
  const size_t bytes = (elements * addlora::dtype_size(like.dtype) + 63) / 64 * 64;
  void* block = std::aligned_alloc(64, kResultHeader + (bytes > 0 ? bytes : 64));
  if (!block) return nullptr;
  ResultBlock* r = new (block) ResultBlock;
  nb::dlpack::dltensor& t = r->managed.dl_tensor;
  t.data = static_cast<char*>(block) + kResultHeader;
  t.device.device_type = nb::device::cpu::value;
  t.device.device_id = 0;
  t.ndim = like.ndim;
  t.dtype = dt;
  int64_t extent = 1;
  for (int32_t d = like.ndim - 1; d >= 0; --d) {
    r->shape[d] = like.dims[d];
    r->strides[d] = extent;
    extent *= like.dims[d] > 0 ? like.dims[d] : 1;
  }
  t.shape = r->shape;
  t.strides = r->strides;
  t.byte_offset = 0;
  r->managed.manager_ctx = block;
  r->managed.deleter = free_result;
  PyObject* capsule = PyCapsule_New(&r->managed, "dltensor", result_capsule_destructor);
  if (!capsule) {
    std::free(block);
    PyErr_Clear();
    return nullptr;
  }
  PyObject* tensor = PyObject_CallOneArg(g_torch.from_dlpack, capsule);
  Py_DECREF(capsule);  // unconsumed: frees the block; consumed: the tensor owns it
  if (!tensor) {
    PyErr_Clear();
    return nullptr;
  }
  *data = t.data;  // the block lives as long as the tensor
  return tensor;
}

}  // namespace addlora_py
