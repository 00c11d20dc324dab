"""add_lora_multi: several LoRA pairs (q/k/v of a fused projection) in one library call."""
import types

import numpy as np
import pytest

import addlora
from lora_reference import as_f64, check, combine, reference, reference_fast
from problems import LIB_DTYPES, clone, convert, convert_index, torch

B, H1 = 7, 24


def qkv(rng, lib, dtype, index_dtype="int32"):
    """y [B, 64] with slices q (H2=20, R=6, cols 0..20), k (H2=10, R=8, cols 24..34, only 9 written)
    and v (no weight_a, R = H1, H2=12, cols 40..52); W=3, L=2; indices include -1 and W."""
    t = lambda a: convert(a, lib, dtype)  # noqa: E731
    y = t(rng.standard_normal((B, 64)))
    x = t(rng.standard_normal((B, H1)))
    idx = rng.integers(0, 3, size=B)
    idx[:3] = [0, 3, -1]
    indices = convert_index(idx, lib, index_dtype)

    def pair(H2, R, with_a=True):
        b = t(rng.standard_normal((3, 2, H2, R)) / np.sqrt(R))
        a = t(rng.standard_normal((3, 2, R, H1)) / np.sqrt(H1)) if with_a else None
        return b, a

    (qb, qa), (kb, ka), (vb, _) = pair(20, 6), pair(10, 8), pair(12, H1, with_a=False)
    slices = [dict(weight_b=qb, weight_a=qa, scale=0.5),
              dict(weight_b=kb, weight_a=ka, scale=-0.25, y_offset=24, y_slice_size=9),
              dict(weight_b=vb, scale=2.0, y_offset=40)]
    return y, x, indices, slices


def single_call_args(s):
    return dict(weight_b=s["weight_b"], weight_a=s.get("weight_a"), scale=s.get("scale", 1.0),
                y_offset=s.get("y_offset", 0), y_slice_size=s.get("y_slice_size", -1))


def consecutive(y, x, indices, slices, **kw):
    """The same slices as consecutive single calls: the first out of place, the rest in place."""
    out = addlora.add_lora(y, x, indices=indices, **single_call_args(slices[0]), **kw)
    for s in slices[1:]:
        addlora.add_lora(out, x, indices=indices, **single_call_args(s), out=out, **kw)
    return out


def expected(y, x, indices, slices, layer_idx=1, ref=reference):
    return combine(y, [ref(y, x, indices=indices, layer_idx=layer_idx, **single_call_args(s)) for s in slices])


def bits(a):
    return as_f64(a).tobytes()


@pytest.mark.parametrize("lib,dtype", LIB_DTYPES)
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_equals_consecutive_single_calls_and_the_oracle(rng, lib, dtype, precision):
    y, x, indices, slices = qkv(rng, lib, dtype)
    y0 = clone(y)
    got = addlora.add_lora_multi(y, x, indices, slices, layer_idx=1, precision=precision)
    assert type(got) is type(y) and got.dtype == y.dtype and tuple(got.shape) == tuple(y.shape)
    assert bits(y) == bits(y0), "y was modified"
    assert bits(got) == bits(consecutive(y, x, indices, slices, layer_idx=1, precision=precision))
    ref = reference if precision == "exact" else reference_fast
    check(got, y0, expected(y0, x, indices, slices, ref=ref))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_in_place_and_out_argument(rng, lib):
    y, x, indices, slices = qkv(rng, lib, "float16", index_dtype="int64")
    y0 = clone(y)
    exp = expected(y0, x, indices, slices)
    out = clone(y) * 0
    assert addlora.add_lora_multi(y, x, indices, slices, layer_idx=1, out=out) is out
    check(out, y0, exp)
    assert addlora.add_lora_multi(y, x, indices, slices, layer_idx=1, out=y) is y
    check(y, y0, exp)
    assert bits(y) == bits(out)


