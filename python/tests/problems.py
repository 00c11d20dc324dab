"""Problem generation shared by the tests: random inputs as numpy arrays or torch tensors."""
import numpy as np
import pytest

try:
    import torch
except ImportError:  # the numpy tests still run
    torch = None

# (library, dtype) pairs the package supports; bfloat16 exists only in torch.
LIB_DTYPES = [("numpy", "float16"), ("numpy", "float32"),
              ("torch", "float16"), ("torch", "bfloat16"), ("torch", "float32")]


def convert(a, lib, dtype):
    """float64 numpy -> numpy/torch array of `dtype` (rounded once, to nearest even)."""
    if lib == "numpy":
        return np.ascontiguousarray(a.astype(dtype))
    if torch is None:
        pytest.skip("torch is not installed")
    t = torch.from_numpy(np.ascontiguousarray(a))  # float64 -> dtype rounds once
    return t.to(getattr(torch, dtype))


def convert_index(a, lib, dtype="int32"):
    if lib == "numpy":
        return np.ascontiguousarray(a.astype(dtype))
    return torch.from_numpy(np.ascontiguousarray(a.astype(dtype)))


def random_inputs(rng, B=7, H1=24, H2=20, H3=40, R=6, W=3, L=2, with_a=True):
    """float64 inputs scaled so that y and the LoRA delta have similar magnitudes.
    indices cover a valid adapter, W (out of range), -1 and repeats."""
    y = rng.standard_normal((B, H3))
    x = rng.standard_normal((B, H1 if with_a else R))
    wa = rng.standard_normal((W, L, R, H1)) / np.sqrt(H1) if with_a else None
    wb = rng.standard_normal((W, L, H2, R)) / np.sqrt(R)
    idx = rng.integers(0, W, size=B)
    idx[: min(B, 3)] = [0, W, -1][: min(B, 3)]
    return dict(y=y, x=x, weight_b=wb, indices=idx, weight_a=wa)


def make_problem(rng, lib="numpy", dtype="float16", index_dtype="int32", **shape):
    raw = random_inputs(rng, **shape)
    return dict(y=convert(raw["y"], lib, dtype), x=convert(raw["x"], lib, dtype),
                weight_b=convert(raw["weight_b"], lib, dtype),
                indices=convert_index(raw["indices"], lib, index_dtype),
                weight_a=None if raw["weight_a"] is None else convert(raw["weight_a"], lib, dtype))


def clone(a):
    return a.clone() if hasattr(a, "clone") else a.copy()
