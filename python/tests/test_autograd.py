"""Autograd of add_lora / npu_batch_gather_matmul against torch's own autograd of a pure-torch
reference (fp64, from the same fp32 values).  scale, indices, ranks and scales are not
differentiable; the in-place name refuses inputs that require grad (in grad mode)."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import addlora  # noqa: E402


def reference(y, x, wb, idx, wa=None, layer_idx=0, scale=1.0, y_offset=0, S=None, ranks=None, scales=None):
    """out = y + delta, differentiable by torch in every float input."""
    W, H2, R = wb.shape[0], wb.shape[2], wb.shape[3]
    S = H2 if S is None else S
    H3 = y.shape[1]
    rows = []
    for b in range(y.shape[0]):
        i = int(idx[b])
        if not 0 <= i < W:
            rows.append(torch.zeros(H3, dtype=y.dtype))
            continue
        r = R if ranks is None else max(0, min(int(ranks[i]), R))
        s = scale * (1.0 if scales is None else float(scales[i]))
        z = x[b, :r] if wa is None else wa[i, layer_idx, :r] @ x[b]
        d = s * (wb[i, layer_idx, :S, :r] @ z)
        rows.append(F.pad(d, (y_offset, H3 - y_offset - S)))
    return y + torch.stack(rows)


def leaves(g, B, H1, H2, H3, R, W, L, with_a=True, dtype=torch.float32):
    t = lambda *s, sc=1.0: (torch.randn(*s, generator=g, dtype=torch.float64) * sc).to(dtype)  # noqa: E731
    y = t(B, H3)
    x = t(B, H1 if with_a else R)
    wb = t(W, L, H2, R, sc=R ** -0.5)
    wa = t(W, L, R, H1, sc=H1 ** -0.5) if with_a else None
    idx = torch.randint(0, W, (B,), generator=g)
    idx[:2] = torch.tensor([-1, W])
    return y, x, wb, wa, idx


def grads_of(fn, tensors, seed_grad):
    for t in tensors:
        t.grad = None
    out = fn()
    out.backward(seed_grad)
    return out, [None if t.grad is None else t.grad.clone() for t in tensors]


CASES = [
    dict(with_a=True),
    dict(with_a=False),
    dict(with_a=True, y_offset=5, S=7, layer_idx=1),
    dict(with_a=True, ranks=[2, 0, 9], scales=[0.5, 2.0, -1.0]),
]


@pytest.mark.parametrize("case", CASES, ids=["a", "no_a", "slice_layer", "ranks_scales"])
@pytest.mark.parametrize("api", ["add_lora", "npu_batch_gather_matmul"])
def test_gradients_match_torch_autograd(case, api):
    g = torch.Generator().manual_seed(11)
    B, H1, H2, H3, R, W, L = 6, 13, 11, 20, 5, 3, 2
    case = dict(case)
    with_a = case.pop("with_a")
    y, x, wb, wa, idx = leaves(g, B, H1, H2, H3, R, W, L, with_a)
    ranks = case.pop("ranks", None)
    scales = case.pop("scales", None)
    layer_idx, y_offset, S = case.get("layer_idx", 0), case.get("y_offset", 0), case.get("S", None)
    scale = 0.75
    params = [t for t in (y, x, wb, wa) if t is not None]
    for t in params:
        t.requires_grad_(True)
    seed = torch.randn(B, H3, generator=g)
    extra = {}
    if ranks is not None:
        extra = dict(ranks=torch.tensor(ranks, dtype=torch.int32), scales=torch.tensor(scales, dtype=torch.float32))

    def ours():
        if api == "add_lora":
            return addlora.add_lora(y, x, wb, idx, weight_a=wa, layer_idx=layer_idx, scale=scale, y_offset=y_offset,
                                    y_slice_size=S, **extra)
        return addlora.npu_batch_gather_matmul(y, x, wb, idx, wa, layer_idx, scale, y_offset,
                                               -1 if S is None else S, **extra)

    out, got = grads_of(ours, params, seed)
    assert out.requires_grad
    p64 = [t.detach().double().requires_grad_(True) for t in params]
    y64, x64, wb64 = p64[:3]
    wa64 = p64[3] if with_a else None
    ref = reference(y64, x64, wb64, idx, wa64, layer_idx, scale, y_offset, S, ranks, scales)
    ref.backward(seed.double())
    assert torch.allclose(out.detach().double(), ref.detach(), rtol=1e-5, atol=1e-6)
    for name, mine, theirs in zip(["y", "x", "weight_b", "weight_a"], got, p64):
        assert mine is not None, name
        assert mine.dtype == torch.float32
        assert torch.allclose(mine.double(), theirs.grad, rtol=1e-5, atol=1e-6), name


def test_only_some_inputs_require_grad_and_half_weights():
    g = torch.Generator().manual_seed(12)
    y, x, wb, wa, idx = leaves(g, 5, 16, 16, 16, 4, 3, 1)
    wa16 = wa.half().requires_grad_(True)   # fp16 weights: their grad is fp16
    x.requires_grad_(True)
    out = addlora.add_lora(y, x, wb, idx, weight_a=wa16)
    out.sum().backward()
    assert y.grad is None and wb.grad is None
    assert x.grad is not None and wa16.grad.dtype == torch.float16
    x64, wa64 = x.detach().double().requires_grad_(), wa16.detach().double().requires_grad_()
    reference(y.double(), x64, wb.double(), idx, wa64).sum().backward()
    assert torch.allclose(x.grad.double(), x64.grad, rtol=1e-3, atol=1e-4)
    assert torch.allclose(wa16.grad.double(), wa64.grad, rtol=2e-3, atol=1e-3)


def test_in_place_refuses_grad_and_no_grad_mode_is_plain():
    g = torch.Generator().manual_seed(13)
    y, x, wb, wa, idx = leaves(g, 4, 8, 8, 8, 4, 2, 1)
    wb.requires_grad_(True)
    before = y.clone()
    with pytest.raises(ValueError, match="npu_batch_gather_matmul_ writes y in place .* weight_b requires grad"):
        addlora.npu_batch_gather_matmul_(y, x, wb, idx, wa)
    assert torch.equal(y, before)
    with torch.no_grad():
        out = addlora.npu_batch_gather_matmul(y, x, wb, idx, wa)
        assert not out.requires_grad
        addlora.npu_batch_gather_matmul_(y, x, wb, idx, wa)   # inference with trainable weights
    assert torch.equal(y, out)
    with pytest.raises(ValueError, match="out= is not supported when an input requires grad"):
        addlora.add_lora(y, x, wb, idx, weight_a=wa, out=torch.empty_like(y))


def test_bad_input_with_grad_raises_before_recording():
    g = torch.Generator().manual_seed(14)
    y, x, wb, wa, idx = leaves(g, 4, 8, 8, 8, 4, 2, 1)
    x.requires_grad_(True)
    with pytest.raises(ValueError, match="yOffset"):
        addlora.add_lora(y, x, wb, idx, weight_a=wa, y_offset=5)
    with pytest.raises(TypeError, match="every tensor must be a torch tensor"):
        addlora.add_lora(y, x, wb, idx.numpy(), weight_a=wa)
    with pytest.raises(ValueError, match="weight_format='nd'"):
        addlora.add_lora(y, x, addlora.nd_to_nz(wb.half()), idx, weight_format="nz", weight_b_shape=wb.shape)
