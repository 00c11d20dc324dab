"""addlora.punica (vLLM's bgmv / sgmv ops) against a torch fp64 reference of punica's semantics.

Bound for every written element: 1 ulp of the output dtype + 2^-16 * M, with M the sum of the
magnitudes of the terms (|y| where added, plus |scale| * sum |u_k| |w_k| of the dot product).
Rows whose index is outside [0, W) are not written at all (punica's GPU kernels), so they stay
bitwise equal to the buffer's previous contents.
"""
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import addlora  # noqa: E402
from addlora import punica  # noqa: E402
from lora_reference import ulp_of  # noqa: E402

DTYPES = [torch.float16, torch.bfloat16, torch.float32]


def name(dt):
    return str(dt).replace("torch.", "")


def rand(g, *shape, dtype=torch.float32, scale=1.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def squeeze_w(w):
    return w[:, 0] if w.dim() == 4 else w


def reference(inputs, weights, indices, scale=1.0):
    """(delta [B, N] fp64, magnitude [B, N] fp64 of the dot products, valid [B] bool)."""
    w = squeeze_w(weights).double()
    W = w.shape[0]
    idx = indices.long()
    valid = (idx >= 0) & (idx < W)
    sel = w[idx.clamp(0, W - 1)]                                # [B, N, K]
    u = inputs.double()
    delta = scale * torch.einsum("bk,bnk->bn", u, sel)
    mag = abs(scale) * torch.einsum("bk,bnk->bn", u.abs(), sel.abs())
    return delta, mag, valid


def assert_close(got, exact, mag, written, before):
    """Written elements within 1 ulp + 2^-16 * mag of exact; the others bitwise unchanged."""
    g = got.double().numpy()
    e = exact.numpy()
    m = mag.numpy()
    w = written.numpy()
    b = before.double().numpy()
    assert np.array_equal(g[~w], b[~w]), "elements outside the written rows/columns changed"
    err = np.abs(g - e)
    bound = ulp_of(e, name(got.dtype)) + 2.0 ** -16 * m
    bad = w & ~(err <= bound)
    if bad.any():
        k = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{bad.sum()} elements outside the bound; first {k}: got {g[k]!r}, "
                             f"expected {e[k]!r}, bound {bound[k]:.3g}")


def indices_for(g, B, W):
    idx = torch.randint(0, W, (B,), generator=g)
    idx[: min(B, 2)] = torch.tensor([-1, W])[: min(B, 2)]  # no adapter: skipped rows
    return idx


# (H, R): hidden sizes serving users hit (not multiples of 16 / 64) and ranks 1..512.
SHAPES = [(3424, 16), (4097, 64), (5000, 1), (27393, 8), (96, 512), (1000, 300), (17, 3)]


@pytest.mark.parametrize("H,R", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES, ids=name)
def test_bgmv_shrink(H, R, dtype):
    g = torch.Generator().manual_seed(H * 1000 + R)
    B, W = 5, 3
    x = rand(g, B, H, dtype=dtype)
    wa = rand(g, W, R, H, dtype=dtype, scale=H ** -0.5)
    idx = indices_for(g, B, W)
    z = rand(g, B, R + 3)                                       # fp32 buffer, wider than R
    before = z.clone()
    punica.bgmv_shrink(x, wa, z, idx, 0.25)
    delta, mag, valid = reference(x, wa, idx, 0.25)
    exact = before.double().clone()
    written = torch.zeros(z.shape, dtype=torch.bool)
    exact[valid, :R] = delta[valid]
    written[valid, :R] = True
    full_mag = torch.zeros(z.shape, dtype=torch.float64)
    full_mag[:, :R] = mag
    assert_close(z, exact, full_mag, written, before)


