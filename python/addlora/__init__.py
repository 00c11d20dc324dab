"""AddLora: multi-LoRA batch gather matmul (CANN ``aclnnAddLora``) on the CPU.

For every row ``b`` with ``i = indices[b]`` in ``[0, W)``::

    z = x[b] @ weight_a[i, layer_idx].T      (or z = x[b] when weight_a is None)
    out[b, y_offset:y_offset+S] = y[b, y_offset:y_offset+S] + scale * (z @ weight_b[i, layer_idx].T)[:S]

with ``S = y_slice_size`` (``-1``/``None`` -> H2).  Every other element of ``out`` equals ``y``;
rows whose index is negative or ``>= W`` are copied unchanged.

Shapes: ``y, out [B, H3]``, ``x [B, H1]``, ``weight_b [W, L, H2, R]``, ``weight_a [W, L, R, H1]``,
``indices [B]``.

Inputs are numpy arrays, torch CPU tensors or any other DLPack / buffer-protocol CPU array.
They are used in place, never copied: non-contiguous views (transposed, sliced) are read
through their strides.  Dtypes: float16 (the CANN contract), bfloat16 (torch) and float32, all
tensors the same; indices int32 or int64.  Products and sums are done in fp32 and rounded once.

By default the library's general rules apply: any H1/H2/H3, any R, any W and L, fp16/bf16/fp32,
int64 indices.  ``strict=True`` enforces exactly what aclnnAddLora accepts on the NPU (fp16,
int32 indices, x16 alignment, R <= 128 with weight_a, W/L <= 32, ...).

Errors raise ValueError (a shape or attribute rule, or a missing tensor) or TypeError (a dtype
or a non-CPU array), with the library's message.  The GIL is released while computing.
"""
import operator as _operator
import sys as _sys

from . import _core

__all__ = ["npu_batch_gather_matmul", "npu_batch_gather_matmul_", "add_lora",
           "info", "set_num_threads", "num_threads", "__version__"]

__version__ = _core.version()


def _torch_tensor(a):
    """True if `a` is a torch tensor (without importing torch when the caller has not)."""
    torch = _sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def _prepare(a):
    # torch refuses to export tensors that require grad; detach() shares the storage (no
    # copy).  There is no autograd support: the result never requires grad.
    if _torch_tensor(a) and a.requires_grad:
        return a.detach()
    return a


def _new_like(y):
    """A new, contiguous array of y's type, shape and dtype (y's values are written by run)."""
    if y is None:
        return None
    if _torch_tensor(y):
        torch = _sys.modules["torch"]
        return torch.empty(tuple(y.shape), dtype=y.dtype, device=y.device)
    import numpy as np
    if isinstance(y, np.ndarray):
        return np.empty(y.shape, dtype=y.dtype)
    # Another DLPack producer: the result is a numpy array.
    try:
        view = np.from_dlpack(y)
    except Exception as e:  # no DLPack, a dtype numpy lacks (bfloat16), ...
        raise TypeError(f"AddLora: cannot allocate a result like {type(y).__name__}; "
                        f"pass out= to add_lora ({e})") from None
    return np.empty(view.shape, dtype=view.dtype)


def _check_writable(a, name):
    import numpy as np
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        raise ValueError(f"AddLora: {name} is read-only")


def _run(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, strict,
         out_name="out"):
    try:
        layer_idx = _operator.index(layer_idx)
        y_offset = _operator.index(y_offset)
        y_slice_size = -1 if y_slice_size is None else _operator.index(y_slice_size)
    except TypeError as e:
        raise TypeError(f"AddLora: layer_idx, y_offset and y_slice_size must be integers ({e})") from None
    _check_writable(out, out_name)
    _core.run(_prepare(out), _prepare(y), _prepare(x), _prepare(weight_b), _prepare(indices),
              _prepare(weight_a), layer_idx, float(scale), y_offset, y_slice_size, bool(strict))
    return out


def npu_batch_gather_matmul(y, x, weight_b, indices, weight_a=None, layer_idx=0, scale=1e-3,
                            y_offset=0, y_slice_size=-1, *, strict=False):
    """torch_npu's ``npu_batch_gather_matmul``: returns a new array, ``y`` is not modified.

    The result has y's type (numpy in -> numpy out, torch in -> torch out), shape and dtype.
    Note the default ``scale=1e-3`` (torch_npu's).  ``y_slice_size=-1`` means H2 (torch_npu
    maps it to H3, which its own validation then rejects whenever H3 > H2).
    ``strict=True`` applies the NPU's limits (see the module docstring).
    """
    return _run(_new_like(y), y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset,
                y_slice_size, strict)


def npu_batch_gather_matmul_(y, x, weight_b, indices, weight_a=None, layer_idx=0, scale=1e-3,
                             y_offset=0, y_slice_size=-1, *, strict=False):
    """torch_npu's ``npu_batch_gather_matmul_``: adds the LoRA delta into ``y`` and returns ``y``.

    ``y`` may be a non-contiguous view; only its rows/columns named by the rule are written.
    Default ``scale=1e-3`` (torch_npu's).
    """
    return _run(y, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, strict,
                out_name="y")


def add_lora(y, x, weight_b, indices, *, weight_a=None, layer_idx=0, scale=1.0, y_offset=0,
             y_slice_size=None, out=None, strict=False):
    """``out = y + scale * LoRA(x)`` for a batch of rows, each with its own adapter.

    Args:
      y: ``[B, H3]`` base output.
      x: ``[B, H1]`` input rows.
      weight_b: ``[W, L, H2, R]`` expand weights (W adapters, L layers).
      indices: ``[B]`` adapter of each row (int32 or int64); out-of-range rows are unchanged.
      weight_a: ``[W, L, R, H1]`` shrink weights, or None (then x is already ``[B, R]``).
      layer_idx: layer to use, ``0 <= layer_idx < L``.
      scale: multiplies the delta (default 1.0 here; the ``npu_*`` names default to 1e-3).
      y_offset: first column of y the delta goes to.
      y_slice_size: number of delta columns written (None or -1: all H2).
      out: ``[B, H3]`` destination; None allocates one like y; ``out=y`` is in place.  Any other
        overlap with an input is an error.
      strict: apply the NPU's aclnnAddLora limits instead of the general rules.

    Returns:
      ``out``.
    """
    if out is None:
        out = _new_like(y)
    return _run(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, strict)


def set_num_threads(n):
    """Worker threads used by every call (default: hardware threads or $ADDLORA_NUM_THREADS)."""
    _core.set_num_threads(_operator.index(n))


def num_threads():
    """Worker threads currently used."""
    return _core.num_threads()


def info():
    """Build and runtime facts: version, SIMD target, thread count, supported dtypes."""
    return {
        "version": _core.version(),
        "simd_target": _core.simd_target(),
        "num_threads": _core.num_threads(),
        "dtypes": ["float16", "bfloat16", "float32"],
        "index_dtypes": ["int32", "int64"],
        "default_rules": "general",
    }
