"""The eager path's cache of torch tensor descriptions (torch >= 2, python/fast_path.cc): a call whose
tensors match a cached description reads only their data_ptr(); every change of type, dtype,
device, requires_grad, size or stride since must be noticed.  Each case first makes sure the
cache served a call, then changes the tensors in place (same objects, often the same address)
and compares with an fp64 reference."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import addlora  # noqa: E402
from addlora import _core  # noqa: E402

addlora.register_torch_ops()
CACHED = _core.guard_stats()[0]


def ref(y, x, wb, idx, wa, layer_idx=0, scale=0.5, y_offset=0, S=None):
    out = y.double().clone()
    S = wb.shape[2] if S is None else S
    for b in range(y.shape[0]):
        i = int(idx[b])
        if 0 <= i < wb.shape[0]:
            z = wa[i, layer_idx].double() @ x[b].double() if wa is not None else x[b].double()
            out[b, y_offset:y_offset + S] += scale * (wb[i, layer_idx, :S].double() @ z)
    return out


def close(got, want, dtype):
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    return torch.allclose(got.double(), want, rtol=tol, atol=tol)


def problem(seed, dtype=torch.float16, B=5, H=16, R=16, W=3):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s: (torch.randn(*s, generator=g) * 0.3).to(dtype)  # noqa: E731
    return t(B, H), t(B, H), t(W, 1, H, R), torch.tensor([0, 1, -1, 2, 1][:B], dtype=torch.int32), t(W, 1, R, H)


def hits():
    return _core.guard_stats()[2]


def test_cache_is_on_exactly_where_the_guard_api_passes_its_self_test():
    from addlora import _guards
    assert CACHED == (_guards.factory() is not None)
    if int(torch.__version__.split(".")[0]) < 2:
        assert not CACHED


needs_cache = pytest.mark.skipif(not CACHED, reason=f"torch {torch.__version__}: no TensorGuards, no cache")


@needs_cache
@pytest.mark.parametrize("mode", ["alloc", "inplace", "out"])
def test_repeated_calls_are_served_from_the_cache_and_correct(mode):
    y, x, wb, idx, wa = problem(1)
    want = ref(y, x, wb, idx, wa)
    before = hits()
    for _ in range(3):
        if mode == "alloc":
            got = addlora.npu_batch_gather_matmul(y, x, wb, idx, wa, 0, 0.5)
        elif mode == "inplace":
            got = y.clone()
            addlora.npu_batch_gather_matmul_(got, x, wb, idx, wa, 0, 0.5)
        else:
            got = torch.empty_like(y)
            addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5, out=got)
        assert close(got, want, y.dtype)
    assert hits() >= before + 2


@needs_cache
def test_weights_transposed_in_place_are_seen():
    y, x, wb, idx, wa = problem(2)   # H == R: transposing a weight keeps its shape, not its strides
    addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    h = hits()
    wb.transpose_(2, 3)              # same object, same data_ptr, new strides
    got = addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    assert close(got, ref(y, x, wb, idx, wa), y.dtype)
    assert hits() == h               # not served from the stale entry
    wa.t_() if wa.dim() == 2 else wa.transpose_(2, 3)
    assert close(addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5), ref(y, x, wb, idx, wa), y.dtype)


@needs_cache
def test_inputs_resized_or_restrided_in_place_are_seen():
    y, x, wb, idx, wa = problem(3)
    for _ in range(2):
        addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    y.resize_(3, 16)                 # fewer rows, same address
    x.resize_(3, 16)
    idx.resize_(3)
    got = addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    assert got.shape == (3, 16) and close(got, ref(y, x, wb, idx, wa), y.dtype)
    big = torch.randn(5, 32).half()
    x.set_(big.untyped_storage(), 0, (3, 16), (32, 2))   # same object, other strides and storage
    got = addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    assert close(got, ref(y, x, wb, idx, wa), y.dtype)


@needs_cache
def test_requires_grad_after_caching_records_autograd():
    y, x, wb, idx, wa = problem(4, torch.float32)
    for _ in range(2):
        addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    x.requires_grad_(True)
    out = addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    assert out.grad_fn is not None
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="requires grad"):
        addlora.npu_batch_gather_matmul_(y, x, wb, idx, wa, 0, 0.5)


@needs_cache
def test_dtype_and_data_replaced_through_dot_data_are_seen():
    y, x, wb, idx, wa = problem(5)
    for _ in range(2):
        addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    wb.data = wb.data.float()        # same object, other dtype and address (mixed dtypes are allowed)
    assert close(addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5), ref(y, x, wb, idx, wa), y.dtype)
    wb.data = torch.zeros(3, 1, 16, 16, dtype=torch.int32)
    with pytest.raises(TypeError, match="dtype"):
        addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    wb.data = (torch.randn(3, 1, 16, 16) * 0.3).half()
    assert close(addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5), ref(y, x, wb, idx, wa), y.dtype)


@needs_cache
def test_many_weight_sets_and_numpy_calls_in_turn():
    """More weight sets than cache entries, numpy calls and bad calls interleaved: every result right."""
    sets = [problem(10 + k) for k in range(20)]
    for rnd in range(2):
        for k, (y, x, wb, idx, wa) in enumerate(sets):
            assert close(addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5), ref(y, x, wb, idx, wa), y.dtype)
            if k % 5 == 0:
                yn = y.numpy()
                got = addlora.add_lora(yn, x.numpy(), wb.numpy(), idx.numpy(), weight_a=wa.numpy(), scale=0.5)
                assert isinstance(got, np.ndarray) and close(torch.from_numpy(got), ref(y, x, wb, idx, wa), y.dtype)
                with pytest.raises(ValueError):
                    addlora.add_lora(y, x[:, :8], wb, idx, weight_a=wa)
    assert _core.guard_stats()[1] <= _core.guard_stats()[4]


@needs_cache
def test_a_decoder_worth_of_weight_sets_is_served_from_the_cache():
    """224 weight sets (32 layers x 7 projections) called in turn, twice, at two batch sizes: the
    second round is served from the cache (one entry per weight set and batch size)."""
    sets = [problem(100 + k % 7)[2:5:2] for k in range(224)]   # (weight_b, weight_a), shared values
    sets = [(wb.clone(), wa.clone()) for wb, wa in sets]        # distinct addresses
    for B in (5, 3):
        y, x, _, idx, _ = problem(7, B=B)
        want = [ref(y, x, wb, idx, wa) for wb, wa in sets[:7]]
        for rnd in range(2):
            h = hits()
            for k, (wb, wa) in enumerate(sets):
                got = addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
                if k < 7:
                    assert close(got, want[k], y.dtype)
            if rnd == 1:
                assert hits() - h == len(sets)


@needs_cache
def test_two_stride_patterns_in_turn_are_both_right():
    """The same tensors' metadata alternating between calls (a strided and a contiguous x): the
    guard fails every other call, the rebuild backs off, and every result stays right."""
    y, x, wb, idx, wa = problem(8)
    xs = [x, x.t().contiguous().t()]          # same values, other strides
    want = ref(y, x, wb, idx, wa)
    for k in range(40):
        assert close(addlora.add_lora(y, xs[k % 2], wb, idx, weight_a=wa, scale=0.5), want, y.dtype)


def entries():
    return _core.guard_stats()[1]


@needs_cache
def test_changing_batch_sizes_share_one_entry_and_stay_right():
    """A serving stack's batch changes every step: one entry per weight set serves every size
    (dim 0 of y, x, indices and out is left open; its size is read per call)."""
    g = torch.Generator().manual_seed(9)
    H, R, W = 16, 8, 3
    wb = (torch.randn(W, 1, H, R, generator=g) * 0.3).half()
    wa = (torch.randn(W, 1, R, H, generator=g) * 0.3).half()
    before_entries, before_hits = entries(), hits()
    for step, B in enumerate([1, 5, 3, 8, 1, 5, 8, 2, 3]):
        y = (torch.randn(B, H, generator=g) * 0.3).half()
        x = (torch.randn(B, H, generator=g) * 0.3).half()
        idx = torch.randint(-1, W, (B,), generator=g, dtype=torch.int32)
        want = ref(y, x, wb, idx, wa)
        out = torch.empty_like(y)
        assert addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5, out=out) is out
        assert close(out, want, y.dtype), f"step {step}, B={B}"
        got = y.clone()
        addlora.npu_batch_gather_matmul_(got, x, wb, idx, wa, 0, 0.5)
        assert close(got, want, y.dtype), f"step {step}, B={B} (in place)"
    from addlora import _guards
    if _guards.factory().dynamic_rows:             # (a torch that cannot open it keys on the rows)
        assert hits() >= before_hits + 12            # all but the first call of each form hit
        assert entries() <= before_entries + 2       # one entry per form, whatever the batch


@needs_cache
def test_open_batch_dimension_still_checks_strides_rows_and_empty_batches():
    g = torch.Generator().manual_seed(10)
    H, R, W = 16, 8, 2
    wb = (torch.randn(W, 1, H, R, generator=g) * 0.3).half()
    wa = (torch.randn(W, 1, R, H, generator=g) * 0.3).half()
    mk = lambda B: ((torch.randn(B, H, generator=g) * 0.3).half(),   # noqa: E731
                    (torch.randn(B, H, generator=g) * 0.3).half(),
                    torch.randint(0, W, (B,), generator=g, dtype=torch.int32))
    for B in (4, 4, 6):                              # cached, then served
        y, x, idx = mk(B)
        assert close(addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5), ref(y, x, wb, idx, wa), y.dtype)
    # Another row stride (y a column slice of a wider tensor): a miss, still right.
    y, x, idx = mk(6)
    wide = torch.zeros(6, 2 * H, dtype=torch.float16)
    wide[:, :H] = y
    got = addlora.add_lora(wide[:, :H], x, wb, idx, weight_a=wa, scale=0.5)
    assert close(got, ref(y, x, wb, idx, wa), y.dtype)
    # indices of another length than y's rows: the library's error, not a stale description.
    y, x, idx = mk(6)
    with pytest.raises(ValueError, match="indices"):
        addlora.add_lora(y, x, wb, idx[:5], weight_a=wa, scale=0.5)
    # An empty batch after cached calls: nothing to do, y returned as is.
    y, x, idx = mk(0)
    got = addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
    assert got.shape == (0, H)
    y, x, idx = mk(3)                                # and the entry still serves
    assert close(addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5), ref(y, x, wb, idx, wa), y.dtype)


@needs_cache
def test_more_weight_sets_than_entries_keep_most_cached_and_new_ones_get_in():
    """Weight sets used in turn beyond the cache's capacity: the entries stay (the sets past them
    are described each call, not rebuilt), every result right; after a switch to other weights
    (a model reload) the unused entries go and the new sets get cached."""
    from addlora import _guards
    capacity = _core.guard_stats()[4]
    n = capacity + 64
    _core.set_guard_factory(_guards.factory())   # an empty cache (installing the factory clears it)
    y, x, wb0, idx, wa0 = problem(11, B=2, H=16, R=8)
    want = ref(y, x, wb0, idx, wa0)

    def run_round(sets):
        h = hits()
        for k, (wb, wa) in enumerate(sets):
            got = addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
            if k % 97 == 0:
                assert close(got, want, y.dtype), f"set {k}"
        return hits() - h

    for model in range(2):
        sets = [(wb0.clone(), wa0.clone()) for _ in range(n)]   # same values, distinct addresses
        served = [run_round(sets) for _ in range(5)]
        assert entries() <= capacity
        assert served[-1] >= capacity - 64, f"model {model}: hits per round {served}"
    _core.set_guard_factory(_guards.factory())   # leave room for the other tests


@needs_cache
def test_large_weights_are_described_each_call_not_cached():
    """Weights over 64 KiB are never cached (their calls stream memory: a cold cache entry costs
    more than the attribute reads); the calls stay right."""
    from addlora import _guards
    _core.set_guard_factory(_guards.factory())   # an empty cache: no entry backing off at these addresses
    g = torch.Generator().manual_seed(12)
    H, R, W = 4096, 16, 1                      # 128 KiB per weight
    wb = (torch.randn(W, 1, H, R, generator=g) * 0.05).half()
    wa = (torch.randn(W, 1, R, H, generator=g) * 0.05).half()
    y = (torch.randn(2, H, generator=g) * 0.3).half()
    x = (torch.randn(2, H, generator=g) * 0.3).half()
    idx = torch.tensor([0, -1], dtype=torch.int32)
    want = ref(y, x, wb, idx, wa)
    h, e = hits(), entries()
    for _ in range(3):
        assert close(addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5), want, y.dtype)
    assert hits() == h and entries() == e
    if not hasattr(torch.Tensor, "nbytes"):       # torch 2.0: sizes unknown, nothing cached
        return
    small = wb[:, :, :64].contiguous(), wa[:, :, :, :64].contiguous()   # 2 KiB each: cached
    for _ in range(3):
        addlora.add_lora(y[:, :64], x[:, :64], small[0], idx, weight_a=small[1], scale=0.5)
    assert hits() >= h + 2