@pytest.mark.parametrize("H,R", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES, ids=name)
@pytest.mark.parametrize("add_inputs", [True, False])
def test_bgmv_expand(H, R, dtype, add_inputs):
    g = torch.Generator().manual_seed(H * 1000 + R + add_inputs)
    B, W = 5, 3
    z = rand(g, B, R)                                           # fp32 intermediate
    wb = rand(g, W, H, R, dtype=dtype, scale=R ** -0.5)
    idx = indices_for(g, B, W)
    y = rand(g, B, H, dtype=dtype)
    before = y.clone()
    punica.bgmv_expand(z, wb, y, idx, add_inputs)
    delta, mag, valid = reference(z, wb, idx)
    exact = before.double().clone()
    exact[valid] = (before.double()[valid] if add_inputs else 0) + delta[valid]
    full_mag = mag + (before.double().abs() if add_inputs else 0)
    written = valid[:, None].expand(B, H).clone()
    assert_close(y, exact, full_mag, written, before)


def test_add_inputs_defaults_and_signatures():
    """vLLM's positional order, keyword names and defaults."""
    expected = {
        "bgmv_shrink": ["inputs", "lora_b_weights", "output_tensor", "lora_indices_tensor", "scaling"],
        "bgmv_expand": ["inputs", "lora_b_weights", "output_tensor", "lora_indices_tensor", "add_inputs"],
        "bgmv_expand_slice": ["inputs", "lora_b_weights", "output_tensor", "lora_indices_tensor", "slice_offset",
                              "slice_size", "add_inputs"],
        "sgmv_shrink": ["inputs", "lora_a_weights", "output_tensor", "b_seq_start_loc", "seq_len_tensor",
                        "lora_indices_tensor", "batches", "max_seq_length", "token_nums", "scaling"],
        "sgmv_expand": ["inputs", "lora_b_weights", "output_tensor", "b_seq_start_loc", "seq_len_tensor",
                        "lora_indices_tensor", "batches", "max_seq_length", "token_nums", "add_inputs"],
        "sgmv_expand_slice": ["inputs", "lora_b_weights", "output_tensor", "b_seq_start_loc", "seq_len_tensor",
                              "lora_indices_tensor", "batches", "max_seq_length", "token_nums", "slice_offset",
                              "slice_size", "add_inputs"],
    }
    defaults = {"bgmv_shrink": {"scaling": 1.0}, "bgmv_expand": {"add_inputs": True},
                "bgmv_expand_slice": {"add_inputs": True}, "sgmv_shrink": {},
                "sgmv_expand": {"add_inputs": False}, "sgmv_expand_slice": {"add_inputs": False}}
    for fn, params in expected.items():
        sig = inspect.signature(getattr(punica, fn))
        assert list(sig.parameters) == params, fn
        got = {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}
        assert got == defaults[fn], fn


def test_expand_default_adds_and_sgmv_default_overwrites():
    g = torch.Generator().manual_seed(1)
    z, wb, idx = rand(g, 2, 4), rand(g, 2, 8, 4, dtype=torch.float16), torch.tensor([0, 1])
    y0 = rand(g, 2, 8, dtype=torch.float16)
    y_add, y_set = y0.clone(), y0.clone()
    punica.bgmv_expand(z, wb, y_add, idx)
    punica.bgmv_expand(z, wb, y_set, idx, False)
    y_seq = y0.clone()
    punica.sgmv_expand(z, wb, y_seq, torch.tensor([0, 1]), torch.tensor([1, 1]), idx, 2, 1, 2)
    assert torch.equal(y_seq, y_set)
    assert not torch.equal(y_add, y_set)


