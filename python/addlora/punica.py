"""vLLM's punica LoRA ops (``vllm/lora/ops/torch_ops``) on addlora's CPU kernels.

Same names, positional order, keyword names and defaults as vLLM's torch reference ops, so a
CPU deployment can route its punica calls here (see docs/python.md, "vLLM punica ops")::

    bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling=1.0)
    bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs=True)
    bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor,
                      slice_offset, slice_size, add_inputs=True)
    sgmv_shrink(inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                lora_indices_tensor, batches, max_seq_length, token_nums, scaling)
    sgmv_expand(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                lora_indices_tensor, batches, max_seq_length, token_nums, add_inputs=False)
    sgmv_expand_slice(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                      lora_indices_tensor, batches, max_seq_length, token_nums,
                      slice_offset, slice_size, add_inputs=False)

(vLLM names bgmv_shrink's weights ``lora_b_weights`` too; they are the A / shrink weights.)

* Weights are ``[W, R, H]`` or ``[W, 1, R, H]`` (shrink: ``[W, R, H1]``; expand: ``[W, H2, R]``).
* Shrink writes ``output_tensor[:, :R] = scaling * inputs @ A[i].T`` (vLLM's fp32 buffer
  is the intended output; any of float16/bfloat16/float32 works, each tensor its own dtype).
* Expand adds (``add_inputs=True``) or writes ``inputs @ B[i].T`` into the output's columns:
  ``[0, min(H2, H3))`` for the plain expand (the output may be narrower than H2), or
  ``[slice_offset, slice_offset + slice_size)``.  The plain expand also takes a single input
  row for many output rows (that row's delta goes into every row), as vLLM's does.
* sgmv: sequence ``k`` (rows ``b_seq_start_loc[k] : + seq_len_tensor[k]``) uses adapter
  ``lora_indices_tensor[k]``; the starts must be the running sum of the lengths, the lengths at
  most ``max_seq_length``, their sum ``token_nums`` = the rows of ``inputs``.
* **An index outside ``[0, W)`` (e.g. -1) skips the row**: its output is not written, as
  punica's GPU kernels do.  vLLM's CPU torch code instead indexes ``weights[-1]`` (the last
  adapter) for -1; that is a quirk of its Python indexing, not the op's meaning.
* Every product and sum is fp32 or better and the result is rounded once to the output dtype
  (within 1 ulp of the output dtype + 2^-16 of the sum of |terms|).  vLLM's torch code first
  casts the inputs and weights to the output's dtype.

Inputs are torch CPU tensors or numpy arrays, used in place (any strides).  Errors
(ValueError / TypeError) name vLLM's argument and are raised before anything is written.
"""
import sys as _sys

from . import _core, _route


def _ops():
    return _sys.modules["torch"].ops.addlora

__all__ = ["bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink", "sgmv_expand",
           "sgmv_expand_slice"]


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling=1.0):
    """``output_tensor[b, :R] = scaling * inputs[b] @ lora_b_weights[i].T``, ``i = lora_indices_tensor[b]``."""
    if _route.compiling():
        return _ops().bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, float(scaling))
    _core.bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling)


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs=True):
    """``output_tensor[b, :n] (+)= (inputs[b] @ lora_b_weights[i].T)[:n]``, ``n = min(H2, H3)``."""
    if _route.compiling():
        return _ops().bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, bool(add_inputs))
    _core.bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs)


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size,
                      add_inputs=True):
    """``output_tensor[b, slice_offset : slice_offset + slice_size] (+)= inputs[b] @ lora_b_weights[i].T``."""
    if _route.compiling():
        return _ops().bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset,
                                        slice_size, bool(add_inputs))
    _core.bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset, slice_size,
                            add_inputs)


def sgmv_shrink(inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, scaling):
    """bgmv_shrink with one adapter per sequence (``lora_indices_tensor[k]`` for sequence k)."""
    if _route.compiling():
        return _ops().sgmv_shrink(inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                                  lora_indices_tensor, batches, max_seq_length, token_nums, float(scaling))
    _core.sgmv_shrink(inputs, lora_a_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                      batches, max_seq_length, token_nums, scaling)


def sgmv_expand(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                batches, max_seq_length, token_nums, add_inputs=False):
    """bgmv_expand with one adapter per sequence."""
    if _route.compiling():
        return _ops().sgmv_expand(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                                  lora_indices_tensor, batches, max_seq_length, token_nums, bool(add_inputs))
    _core.sgmv_expand(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                      batches, max_seq_length, token_nums, add_inputs)


def sgmv_expand_slice(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor, lora_indices_tensor,
                      batches, max_seq_length, token_nums, slice_offset, slice_size, add_inputs=False):
    """bgmv_expand_slice with one adapter per sequence."""
    if _route.compiling():
        return _ops().sgmv_expand_slice(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                                        lora_indices_tensor, batches, max_seq_length, token_nums, slice_offset,
                                        slice_size, bool(add_inputs))
    _core.sgmv_expand_slice(inputs, lora_b_weights, output_tensor, b_seq_start_loc, seq_len_tensor,
                            lora_indices_tensor, batches, max_seq_length, token_nums, slice_offset, slice_size,
                            add_inputs)


# The six ops as builtins where that is safe (_route.install_builtins); kinds 3-8 of make_entry.
_python_entries = _route.install_builtins(globals(), ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink",
                                                      "sgmv_expand", "sgmv_expand_slice"), 3)