def test_slices_as_objects(rng):
    y, x, indices, slices = qkv(rng, "numpy", "float32")
    as_objects = [addlora.LoraSlice(**slices[0]), types.SimpleNamespace(**slices[1]), slices[2]]
    got = addlora.add_lora_multi(y, x, indices, tuple(as_objects), layer_idx=1)
    assert bits(got) == bits(addlora.add_lora_multi(y, x, indices, slices, layer_idx=1))
    check(got, y, expected(y, x, indices, slices))


def test_one_slice_equals_add_lora(rng):
    y, x, indices, slices = qkv(rng, "numpy", "float16")
    got = addlora.add_lora_multi(y, x, indices, slices[1:2])
    assert bits(got) == bits(addlora.add_lora(y, x, indices=indices, **single_call_args(slices[1])))


def test_strided_views(rng):
    y, x, indices, slices = qkv(rng, "numpy", "float16")
    ys = np.zeros((2 * B, 70), np.float16)
    ys[::2, 3:67] = y
    base0 = ys.copy()
    xs = np.ascontiguousarray(x.T)
    kb_t = np.ascontiguousarray(slices[1]["weight_b"].transpose(0, 1, 3, 2))
    views = [slices[0], dict(slices[1], weight_b=kb_t.transpose(0, 1, 3, 2)), slices[2]]
    exp = expected(y, x, indices, slices)
    addlora.add_lora_multi(ys[::2, 3:67], xs.T, indices, views, layer_idx=1, out=ys[::2, 3:67])
    check(ys[::2, 3:67], y, exp)
    outside = np.ones(ys.shape, bool)
    outside[::2, 3:67] = False
    assert np.array_equal(ys[outside], base0[outside])


def test_strict_with_a_cann_problem(rng):
    t = lambda a: a.astype(np.float16)  # noqa: E731
    y, x = t(rng.standard_normal((4, 96))), t(rng.standard_normal((4, 32)))
    indices = np.array([1, 0, -1, 1], np.int32)
    slices = [dict(weight_b=t(rng.standard_normal((2, 1, 32, 16)) / 4), weight_a=t(rng.standard_normal((2, 1, 16, 32)) / 6)),
              dict(weight_b=t(rng.standard_normal((2, 1, 16, 16)) / 4), weight_a=t(rng.standard_normal((2, 1, 16, 32)) / 6),
                   y_offset=64, scale=0.5)]
    got = addlora.add_lora_multi(y, x, indices, slices, layer_idx=0, strict=True)
    check(got, y, expected(y, x, indices, slices, layer_idx=0))


# ---- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("k_offset,k_size,first_overlap", [(15, 9, "[0, 20) and [15, 24)"), (19, -1, "[0, 20) and [19, 29)")])
def test_overlapping_columns_raise(rng, k_offset, k_size, first_overlap):
    y, x, indices, slices = qkv(rng, "numpy", "float16")
    slices[1].update(y_offset=k_offset, y_slice_size=k_size)
    msg = r"^AddLora: slices 0 and 1 write overlapping columns \(" + first_overlap.replace("[", r"\[").replace(")", r"\)") + r"\)$"
    y0 = y.copy()
    out = np.zeros_like(y)
    with pytest.raises(ValueError, match=msg):
        addlora.add_lora_multi(y, x, indices, slices, out=out)
    assert not out.any() and np.array_equal(y, y0), "nothing is written when validation fails"


def test_adjacent_and_empty_slices_do_not_overlap(rng):
    y, x, indices, slices = qkv(rng, "numpy", "float32")
    slices[1].update(y_offset=20, y_slice_size=10)                   # [20, 30) right after q's [0, 20)
    slices.append(dict(weight_b=slices[0]["weight_b"], weight_a=slices[0]["weight_a"], y_slice_size=0))  # writes nothing
    got = addlora.add_lora_multi(y, x, indices, slices, layer_idx=1)
    check(got, y, expected(y, x, indices, slices[:3]))


