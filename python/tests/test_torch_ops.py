"""torch.ops.addlora.* (torch.library, torch >= 2.4): schemas, fake kernels and autograd pass
torch.library.opcheck, and a small model calling the public functions runs under
torch.compile(fullgraph=True) with the same results as eager.  Skipped under torch 1.x
(scripts/python-test.sh runs this file again under PyPI's torch 2.8)."""
import pytest

torch = pytest.importorskip("torch")

import addlora  # noqa: E402
from addlora import punica  # noqa: E402

pytestmark = pytest.mark.skipif(not addlora.register_torch_ops(),
                                reason=f"torch {torch.__version__} has no torch.library.register_fake (needs >= 2.4)")


def problem(seed, dtype=torch.float32, B=6, H1=24, H2=20, H3=28, R=8, W=3, L=2, grad=False):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s, sc=1.0: (torch.randn(*s, generator=g) * sc).to(dtype)  # noqa: E731
    p = dict(y=t(B, H3), x=t(B, H1), weight_b=t(W, L, H2, R, sc=R ** -0.5), weight_a=t(W, L, R, H1, sc=H1 ** -0.5))
    if grad:
        for v in p.values():
            v.requires_grad_(True)
    idx = torch.randint(0, W, (B,), generator=g)
    idx[:2] = torch.tensor([-1, W])
    p["indices"] = idx
    return p


