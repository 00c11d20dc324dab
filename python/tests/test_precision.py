"""precision="exact" | "fast": two names of the one contract, checked against the fp64 oracle."""
import numpy as np
import pytest

import addlora
from lora_reference import as_f64, check, reference, reference_fast
from problems import LIB_DTYPES, clone, make_problem

CALL = dict(layer_idx=1, scale=0.5, y_offset=13, y_slice_size=17)
# unaligned, and long dot products (H1 = 1000, R = 300) where fp32 sums drift measurably
SHAPES = [dict(H3=50), dict(B=5, H1=1000, R=300, H2=40, H3=60, W=2, L=2)]


@pytest.mark.parametrize("lib,dtype", LIB_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=["small", "long_sums"])
def test_exact_is_the_default_and_meets_the_contract(rng, lib, dtype, shape):
    p = make_problem(rng, lib, dtype, **shape)
    got = addlora.add_lora(**p, **CALL, precision="exact")
    check(got, p["y"], reference(**p, **CALL))
    assert np.array_equal(as_f64(got), as_f64(addlora.add_lora(**p, **CALL)))


@pytest.mark.parametrize("lib,dtype", LIB_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=["small", "long_sums"])
def test_fast_is_the_same_contract_bit_for_bit(rng, lib, dtype, shape):
    p = make_problem(rng, lib, dtype, **shape)
    fast = addlora.add_lora(**p, **CALL, precision="fast")
    check(fast, p["y"], reference(**p, **CALL))
    assert np.array_equal(as_f64(fast), as_f64(addlora.add_lora(**p, **CALL, precision="exact")))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_fast_through_the_npu_names(rng, lib):
    p = make_problem(rng, lib, "float16")
    expected = reference_fast(**p, **CALL)
    check(addlora.npu_batch_gather_matmul(**p, **CALL, precision="fast"), p["y"], expected)
    y0 = clone(p["y"])
    assert addlora.npu_batch_gather_matmul_(**p, **CALL, precision="fast") is p["y"]
    check(p["y"], y0, expected)


def test_fast_without_weight_a(rng):
    p = make_problem(rng, "numpy", "float32", with_a=False, R=24)
    call = dict(layer_idx=1, scale=-0.75, y_offset=4)
    check(addlora.add_lora(**p, **call, precision="fast"), p["y"], reference_fast(**p, **call))


def test_the_contract_is_not_vacuous(rng):
    # The bound must still catch a wrong answer: a 1e-3 relative error is far outside it.
    p = make_problem(rng, "numpy", "float32", B=5, H1=1000, R=300, H2=40, H3=60, W=2, L=2)
    got = addlora.add_lora(**p, **CALL, precision="fast")
    written = reference_fast(**p, **CALL)[2]
    got[written] *= np.float32(1 + 1e-3)
    with pytest.raises(AssertionError):
        check(got, p["y"], reference_fast(**p, **CALL))


@pytest.mark.parametrize("precision", ["exact", "fast"])
def test_bitwise_identical_across_thread_counts(rng, precision):
    n = addlora.num_threads()
    p = make_problem(rng, "numpy", "float16", B=64, H1=256, R=16, H2=128, H3=160, W=4, L=1)
    try:
        results = []
        for threads in (1, 2, 3):
            addlora.set_num_threads(threads)
            results.append(addlora.add_lora(**p, scale=0.5, y_offset=16, precision=precision))
    finally:
        addlora.set_num_threads(n)
    assert all(np.array_equal(results[0].view(np.uint16), r.view(np.uint16)) for r in results[1:])


def test_bad_precision(rng):
    p = make_problem(rng, "numpy", "float16")
    for bad in ("double", "EXACT", None, 1):
        with pytest.raises(ValueError, match=r"^AddLora: precision must be 'exact' or 'fast'"):
            addlora.add_lora(**p, precision=bad)


def test_strict_accepts_both_names(rng):
    p = make_problem(rng, "numpy", "float16", B=5, H1=32, H2=16, H3=48, R=16, W=2, L=2)
    exact = addlora.add_lora(**p, strict=True, precision="exact")
    check(exact, p["y"], reference(**p))
    assert np.array_equal(exact.view(np.uint16), addlora.add_lora(**p, strict=True, precision="fast").view(np.uint16))
