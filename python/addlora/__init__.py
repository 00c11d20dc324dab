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
tensors the same; indices int32 or int64.  One precision contract (docs/contract.md §1.2):
every element within 1 ulp + 2^-16·M of the exact result; ``precision="exact"`` (default) and
``"fast"`` are names of it and give the same bits.

Also: ``add_lora_multi`` (several LoRA pairs into disjoint column slices of y in one call, e.g.
q/k/v of a fused QKV projection), FRACTAL_NZ weights (``nd_to_nz``, ``nz_to_nd``,
``weight_format="nz"``), and per-adapter ``ranks=`` / ``scales=`` (adapters of different ranks
in one padded tensor, per-adapter alpha/r factors; general rules only).

By default the library's general rules apply: any H1/H2/H3, any R, any W and L, fp16/bf16/fp32,
int64 indices.  ``strict=True`` enforces exactly what aclnnAddLora accepts on the NPU (fp16,
int32 indices, x16 alignment, R <= 128 with weight_a, W/L <= 32, ...).

Errors raise ValueError (a shape or attribute rule, or a missing tensor) or TypeError (a dtype
or a non-CPU array), with the library's message.  The GIL is released while computing (the
torch_npu-style eager call keeps it for problems under 2^15 multiply-adds: about a microsecond).
"""
import math as _math
import operator as _operator
import sys as _sys
from collections.abc import Mapping as _Mapping
from dataclasses import dataclass as _dataclass
from typing import Any as _Any, Optional as _Optional, Sequence as _Sequence

from . import _core, _route

# The eager path: torch_npu's arguments straight to C++ (returns NotImplemented for anything it
# leaves to _run: other keywords, tensors that require grad, non-int attributes).
_fast_run = _core.fast_run

__all__ = ["npu_batch_gather_matmul", "npu_batch_gather_matmul_", "add_lora", "add_lora_multi",
           "LoraSlice", "nd_to_nz", "nz_to_nd", "nz_shape", "info", "set_num_threads", "num_threads",
           "register_torch_ops", "punica", "shrink", "expand", "__version__"]

__version__ = _core.version()


def _torch_tensor(a):
    """True if `a` is a torch tensor (without importing torch when the caller has not)."""
    torch = _sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def _prepare(a):
    # torch refuses to export tensors that require grad; detach() shares the storage (no
    # copy).  Autograd, where supported, is recorded around this call (_differentiable).
    if _torch_tensor(a) and a.requires_grad:
        return a.detach()
    return a


def _torch():
    return _sys.modules["torch"]


def _grad_inputs(*tensors):
    """True if autograd must record this call: grad mode on and a torch input requires grad."""
    torch = _sys.modules.get("torch")
    if torch is None or not torch.is_grad_enabled():
        return False
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def _refuse_grad_in_place(y, x, weight_b, weight_a):
    for name, t in (("y", y), ("x", x), ("weight_b", weight_b), ("weight_a", weight_a)):
        if _torch_tensor(t) and t.requires_grad:
            raise ValueError(f"AddLora: npu_batch_gather_matmul_ writes y in place and is not differentiable, "
                             f"but {name} requires grad; use npu_batch_gather_matmul (out of place, "
                             f"differentiable) or run under torch.no_grad()")


def _differentiable(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, strict,
                    precision, weight_format, weight_b_shape, weight_a_shape, ranks, scales):
    """The call recorded by autograd (grads for y, x, weight_b, weight_a)."""
    if out is not None:
        raise ValueError("AddLora: out= is not supported when an input requires grad (autograd needs a new "
                         "result tensor); drop out= or run under torch.no_grad()")
    if weight_format != "nd":
        raise ValueError("AddLora: autograd needs weight_format='nd' (FRACTAL_NZ weights are for inference)")
    torch = _torch()
    for name, t in (("y", y), ("x", x), ("weight_b", weight_b), ("indices", indices), ("weight_a", weight_a)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"AddLora: with inputs that require grad every tensor must be a torch tensor "
                            f"({name} is {type(t).__name__})")
    layer_idx, y_offset, y_slice_size = _integers(layer_idx=layer_idx, y_offset=y_offset,
                                                  y_slice_size=y_slice_size)
    scale = float(scale)
    from ._autograd import AddLoraFunction

    def run():
        res = _new_like(y)
        return _run(res, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, strict,
                    precision, weight_format, weight_b_shape, weight_a_shape, ranks=ranks, scales=scales)

    # S after validation: run() raises first for a bad y_slice_size / shapes.
    H2 = weight_b.shape[2] if weight_b.dim() == 4 else 0
    S = H2 if y_slice_size == -1 else y_slice_size
    rk = None if ranks is None else [int(v) for v in (ranks.tolist() if hasattr(ranks, "tolist") else ranks)]
    sc = None if scales is None else [float(v) for v in (scales.tolist() if hasattr(scales, "tolist") else scales)]
    return AddLoraFunction.apply(y, x, weight_b, weight_a, run, indices.detach(), layer_idx, scale, y_offset, S,
                                 rk, sc)


def _empty(like, shape, dtype, what):
    """A new contiguous array of `like`'s type (torch or numpy) with this shape and dtype."""
    if _torch_tensor(like):
        return _torch().empty(tuple(shape), dtype=dtype, device=like.device)
    import numpy as np
    if isinstance(like, np.ndarray):
        return np.empty(tuple(shape), dtype=dtype)
    raise TypeError(f"AddLora: cannot allocate {what} like {type(like).__name__}")


