"""FRACTAL_NZ: nd_to_nz / nz_to_nd against docs/contract.md §5's formula, and NZ weights in the operation."""
import numpy as np
import pytest

import addlora
from lora_reference import as_f64, check, reference
from problems import clone, convert, make_problem, torch

NZ_LIB_DTYPES = [("numpy", "float16"), ("torch", "float16"), ("torch", "bfloat16")]
MATRIX_SHAPES = [(1, 1), (16, 16), (17, 33), (5, 40), (48, 7), (3, 2, 20, 37), (2, 1, 1, 31, 16)]


def packed_by_formula(w):
    """docs/contract.md §5 in numpy, independent of the library: element (m, n) of [..., M, N] at block
    (n // 16, m // 16), position (m % 16, n % 16), zero padding."""
    *lead, M, N = w.shape
    M1, N1 = -(-M // 16), -(-N // 16)
    padded = np.zeros((*lead, M1 * 16, N1 * 16), dtype=w.dtype)
    padded[..., :M, :N] = w
    blocks = padded.reshape(*lead, M1, 16, N1, 16)                     # [..., m//16, m%16, n//16, n%16]
    k = len(lead)
    order = list(range(k)) + [k + 2, k, k + 1, k + 3]                  # -> [..., n//16, m//16, m%16, n%16]
    return blocks.transpose(order)


def bits16(a):
    """The raw 16-bit patterns of a numpy or torch array (bf16 included), as a numpy uint16 array."""
    if hasattr(a, "detach"):
        return a.detach().contiguous().view(torch.int16).numpy().view(np.uint16)
    return np.asarray(a).view(np.uint16)


def random16(rng, shape, lib, dtype):
    return convert(rng.standard_normal(shape), lib, dtype)


@pytest.mark.parametrize("lib,dtype", NZ_LIB_DTYPES)
@pytest.mark.parametrize("shape", MATRIX_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_packing_matches_the_spec_formula_and_round_trips(rng, lib, dtype, shape):
    w = random16(rng, shape, lib, dtype)
    nz = addlora.nd_to_nz(w)
    assert type(nz) is type(w) and nz.dtype == w.dtype
    assert tuple(nz.shape) == addlora.nz_shape(shape) == packed_by_formula(bits16(w)).shape
    assert np.array_equal(bits16(nz), packed_by_formula(bits16(w)))
    back = addlora.nz_to_nd(nz, shape)
    assert type(back) is type(w) and tuple(back.shape) == shape
    assert np.array_equal(bits16(back), bits16(w))
    # flat storage (how CANN clients often hold it) unpacks the same
    assert np.array_equal(bits16(addlora.nz_to_nd(nz.reshape(-1), shape)), bits16(w))


def test_flat_element_formula():
    # docs/contract.md §5's element offset t*(N1*M1*256) + (n//16)*(M1*256) + m*16 + n%16, checked element by element.
    T, M, N = 2, 19, 35
    w = (np.arange(T * M * N) + 1).astype(np.float16).reshape(T, M, N)   # distinct, nonzero values
    flat = addlora.nd_to_nz(w).reshape(-1)
    M1, N1 = 2, 3
    seen = np.zeros(flat.size, bool)
    for t in range(T):
        for m in range(M):
            for n in range(N):
                k = t * (N1 * M1 * 256) + (n // 16) * (M1 * 256) + m * 16 + n % 16
                assert flat[k] == w[t, m, n]
                seen[k] = True
    assert not flat[~seen].any(), "padding must be zero"


def test_strided_source_packs_like_its_copy(rng):
    base = rng.standard_normal((3, 40, 50)).astype(np.float16)
    view = base[::2, 5:30, ::2].transpose(0, 2, 1)                     # [2, 25, 25], no unit stride
    assert not view.flags.c_contiguous
    assert np.array_equal(bits16(addlora.nd_to_nz(view)), bits16(addlora.nd_to_nz(np.ascontiguousarray(view))))


def test_empty_matrix():
    w = np.zeros((2, 0, 5), np.float16)
    assert addlora.nd_to_nz(w).shape == (2, 1, 0, 16, 16)
    assert addlora.nz_to_nd(np.zeros((2, 1, 0, 16, 16), np.float16), (2, 0, 5)).shape == (2, 0, 5)


def test_conversion_errors(rng):
    w = rng.standard_normal((20, 30))
    with pytest.raises(TypeError, match=r"^AddLora: FRACTAL_NZ conversion needs a 16-bit dtype$"):
        addlora.nd_to_nz(w.astype(np.float32))
    with pytest.raises(TypeError, match="weight has dtype float64"):
        addlora.nd_to_nz(w)
    with pytest.raises(ValueError, match=r">= 2 non-negative dims"):
        addlora.nd_to_nz(np.zeros(5, np.float16))
    nz = addlora.nd_to_nz(w.astype(np.float16))
    with pytest.raises(ValueError, match=r"must have shape \[2, 3, 16, 16\] \(or flat \[1536\]\) for logical shape "
                                         r"\[40, 30\] \(got \[2, 2, 16, 16\]\)"):
        addlora.nz_to_nd(nz, (40, 30))
    with pytest.raises(ValueError, match=r"nz in FRACTAL_NZ must be a C-contiguous packed array"):
        addlora.nz_to_nd(np.ascontiguousarray(nz.swapaxes(-1, -2)).swapaxes(-1, -2), (20, 30))
    with pytest.raises(TypeError, match="sequence of integers"):
        addlora.nz_to_nd(nz, (20.0, 30))


# ---- NZ weights in the operation ---------------------------------------------------------------
def nz_call(p):
    """p's weights packed, with the keywords that make the call read them as NZ."""
    kw = dict(weight_b=addlora.nd_to_nz(p["weight_b"]), weight_format="nz", weight_b_shape=tuple(p["weight_b"].shape))
    if p["weight_a"] is not None:
        kw.update(weight_a=addlora.nd_to_nz(p["weight_a"]), weight_a_shape=tuple(p["weight_a"].shape))
    return dict(p, **kw)


CONFIGS = [
    (dict(), dict(layer_idx=1, scale=0.5)),
    (dict(H3=50), dict(scale=0.75, y_offset=13, y_slice_size=11)),
    (dict(with_a=False, R=9), dict(layer_idx=1, scale=0.25, y_offset=20)),
    (dict(B=5, H1=100, R=40, H2=33, H3=40, W=2, L=3), dict(layer_idx=2, scale=0.5, y_offset=7)),
]


@pytest.mark.parametrize("lib,dtype", NZ_LIB_DTYPES)
@pytest.mark.parametrize("shape,call", CONFIGS, ids=["basic", "offset_slice", "no_weight_a", "wide"])
@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_nz_weights_give_the_nd_result_bitwise(rng, lib, dtype, shape, call, precision):
    p = make_problem(rng, lib, dtype, **shape)
    nd = addlora.add_lora(**p, **call, precision=precision)
    nz = addlora.add_lora(**nz_call(p), **call, precision=precision)
    assert np.array_equal(bits16(nz), bits16(nd))
    if precision == "exact":
        check(nz, p["y"], reference(**p, **call))


def test_nz_through_the_npu_names_and_in_place(rng):
    p = make_problem(rng, "torch", "float16")
    q = nz_call(p)
    expected = addlora.npu_batch_gather_matmul(**p, layer_idx=1)
    assert torch.equal(addlora.npu_batch_gather_matmul(**q, layer_idx=1), expected)
    y = clone(p["y"])
    assert addlora.npu_batch_gather_matmul_(**dict(q, y=y), layer_idx=1) is y
    assert torch.equal(y, expected)


def test_nz_flat_storage_and_strict(rng):
    p = make_problem(rng, "numpy", "float16", B=5, H1=32, H2=16, H3=48, R=16, W=2, L=2)
    q = nz_call(p)
    q.update(weight_b=q["weight_b"].reshape(-1), weight_a=q["weight_a"].reshape(-1))
    call = dict(layer_idx=1, scale=0.5, y_offset=32)
    got = addlora.add_lora(**q, **call, strict=True)
    assert np.array_equal(bits16(got), bits16(addlora.add_lora(**p, **call, strict=True)))
    check(got, p["y"], reference(**p, **call))


def test_nz_in_add_lora_multi(rng):
    p = make_problem(rng, "numpy", "float16", H3=60)
    q = nz_call(p)
    nd_slices = [dict(weight_b=p["weight_b"], weight_a=p["weight_a"], scale=0.5),
                 dict(weight_b=p["weight_b"][:, :, :15], weight_a=p["weight_a"], y_offset=30, scale=-1.0)]
    nz_slices = [dict(weight_b=q["weight_b"], weight_a=q["weight_a"], scale=0.5,
                      weight_b_shape=q["weight_b_shape"], weight_a_shape=q["weight_a_shape"]),
                 addlora.LoraSlice(addlora.nd_to_nz(p["weight_b"][:, :, :15]), q["weight_a"], -1.0, 30,
                                   weight_b_shape=(3, 2, 15, 6), weight_a_shape=q["weight_a_shape"])]
    args = (p["y"], p["x"], p["indices"])
    nd = addlora.add_lora_multi(*args, nd_slices, layer_idx=1)
    nz = addlora.add_lora_multi(*args, nz_slices, layer_idx=1, weight_format="nz")
    assert np.array_equal(bits16(nz), bits16(nd))
    with pytest.raises(ValueError, match=r"weight_format='nz' needs slices\[0\]\.weight_a_shape"):
        addlora.add_lora_multi(*args, [dict(nz_slices[0], weight_a_shape=None)], weight_format="nz")


def test_nz_keyword_errors(rng):
    p = make_problem(rng, "numpy", "float16")
    q = nz_call(p)
    with pytest.raises(ValueError, match=r"^AddLora: weight_format must be 'nd' or 'nz' \(got 'NZ'\)$"):
        addlora.add_lora(**dict(q, weight_format="NZ"))
    with pytest.raises(ValueError, match=r"weight_format='nz' needs weight_b_shape \(the logical ND shape"):
        addlora.add_lora(**dict(q, weight_b_shape=None))
    with pytest.raises(ValueError, match=r"weight_b_shape / weight_a_shape are only for weight_format='nz'"):
        addlora.add_lora(**p, weight_b_shape=p["weight_b"].shape)
    with pytest.raises(ValueError, match=r"weight_a_shape is given but weight_a is None"):
        addlora.add_lora(**dict(q, weight_a=None))
    # a logical shape that does not match the packed array (H2 20 -> 40 needs more blocks)
    with pytest.raises(ValueError, match=r"^AddLora: weight_b in FRACTAL_NZ must have shape \[3, 2, 1, 3, 16, 16\] "
                                         r"\(or flat \[4608\]\) for logical shape \[3, 2, 40, 6\] \(got \[3, 2, 1, 2, 16, 16\]\)$"):
        addlora.add_lora(**dict(q, weight_b_shape=(3, 2, 40, 6)))
    # a logical shape with the same blocks but the wrong remainder: the library's shape rules catch it
    with pytest.raises(ValueError, match=r"weightA dim 2 must equal weightB dim 3 \(R\) \(weightA=6, R=7\)"):
        addlora.add_lora(**dict(q, weight_b_shape=(3, 2, 20, 7)))
    with pytest.raises(TypeError, match=r"weightB in FRACTAL_NZ must be a 16-bit dtype \(got FLOAT\)"):
        addlora.add_lora(**dict(q, weight_b=q["weight_b"].astype(np.float32)))
    with pytest.raises(ValueError, match=r"weight_a in FRACTAL_NZ must be a C-contiguous packed array"):
        addlora.add_lora(**dict(q, weight_a=np.ascontiguousarray(q["weight_a"].swapaxes(-1, -2)).swapaxes(-1, -2)))
