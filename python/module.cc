// addlora._core: the thin nanobind layer between Python arrays and addlora::add_lora.
//
// Every tensor arrives as a DLPack-described nb::ndarray (numpy, torch and any other DLPack
// or buffer-protocol producer) and is handed to the library as a TensorView over the SAME
// memory: shape, strides (in elements, possibly non-contiguous) and dtype are copied into the
// view, never the data (one exception: int64 per-adapter ranks are converted to int32).  All
// validation is the library's (make_plan); the module only rejects what a TensorView cannot
// express (non-CPU memory, dtypes with no DType, rank > 8, an NZ array that is not one packed
// block of memory, an int64 rank beyond int32) and maps the library's Status to a Python
// exception carrying its message.  The pythonic API (allocation of results, numpy/torch
// symmetry, docstrings) lives in addlora/__init__.py.
//
// This file holds the bindings only; native.h lists the files behind them.
#include "native.h"

#include <utility>

using namespace addlora_py;

namespace {
// _core.<name>: punica op `Op` over its parameters K (vLLM's names and order, None allowed).
template <int Op, size_t... K>
void def_punica(nb::module_& m, const char* name, std::index_sequence<K...>) {
  m.def(name, [](decltype(K, nb::handle())... h) {
    const nb::handle a[] = {h...};
    punica_op(Op, a);
  }, nb::arg(kPunicaSignatures[Op].names[K]).none()...);
}
}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "Native layer of the addlora package (use the functions in addlora, not these).";
  m.def("run", &run, nb::arg("out").none(), nb::arg("y").none(), nb::arg("x").none(),
        nb::arg("weight_b").none(), nb::arg("indices").none(), nb::arg("weight_a").none(),
        nb::arg("layer_idx"), nb::arg("scale"), nb::arg("y_offset"), nb::arg("y_slice_size"),
        nb::arg("strict"), nb::arg("fast") = false, nb::arg("weight_b_nz_shape").none() = nb::none(),
        nb::arg("weight_a_nz_shape").none() = nb::none(), nb::arg("ranks").none() = nb::none(),
        nb::arg("scales").none() = nb::none(),
        "out = y + scale * gathered LoRA delta (out may be y). No allocation, no copies; "
        "raises ValueError / TypeError / RuntimeError with the library's message. "
        "A weight with an NZ shape is packed FRACTAL_NZ storage of that logical shape. "
        "ranks [W] int32 (int64 converted) / scales [W] float32: per-adapter rank limit and scale factor.");
  m.def("run_multi", &run_multi, nb::arg("out").none(), nb::arg("y").none(), nb::arg("x").none(),
        nb::arg("indices").none(),
        nb::arg("slices"), nb::arg("layer_idx"), nb::arg("strict"), nb::arg("fast"),
        "Several (weight_b, weight_a, scale, y_offset, y_slice_size, b_nz_shape, a_nz_shape, ranks, scales) slices "
        "added into disjoint column ranges of out in one library call.");

  m.def("fast_run", &fast_run, nb::arg("out").none(), nb::arg("y").none(), nb::arg("x").none(), nb::arg("weight_b").none(), nb::arg("indices").none(), nb::arg("weight_a").none(), nb::arg("layer_idx").none(), nb::arg("scale").none(), nb::arg("y_offset").none(), nb::arg("y_slice_size").none(), "Eager path of npu_batch_gather_matmul(_) / add_lora (NotImplemented: use the general path).");
  // vLLM's punica ops, each with vLLM's parameters in its order (kPunicaSignatures), no defaults.
  def_punica<kBgmvShrink>(m, "bgmv_shrink", std::make_index_sequence<5>());
  def_punica<kBgmvExpand>(m, "bgmv_expand", std::make_index_sequence<5>());
  def_punica<kBgmvExpandSlice>(m, "bgmv_expand_slice", std::make_index_sequence<7>());
  def_punica<kSgmvShrink>(m, "sgmv_shrink", std::make_index_sequence<10>());
  def_punica<kSgmvExpand>(m, "sgmv_expand", std::make_index_sequence<10>());
  def_punica<kSgmvExpandSlice>(m, "sgmv_expand_slice", std::make_index_sequence<12>());
  m.def("shrink", &py_shrink, nb::arg("x").none(), nb::arg("weight_a").none(), nb::arg("z").none(),
        nb::arg("indices").none(), nb::arg("layer_idx"), nb::arg("scale"), nb::arg("accumulate"), nb::arg("fast"));
  m.def("expand", &py_expand, nb::arg("z").none(), nb::arg("weight_b").none(), nb::arg("out").none(),
        nb::arg("indices").none(), nb::arg("layer_idx"), nb::arg("scale"), nb::arg("y_offset"),
        nb::arg("y_slice_size"), nb::arg("accumulate"), nb::arg("fast"));
  m.def("nd_to_nz", &nd_to_nz, nb::arg("src"), nb::arg("dst"), "Pack ND src [..., M, N] into NZ storage dst.");
  m.def("nz_to_nd", &nz_to_nd, nb::arg("src"), nb::arg("dst"), "Unpack NZ storage src into ND dst.");
  m.def("nz_elements", &nz_elements, nb::arg("dims"), "Elements of the NZ storage of logical shape dims.");
  m.def("set_guard_factory", &set_guard_factory, nb::arg("factory").none(),
        "torch >= 2: callable(*tensors) -> check(*tensors) -> bool (a verified TensorGuards), or None: no cache.");
  m.def("make_entry", &make_entry, nb::arg("kind"), nb::arg("fallback"), nb::arg("name"), nb::arg("doc"),
        "Builtin eager entry (0: npu_batch_gather_matmul_, 1: npu_batch_gather_matmul, 2: add_lora) forwarding "
        "anything it does not take to `fallback`.");
  m.def("guard_stats", &guard_stats,
        "(cache on, entries, hits, misses, capacity) of the eager path's description cache (tests).");
  m.def("metadata_offsets", [] { return std::make_tuple(g_torch.impl_offset, g_torch.storage_offset); },
        "(TensorImpl pointer in a tensor object, StorageImpl pointer in a TensorImpl): the byte offsets the "
        "metadata prefetch uses, 0 where not found or before the first torch tensor was described (tests).");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw nb::value_error(("AddLora: set_num_threads needs n >= 1 (got " + std::to_string(n) + ")").c_str());
    addlora::set_num_threads(n);
  }, nb::arg("n"));
  m.def("num_threads", &addlora::num_threads);
  m.def("simd_target", &addlora::simd_target);
  m.def("version", &addlora::version);
}
