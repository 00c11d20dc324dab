"""The punica ops share the eager path's cache of torch tensor descriptions (torch >= 2,
python/fast_path.cc, used by python/punica.cc): a bgmv call whose tensors match a cached
description reads only their data_ptr().  Each case first makes sure the cache served a call,
then changes the tensors (in place where torch allows it) and checks the result against an fp64
reference, or the error against vLLM's argument names."""
import pytest

torch = pytest.importorskip("torch")

import addlora  # noqa: E402
from addlora import _core, punica  # noqa: E402

addlora.register_torch_ops()
CACHED = _core.guard_stats()[0]
needs_cache = pytest.mark.skipif(not CACHED, reason=f"torch {torch.__version__}: no TensorGuards, no cache")


def hits():
    return _core.guard_stats()[2]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each case starts from an empty cache: an entry left by an earlier test whose weights had
    the address a new tensor now has would fail its check and back off rebuilding (correct, but
    the hit counts below would then depend on the allocator)."""
    if CACHED:
        from addlora import _guards
        _core.set_guard_factory(_guards.factory())   # installing the factory clears the cache


def rand(g, *shape, dtype=torch.float16):
    return (torch.randn(*shape, generator=g) * 0.3).to(dtype)


def shrink_ref(x, A, idx, scale, before):
    out = before.double().clone()
    for b in range(x.shape[0]):
        i = int(idx[b])
        if 0 <= i < A.shape[0]:
            out[b, :A.shape[1]] = scale * (A[i].double() @ x[b].double())
    return out


def expand_ref(z, B, idx, before, offset, add=True):
    out = before.double().clone()
    for b in range(before.shape[0]):
        i = int(idx[b])
        if 0 <= i < B.shape[0]:
            d = B[i].double() @ z[b].double()
            cols = slice(offset, offset + B.shape[1])
            out[b, cols] = (out[b, cols] if add else 0) + d
    return out


def close(got, want):
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[got.dtype]
    return torch.allclose(got.double(), want, rtol=tol, atol=tol)


def setup(seed, Bn=5, H=16, R=16, W=3):
    g = torch.Generator().manual_seed(seed)
    idx = torch.tensor([0, 1, -1, 2, 1, 0, 2, 1][:Bn], dtype=torch.int64)
    return g, rand(g, Bn, H), rand(g, W, R, H), rand(g, W, H, R), idx


@needs_cache
def test_repeated_bgmv_calls_are_served_from_the_cache_and_correct():
    g, x, A, B, idx = setup(1)
    z = torch.zeros(5, 16, dtype=torch.float32)
    y = rand(g, 5, 40)
    before = hits()
    for _ in range(3):
        z0 = z.clone()
        punica.bgmv_shrink(x, A, z, idx, 0.5)
        assert close(z, shrink_ref(x, A, idx, 0.5, z0))
        y0 = y.clone()
        punica.bgmv_expand_slice(z, B, y, idx, 8, 16)
        assert close(y, expand_ref(z, B, idx, y0, 8))
        y0 = y.clone()
        punica.bgmv_expand(z, B, y, idx, add_inputs=False)   # columns [0, 16), another form
        assert close(y, expand_ref(z, B, idx, y0, 0, add=False))
    assert hits() >= before + 6


@needs_cache
def test_weights_transposed_resized_or_retyped_in_place_are_seen():
    g, x, A, B, idx = setup(2)                   # H == R: a transposed weight keeps its shape
    z = torch.zeros(5, 16, dtype=torch.float32)
    for _ in range(2):
        punica.bgmv_shrink(x, A, z, idx, 1.0)
    h = hits()
    A.transpose_(1, 2)                           # same object and address, other strides
    z0 = z.clone()
    punica.bgmv_shrink(x, A, z, idx, 1.0)
    assert close(z, shrink_ref(x, A, idx, 1.0, z0))
    assert hits() == h                           # not served from the stale entry
    A.data = A.data.float()                      # same object, other dtype and address
    z0 = z.clone()
    punica.bgmv_shrink(x, A, z, idx, 1.0)
    assert close(z, shrink_ref(x, A, idx, 1.0, z0))
    A.data = torch.zeros(3, 16, 16, dtype=torch.int32)
    with pytest.raises(TypeError, match="lora_b_weights"):
        punica.bgmv_shrink(x, A, z, idx, 1.0)


@needs_cache
def test_outputs_and_indices_changed_after_caching_are_seen():
    g, x, A, B, idx = setup(3)
    z = torch.zeros(5, 16, dtype=torch.float32)
    y = rand(g, 5, 16)
    for _ in range(2):
        punica.bgmv_shrink(x, A, z, idx, 1.0)
        punica.bgmv_expand_slice(z, B, y, idx, 0, 16)
    y.resize_(5, 8)                              # narrower output, same address: the slice no longer fits
    with pytest.raises(ValueError, match="output_tensor|slice"):
        punica.bgmv_expand_slice(z, B, y, idx, 0, 16)
    with pytest.raises(ValueError, match="lora_indices_tensor"):   # fewer indices than rows
        punica.bgmv_shrink(x, A, z, idx[:4], 1.0)
    z2 = torch.zeros(5, 32, dtype=torch.float16)[:, ::2]           # another dtype and stride
    punica.bgmv_shrink(x, A, z2, idx, 1.0)
    assert close(z2, shrink_ref(x, A, idx, 1.0, torch.zeros(5, 16)))


@needs_cache
def test_changing_batch_sizes_and_the_broadcast_row_stay_right():
    """One entry per weight set and form serves every batch size; vLLM's one-input-row expand
    (the row's delta added to every output row) still works after cached calls."""
    g, _, A, B, _ = setup(4)
    before = hits()
    for step, Bn in enumerate([1, 5, 3, 8, 1, 5, 8]):
        x = rand(g, Bn, 16)
        idx = torch.randint(-1, 3, (Bn,), generator=g)
        z = torch.zeros(Bn, 16, dtype=torch.float32)
        punica.bgmv_shrink(x, A, z, idx, 0.25)
        assert close(z, shrink_ref(x, A, idx, 0.25, torch.zeros(Bn, 16))), f"step {step}"
        y = rand(g, Bn, 16)
        y0 = y.clone()
        punica.bgmv_expand(z, B, y, idx)
        assert close(y, expand_ref(z, B, idx, y0, 0)), f"step {step}"
    from addlora import _guards
    if _guards.factory().dynamic_rows:
        assert hits() >= before + 10
    y = rand(g, 4, 16)
    y0 = y.clone()
    z1 = rand(g, 1, 16).float()
    punica.bgmv_expand(z1, B, y, torch.tensor([2]))
    assert close(y, y0.double() + (B[2].double() @ z1[0].double()))
