"""Per-adapter ranks= and scales= (the library's extension of aclnnAddLora): against the fp64
oracle (clamping included), equal to weights sliced to the rank (bitwise), int64 ranks, strided
and zero-copy arrays, add_lora_multi's per-slice keys, and every error."""
import numpy as np
import pytest

import addlora
from lora_reference import as_f64, check, combine, reference, reference_fast
from problems import LIB_DTYPES, clone, convert, convert_index, make_problem, torch

W, R = 5, 6
RANKS = [0, 3, R, R + 3, -2]          # nothing, partial, all, beyond R (-> R), negative (-> 0)
CLAMPED = [0, 3, R, R, 0]
SCALES = [0.5, -1.25, 2.0, 0.75, 3.0]
# every adapter twice, a row with index W and one with -1 (no adapter)
INDICES = [0, 1, 2, 3, 4, W, -1, 4, 3, 2, 1, 0]
CALL = dict(layer_idx=1, scale=0.5, y_offset=7, y_slice_size=17)


def problem(rng, lib, dtype, with_a=True):
    """B=12, H1=24 (R without weight_a), H2=20, H3=40, R=6, W=5, L=2."""
    p = make_problem(rng, lib, dtype, B=len(INDICES), R=R, W=W, with_a=with_a)
    p["indices"] = convert_index(np.array(INDICES), lib)
    return p


def array(values, lib, dtype):
    """numpy array or torch tensor of `dtype` ("int32", "int64", "float32", ...)."""
    a = np.array(values, dtype=dtype)
    if lib == "numpy":
        return a
    if torch is None:
        pytest.skip("torch is not installed")
    return torch.from_numpy(a)


def bits(a):
    return as_f64(a).tobytes()


def sliced(p, r):
    """The problem with every adapter's weights cut to their first r ranks (strided views)."""
    if p["weight_a"] is None:
        return dict(p, weight_b=p["weight_b"][..., :r], x=p["x"][:, :r])
    return dict(p, weight_b=p["weight_b"][..., :r], weight_a=p["weight_a"][:, :, :r])


# ---- against the oracle -----------------------------------------------------------------------
@pytest.mark.parametrize("lib,dtype", LIB_DTYPES)
@pytest.mark.parametrize("given", ["ranks", "scales", "both"])
@pytest.mark.parametrize("with_a", [True, False], ids=["with_a", "no_a"])
def test_oracle(rng, lib, dtype, given, with_a):
    p = problem(rng, lib, dtype, with_a)
    kw = {}
    if given in ("ranks", "both"):
        kw["ranks"] = array(RANKS, lib, "int32")
    if given in ("scales", "both"):
        kw["scales"] = array(SCALES, lib, "float32")
    y0 = clone(p["y"])
    out = addlora.add_lora(**p, **CALL, **kw)
    assert bits(p["y"]) == bits(y0), "y was modified"
    check(out, y0, reference(**p, **CALL, **kw))
    # and it is not the result without them
    with pytest.raises(AssertionError):
        check(out, y0, reference(**p, **CALL))


@pytest.mark.parametrize("lib,dtype", [("numpy", "float16"), ("torch", "bfloat16"), ("torch", "float32")])
def test_oracle_fast_precision(rng, lib, dtype):
    p = problem(rng, lib, dtype)
    kw = dict(ranks=array(RANKS, lib, "int32"), scales=array(SCALES, lib, "float32"))
    out = addlora.add_lora(**p, **CALL, **kw, precision="fast")
    check(out, p["y"], reference_fast(**p, **CALL, **kw))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_every_entry_point(rng, lib):
    p = problem(rng, lib, "float16")
    kw = dict(ranks=array(RANKS, lib, "int32"), scales=array(SCALES, lib, "float32"))
    y0 = clone(p["y"])
    # torch_npu names: positional torch_npu parameters, default scale 1e-3, keyword-only additions
    expected = reference(**p, **kw, scale=1e-3)
    got = addlora.npu_batch_gather_matmul(p["y"], p["x"], p["weight_b"], p["indices"], p["weight_a"], **kw)
    check(got, y0, expected)
    y = clone(p["y"])
    assert addlora.npu_batch_gather_matmul_(y, p["x"], p["weight_b"], p["indices"], p["weight_a"], **kw) is y
    assert bits(y) == bits(got)
    out = clone(p["y"]) * 0
    assert addlora.add_lora(**p, **kw, scale=1e-3, out=out) is out
    assert bits(out) == bits(got)
    with pytest.raises(TypeError):  # keyword-only: no 10th positional parameter
        addlora.npu_batch_gather_matmul(*(p[k] for k in ("y", "x", "weight_b", "indices", "weight_a")),
                                        0, 1e-3, 0, -1, kw["ranks"])


