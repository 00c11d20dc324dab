"""Independent fp64 oracle for the tests (numpy only, written from docs/contract.md §1, not from
the library).

reference() evaluates the operation in float64 on the exact values of the (rounded) inputs and
the contract's M = |y| + |scale| * sum_r |b_nr| * sum_h |x_h a_rh| (without weight A:
sum_r |b_nr| |x_r|); check() applies the one precision contract: written elements within
1 ulp of the fp64 value in the output dtype + 2^-16 * M; every other element equal to y
exactly.  reference_fast() is the same (precision="fast" and "exact" name one contract).
Per-adapter ranks / scales (the library's extension): adapter i uses only its first
clamp(ranks[i], 0, R) ranks and scale * scales[i].
"""
import numpy as np

# (significand bits including the implicit one, minimum normal exponent)
_FORMATS = {"float16": (11, -14), "bfloat16": (8, -126), "float32": (24, -126)}


def dtype_name(a):
    """'float16' / 'bfloat16' / 'float32' for a numpy array or a torch tensor."""
    return str(a.dtype).replace("torch.", "")


def as_f64(a):
    """Exact float64 copy of a numpy array or a torch tensor (any dtype, any strides)."""
    if hasattr(a, "detach"):  # torch
        return a.detach().to(dtype=__import__("torch").float64).numpy().copy()
    return np.asarray(a).astype(np.float64)


def ulp_of(v, dtype):
    """Spacing of `dtype` numbers in the binade of |v| (subnormal spacing below the normals)."""
    p, emin = _FORMATS[dtype]
    _, e = np.frexp(np.abs(v))          # |v| = m * 2**e, m in [0.5, 1)  ->  binade exponent e - 1
    e = np.where(v == 0, emin, np.maximum(e - 1, emin))
    return np.ldexp(1.0, e - (p - 1))


def _values(a):
    """A numpy copy of an index-like numpy array or torch tensor (int or float, any strides)."""
    return np.asarray(a.detach().numpy() if hasattr(a, "detach") else a)


def reference(y, x, weight_b, indices, weight_a=None, layer_idx=0, scale=1.0, y_offset=0,
              y_slice_size=-1, ranks=None, scales=None):
    """(exact, m, written): the fp64 result, the contract's M per element, and which were written."""
    y, x, wb = as_f64(y), as_f64(x), as_f64(weight_b)
    wa = None if weight_a is None else as_f64(weight_a)
    idx = _values(indices).astype(np.int64)
    W, H2, R = wb.shape[0], wb.shape[2], wb.shape[3]
    # Rank limit per adapter, clamped to [0, R]; scale factor per adapter (fp32 values, exact in fp64).
    rank = np.full(W, R) if ranks is None else np.clip(_values(ranks).astype(np.int64), 0, R)
    factor = np.ones(W) if scales is None else _values(scales).astype(np.float64)
    S = H2 if y_slice_size == -1 else y_slice_size
    exact = y.copy()
    magnitude = np.abs(y)
    written = np.zeros(y.shape, dtype=bool)
    for b in range(y.shape[0]):
        i = idx[b]
        if not 0 <= i < W:
            continue
        r, s = rank[i], scale * factor[i]
        a = None if wa is None else wa[i, layer_idx, :r]              # [r, H1]
        bmat = wb[i, layer_idx, :, :r]                                # [H2, r]
        z = x[b, :r] if a is None else a @ x[b]                       # [r]
        d = s * (bmat @ z)                                            # [H2]
        cols = slice(y_offset, y_offset + S)
        exact[b, cols] = y[b, cols] + d[:S]
        zabs = np.abs(x[b, :r]) if a is None else np.abs(a) @ np.abs(x[b])
        magnitude[b, cols] = np.abs(y[b, cols]) + abs(s) * (np.abs(bmat) @ zabs)[:S]
        written[b, cols] = True
    return exact, magnitude, written


def reference_fast(*args, **kwargs):
    """The same as reference(): precision="fast" is a name of the one contract."""
    return reference(*args, **kwargs)


def combine(y, parts):
    """The expected result of several slices with disjoint columns: each part's written elements."""
    exact, magnitude, written = as_f64(y), np.abs(as_f64(y)), np.zeros(tuple(y.shape), dtype=bool)
    for e, m, w in parts:
        assert not (written & w).any(), "test bug: overlapping slices"
        exact[w], magnitude[w] = e[w], m[w]
        written |= w
    return exact, magnitude, written


def check(got, y, expected):
    """Asserts the precision contract; returns the worst error in ulps over the written elements."""
    exact, magnitude, written = expected
    dt = dtype_name(got)
    g = as_f64(got)
    y64 = as_f64(y)
    assert g.shape == exact.shape
    unchanged = ~written
    bad = unchanged & (g != y64)
    assert not bad.any(), f"{bad.sum()} unwritten elements differ from y, first at {np.argwhere(bad)[0]}"
    err = np.abs(g - exact)
    ulp = ulp_of(exact, dt)
    ok = err <= ulp + np.ldexp(magnitude, -16)
    bad = written & ~ok
    if bad.any():
        k = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{bad.sum()} elements outside 1 ulp ({dt}); first out{list(k)} = {g[k]!r}, "
                             f"expected {exact[k]!r} (ulp {ulp[k]:.3g}, M {magnitude[k]:.3g})")
    return float((err / ulp)[written].max()) if written.any() else 0.0