def add_lora_args(p, layer_idx=1, scale=0.5, y_offset=3, y_slice_size=-1):
    return (p["y"], p["x"], p["weight_b"], p["indices"], p["weight_a"], layer_idx, scale, y_offset, y_slice_size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_opcheck_add_lora(dtype):
    p = problem(1, dtype)
    torch.library.opcheck(torch.ops.addlora.add_lora.default, add_lora_args(p))
    torch.library.opcheck(torch.ops.addlora.add_lora.default, add_lora_args(dict(p, weight_a=None, x=p["x"][:, :8]),
                                                                            y_offset=0, y_slice_size=5))
    torch.library.opcheck(torch.ops.addlora.add_lora_.default, add_lora_args(p))


def test_opcheck_add_lora_autograd():
    p = problem(2, grad=True)
    torch.library.opcheck(torch.ops.addlora.add_lora.default, add_lora_args(p))


def test_opcheck_punica():
    g = torch.Generator().manual_seed(3)
    B, R, H, W = 5, 8, 40, 3
    x = torch.randn(B, H, generator=g).half()
    wa = torch.randn(W, R, H, generator=g).half()
    wb = torch.randn(W, 1, H, R, generator=g).half()
    idx = torch.tensor([0, -1, 2, 1, 3])
    z = torch.zeros(B, R)
    y = torch.randn(B, H + 6, generator=g).half()
    ops = torch.ops.addlora
    torch.library.opcheck(ops.bgmv_shrink.default, (x, wa, z, idx, 0.5))
    torch.library.opcheck(ops.bgmv_expand.default, (z, wb, y, idx, True))
    torch.library.opcheck(ops.bgmv_expand_slice.default, (z, wb, y, idx, 4, H, False))
    seq = (torch.tensor([0, 2]), torch.tensor([2, 3]), torch.tensor([1, -1]), 2, 3, 5)
    torch.library.opcheck(ops.sgmv_shrink.default, (x, wa, z, *seq, 0.25))
    torch.library.opcheck(ops.sgmv_expand.default, (z, wb, y, *seq, False))
    torch.library.opcheck(ops.sgmv_expand_slice.default, (z, wb, y, *seq, 6, H, True))


class LoraModel(torch.nn.Module):
    """A base linear plus LoRA through every public entry point."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.seq_start, self.seq_len, self.seq_lora = torch.tensor([0, 2]), torch.tensor([2, 4]), torch.tensor([1, -1])

    def forward(self, y, x, indices):
        p = self.p
        a = addlora.npu_batch_gather_matmul(y, x, p["weight_b"], indices, p["weight_a"], 1, 0.5)
        b = addlora.add_lora(a, x, p["weight_b"], indices, weight_a=p["weight_a"], layer_idx=0, scale=0.25,
                             y_offset=2, y_slice_size=7)
        c = b.clone()
        addlora.npu_batch_gather_matmul_(c, x, p["weight_b"], indices, p["weight_a"], 0, 2.0, 8)
        z = torch.zeros(x.shape[0], p["weight_a"].shape[2], dtype=torch.float32)
        punica.bgmv_shrink(x, p["weight_a"][:, 1], z, indices, 0.5)
        punica.bgmv_expand(z, p["weight_b"][:, 1], c, indices)
        punica.bgmv_expand_slice(z, p["weight_b"][:, 0], c, indices, 1, p["weight_b"].shape[2], True)
        seq = (self.seq_start, self.seq_len, self.seq_lora, 2, 4, 6)   # rows 0-1: adapter 1, 2-5: none
        punica.sgmv_shrink(x, p["weight_a"][:, 0], z, *seq, 0.25)
        punica.sgmv_expand(z, p["weight_b"][:, 1], c, *seq, add_inputs=True)
        punica.sgmv_expand_slice(z, p["weight_b"][:, 0], c, *seq, 2, p["weight_b"].shape[2])
        return c * 2


def compiled_equals_eager(model, p, backend):
    """model(y, x, indices) under torch.compile(fullgraph=True) equals eager bitwise, twice (the
    second time with new y values through the same graph); returns the eager outputs (a tuple)."""
    y, x, idx = p["y"], p["x"], p["indices"]
    as_tuple = lambda r: r if isinstance(r, tuple) else (r,)  # noqa: E731
    eager = as_tuple(model(y, x, idx))
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    for got, want in zip(as_tuple(compiled(y, x, idx)), eager):
        assert torch.equal(got, want)
    y2 = torch.randn_like(y.float()).half()
    for got, want in zip(as_tuple(compiled(y2, x, idx)), as_tuple(model(y2, x, idx))):
        assert torch.equal(got, want)
    return eager


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_model_equals_eager(backend):
    p = problem(4, torch.float16)
    (out,) = compiled_equals_eager(LoraModel(p), p, backend)
    assert not torch.equal(out, 2 * p["y"])


def test_compiled_training_step_matches_eager_grads():
    p = problem(5, grad=True)

    def step(y, x, wb, wa, idx):
        out = addlora.add_lora(y, x, wb, idx, weight_a=wa, layer_idx=1, scale=0.5, y_offset=3)
        return (out * out).sum()

    args = (p["y"], p["x"], p["weight_b"], p["weight_a"], p["indices"])
    params = args[:4]
    eager_loss = step(*args)
    eager = torch.autograd.grad(eager_loss, params)
    torch._dynamo.reset()
    compiled_loss = torch.compile(step, fullgraph=True, backend="aot_eager")(*args)
    compiled = torch.autograd.grad(compiled_loss, params)
    assert torch.allclose(compiled_loss, eager_loss, rtol=1e-6)
    for a, b in zip(compiled, eager):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_extra_keywords_are_refused_under_compile():
    p = problem(6)

    def f(y, x):
        return addlora.add_lora(y, x, p["weight_b"], p["indices"], weight_a=p["weight_a"], precision="fast")

    torch._dynamo.reset()
    with pytest.raises(Exception, match="only torch_npu's arguments|NotImplementedError"):
        torch.compile(f, fullgraph=True, backend="eager")(p["y"], p["x"])


# ---- shrink, expand and add_lora_multi as operators ------------------------------------------------
def multi_slices(p):
    """Two LoRA pairs of one fused projection: columns [0, 9) (with weight_a) and [12, 26) (without)."""
    g = torch.Generator().manual_seed(7)
    dt = p["y"].dtype
    wb2 = (torch.randn(3, 2, 14, 24, generator=g) * 0.2).to(dt)   # R = H1 (no weight_a)
    return [dict(weight_b=p["weight_b"], weight_a=p["weight_a"], scale=0.5, y_offset=0, y_slice_size=9),
            dict(weight_b=wb2, scale=-0.25, y_offset=12)]


def multi_op_args(p, slices, layer_idx=1):
    return (p["x"], p["indices"], [s["weight_b"] for s in slices], [s.get("weight_a") for s in slices],
            [s.get("scale", 1.0) for s in slices], [s.get("y_offset", 0) for s in slices],
            [s.get("y_slice_size", -1) for s in slices], layer_idx, False)


def lora_f64(y, x, wb, idx, wa, layer_idx, scale, y_offset, S):
    """Independent fp64 reference: y + scale * (x A^T) B^T on the written columns, rows with an adapter."""
    out = y.double().clone()
    W = wb.shape[0]
    for b in range(y.shape[0]):
        i = int(idx[b])
        if 0 <= i < W:
            z = x[b].double() if wa is None else wa[i, layer_idx].double() @ x[b].double()
            out[b, y_offset:y_offset + S] += scale * (wb[i, layer_idx, :S].double() @ z)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_opcheck_shrink_expand_multi(dtype):
    p = problem(8, dtype)
    ops = torch.ops.addlora
    B, R = p["x"].shape[0], p["weight_a"].shape[2]
    z = torch.zeros(B, R + 2)
    torch.library.opcheck(ops.shrink.default, (p["x"], p["weight_a"], z, p["indices"], 1, 0.5, False, False))
    torch.library.opcheck(ops.shrink.default, (p["x"], p["weight_a"], z, p["indices"], 0, 2.0, True, True))
    zz = torch.randn(B, R)
    torch.library.opcheck(ops.expand.default, (zz, p["weight_b"], p["y"], p["indices"], 1, 0.5, 3, -1, True, False))
    torch.library.opcheck(ops.expand.default, (zz, p["weight_b"], p["y"], p["indices"], 0, 1.0, 0, 11, False, False))
    slices = multi_slices(p)
    torch.library.opcheck(ops.add_lora_multi.default, (p["y"], *multi_op_args(p, slices)))
    torch.library.opcheck(ops.add_lora_multi_.default, (p["y"].clone(), *multi_op_args(p, slices)))


def test_multi_op_values_equal_the_f64_reference():
    p = problem(9)
    slices = multi_slices(p)
    got = torch.ops.addlora.add_lora_multi(p["y"], *multi_op_args(p, slices))
    want = lora_f64(p["y"], p["x"], p["weight_b"], p["indices"], p["weight_a"], 1, 0.5, 0, 9)
    want = lora_f64(want, p["x"], slices[1]["weight_b"], p["indices"], None, 1, -0.25, 12, 14)
    assert torch.allclose(got.double(), want, rtol=1e-6, atol=1e-6)
    assert not torch.equal(got, p["y"])   # rows with an adapter changed
    assert torch.equal(got[:2], p["y"][:2])   # indices -1 and W: unchanged


def test_multi_op_refuses_mismatched_lists():
    p = problem(10)
    args = list(multi_op_args(p, multi_slices(p)))
    args[4] = args[4][:1]   # one scale for two slices
    with pytest.raises(ValueError, match="one weight_a, scale"):
        torch.ops.addlora.add_lora_multi(p["y"], *args)


class HalvesModel(torch.nn.Module):
    """shrink / expand / add_lora_multi through the public functions."""

    def __init__(self, p):
        super().__init__()
        self.p = p
        self.slices = multi_slices(p)

    def forward(self, y, x, indices):
        p, slices = self.p, self.slices
        z = torch.zeros(x.shape[0], p["weight_a"].shape[2], dtype=torch.float32)
        addlora.shrink(x, p["weight_a"], z, indices, layer_idx=1, scale=0.5)
        addlora.shrink(x, p["weight_a"], z, indices, layer_idx=0, scale=0.25, accumulate=True)
        out = y.clone()
        addlora.expand(z, p["weight_b"], out, indices, layer_idx=1, scale=2.0, y_offset=3)
        addlora.expand(z, p["weight_b"], out, indices, y_slice_size=5, accumulate=False)
        m = addlora.add_lora_multi(out, x, indices, slices, layer_idx=1)
        addlora.add_lora_multi(m, x, indices, slices[:1], out=m)          # in place
        o = torch.empty_like(m)
        addlora.add_lora_multi(m, x, indices, [addlora.LoraSlice(**slices[1])], out=o)
        return o, z


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_halves_and_multi_equal_eager(backend):
    p = problem(11, torch.float16)
    out, z = compiled_equals_eager(HalvesModel(p), p, backend)
    assert not torch.equal(out, p["y"]) and z.abs().sum() > 0


def test_multi_extra_keywords_are_refused_under_compile():
    p = problem(12)
    slices = multi_slices(p)

    def f(y, x):
        return addlora.add_lora_multi(y, x, p["indices"], slices, weight_format="nz")

    torch._dynamo.reset()
    with pytest.raises(Exception, match="ND weights and the general rules|NotImplementedError"):
        torch.compile(f, fullgraph=True, backend="eager")(p["y"], p["x"])