# ---- equivalence with sliced tensors (bitwise, fp32) ----------------------------------------
@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("with_a", [True, False], ids=["with_a", "no_a"])
def test_rank_limit_equals_sliced_weights(rng, lib, with_a):
    p = problem(rng, lib, "float32", with_a)
    for r in range(1, R + 1):  # the same limit for every adapter == weights [..., :r]
        got = addlora.add_lora(**p, **CALL, ranks=array([r] * W, lib, "int32"))
        assert bits(got) == bits(addlora.add_lora(**sliced(p, r), **CALL)), f"rank {r}"
    # different limits: each adapter's rows equal the call with every adapter cut to its rank
    got = as_f64(addlora.add_lora(**p, **CALL, ranks=array(RANKS, lib, "int32")))
    idx = np.array(INDICES)
    y = as_f64(p["y"])
    for i, r in enumerate(CLAMPED):
        rows = idx == i
        want = y if r == 0 else as_f64(addlora.add_lora(**sliced(p, r), **CALL))
        assert got[rows].tobytes() == want[rows].tobytes(), f"adapter {i} (rank {r})"
    no_adapter = (idx < 0) | (idx >= W)
    assert got[no_adapter].tobytes() == y[no_adapter].tobytes()


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_neutral_values_and_scale_factor(rng, lib):
    p = problem(rng, lib, "float32")
    plain = bits(addlora.add_lora(**p, **CALL))
    assert bits(addlora.add_lora(**p, **CALL, ranks=array([R, R + 1, 2**31 - 1, R, 99], lib, "int32"))) == plain
    assert bits(addlora.add_lora(**p, **CALL, scales=array([1.0] * W, lib, "float32"))) == plain
    # scale * scales[i]: a common factor moved between the two is the same result
    call = dict(CALL, scale=1.0)
    assert bits(addlora.add_lora(**p, **call, scales=array([0.375] * W, lib, "float32"))) == \
        bits(addlora.add_lora(**p, **dict(CALL, scale=0.375)))
    # rank 0 or scale 0 for every adapter: out == y
    for kw in (dict(ranks=array([0] * W, lib, "int32")), dict(scales=array([0.0] * W, lib, "float32"))):
        assert np.array_equal(as_f64(addlora.add_lora(**p, **CALL, **kw)), as_f64(p["y"]))


# ---- int64 ranks ------------------------------------------------------------------------------
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_int64_ranks_are_converted(rng, lib):
    p = problem(rng, lib, "float16")
    want = bits(addlora.add_lora(**p, **CALL, ranks=array(RANKS, lib, "int32")))
    assert bits(addlora.add_lora(**p, **CALL, ranks=array(RANKS, lib, "int64"))) == want
    if lib == "torch":  # torch's default integer dtype
        assert bits(addlora.add_lora(**p, **CALL, ranks=torch.tensor(RANKS))) == want
    strided = array([[r, 7] for r in RANKS], lib, "int64")[:, 0]  # stride 2
    assert bits(addlora.add_lora(**p, **CALL, ranks=strided)) == want
    # the int32 limits themselves are fine (and clamp)
    limits = [-2**31, 3, 2**31 - 1, R, 0]
    assert bits(addlora.add_lora(**p, **CALL, ranks=array(limits, lib, "int64"))) == \
        bits(addlora.add_lora(**p, **CALL, ranks=array(limits, lib, "int32")))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("bad", [2**31, -2**31 - 1, 2**62])