def _new_like(y):
    """A new, contiguous array of y's type, shape and dtype (y's values are written by run)."""
    if y is None:
        return None
    if _torch_tensor(y):
        torch = _torch()  # empty_like: the cheapest allocation call (same dtype and device)
        return torch.empty_like(y, memory_format=torch.contiguous_format)
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


def _integers(**named):
    try:
        return [-1 if v is None and k == "y_slice_size" else _operator.index(v) for k, v in named.items()]
    except TypeError as e:
        raise TypeError(f"AddLora: layer_idx, y_offset and y_slice_size must be integers ({e})") from None


def _fast(precision):
    """precision keyword -> the library's Precision::fast flag (an alias: the same results)."""
    if precision == "exact":
        return False
    if precision == "fast":
        return True
    raise ValueError(f"AddLora: precision must be 'exact' or 'fast' (got {precision!r})")


# ---- FRACTAL_NZ ---------------------------------------------------------------------------------
def _shape_tuple(shape, name):
    try:
        shape = tuple(_operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"AddLora: {name} must be a sequence of integers (got {shape!r})") from None
    if len(shape) < 2 or any(d < 0 for d in shape):
        raise ValueError(f"AddLora: {name} must have >= 2 non-negative dims (got {list(shape)})")
    return shape


def nz_shape(shape):
    """Packed FRACTAL_NZ shape of a logical ``[..., M, N]`` shape: ``[..., ceil(N/16), ceil(M/16), 16, 16]``."""
    shape = _shape_tuple(shape, "shape")
    *lead, m, n = shape
    return (*lead, -(-n // 16), -(-m // 16), 16, 16)


def _check_nz_array(nz, logical, name):
    """The packed array must be exactly the storage of `logical`: its NZ shape, or flat."""
    expected = nz_shape(logical)
    got = tuple(nz.shape)
    if got != expected and got != (_math.prod(expected),):
        raise ValueError(f"AddLora: {name} in FRACTAL_NZ must have shape {list(expected)} (or flat "
                         f"[{_math.prod(expected)}]) for logical shape {list(logical)} (got {list(got)})")


def nd_to_nz(weight):
    """Packs a float16/bfloat16 ``[..., M, N]`` array into FRACTAL_NZ (docs/contract.md §5).

    Returns a new contiguous array of the same type and dtype, shape
    ``[..., ceil(N/16), ceil(M/16), 16, 16]``: element ``(m, n)`` of each matrix is at block
    ``(n // 16, m // 16)``, position ``(m % 16, n % 16)``; the padding is zero.  ``weight`` may
    be any strided view.  ``nz_to_nd(nd_to_nz(w), w.shape)`` gives ``w`` back.
    """
    weight = _prepare(weight)
    if not hasattr(weight, "shape") or not hasattr(weight, "dtype"):
        raise TypeError(f"AddLora: nd_to_nz needs a numpy array or torch tensor (got {type(weight).__name__})")
    dst = _empty(weight, nz_shape(weight.shape), weight.dtype, "an NZ array")
    if _math.prod(dst.shape):
        _core.nd_to_nz(weight, dst)
    return dst


def nz_to_nd(nz, shape):
    """Unpacks FRACTAL_NZ storage (as ``nd_to_nz`` returns, or flat) into a new ``shape`` array."""
    shape = _shape_tuple(shape, "shape")
    nz = _prepare(nz)
    if not hasattr(nz, "shape") or not hasattr(nz, "dtype"):
        raise TypeError(f"AddLora: nz_to_nd needs a numpy array or torch tensor (got {type(nz).__name__})")
    _check_nz_array(nz, shape, "nz")
    dst = _empty(nz, shape, nz.dtype, "an ND array")
    if _math.prod(shape):
        _core.nz_to_nd(nz, dst)
    return dst


def _weight_shapes(weight_format, weight_b, weight_a, weight_b_shape, weight_a_shape, where=""):
    """Logical shapes for the library when the weights are packed NZ arrays, else (None, None)."""
    if weight_format == "nd":
        if weight_b_shape is not None or weight_a_shape is not None:
            raise ValueError(f"AddLora: {where}weight_b_shape / weight_a_shape are only for weight_format='nz'")
        return None, None
    if weight_format != "nz":
        raise ValueError(f"AddLora: weight_format must be 'nd' or 'nz' (got {weight_format!r})")
    shapes = []
    for name, w, shape in (("weight_b", weight_b, weight_b_shape), ("weight_a", weight_a, weight_a_shape)):
        if w is None:
            if shape is not None:
                raise ValueError(f"AddLora: {where}{name}_shape is given but {name} is None")
            shapes.append(None)
            continue
        if shape is None:
            raise ValueError(f"AddLora: weight_format='nz' needs {where}{name}_shape (the logical "
                             f"ND shape; the packed array loses the remainders of its last two dims)")
        shape = _shape_tuple(shape, f"{where}{name}_shape")
        if hasattr(w, "shape"):
            _check_nz_array(w, shape, where + name)
        shapes.append(list(shape))
    return tuple(shapes)


# ---- the operation --------------------------------------------------------------------------------
def _per_adapter(a, name):
    """ranks / scales as the native layer takes them: an array (used in place) or None."""
    if isinstance(a, (list, tuple, int, float)):
        raise TypeError(f"AddLora: {name} must be a 1-D array (numpy, torch or DLPack), not a "
                        f"{type(a).__name__}; e.g. np.array(..., np.{'int32' if name.endswith('ranks') else 'float32'})")
    return _prepare(a)


def _run(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, strict,
         precision="exact", weight_format="nd", weight_b_shape=None, weight_a_shape=None, out_name="out",
         ranks=None, scales=None):
    layer_idx, y_offset, y_slice_size = _integers(layer_idx=layer_idx, y_offset=y_offset,
                                                  y_slice_size=y_slice_size)
    fast = _fast(precision)
    b_shape, a_shape = _weight_shapes(weight_format, weight_b, weight_a, weight_b_shape, weight_a_shape)
    _check_writable(out, out_name)
    _core.run(_prepare(out), _prepare(y), _prepare(x), _prepare(weight_b), _prepare(indices),
              _prepare(weight_a), layer_idx, float(scale), y_offset, y_slice_size, bool(strict), fast,
              b_shape, a_shape, _per_adapter(ranks, "ranks"), _per_adapter(scales, "scales"))
    return out


# ---- under torch.compile: the registered operators -------------------------------------------------
def _only_torch_npu_args(strict, precision, weight_format, weight_b_shape, weight_a_shape, ranks, scales):
    if (strict is not False or precision != "exact" or weight_format != "nd" or ranks is not None
            or scales is not None or weight_b_shape is not None or weight_a_shape is not None):
        raise NotImplementedError("AddLora: under torch.compile only torch_npu's arguments are supported "
                                  "(no strict, precision, weight_format, ranks, scales)")


def _op_into(out, y, functional, in_place, args):
    """A registered operator pair's result as the public functions return it: a new tensor (out
    None), y updated in place (out is y), or copied into the caller's out."""
    if out is None:
        return functional(y, *args)
    if out is y:
        in_place(y, *args)
        return y
    out.copy_(functional(y, *args))
    return out


def _op_args(layer_idx, scale, y_offset, y_slice_size):
    return (_operator.index(layer_idx), float(scale), _operator.index(y_offset),
            -1 if y_slice_size is None else _operator.index(y_slice_size))


def npu_batch_gather_matmul(y, x, weight_b, indices, weight_a=None, layer_idx=0, scale=1e-3,
                            y_offset=0, y_slice_size=-1, *, strict=False, precision="exact",
                            weight_format="nd", weight_b_shape=None, weight_a_shape=None, ranks=None,
                            scales=None):
    """torch_npu's ``npu_batch_gather_matmul``: returns a new array, ``y`` is not modified.

    The result has y's type (numpy in -> numpy out, torch in -> torch out), shape and dtype.
    Note the default ``scale=1e-3`` (torch_npu's).  ``y_slice_size=-1`` means H2 (torch_npu
    maps it to H3, which its own validation then rejects whenever H3 > H2).
    Keywords ``strict``, ``precision``, ``weight_format``, ``weight_b_shape``, ``weight_a_shape``,
    ``ranks``, ``scales`` (not torch_npu's): see ``add_lora``.
    """
    if _route.compiling():
        _only_torch_npu_args(strict, precision, weight_format, weight_b_shape, weight_a_shape, ranks, scales)
        return _torch().ops.addlora.add_lora(y, x, weight_b, indices, weight_a,
                                             *_op_args(layer_idx, scale, y_offset, y_slice_size))
    if (strict is False and precision == "exact" and weight_format == "nd" and ranks is None and scales is None
            and weight_b_shape is None and weight_a_shape is None):
        r = _fast_run(None, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size)
        if r is not NotImplemented:
            return r
    if _grad_inputs(y, x, weight_b, weight_a):
        return _differentiable(None, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size,
                               strict, precision, weight_format, weight_b_shape, weight_a_shape, ranks, scales)
    return _run(_new_like(y), y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset,
                y_slice_size, strict, precision, weight_format, weight_b_shape, weight_a_shape,
                ranks=ranks, scales=scales)


def npu_batch_gather_matmul_(y, x, weight_b, indices, weight_a=None, layer_idx=0, scale=1e-3,
                             y_offset=0, y_slice_size=-1, *, strict=False, precision="exact",
                             weight_format="nd", weight_b_shape=None, weight_a_shape=None, ranks=None,
                             scales=None):
    """torch_npu's ``npu_batch_gather_matmul_``: adds the LoRA delta into ``y`` and returns ``y``.

    ``y`` may be a non-contiguous view; only its rows/columns named by the rule are written.
    Default ``scale=1e-3`` (torch_npu's).  Keywords as ``add_lora``.
    """
    if _route.compiling():
        _only_torch_npu_args(strict, precision, weight_format, weight_b_shape, weight_a_shape, ranks, scales)
        _torch().ops.addlora.add_lora_(y, x, weight_b, indices, weight_a,
                                       *_op_args(layer_idx, scale, y_offset, y_slice_size))
        return y
    if (strict is False and precision == "exact" and weight_format == "nd" and ranks is None and scales is None
            and weight_b_shape is None and weight_a_shape is None):
        r = _fast_run(y, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size)
        if r is not NotImplemented:
            return r
    if _grad_inputs(y, x, weight_b, weight_a):
        _refuse_grad_in_place(y, x, weight_b, weight_a)
    return _run(y, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, strict,
                precision, weight_format, weight_b_shape, weight_a_shape, out_name="y", ranks=ranks,
                scales=scales)


def add_lora(y, x, weight_b, indices, *, weight_a=None, layer_idx=0, scale=1.0, y_offset=0,
             y_slice_size=None, out=None, strict=False, precision="exact", weight_format="nd",
             weight_b_shape=None, weight_a_shape=None, ranks=None, scales=None):
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
      precision: ``"exact"`` or ``"fast"``: names of the one precision contract (every element
        within 1 ulp + 2^-16 * M of the exact result, docs/contract.md §1.2); the same bits.
      weight_format: ``"nd"`` (plain arrays) or ``"nz"``: weight_b / weight_a are packed
        FRACTAL_NZ arrays from ``nd_to_nz`` (float16/bfloat16, contiguous, NZ shape or flat) and
        ``weight_b_shape`` / ``weight_a_shape`` give their logical shapes
        (``[W, L, H2, R]`` / ``[W, L, R, H1]``).  Results are bitwise equal to the ND call.
      ranks: ``[W]`` int32 array, or None: adapter ``i`` uses only its first ``ranks[i]`` ranks
        (rows of weight_a / columns of weight_b; without weight_a, the first ``ranks[i]`` columns
        of x), values clamped to ``[0, R]`` (0: the adapter adds nothing).  The result equals
        weights sliced to ``[..., :ranks[i]]``; the rest of the padded tensors is never read.
        int64 (torch's default) is converted to int32 (a copy; values outside int32 raise
        ValueError); int32 arrays are used in place, any strides.
      scales: ``[W]`` float32 array, or None: adapter ``i``'s delta is multiplied by
        ``scale * scales[i]`` (e.g. each adapter's alpha / r).  Used in place, any strides.
        ``ranks`` and ``scales`` are not aclnnAddLora inputs: ``strict=True`` rejects them
        (ValueError); the values are read during the call.

    Returns:
      ``out``.
    """
    if _route.compiling():
        _only_torch_npu_args(strict, precision, weight_format, weight_b_shape, weight_a_shape, ranks, scales)
        ops = _torch().ops.addlora
        return _op_into(out, y, ops.add_lora, ops.add_lora_,
                        (x, weight_b, indices, weight_a, *_op_args(layer_idx, scale, y_offset, y_slice_size)))
    if (strict is False and precision == "exact" and weight_format == "nd" and ranks is None and scales is None
            and weight_b_shape is None and weight_a_shape is None):
        r = _fast_run(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size)
        if r is not NotImplemented:
            return r
    if _grad_inputs(y, x, weight_b, weight_a):
        return _differentiable(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size,
                               strict, precision, weight_format, weight_b_shape, weight_a_shape, ranks, scales)
    if out is None:
        out = _new_like(y)
    return _run(out, y, x, weight_b, indices, weight_a, layer_idx, scale, y_offset, y_slice_size, strict,
                precision, weight_format, weight_b_shape, weight_a_shape, ranks=ranks, scales=scales)


# ---- multi-slice ------------------------------------------------------------------------------
@_dataclass
class LoraSlice:
    """One LoRA pair of ``add_lora_multi`` (a dict with these keys works too)."""
    weight_b: _Any
    weight_a: _Any = None
    scale: float = 1.0
    y_offset: int = 0
    y_slice_size: _Optional[int] = -1
    weight_b_shape: _Optional[_Sequence[int]] = None   # logical shapes, weight_format="nz" only
    weight_a_shape: _Optional[_Sequence[int]] = None
    ranks: _Any = None      # [W] int32 per-adapter rank limit (see add_lora)
    scales: _Any = None     # [W] float32 per-adapter scale factor


_SLICE_KEYS = ("weight_b", "weight_a", "scale", "y_offset", "y_slice_size", "weight_b_shape", "weight_a_shape",
               "ranks", "scales")


def _slice_fields(s, k):
    if isinstance(s, _Mapping):
        unknown = set(s) - set(_SLICE_KEYS)
        if unknown:
            raise ValueError(f"AddLora: slices[{k}] has unknown keys {sorted(unknown)}; "
                             f"allowed: {', '.join(_SLICE_KEYS)}")
        if "weight_b" not in s:
            raise ValueError(f"AddLora: slices[{k}] has no weight_b")
        get = s.get
    else:
        if not hasattr(s, "weight_b"):
            raise TypeError(f"AddLora: slices[{k}] must be a dict or an object with a weight_b "
                            f"attribute (got {type(s).__name__})")
        get = lambda key, default=None: getattr(s, key, default)  # noqa: E731
    return LoraSlice(get("weight_b"), get("weight_a", None), get("scale", 1.0), get("y_offset", 0),
                     get("y_slice_size", -1), get("weight_b_shape", None), get("weight_a_shape", None),
                     get("ranks", None), get("scales", None))


def add_lora_multi(y, x, indices, slices, *, layer_idx=0, out=None, precision="exact", strict=False,
                   weight_format="nd"):
    """Several LoRA pairs added into column slices of the same ``y`` in ONE library call.

    E.g. q, k and v of a fused QKV projection: ``y [B, Hq + Hk + Hv]``, one slice per projection
    with its own weights (of different widths), scale, ``y_offset`` and ``y_slice_size``.

    Args:
      y, x, indices, layer_idx, out, precision, strict: as ``add_lora``, shared by every slice.
      slices: a sequence of dicts or objects (e.g. ``LoraSlice``) with ``weight_b`` and optional
        ``weight_a=None``, ``scale=1.0``, ``y_offset=0``, ``y_slice_size=-1`` (H2),
        ``ranks=None``, ``scales=None`` (per-adapter, see ``add_lora``; W is the slice's own), and,
        with ``weight_format="nz"``, ``weight_b_shape`` / ``weight_a_shape``.
      weight_format: ``"nd"`` or ``"nz"`` for every slice's weights (see ``add_lora``).

    The written column ranges must not overlap (ValueError).  The result equals consecutive
    ``add_lora`` calls, bitwise.  Returns ``out``.
    """
    if isinstance(slices, (_Mapping, LoraSlice)) or not isinstance(slices, _Sequence):
        raise TypeError(f"AddLora: slices must be a sequence of dicts or LoraSlice objects "
                        f"(got {type(slices).__name__})")
    (layer_idx,) = _integers(layer_idx=layer_idx)
    fast = _fast(precision)
    if _route.compiling():
        return _multi_op(y, x, indices, slices, layer_idx, out, fast, strict, weight_format)
    packed = []
    for k, s in enumerate(slices):
        s = _slice_fields(s, k)
        y_offset, y_slice_size = _integers(y_offset=s.y_offset, y_slice_size=s.y_slice_size)
        b_shape, a_shape = _weight_shapes(weight_format, s.weight_b, s.weight_a, s.weight_b_shape,
                                          s.weight_a_shape, where=f"slices[{k}].")
        packed.append((_prepare(s.weight_b), _prepare(s.weight_a), float(s.scale), y_offset, y_slice_size,
                       b_shape, a_shape, _per_adapter(s.ranks, f"slices[{k}].ranks"),
                       _per_adapter(s.scales, f"slices[{k}].scales")))
    if out is None:
        out = _new_like(y)
    _check_writable(out, "out")
    _core.run_multi(_prepare(out), _prepare(y), _prepare(x), _prepare(indices), packed, layer_idx,
                    bool(strict), fast)
    return out


def _multi_op(y, x, indices, slices, layer_idx, out, fast, strict, weight_format):
    """add_lora_multi under torch.compile: torch.ops.addlora.add_lora_multi(_) (ND weights, general rules)."""
    fields = [_slice_fields(s, k) for k, s in enumerate(slices)]
    if strict is not False or weight_format != "nd" or any(
            f.ranks is not None or f.scales is not None or f.weight_b_shape is not None
            or f.weight_a_shape is not None for f in fields):
        raise NotImplementedError("AddLora: under torch.compile add_lora_multi supports ND weights and the general "
                                  "rules only (no strict, weight_format, ranks, scales)")
    args = (x, indices, [f.weight_b for f in fields], [f.weight_a for f in fields],
            [float(f.scale) for f in fields], [_operator.index(f.y_offset) for f in fields],
            [-1 if f.y_slice_size is None else _operator.index(f.y_slice_size) for f in fields], layer_idx, fast)
    ops = _torch().ops.addlora
    return _op_into(out, y, ops.add_lora_multi, ops.add_lora_multi_, args)


# ---- shrink only / expand only ------------------------------------------------------------------
def _bool(v, name):
    if v is True or v is False:
        return v
    raise TypeError(f"AddLora: {name} must be True or False (got {type(v).__name__})")


def _real(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
        raise TypeError(f"AddLora: {name} must be a real number (got {type(v).__name__})")
    return float(v)


def shrink(x, weight_a, z, indices, *, layer_idx=0, scale=1.0, accumulate=False, precision="exact"):
    """``z[b, :R] = scale * x[b] @ weight_a[i, layer_idx].T`` (``+=`` with ``accumulate=True``).

    The first half of a LoRA into the caller's buffer ``z [B, >= R]`` (float32 keeps the most),
    ``i = indices[b]``; rows with ``i`` outside ``[0, W)`` are not written.  ``weight_a
    [W, L, R, H1]``.  Same kernels and precision as ``add_lora``.  Returns ``z``.
    """
    (layer_idx,) = _integers(layer_idx=layer_idx)
    args = (x, weight_a, z, indices, layer_idx, _real(scale, "scale"), _bool(accumulate, "accumulate"),
            _fast(precision))
    if _route.compiling():
        _torch().ops.addlora.shrink(*args)
    else:
        _core.shrink(*args)
    return z


def expand(z, weight_b, out, indices, *, layer_idx=0, scale=1.0, y_offset=0, y_slice_size=None, accumulate=True,
           precision="exact"):
    """``out[b, y_offset:y_offset+S] += scale * (z[b] @ weight_b[i, layer_idx].T)[:S]`` (``=`` with
    ``accumulate=False``).

    The second half of a LoRA: ``z [B, R]``, ``weight_b [W, L, H2, R]``, ``out [B, H3]`` with
    ``y_offset + S <= H3``; ``S = y_slice_size`` (None or -1: H2; only S rows of ND weight_b are
    read).  Rows with an index outside ``[0, W)`` are not written.  Returns ``out``.
    """
    layer_idx, y_offset, y_slice_size = _integers(layer_idx=layer_idx, y_offset=y_offset,
                                                  y_slice_size=y_slice_size)
    args = (z, weight_b, out, indices, layer_idx, _real(scale, "scale"), y_offset, y_slice_size,
            _bool(accumulate, "accumulate"), _fast(precision))
    if _route.compiling():
        _torch().ops.addlora.expand(*args)
    else:
        _core.expand(*args)
    return out


from . import punica  # noqa: E402  (vLLM's punica ops)


def register_torch_ops():
    """Registers torch.ops.addlora.* now (done at import when torch is already imported, else at
    the first call).  Returns False where torch lacks torch.library.register_fake (torch < 2.4)."""
    import torch  # noqa: F401
    return _route.setup()


if "torch" in _sys.modules and _route.compiling is _route._probe:  # not done by punica's import
    _route.setup()


# torch_npu's names and add_lora as builtins where that is safe (_route.install_builtins).
_python_entries = _route.install_builtins(globals(), ("npu_batch_gather_matmul_", "npu_batch_gather_matmul",
                                                      "add_lora"), 0)


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
        "precisions": ["exact", "fast"],
        "weight_formats": ["nd", "nz"],
    }