@pytest.mark.parametrize("dtype", DTYPES, ids=name)
def test_expand_narrower_output_and_one_input_row(dtype):
    g = torch.Generator().manual_seed(2)
    W, R, H2 = 3, 8, 40
    wb = rand(g, W, H2, R, dtype=dtype, scale=0.3)
    # Output narrower than H2: only its columns, from the first H3 rows of B.
    z = rand(g, 4, R)
    idx = torch.tensor([2, -1, 0, 1])
    y = rand(g, 4, 29, dtype=dtype)
    before = y.clone()
    punica.bgmv_expand(z, wb, y, idx)
    delta, mag, valid = reference(z, wb, idx)
    exact = before.double().clone()
    exact[valid] += delta[valid, :29]
    assert_close(y, exact, mag[:, :29] + before.double().abs(), valid[:, None].expand(4, 29).clone(), before)
    # One input row, several output rows: that row's delta goes into every row.
    z1, idx1 = rand(g, 1, R), torch.tensor([1])
    y = rand(g, 5, H2 + 6, dtype=dtype)
    before = y.clone()
    punica.bgmv_expand(z1, wb, y, idx1)
    delta, mag, _ = reference(z1, wb, idx1)
    exact = before.double().clone()
    exact[:, :H2] += delta
    written = torch.zeros(y.shape, dtype=torch.bool)
    written[:, :H2] = True
    full_mag = before.double().abs()
    full_mag[:, :H2] += mag
    assert_close(y, exact, full_mag, written, before)
    # ... and with no adapter for it, nothing is written.
    for no_adapter in (-1, W):
        y2 = y.clone()
        punica.bgmv_expand(z1, wb, y, torch.tensor([no_adapter]))
        assert torch.equal(y, y2)
    # More input rows than output rows: the first ones.
    y = rand(g, 2, H2, dtype=dtype)
    before = y.clone()
    punica.bgmv_expand(z, wb, y, idx)
    delta, mag, valid = reference(z[:2], wb, idx[:2])
    exact = before.double().clone()
    exact[valid] += delta[valid]
    assert_close(y, exact, mag + before.double().abs(), valid[:, None].expand(2, H2).clone(), before)


@pytest.mark.parametrize("dtype", DTYPES, ids=name)
@pytest.mark.parametrize("add_inputs", [True, False])
def test_bgmv_expand_slice(dtype, add_inputs):
    g = torch.Generator().manual_seed(3)
    B, W, R, H2, H3, off = 6, 4, 16, 24, 70, 33
    z = rand(g, B, R)
    wb = rand(g, W, 1, H2, R, dtype=dtype, scale=0.25)         # the 4-D [W, 1, H2, R] form
    idx = indices_for(g, B, W)
    y = rand(g, B, H3, dtype=dtype)
    before = y.clone()
    punica.bgmv_expand_slice(z, wb, y, idx, off, H2, add_inputs)
    delta, mag, valid = reference(z, wb, idx)
    exact = before.double().clone()
    cols = slice(off, off + H2)
    exact[valid, cols] = (before.double()[valid, cols] if add_inputs else 0) + delta[valid]
    written = torch.zeros(y.shape, dtype=torch.bool)
    written[valid, cols] = True
    full_mag = torch.zeros(y.shape, dtype=torch.float64)
    full_mag[:, cols] = mag + (before.double()[:, cols].abs() if add_inputs else 0)
    assert_close(y, exact, full_mag, written, before)


def sequences(g, lens, W):
    lens = torch.tensor(lens)
    start = torch.cumsum(lens, 0) - lens
    lora = torch.randint(0, W, (len(lens),), generator=g)
    lora[0] = -1                                                # a sequence without adapter
    return start, lens, lora


@pytest.mark.parametrize("dtype", DTYPES, ids=name)
def test_sgmv_equals_bgmv_on_exploded_indices(dtype):
    g = torch.Generator().manual_seed(4)
    W, R, H = 3, 16, 4097
    start, lens, lora = sequences(g, [3, 1, 4, 2], W)
    T = int(lens.sum())
    exploded = torch.repeat_interleave(lora, lens)
    x = rand(g, T, H, dtype=dtype)
    wa = rand(g, W, 1, R, H, dtype=dtype, scale=H ** -0.5)
    wb = rand(g, W, 1, H, R, dtype=dtype, scale=R ** -0.5)
    z_s, z_b = torch.zeros(T, R), torch.zeros(T, R)
    punica.sgmv_shrink(x, wa, z_s, start, lens, lora, 4, 4, T, 0.5)
    punica.bgmv_shrink(x, wa, z_b, exploded, 0.5)
    assert torch.equal(z_s, z_b)
    delta, mag, valid = reference(x, wa, exploded, 0.5)
    exact = torch.zeros(T, R, dtype=torch.float64)
    exact[valid] = delta[valid]
    assert_close(z_s, exact, mag, valid[:, None].expand(T, R).clone(), torch.zeros(T, R))
    y0 = rand(g, T, H + 10, dtype=dtype)
    for add in (False, True):
        y_s, y_b = y0.clone(), y0.clone()
        punica.sgmv_expand(z_s, wb, y_s, start, lens, lora, 4, 4, T, add)
        punica.bgmv_expand(z_s, wb, y_b, exploded, add)
        assert torch.equal(y_s, y_b)
        y_s, y_b = y0.clone(), y0.clone()
        punica.sgmv_expand_slice(z_s, wb, y_s, start, lens, lora, 4, 4, T, 7, H, add)
        punica.bgmv_expand_slice(z_s, wb, y_b, exploded, 7, H, add)
        assert torch.equal(y_s, y_b)
        assert torch.equal(y_s[:2], y0[:2])                     # sequence 0 has no adapter