def test_int64_ranks_beyond_int32(rng, lib, bad):
    p = problem(rng, lib, "float16")
    out = clone(p["y"]) * 0
    with pytest.raises(ValueError, match=rf"^AddLora: ranks\[2\] = {bad} does not fit int32 "
                                         r"\(int64 ranks are converted to int32\)$"):
        addlora.add_lora(**p, ranks=array([1, 2, bad, 4, 5], lib, "int64"), out=out)
    assert not as_f64(out).any()


# ---- memory: strides, zero copy -------------------------------------------------------------
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_strided_arrays(rng, lib):
    p = problem(rng, lib, "float16")
    want = bits(addlora.add_lora(**p, **CALL, ranks=array(RANKS, lib, "int32"), scales=array(SCALES, lib, "float32")))
    ranks_base = array([[r, -1, 77] for r in RANKS], lib, "int32")              # column 0: stride 3
    scales_base = array([SCALES, [9.0] * W], lib, "float32").T                   # transposed: stride 2
    got = addlora.add_lora(**p, **CALL, ranks=ranks_base[:, 0], scales=scales_base[:, 0])
    assert bits(got) == want
    if lib == "numpy":
        ranks_base.setflags(write=False)  # read-only inputs are fine
        assert bits(addlora.add_lora(**p, **CALL, ranks=ranks_base[:, 0], scales=scales_base[:, 0])) == want
    else:
        scales = scales_base[:, 0].clone().requires_grad_(True)  # read through detach(), no copy
        assert bits(addlora.add_lora(**p, **CALL, ranks=ranks_base[:, 0], scales=scales)) == want


@pytest.mark.parametrize("name", ["ranks", "scales"])
def test_the_library_sees_the_callers_memory(rng, name):
    """out overlapping ranks / scales is detected: the library reads the arrays where they live."""
    p = problem(rng, "numpy", "float32")
    out = np.zeros(p["y"].shape, np.float32)
    alias = out.reshape(-1).view(np.int32 if name == "ranks" else np.float32)[5:5 + W]
    with pytest.raises(ValueError, match=rf"^AddLora: out overlaps {name} in memory"):
        addlora.add_lora(**p, out=out, **{name: alias})
    disjoint = np.zeros(out.size + W, np.float32)
    out = disjoint[:out.size].reshape(out.shape)
    alias = disjoint[out.size:].view(np.int32 if name == "ranks" else np.float32)
    alias[:] = [2] * W if name == "ranks" else [0.5] * W
    addlora.add_lora(**p, out=out, **{name: alias})  # adjacent but disjoint: fine
    check(out, p["y"], reference(**p, **{name: alias}))


def test_negative_and_zero_strides_are_rejected(rng):
    p = problem(rng, "numpy", "float32")
    ranks = np.array(RANKS, np.int32)
    with pytest.raises(ValueError, match=r"^AddLora: ranks stride of dim 0 must be >= 1 \(stride=-1, dim=5\)$"):
        addlora.add_lora(**p, ranks=ranks[::-1])
    with pytest.raises(ValueError, match=r"^AddLora: scales stride of dim 0 must be >= 1 \(stride=0, dim=5\)$"):
        addlora.add_lora(**p, scales=np.broadcast_to(np.float32(0.5), (W,)))


