"""Every error path: the exception type and the library's message (parameter, value, rule)."""
import numpy as np
import pytest

import addlora
from problems import make_problem, torch

# B=7, H1=24, H2=20, H3=40, R=6, W=3, L=2 (problems.random_inputs defaults)


@pytest.fixture
def p(rng):
    return make_problem(rng, "numpy", "float16")


def raises(exc, match, fn=addlora.npu_batch_gather_matmul, **kw):
    with pytest.raises(exc, match=match) as info:
        fn(**kw)
    assert str(info.value).startswith("AddLora: ")
    return info


# ---- missing tensors: ValueError ------------------------------------------------------------
@pytest.mark.parametrize("name,label", [("y", "y"), ("x", "x"), ("weight_b", "weightB"), ("indices", "indices")])
def test_none_for_a_required_tensor(p, name, label):
    raises(ValueError, f"^AddLora: {label} must not be null$", **dict(p, **{name: None}))


def test_none_out_argument_allocates(p):
    assert addlora.add_lora(**p, out=None).shape == p["y"].shape


# ---- dtypes: TypeError ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["y", "x", "weight_b", "weight_a"])
def test_float64_tensor(p, name):
    raises(TypeError, f"{name} has dtype float64; supported", **dict(p, **{name: p[name].astype(np.float64)}))


@pytest.mark.parametrize("dtype", [np.int8, np.uint32, np.complex64, np.bool_])
def test_unsupported_index_dtype(p, dtype):
    raises(TypeError, "indices has dtype", **dict(p, indices=p["indices"].astype(dtype)))


def test_float_indices(p):
    raises(TypeError, r"indices dtype must be INT32 or INT64 \(got FLOAT16\)",
           **dict(p, indices=p["indices"].astype(np.float16)))


def test_integer_weights(p):
    raises(TypeError, r"weightB dtype must be FLOAT16, BF16 or FLOAT \(got INT32\)",
           **dict(p, weight_b=p["weight_b"].astype(np.int32)))


def test_out_dtype_differs_from_y(p):
    out = np.empty(p["y"].shape, np.float32)
    raises(TypeError, r"out dtype must equal y dtype \(out=FLOAT, y=FLOAT16\)", addlora.add_lora, **p, out=out)


def test_strict_rejects_bf16_fp32_and_int64(rng):
    p = make_problem(rng, "torch", "bfloat16", B=4, H1=32, H2=16, H3=32, R=16)
    raises(TypeError, r"y dtype must be FLOAT16 \(got BF16\)", **p, strict=True)
    p = make_problem(rng, "numpy", "float32", B=4, H1=32, H2=16, H3=32, R=16)
    raises(TypeError, r"y dtype must be FLOAT16 \(got FLOAT\)", **p, strict=True)
    p = make_problem(rng, "numpy", "float16", index_dtype="int64", B=4, H1=32, H2=16, H3=32, R=16)
    raises(TypeError, r"indices dtype must be INT32 \(got INT64\)", **p, strict=True)


# ---- ranks and shapes: ValueError -----------------------------------------------------------
def test_ranks(p):
    raises(ValueError, r"y must be 2-D \(got 1-D\)", **dict(p, y=p["y"][0]))
    raises(ValueError, r"x must be 2-D \(got 3-D\)", **dict(p, x=p["x"][None]))
    raises(ValueError, r"weightB must be 4-D \(got 3-D\)", **dict(p, weight_b=p["weight_b"][0]))
    raises(ValueError, r"indices must be 1-D \(got 2-D\)", **dict(p, indices=p["indices"][None]))
    raises(ValueError, r"weightA must be 4-D \(got 3-D\)", **dict(p, weight_a=p["weight_a"][0]))
    raises(ValueError, r"weight_a must have at most 8 dimensions \(got 9\)",
           **dict(p, weight_a=p["weight_a"].reshape(p["weight_a"].shape + (1,) * 5)))