def test_numpy_and_strided_views():
    rng = np.random.default_rng(5)
    W, R, H, B = 3, 8, 50, 4
    x = rng.standard_normal((B, H)).astype(np.float16)
    wa = (rng.standard_normal((W, R, H)) / 7).astype(np.float16)
    wb = (rng.standard_normal((W, H, R)) / 3).astype(np.float16)
    idx = np.array([0, 2, -1, 1], np.int32)
    big = np.zeros((B, 3 * R), np.float32)
    z = big[:, ::3]                                             # every third column
    punica.bgmv_shrink(x, wa, z, idx, 1.0)
    tz = torch.from_numpy(big[:, ::3].copy())
    delta, mag, valid = reference(torch.from_numpy(x), torch.from_numpy(wa), torch.from_numpy(idx))
    exact = torch.zeros(B, R, dtype=torch.float64)
    exact[valid] = delta[valid]
    assert_close(tz, exact, mag, valid[:, None].expand(B, R).clone(), torch.zeros(B, R))
    assert not big[:, 1::3].any() and not big[:, 2::3].any()  # written through the view only
    y = np.ones((B, H), np.float16)
    punica.bgmv_expand(z, wb, y, idx)
    assert (y[2] == 1).all()


# ---- errors: clear exceptions naming vLLM's argument, nothing written --------------------------
def error_case(g):
    return dict(x=rand(g, 3, 20, dtype=torch.float16), wa=rand(g, 2, 4, 20, dtype=torch.float16),
                wb=rand(g, 2, 20, 4, dtype=torch.float16), z=torch.zeros(3, 4), y=torch.zeros(3, 20, dtype=torch.float16),
                idx=torch.tensor([0, 1, -1]))