# ---- add_lora_multi: per-slice keys ------------------------------------------------------------
def multi_problem(rng, lib, dtype):
    """q (R=6) with ranks, k (R=8) with scales, v (no weight_a, R=H1=24) with both; W=3, L=2."""
    t = lambda a: convert(a, lib, dtype)  # noqa: E731
    B, H1 = 7, 24
    y, x = t(rng.standard_normal((B, 64))), t(rng.standard_normal((B, H1)))
    indices = convert_index(np.array([0, 3, -1, 1, 2, 2, 0]), lib)

    def pair(H2, r, with_a=True):
        b = t(rng.standard_normal((3, 2, H2, r)) / np.sqrt(r))
        return b, (t(rng.standard_normal((3, 2, r, H1)) / np.sqrt(H1)) if with_a else None)

    (qb, qa), (kb, ka), (vb, _) = pair(20, 6), pair(10, 8), pair(12, H1, with_a=False)
    slices = [dict(weight_b=qb, weight_a=qa, scale=0.5, ranks=array([2, 6, 0], lib, "int32")),
              dict(weight_b=kb, weight_a=ka, scale=-0.25, y_offset=24, y_slice_size=9,
                   scales=array([0.5, -2.0, 1.5], lib, "float32")),
              dict(weight_b=vb, scale=2.0, y_offset=40, ranks=array([24, 5, 30], lib, "int64"),
                   scales=array([1.0, 0.25, -0.5], lib, "float32"))]
    return y, x, indices, slices


def single(s):
    return dict(weight_b=s["weight_b"], weight_a=s.get("weight_a"), scale=s.get("scale", 1.0),
                y_offset=s.get("y_offset", 0), y_slice_size=s.get("y_slice_size", -1),
                ranks=s.get("ranks"), scales=s.get("scales"))


@pytest.mark.parametrize("lib,dtype", [("numpy", "float16"), ("numpy", "float32"), ("torch", "bfloat16"),
                                       ("torch", "float32")])
def test_multi_per_slice_keys(rng, lib, dtype):
    y, x, indices, slices = multi_problem(rng, lib, dtype)
    got = addlora.add_lora_multi(y, x, indices, slices, layer_idx=1)
    check(got, y, combine(y, [reference(y, x, indices=indices, layer_idx=1, **single(s)) for s in slices]))
    consecutive = addlora.add_lora(y, x, indices=indices, layer_idx=1, **single(slices[0]))
    for s in slices[1:]:
        addlora.add_lora(consecutive, x, indices=indices, layer_idx=1, out=consecutive, **single(s))
    assert bits(got) == bits(consecutive)
    as_objects = [addlora.LoraSlice(**slices[0]), addlora.LoraSlice(**slices[1]), slices[2]]
    assert bits(addlora.add_lora_multi(y, x, indices, as_objects, layer_idx=1)) == bits(got)


def test_multi_errors_name_the_slice(rng):
    y, x, indices, slices = multi_problem(rng, "numpy", "float16")
    bad = [slices[0], dict(slices[1], scales=np.ones(2, np.float32)), slices[2]]
    with pytest.raises(ValueError, match=r"^AddLora: slice 1: scales must be 1-D of W=3 elements \(got 1-D, dim 0 = 2\)$"):
        addlora.add_lora_multi(y, x, indices, bad)
    bad = [slices[0], slices[1], dict(slices[2], ranks=np.ones(3, np.int16))]
    with pytest.raises(TypeError, match=r"^AddLora: slices\[2\]\.ranks has dtype int16; supported: int32"):
        addlora.add_lora_multi(y, x, indices, bad)
    bad = [dict(slices[0], ranks=np.array([1, 2**40, 3]))]
    with pytest.raises(ValueError, match=r"^AddLora: slices\[0\]\.ranks\[1\] = 1099511627776 does not fit int32"):
        addlora.add_lora_multi(y, x, indices, bad)
    with pytest.raises(TypeError, match=r"^AddLora: slices\[0\]\.ranks must be a 1-D array"):
        addlora.add_lora_multi(y, x, indices, [dict(slices[0], ranks=[1, 2, 3])])


# ---- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name,dtype", [("ranks", "int32"), ("ranks", "int64"), ("scales", "float32")])
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_wrong_length_or_rank(rng, lib, name, dtype):
    p = problem(rng, lib, "float16")
    out = clone(p["y"]) * 0
    for shape, got in [((W - 1,), "1-D, dim 0 = 4"), ((W + 1,), "1-D, dim 0 = 6"), ((1, W), "2-D, dim 0 = 1"),
                       ((), "0-D, dim 0 = -1")]:
        a = array(np.ones(shape), lib, dtype)
        with pytest.raises(ValueError, match=rf"^AddLora: {name} must be 1-D of W=5 elements \(got {got}\)$"):
            addlora.add_lora(**p, out=out, **{name: a})
    assert not as_f64(out).any(), "nothing is written when validation fails"


