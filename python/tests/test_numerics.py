"""Results against the fp64 oracle: numpy and torch, every dtype, strided views, in place."""
import numpy as np
import pytest

import addlora
from lora_reference import as_f64, check, reference
from problems import LIB_DTYPES, clone, convert, convert_index, make_problem, random_inputs, torch

# (name, shape keywords, call keywords): general-rule shapes (nothing aligned to 16).
CONFIGS = [
    ("basic", dict(), dict(layer_idx=1, scale=0.5)),
    ("offset_slice", dict(H3=50), dict(layer_idx=0, scale=0.75, y_offset=13, y_slice_size=11)),
    ("slice_zero", dict(), dict(scale=0.5, y_slice_size=0)),
    ("no_weight_a", dict(with_a=False, R=9), dict(layer_idx=1, scale=0.25, y_offset=20)),
    ("wide", dict(B=5, H1=1000, R=40, H2=300, H3=310, W=2, L=1), dict(scale=0.5, y_offset=7)),
    ("rank_512", dict(B=4, H1=96, R=512, H2=64, H3=64, W=2, L=1), dict(scale=0.5)),
]


def is_type_of(result, y):
    return type(result) is type(y) and result.dtype == y.dtype and tuple(result.shape) == tuple(y.shape)


@pytest.mark.parametrize("lib,dtype", LIB_DTYPES)
@pytest.mark.parametrize("name,shape,call", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_out_of_place(rng, lib, dtype, name, shape, call):
    p = make_problem(rng, lib, dtype, **shape)
    y0 = clone(p["y"])
    out = addlora.npu_batch_gather_matmul(**p, **call)
    assert is_type_of(out, p["y"])
    assert np.array_equal(as_f64(p["y"]), as_f64(y0)), "y was modified"
    check(out, y0, reference(**p, **call))


@pytest.mark.parametrize("lib,dtype", LIB_DTYPES)
def test_in_place_returns_y(rng, lib, dtype):
    p = make_problem(rng, lib, dtype)
    y0 = clone(p["y"])
    call = dict(layer_idx=1, scale=0.5, y_offset=3, y_slice_size=15)
    ret = addlora.npu_batch_gather_matmul_(**p, **call)
    assert ret is p["y"]
    check(p["y"], y0, reference(**dict(p, y=y0), **call))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_default_scale_is_1e_3_for_npu_names(rng, lib):
    p = make_problem(rng, lib, "float32")
    expected = reference(**p, scale=1e-3)
    check(addlora.npu_batch_gather_matmul(**p), p["y"], expected)
    y = clone(p["y"])
    addlora.npu_batch_gather_matmul_(**dict(p, y=y))
    check(y, p["y"], expected)
    # The pythonic add_lora defaults to 1.0, and that is a different result.
    check(addlora.add_lora(**p), p["y"], reference(**p, scale=1.0))
    with pytest.raises(AssertionError):
        check(addlora.add_lora(**p), p["y"], expected)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_add_lora_out_argument(rng, lib):
    p = make_problem(rng, lib, "float16")
    y0 = clone(p["y"])
    out = clone(p["y"]) * 0
    ret = addlora.add_lora(**p, layer_idx=1, scale=0.5, out=out)
    assert ret is out
    assert np.array_equal(as_f64(p["y"]), as_f64(y0))
    check(out, y0, reference(**p, layer_idx=1, scale=0.5))
    # out=y: in place
    ret = addlora.add_lora(**p, layer_idx=1, scale=0.5, y_slice_size=None, out=p["y"])
    assert ret is p["y"]
    check(p["y"], y0, reference(**dict(p, y=y0), layer_idx=1, scale=0.5))


def strided_numpy(rng, dtype):
    """Every input a non-contiguous view over larger storage; returns (views, storages)."""
    raw = random_inputs(rng, B=6, H1=19, H2=13, H3=21, R=5, W=3, L=2)
    xs = np.ascontiguousarray(raw["x"].T.astype(dtype))                     # x = xs.T (transposed)
    ys = rng.standard_normal((12, 30)).astype(dtype)
    ys[::2, 4:25] = raw["y"].astype(dtype)                                    # y = ys[::2, 4:25]
    wbs = np.ascontiguousarray(raw["weight_b"].transpose(0, 1, 3, 2).astype(dtype))  # [W,L,R,H2]
    was = np.zeros((3, 4, 5, 19), dtype=dtype)
    was[:, ::2] = raw["weight_a"].astype(dtype)                               # every other layer
    idx = np.zeros(12, dtype=np.int32)
    idx[::2] = raw["indices"]
    views = dict(y=ys[::2, 4:25], x=xs.T, weight_b=wbs.transpose(0, 1, 3, 2), indices=idx[::2],
                 weight_a=was[:, ::2])
    for k in ("y", "x", "weight_b", "weight_a"):
        assert not views[k].flags.c_contiguous
    return views, ys


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_strided_numpy_views_read_in_place(rng, dtype):
    v, ys = strided_numpy(rng, dtype)
    ys0 = ys.copy()
    out = addlora.npu_batch_gather_matmul(**v, layer_idx=1, scale=0.5, y_offset=4)
    check(out, v["y"], reference(**v, layer_idx=1, scale=0.5, y_offset=4))
    assert np.array_equal(ys, ys0)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_in_place_into_a_view_writes_the_base_storage(rng, dtype):
    # If the view were copied, the base array would not change: this proves zero-copy.
    v, ys = strided_numpy(rng, dtype)
    ys0 = ys.copy()
    expected = reference(**v, layer_idx=1, scale=0.5, y_offset=2, y_slice_size=9)
    y_before = v["y"].copy()
    addlora.npu_batch_gather_matmul_(**v, layer_idx=1, scale=0.5, y_offset=2, y_slice_size=9)
    check(ys[::2, 4:25], y_before, expected)
    outside = np.ones(ys.shape, dtype=bool)
    outside[::2, 4:25] = False
    assert np.array_equal(ys[outside], ys0[outside]), "elements outside the view changed"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_strided_torch_views(rng, dtype):
    raw = random_inputs(rng, B=6, H1=19, H2=13, H3=21, R=5, W=3, L=2)
    t = lambda a: convert(a, "torch", dtype)  # noqa: E731
    ys = t(rng.standard_normal((6, 40)))
    ys[:, 10:31] = t(raw["y"])
    ys0 = ys.clone()
    v = dict(y=ys[:, 10:31], x=t(raw["x"].T).t(),
             weight_b=t(raw["weight_b"].transpose(0, 1, 3, 2)).transpose(2, 3),
             indices=convert_index(np.repeat(raw["indices"], 2), "torch")[::2],
             weight_a=t(raw["weight_a"]))
    assert not v["x"].is_contiguous() and not v["weight_b"].is_contiguous() and not v["y"].is_contiguous()
    y0 = v["y"].clone()
    expected = reference(**v, layer_idx=1, scale=0.5, y_offset=5)
    out = addlora.npu_batch_gather_matmul(**v, layer_idx=1, scale=0.5, y_offset=5)
    check(out, y0, expected)
    assert torch.equal(ys, ys0)
    addlora.npu_batch_gather_matmul_(**v, layer_idx=1, scale=0.5, y_offset=5)
    check(ys[:, 10:31], y0, expected)
    assert torch.equal(ys[:, :10], ys0[:, :10]) and torch.equal(ys[:, 31:], ys0[:, 31:])


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_int64_indices_give_the_int32_result(rng, lib):
    p = make_problem(rng, lib, "float16")
    p64 = dict(p, indices=convert_index(as_f64(p["indices"]), lib, "int64"))
    a = addlora.npu_batch_gather_matmul(**p, layer_idx=1, scale=0.5)
    b = addlora.npu_batch_gather_matmul(**p64, layer_idx=1, scale=0.5)
    assert np.array_equal(as_f64(a), as_f64(b))
    check(b, p["y"], reference(**p, layer_idx=1, scale=0.5))


def test_torch_inputs_requiring_grad(rng):
    # Autograd records the call (test_autograd.py checks the gradients); the values are the same.
    p = make_problem(rng, "torch", "float32")
    p["x"].requires_grad_(True)
    p["weight_a"].requires_grad_(True)
    out = addlora.npu_batch_gather_matmul(**p, scale=0.5)
    assert out.requires_grad
    check(out, p["y"], reference(**p, scale=0.5))


def test_mixed_dtypes_under_general_rules(rng):
    # The general rules take each tensor's own float dtype (out == y's).
    raw = random_inputs(rng)
    p = dict(y=raw["y"].astype(np.float16), x=raw["x"].astype(np.float32),
             weight_b=raw["weight_b"].astype(np.float16), indices=raw["indices"].astype(np.int32),
             weight_a=raw["weight_a"].astype(np.float32))
    check(addlora.add_lora(**p, scale=0.5), p["y"], reference(**p, scale=0.5))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_empty_batch_under_general_rules(rng, lib):
    # torch exports empty tensors with a null data pointer: still "present", not "null".
    p = make_problem(rng, lib, "float16", B=0)
    out = addlora.npu_batch_gather_matmul(**p)
    assert type(out) is type(p["y"]) and tuple(out.shape) == (0, 40)
    assert addlora.npu_batch_gather_matmul_(**p) is p["y"]


def test_strict_accepts_a_cann_problem(rng):
    p = make_problem(rng, "numpy", "float16", B=5, H1=32, H2=16, H3=48, R=16, W=2, L=2)
    call = dict(layer_idx=1, scale=0.5, y_offset=16)
    check(addlora.npu_batch_gather_matmul(**p, **call, strict=True), p["y"], reference(**p, **call))


def test_any_dlpack_producer(rng):
    class Producer:
        """A foreign array type that only speaks DLPack."""
        def __init__(self, a):
            self.a = a
        def __dlpack__(self, stream=None):
            return self.a.__dlpack__()
        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    p = make_problem(rng, "numpy", "float32")
    wrapped = {k: (Producer(v) if v is not None else None) for k, v in p.items()}
    out = addlora.npu_batch_gather_matmul(**wrapped, scale=0.5)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    check(out, p["y"], reference(**p, scale=0.5))