@pytest.mark.parametrize("call,exc,match", [
    (lambda c: punica.bgmv_shrink(c["x"], c["wa"][0], c["z"], c["idx"]), ValueError, "lora_b_weights must be"),
    (lambda c: punica.bgmv_shrink(c["x"][:2], c["wa"], c["z"], c["idx"]), ValueError, "lora_indices_tensor"),
    (lambda c: punica.bgmv_shrink(c["x"], c["wa"], c["z"][:, :3], c["idx"]), ValueError, "output_tensor dim 1"),
    (lambda c: punica.bgmv_shrink(c["x"][:, :10], c["wa"], c["z"], c["idx"]), ValueError, "inputs"),
    (lambda c: punica.bgmv_shrink(c["x"].double(), c["wa"], c["z"], c["idx"]), TypeError, "inputs has dtype"),
    (lambda c: punica.bgmv_shrink(c["x"], c["wa"], c["z"], c["idx"].float()), TypeError, "lora_indices_tensor"),
    (lambda c: punica.bgmv_shrink(c["x"], c["wa"], c["z"], c["idx"], "2"), TypeError, "scaling"),
    (lambda c: punica.bgmv_shrink(c["x"].tolist(), c["wa"], c["z"], c["idx"]), TypeError, "inputs must be"),
    (lambda c: punica.bgmv_shrink(c["x"], c["wa"], torch.zeros(3, 4, device="meta"), c["idx"]), TypeError,
     "output_tensor must be a CPU tensor"),
    (lambda c: punica.bgmv_shrink(None, c["wa"], c["z"], c["idx"]), ValueError, "inputs must not be None"),
    (lambda c: punica.bgmv_expand(c["z"], c["wb"], c["y"], c["idx"], 1), TypeError, "add_inputs"),
    (lambda c: punica.bgmv_expand(c["z"][:2], c["wb"], c["y"], c["idx"]), ValueError, "rows"),
    (lambda c: punica.bgmv_expand(c["z"][:, :3], c["wb"], c["y"], c["idx"]), ValueError, "lora_b_weights dim 3"),
    (lambda c: punica.bgmv_expand_slice(c["z"], c["wb"], c["y"], c["idx"], 1, 20), ValueError, "slice_offset"),
    (lambda c: punica.bgmv_expand_slice(c["z"], c["wb"], c["y"], c["idx"], 0, 19), ValueError, "slice_size"),
    (lambda c: punica.bgmv_expand_slice(c["z"], c["wb"], c["y"], c["idx"], -1, 20), ValueError, "slice_offset"),
    (lambda c: punica.bgmv_expand_slice(c["z"], c["wb"], c["y"], c["idx"], 0.5, 20), TypeError, "slice_offset"),
    (lambda c: punica.bgmv_expand(c["z"], c["wb"], c["y"], c["x"]), ValueError, "lora_indices_tensor must be 1-D"),
    (lambda c: punica.bgmv_expand(c["z"], c["wb"], c["y"][:, :10].t(), c["idx"]), ValueError, "output_tensor"),
    (lambda c: punica.sgmv_shrink(c["x"], c["wa"], c["z"], torch.tensor([0, 2]), torch.tensor([2, 1]),
                                  torch.tensor([0, 1]), 2, 2, 4, 1.0), ValueError, "token_nums"),
    (lambda c: punica.sgmv_shrink(c["x"], c["wa"], c["z"], torch.tensor([0, 1]), torch.tensor([2, 1]),
                                  torch.tensor([0, 1]), 2, 2, 3, 1.0), ValueError, "b_seq_start_loc"),
    (lambda c: punica.sgmv_shrink(c["x"], c["wa"], c["z"], torch.tensor([0, 2]), torch.tensor([2, 1]),
                                  torch.tensor([0, 1]), 2, 1, 3, 1.0), ValueError, "max_seq_length"),
    (lambda c: punica.sgmv_shrink(c["x"], c["wa"], c["z"], torch.tensor([0, 2]), torch.tensor([2, 1]),
                                  torch.tensor([0, 1]), 3, 2, 3, 1.0), ValueError, "batches"),
    (lambda c: punica.sgmv_expand(c["z"], c["wb"], c["y"], torch.tensor([0, 2]), torch.tensor([2, 1]),
                                  torch.tensor([0, 1]), 2, 2, 3, "no"), TypeError, "add_inputs"),
    (lambda c: punica.sgmv_expand(c["z"], c["wb"], c["y"], torch.tensor([0, 2]), torch.tensor([2.0, 1.0]),
                                  torch.tensor([0, 1]), 2, 2, 3), TypeError, "seq_len_tensor"),
])
def test_errors_name_the_argument_and_write_nothing(call, exc, match):
    c = error_case(torch.Generator().manual_seed(6))
    c["z"].fill_(7)
    c["y"].fill_(7)
    with pytest.raises(exc, match=match):
        call(c)
    assert (c["z"] == 7).all() and (c["y"] == 7).all()


def test_out_overlapping_an_input_is_rejected():
    g = torch.Generator().manual_seed(7)
    buf = rand(g, 3, 24)
    idx = torch.tensor([0, 1, 0])
    wa = rand(g, 2, 4, 20)
    before = buf.clone()
    with pytest.raises(ValueError, match="overlaps"):
        punica.bgmv_shrink(buf[:, :20], wa, buf[:, 16:20], idx)   # z inside x
    assert torch.equal(buf, before)