def test_shape_mismatches(p):
    raises(ValueError, r"out shape must equal y shape \(out=\[7, 39\], y=\[7, 40\]\)", addlora.add_lora,
           **p, out=np.empty((7, 39), np.float16))
    raises(ValueError, r"x dim 0 must equal y dim 0 \(B\) \(x=6, y=7\)", **dict(p, x=p["x"][:6]))
    raises(ValueError, r"indices dim 0 must equal y dim 0 \(B\) \(indices=5, y=7\)", **dict(p, indices=p["indices"][:5]))
    raises(ValueError, r"weightB dim 2 \(H2\) must be <= y dim 1 \(H3\) \(H2=20, H3=19\)", **dict(p, y=p["y"][:, :19]))
    raises(ValueError, r"weightA dims 0,1 must equal weightB dims 0,1 \(W, L\)", **dict(p, weight_a=p["weight_a"][:2]))
    raises(ValueError, r"weightA dim 2 must equal weightB dim 3 \(R\) \(weightA=5, R=6\)",
           **dict(p, weight_a=p["weight_a"][:, :, :5]))
    raises(ValueError, r"weightA dim 3 must equal x dim 1 \(H1\) \(weightA=23, H1=24\)",
           **dict(p, weight_a=p["weight_a"][..., :23]))
    raises(ValueError, r"without weightA, x dim 1 \(H1\) must equal weightB dim 3 \(R\) \(H1=24, R=6\)",
           **dict(p, weight_a=None))


def test_empty_tensors(p):
    raises(ValueError, r"weightB must not be empty \(dim 0 is 0\)",
           **dict(p, weight_b=p["weight_b"][:0], weight_a=p["weight_a"][:0]))
    raises(ValueError, r"y must not be empty \(dim 0 is 0\)",
           **dict(p, y=p["y"][:0], x=p["x"][:0], indices=p["indices"][:0]), strict=True)


# ---- attributes: ValueError ---------------------------------------------------------------------
@pytest.mark.parametrize("layer", [-1, 2])
def test_layer_idx_range(p, layer):
    raises(ValueError, rf"layerIdx must be in \[0, L\) \(layerIdx={layer}, L=2\)", **p, layer_idx=layer)


@pytest.mark.parametrize("offset", [-1, 40])
def test_y_offset_range(p, offset):
    raises(ValueError, rf"yOffset must be in \[0, H3\) \(yOffset={offset}, H3=40\)", **p, y_offset=offset)


def test_y_offset_plus_h2(p):
    raises(ValueError, r"yOffset \+ H2 must be <= H3 \(yOffset=21, H2=20, H3=40\)", **p, y_offset=21)


@pytest.mark.parametrize("size", [-2, 21])
def test_y_slice_size_range(p, size):
    raises(ValueError, rf"ySliceSize must be -1 or in \[0, H2\] \(ySliceSize={size}, H2=20\)", **p, y_slice_size=size)


def test_strict_limits(rng):
    p = make_problem(rng, "numpy", "float16")  # H1=24: not a multiple of 16
    raises(ValueError, r"R must be a multiple of 16 \(R=6\)", **p, strict=True)
    p = make_problem(rng, "numpy", "float16", H1=24, R=16, H2=16, H3=32)
    raises(ValueError, r"H1 must be a multiple of 16 \(H1=24\)", **p, strict=True)
    p = make_problem(rng, "numpy", "float16", B=2, H1=16, R=144, H2=16, H3=16, W=1, L=1)
    raises(ValueError, r"R must be <= 128 when weightA is given \(R=144\)", **p, strict=True)
    p = make_problem(rng, "numpy", "float16", B=2, H1=16, R=16, H2=16, H3=16, W=33, L=1)
    raises(ValueError, r"W \(adapters\) must be <= 32 \(W=33\)", **p, strict=True)


def test_non_integer_attributes(p):
    raises(TypeError, "layer_idx, y_offset and y_slice_size must be integers", **p, layer_idx=1.0)
    raises(TypeError, "must be integers", **p, y_offset="3")
    raises(TypeError, "must be integers", **p, y_slice_size=2.5)


