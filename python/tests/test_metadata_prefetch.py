"""The eager paths prefetch each torch tensor's TensorImpl and StorageImpl before reading its
attributes (python/torch_tensors.cc, prefetch_metadata).  The two pointer offsets it follows are
found at start-up on one small tensor; these cases check that they hold for the tensors users
pass (views, transposes, every dtype, Parameters, empty tensors), by reading the words at those
offsets and comparing them with torch's own `_cdata` values, and that calls which take the
prefetch still give the reference result."""
import ctypes

import pytest

torch = pytest.importorskip("torch")

import addlora  # noqa: E402
from addlora import _core, punica  # noqa: E402


def word(address):
    return ctypes.c_uint64.from_address(address).value


def offsets():
    # Found on the first plain CPU tensor a call describes: make sure one call has run.
    addlora.add_lora(torch.zeros(1, 16), torch.zeros(1, 16), torch.zeros(1, 1, 16, 16), torch.zeros(1, dtype=torch.int32))
    return _core.metadata_offsets()


def tensors():
    base = torch.arange(96, dtype=torch.float32).reshape(8, 12)
    yield base
    yield base[2:, 3:]
    yield base.t()
    yield base[::2]
    yield torch.nn.Parameter(torch.ones(4, 4), requires_grad=False)
    yield torch.empty(0, 16, dtype=torch.float16)
    for dt in (torch.float16, torch.bfloat16, torch.int32, torch.int64):
        yield torch.zeros(3, 5, dtype=dt)


@pytest.mark.skipif(int(torch.__version__.split(".")[0]) < 2, reason="torch 1.x: no untyped_storage()")
def test_found_under_torch_2():
    impl, storage = offsets()
    assert impl > 0 and storage > 0, "the metadata prefetch found no layout: it is off"


@pytest.mark.parametrize("t", list(tensors()), ids=lambda t: f"{tuple(t.shape)}-{t.dtype}-{t.stride()}")
def test_offsets_point_at_torch_objects(t):
    impl, storage = offsets()
    if not impl:
        pytest.skip("no layout found (torch without _cdata at the expected place)")
    assert word(id(t) + impl) == t._cdata
    if storage:
        assert word(t._cdata + storage) == t.untyped_storage()._cdata


def test_calls_through_the_prefetch_match_the_reference():
    g = torch.Generator().manual_seed(7)
    W, R, H, B = 3, 16, 256, 5
    x = torch.randn(B, H, generator=g).half()
    A = (torch.randn(W, R, H, generator=g) * 0.1).half()
    Bw = (torch.randn(W, H, R, generator=g) * 0.1).half()
    idx = torch.tensor([2, 0, -1, 1, 2])
    y = torch.randn(B, H, generator=g).half()
    z = torch.zeros(B, R, dtype=torch.float32)
    punica.bgmv_shrink(x, A, z, idx, 0.5)
    out = y.clone()
    punica.bgmv_expand(z, Bw, out, idx, True)
    want = y.double().clone()
    for b in range(B):
        i = int(idx[b])
        if 0 <= i < W:
            want[b] += (0.5 * (x[b].double() @ A[i].double().T)) @ Bw[i].double().T
    assert torch.allclose(out.double(), want, rtol=2e-3, atol=2e-3)
    got = addlora.add_lora(y, x, Bw.unsqueeze(1), idx, weight_a=A.unsqueeze(1), scale=0.5)
    assert torch.allclose(got.double(), want, rtol=2e-3, atol=2e-3)
    # Arguments the prefetch skips: a Tensor subclass, numpy arrays, no weight A.
    class Sub(torch.Tensor):
        pass
    got = addlora.add_lora(y.as_subclass(Sub), x.numpy(), Bw.unsqueeze(1).numpy(), idx, weight_a=A.unsqueeze(1),
                           scale=0.5)
    assert torch.allclose(torch.as_tensor(got).double(), want, rtol=2e-3, atol=2e-3)
    xr = torch.randn(B, R, generator=g).half()  # no weight A: x is the rank vector
    got = addlora.add_lora(y, xr, Bw.unsqueeze(1), idx, scale=0.5)
    want_r = y.double().clone()
    for b in range(B):
        i = int(idx[b])
        if 0 <= i < W:
            want_r[b] += 0.5 * (xr[b].double() @ Bw[i].double().T)
    assert torch.allclose(got.double(), want_r, rtol=2e-3, atol=2e-3)