def test_requires_grad_inputs_are_read():
    g = torch.Generator().manual_seed(8)
    x = rand(g, 2, 16).requires_grad_()
    wa = rand(g, 2, 4, 16).requires_grad_()
    z = torch.zeros(2, 4)
    punica.bgmv_shrink(x, wa, z, torch.tensor([1, 0]))
    delta, _, _ = reference(x.detach(), wa.detach(), torch.tensor([1, 0]))
    assert torch.allclose(z.double(), delta, rtol=1e-6, atol=1e-6)


def test_module_is_exported():
    assert addlora.punica is punica


# ---- addlora.shrink / addlora.expand: the C++ API's shrink-only and expand-only calls ----------
@pytest.mark.parametrize("dtype", DTYPES, ids=name)
@pytest.mark.parametrize("accumulate", [False, True])
def test_shrink_expand_api(dtype, accumulate):
    g = torch.Generator().manual_seed(21)
    B, W, L, R, H1, H2, H3, layer = 6, 3, 3, 12, 5000, 27, 40, 2
    x = rand(g, B, H1, dtype=dtype)
    wa = rand(g, W, L, R, H1, dtype=dtype, scale=H1 ** -0.5)
    wb = rand(g, W, L, H2, R, dtype=dtype, scale=R ** -0.5)
    idx = indices_for(g, B, W)
    z = rand(g, B, R)
    before = z.clone()
    assert addlora.shrink(x, wa, z, idx, layer_idx=layer, scale=-0.5, accumulate=accumulate) is z
    delta, mag, valid = reference(x, wa[:, layer], idx, -0.5)
    exact = before.double().clone()
    exact[valid] = (before.double()[valid] if accumulate else 0) + delta[valid]
    assert_close(z, exact, mag + (before.double().abs() if accumulate else 0), valid[:, None].expand(B, R).clone(),
                 before)
    y = rand(g, B, H3, dtype=dtype)
    before = y.clone()
    S, off = 20, 11                                              # S < H2: only 20 rows of B are read
    assert addlora.expand(z, wb, y, idx, layer_idx=layer, scale=2.0, y_offset=off, y_slice_size=S,
                          accumulate=accumulate) is y
    delta, mag, valid = reference(z, wb[:, layer, :S], idx, 2.0)
    exact = before.double().clone()
    cols = slice(off, off + S)
    exact[valid, cols] = (before.double()[valid, cols] if accumulate else 0) + delta[valid]
    written = torch.zeros(y.shape, dtype=torch.bool)
    written[valid, cols] = True
    full_mag = torch.zeros(y.shape, dtype=torch.float64)
    full_mag[:, cols] = mag + (before.double()[:, cols].abs() if accumulate else 0)
    assert_close(y, exact, full_mag, written, before)


def test_shrink_expand_api_numpy_and_errors():
    rng = np.random.default_rng(22)
    x = rng.standard_normal((3, 10)).astype(np.float16)
    wa = rng.standard_normal((2, 1, 4, 10)).astype(np.float16)
    wb = rng.standard_normal((2, 1, 10, 4)).astype(np.float16)
    idx = np.array([1, -1, 0], np.int64)
    z = np.full((3, 4), 7, np.float32)
    addlora.shrink(x, wa, z, idx)
    assert (z[1] == 7).all() and not (z[0] == 7).any()
    y = np.zeros((3, 10), np.float16)
    addlora.expand(z, wb, y, idx)
    assert (y[1] == 0).all()
    z2 = z.copy()
    for call, exc, match in [
        (lambda: addlora.shrink(x, wa, z2, idx, layer_idx=1), ValueError, r"layer_idx must be in \[0, L\)"),
        (lambda: addlora.shrink(x, wa[0], z2, idx), ValueError, "weight_a must be 4-D"),
        (lambda: addlora.shrink(x, wa, z2[:, :3], idx), ValueError, "z dim 1 must be >= R"),
        (lambda: addlora.shrink(x, wa, z2, idx[:2]), ValueError, "indices must have one element per row of x"),
        (lambda: addlora.shrink(x, wa, z2, idx, accumulate=1), TypeError, "accumulate"),
        (lambda: addlora.shrink(x, wa, z2, idx, scale="1"), TypeError, "scale"),
        (lambda: addlora.shrink(x.astype(np.float64), wa, z2, idx), TypeError, "x"),
        (lambda: addlora.expand(z2, wb, y, idx, y_offset=1), ValueError, r"y_offset \+ S <= H3"),
        (lambda: addlora.expand(z2, wb, y, idx, y_slice_size=11), ValueError, "y_slice_size must be -1 or in"),
        (lambda: addlora.expand(z2[:, :3], wb, y, idx), ValueError, "weight_b dim 3 must equal z dim 1"),
        (lambda: addlora.expand(z2, wb, y[:2], idx), ValueError, "out dim 0 must equal z dim 0"),
        (lambda: addlora.expand(z2, wb, None, idx), ValueError, "out must not be None"),
        (lambda: addlora.expand(z2, wb, y, idx, precision="slow"), ValueError, "precision"),
    ]:
        y_before = y.copy()
        with pytest.raises(exc, match=match):
            call()
        assert np.array_equal(z2, z) and np.array_equal(y, y_before)