# ---- memory: strides and aliasing: ValueError ---------------------------------------------
def test_negative_and_zero_strides_are_rejected_not_copied(p):
    raises(ValueError, r"x stride of dim 1 must be >= 1 \(stride=-1, dim=24\)", **dict(p, x=p["x"][:, ::-1]))
    bx = np.broadcast_to(p["x"][:1], p["x"].shape)  # stride 0 in dim 0
    raises(ValueError, r"x stride of dim 0 must be >= 1 \(stride=0, dim=7\)", **dict(p, x=bx))


def test_out_overlapping_an_input(p):
    base = np.zeros((7, 41), np.float16)
    y = base[:, :40]
    y[:] = p["y"]
    raises(ValueError, r"out overlaps y in memory \(only out == y, the identical view, may alias\)",
           addlora.add_lora, **dict(p, y=y), out=base[:, 1:])
    xs = np.zeros((7, 40), np.float16)
    raises(ValueError, r"out overlaps x in memory", addlora.add_lora, **dict(p, x=xs[:, :24]), out=xs)


def test_out_overlapping_itself(p):
    out = np.lib.stride_tricks.as_strided(np.empty(80, np.float16), shape=(7, 40), strides=(2, 2))
    raises(ValueError, r"out view overlaps itself", addlora.add_lora, **p, out=out)


def test_read_only_out(p):
    y = p["y"].copy()
    y.setflags(write=False)
    raises(ValueError, "y is read-only", addlora.npu_batch_gather_matmul_, **dict(p, y=y))
    raises(ValueError, "out is read-only", addlora.add_lora, **p, out=y)


def test_read_only_inputs_are_fine(p):
    for k in ("y", "x", "weight_b", "indices", "weight_a"):
        p[k].setflags(write=False)
    assert addlora.npu_batch_gather_matmul(**p).shape == (7, 40)


def test_not_an_array(p):
    with pytest.raises(TypeError):
        addlora.npu_batch_gather_matmul(**dict(p, x=[[1.0] * 24] * 7))


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_torch_errors_carry_the_same_messages(rng):
    p = make_problem(rng, "torch", "float16")
    raises(ValueError, r"yOffset \+ H2 must be <= H3", **p, y_offset=21)
    raises(TypeError, "x has dtype float64", **dict(p, x=p["x"].double()))
    raises(ValueError, r"out overlaps x", addlora.add_lora, **dict(p, x=p["y"][:, :24]), out=p["y"])


def dlpack_capsule(array, device_type):
    """A raw DLPack capsule over `array`'s memory that claims to live on `device_type`."""
    import ctypes

    class Device(ctypes.Structure):
        _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]

    class DType(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]

    class Tensor(ctypes.Structure):
        _fields_ = [("data", ctypes.c_void_p), ("device", Device), ("ndim", ctypes.c_int32),
                    ("dtype", DType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                    ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]

    class Managed(ctypes.Structure):
        _fields_ = [("dl_tensor", Tensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]

    shape = (ctypes.c_int64 * array.ndim)(*array.shape)
    strides = (ctypes.c_int64 * array.ndim)(*[s // array.itemsize for s in array.strides])
    m = Managed(Tensor(array.ctypes.data, Device(device_type, 0), array.ndim, DType(2, 16, 1), shape, strides, 0),
                None, None)
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return new(ctypes.addressof(m), b"dltensor", None), (m, shape, strides, array)  # keep-alive


def test_non_cpu_memory(p):
    capsule, keep = dlpack_capsule(p["x"], device_type=2)  # kDLCUDA
    raises(TypeError, r"^AddLora: x must be in CPU memory \(DLPack device type 2\)$", **dict(p, x=capsule))
    capsule, keep = dlpack_capsule(p["x"], device_type=1)  # control: the same capsule on the CPU works
    assert addlora.npu_batch_gather_matmul(**dict(p, x=capsule)).shape == (7, 40)