@pytest.mark.parametrize("name,dtype,message", [
    ("ranks", "float32", r"ranks dtype must be INT32 \(got FLOAT\)"),
    ("ranks", "float16", r"ranks dtype must be INT32 \(got FLOAT16\)"),
    ("ranks", "int16", r"ranks has dtype int16; supported: int32 \(int64 is converted\)"),
    ("ranks", "uint32", r"ranks has dtype uint32; supported: int32 \(int64 is converted\)"),
    ("scales", "float64", r"scales has dtype float64; supported: float32"),
    ("scales", "float16", r"scales dtype must be FLOAT \(got FLOAT16\)"),
    ("scales", "int32", r"scales dtype must be FLOAT \(got INT32\)"),
    ("scales", "int64", r"scales dtype must be FLOAT \(got INT64\)"),
])
def test_wrong_dtype(rng, name, dtype, message):
    p = problem(rng, "numpy", "float16")
    with pytest.raises(TypeError, match="^AddLora: " + message + "$"):
        addlora.add_lora(**p, **{name: np.ones(W, dtype)})


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_wrong_dtype_torch(rng):
    p = problem(rng, "torch", "float32")
    with pytest.raises(TypeError, match=r"^AddLora: scales dtype must be FLOAT \(got BF16\)$"):
        addlora.add_lora(**p, scales=torch.ones(W, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match=r"^AddLora: ranks has dtype int16; supported: int32"):
        addlora.add_lora(**p, ranks=torch.ones(W, dtype=torch.int16))


@pytest.mark.parametrize("value", [[1, 2, 3, 4, 5], (1.0,) * W, 3])
def test_not_an_array(rng, value):
    p = problem(rng, "numpy", "float16")
    with pytest.raises(TypeError, match=r"^AddLora: ranks must be a 1-D array .* np\.int32"):
        addlora.add_lora(**p, ranks=value)
    with pytest.raises(TypeError, match=r"^AddLora: scales must be a 1-D array .* np\.float32"):
        addlora.npu_batch_gather_matmul(**p, scales=value)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_strict_rejects_them(rng, lib):
    p = make_problem(rng, lib, "float16", B=4, H1=32, H2=16, H3=32, R=16, W=2, L=1)
    out = clone(p["y"]) * 0
    addlora.add_lora(**p, strict=True, out=out)  # control: the problem itself is a CANN one
    check(out, p["y"], reference(**p))
    out = out * 0
    cases = [("ranks", array([16, 8], lib, "int32")), ("ranks", array([16, 8], lib, "int64")),
             ("scales", array([1.0, 0.5], lib, "float32"))]
    for name, a in cases:
        msg = rf"^AddLora: {name} is not an input of aclnnAddLora \(use Rules::general\)$"
        for fn in (addlora.add_lora, addlora.npu_batch_gather_matmul):
            with pytest.raises(ValueError, match=msg):
                fn(**p, strict=True, **{name: a})
        with pytest.raises(ValueError, match=msg):
            addlora.add_lora(**p, strict=True, out=out, **{name: a})
        pair = dict(weight_b=p["weight_b"], weight_a=p["weight_a"])
        with pytest.raises(ValueError, match=msg):  # one slice: the library names no slice
            addlora.add_lora_multi(p["y"], p["x"], p["indices"], [dict(pair, **{name: a})], strict=True)
        with pytest.raises(ValueError, match=msg.replace("AddLora: ", "AddLora: slice 1: ")):
            addlora.add_lora_multi(p["y"], p["x"], p["indices"],
                                   [dict(pair, y_slice_size=8), dict(pair, y_offset=16, **{name: a})], strict=True)
    assert not as_f64(out).any()