def test_one_input_row_is_all_or_nothing():
    """The broadcast expand is one validated call: an output overlapping the weights in a later
    row is refused before any row is written."""
    g = torch.Generator().manual_seed(23)
    W, R, H = 2, 4, 8
    buf = rand(g, 5 * H + W * H * R)
    y = buf[: 5 * H].view(5, H)
    wb = buf[4 * H: 4 * H + W * H * R].view(W, H, R)          # shares memory with y's last row
    before = buf.clone()
    with pytest.raises(ValueError, match="overlaps lora_b_weights"):
        punica.bgmv_expand(rand(g, 1, R), wb, y, torch.tensor([1]))
    assert torch.equal(buf, before)
    with pytest.raises(ValueError, match="lora_indices_tensor must have one element"):
        punica.bgmv_expand(rand(g, 1, R), rand(g, W, H, R), rand(g, 3, H), torch.tensor([[1]]))


def test_sgmv_numpy_and_int32_sequence_tensors():
    rng = np.random.default_rng(24)
    W, R, H = 2, 4, 33
    lens = np.array([2, 0, 3], np.int32)                        # an empty sequence too
    start = np.array([0, 2, 2], np.int32)
    lora = np.array([1, 0, -1], np.int32)
    T = int(lens.sum())
    x = rng.standard_normal((T, H)).astype(np.float16)
    wa = (rng.standard_normal((W, R, H)) / 6).astype(np.float16)
    wb = (rng.standard_normal((W, H, R)) / 2).astype(np.float16)
    z = np.zeros((T, R), np.float32)
    punica.sgmv_shrink(x, wa, z, start, lens, lora, 3, 3, T, 2.0)
    exploded = np.repeat(lora, lens)
    z_b = np.zeros((T, R), np.float32)
    punica.bgmv_shrink(x, wa, z_b, exploded, 2.0)
    assert np.array_equal(z, z_b) and not z[2:].any()          # the last sequence has no adapter
    y, y_b = np.ones((T, H), np.float16), np.ones((T, H), np.float16)
    punica.sgmv_expand(z, wb, y, start, lens, lora, 3, 3, T, True)
    punica.bgmv_expand(z, wb, y_b, exploded, True)
    assert np.array_equal(y, y_b) and (y[2:] == 1).all()


def test_empty_problems_still_check_dtypes():
    idx = np.zeros(0, np.int64)
    with pytest.raises(TypeError, match="z dtype must be"):
        addlora.shrink(np.zeros((0, 8), np.float16), np.zeros((2, 1, 4, 8), np.float16), np.zeros((0, 4), np.int32), idx)
    with pytest.raises(TypeError, match="weight_b dtype must be"):
        addlora.expand(np.zeros((0, 4), np.float32), np.zeros((2, 1, 8, 4), np.int32), np.zeros((0, 8), np.float16), idx)
    addlora.shrink(np.zeros((0, 8), np.float16), np.zeros((2, 1, 4, 8), np.float16), np.zeros((0, 4), np.float32), idx)