def test_a_bad_slice_is_named(rng):
    y, x, indices, slices = qkv(rng, "numpy", "float16")
    slices[2]["y_offset"] = 53
    with pytest.raises(ValueError, match=r"^AddLora: slice 2: yOffset \+ H2 must be <= H3 \(yOffset=53, H2=12, H3=64\)$"):
        addlora.add_lora_multi(y, x, indices, slices)
    slices[2]["y_offset"] = 40
    slices[1]["weight_a"] = slices[1]["weight_a"].astype(np.float64)
    with pytest.raises(TypeError, match=r"^AddLora: slices\[1\]\.weight_a has dtype float64"):
        addlora.add_lora_multi(y, x, indices, slices)
    slices[1]["weight_a"] = slices[1]["weight_a"].astype(np.float32)  # mixed dtypes: fine under general rules
    addlora.add_lora_multi(y, x, indices, slices)
    slices[1]["weight_a"] = None
    with pytest.raises(ValueError, match=r"^AddLora: slice 1: without weightA, x dim 1 \(H1\) must equal weightB dim 3"):
        addlora.add_lora_multi(y, x, indices, slices)


def test_malformed_slices(rng):
    y, x, indices, slices = qkv(rng, "numpy", "float16")
    with pytest.raises(ValueError, match=r"^AddLora: slices must not be null or empty$"):
        addlora.add_lora_multi(y, x, indices, [])
    with pytest.raises(TypeError, match=r"slices must be a sequence"):
        addlora.add_lora_multi(y, x, indices, slices[0])
    with pytest.raises(ValueError, match=r"slices\[1\] has unknown keys \['y_slice'\]"):
        addlora.add_lora_multi(y, x, indices, [slices[0], dict(weight_b=slices[1]["weight_b"], y_slice=3)])
    with pytest.raises(ValueError, match=r"slices\[0\] has no weight_b"):
        addlora.add_lora_multi(y, x, indices, [dict(scale=1.0)])
    with pytest.raises(TypeError, match=r"slices\[0\] must be a dict or an object with a weight_b"):
        addlora.add_lora_multi(y, x, indices, [(slices[0]["weight_b"],)])
    with pytest.raises(ValueError, match=r"^AddLora: slice 1: weightB must not be null$"):
        addlora.add_lora_multi(y, x, indices, [slices[0], dict(weight_b=None)])
    with pytest.raises(TypeError, match="must be integers"):
        addlora.add_lora_multi(y, x, indices, [dict(slices[0], y_offset=1.5)])


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_torch_errors_and_grad(rng):
    y, x, indices, slices = qkv(rng, "torch", "float32")
    slices[0]["weight_b"].requires_grad_(True)
    got = addlora.add_lora_multi(y, x, indices, slices, layer_idx=1)
    assert not got.requires_grad
    check(got, y, expected(y, x, indices, slices))
    with pytest.raises(ValueError, match=r"out overlaps x in memory"):
        addlora.add_lora_multi(y, y[:, :H1], indices, slices, out=y)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_missing_shared_tensors_and_empty_batch(rng, lib):
    y, x, indices, slices = qkv(rng, lib, "float16")
    with pytest.raises(ValueError, match=r"^AddLora: slice 0: y must not be null$"):
        addlora.add_lora_multi(None, x, indices, slices, out=clone(y))
    with pytest.raises(ValueError, match=r"^AddLora: slice 0: indices must not be null$"):
        addlora.add_lora_multi(y, x, None, slices)
    # B == 0 under the general rules: nothing to do, in place or not (torch exports null data here)
    y0, x0, i0 = y[:0], x[:0], indices[:0]
    assert tuple(addlora.add_lora_multi(y0, x0, i0, slices).shape) == (0, 64)
    assert addlora.add_lora_multi(y0, x0, i0, slices, out=y0) is y0
