"""The eager entry points: under torch 1.x (nothing can trace them) npu_batch_gather_matmul(_) and
add_lora are builtins of _core that forward whatever they do not take to the Python functions;
under torch 2.x they are those Python functions (torch.compile traces them).  Either way the
signature, the results and the errors are the Python functions'."""
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import addlora  # noqa: E402

NAMES = ("npu_batch_gather_matmul_", "npu_batch_gather_matmul", "add_lora")
MAJOR = int(torch.__version__.split(".")[0])


def test_builtins_exactly_under_torch_1():
    for name in NAMES:
        fn = getattr(addlora, name)
        if MAJOR < 2:
            assert inspect.isbuiltin(fn) and addlora._python_entries[name] is not fn
        else:
            assert inspect.isfunction(fn) and addlora._python_entries[name] is fn
        assert inspect.signature(fn) == inspect.signature(addlora._python_entries[name])
        assert fn.__name__ == name
        assert inspect.getdoc(fn) == inspect.getdoc(addlora._python_entries[name])


def problem(seed=0, dtype=torch.float16):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s: (torch.randn(*s, generator=g) * 0.3).to(dtype)  # noqa: E731
    return dict(y=t(4, 24), x=t(4, 16), weight_b=t(3, 2, 20, 8), indices=torch.tensor([2, -1, 0, 1]),
                weight_a=t(3, 2, 8, 16))


def oracle(p, layer_idx, scale, y_offset, S):
    out = p["y"].double().clone()
    for b, i in enumerate(p["indices"].tolist()):
        if 0 <= i < 3:
            z = p["weight_a"][i, layer_idx].double() @ p["x"][b].double()
            out[b, y_offset:y_offset + S] += scale * (p["weight_b"][i, layer_idx, :S].double() @ z)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_way_of_passing_arguments_gives_the_oracle(name):
    p = problem(1)
    want = oracle(p, 1, 0.5, 2, 11)
    fn = getattr(addlora, name)
    kw = dict(weight_a=p["weight_a"], layer_idx=1, scale=0.5, y_offset=2, y_slice_size=11)
    calls = [lambda y: fn(y, p["x"], p["weight_b"], p["indices"], **kw),
             lambda y: fn(y=y, x=p["x"], weight_b=p["weight_b"], indices=p["indices"], **kw),
             lambda y: fn(y, p["x"], p["weight_b"], p["indices"], **kw, precision="fast")]   # forwarded
    if name != "add_lora":
        calls.append(lambda y: fn(y, p["x"], p["weight_b"], p["indices"], p["weight_a"], 1, 0.5, 2, 11))
    else:
        calls.append(lambda y: fn(y, p["x"], p["weight_b"], p["indices"], **kw, out=torch.empty_like(y)))
    for call in calls:
        y = p["y"].clone()
        got = call(y)
        assert torch.allclose(got.double(), want, rtol=2e-3, atol=2e-3)
        assert (got is y) == (name == "npu_batch_gather_matmul_")
        if name != "npu_batch_gather_matmul_":
            assert torch.equal(y, p["y"])


@pytest.mark.parametrize("name", NAMES)
def test_argument_errors_are_the_python_functions(name):
    p = problem(2)
    fn, py = getattr(addlora, name), addlora._python_entries[name]
    bad = [((p["y"], p["x"], p["weight_b"]), {}),                                     # missing indices
           ((p["y"], p["x"], p["weight_b"], p["indices"]), {"bogus": 1}),             # unknown keyword
           ((p["y"], p["x"], p["weight_b"], p["indices"]), {"y": p["y"]}),            # given twice
           ((p["y"],) * 10, {})]                                                      # too many positionals
    if name != "add_lora":
        bad.append(((p["y"], p["x"], p["weight_b"], p["indices"]), {"out": p["y"]}))  # not their keyword
    for args, kw in bad:
        with pytest.raises(TypeError) as a:
            fn(*args, **kw)
        with pytest.raises(TypeError) as b:
            py(*args, **kw)
        assert str(a.value) == str(b.value)
    # value errors from the library: same message, nothing written
    y = p["y"].clone()
    for f in (fn, py):
        with pytest.raises(ValueError, match="H1"):
            f(y, p["x"][:, :8], p["weight_b"], p["indices"], weight_a=p["weight_a"])
    assert torch.equal(y, p["y"])
    with pytest.raises(TypeError, match="layer_idx"):
        fn(y, p["x"], p["weight_b"], p["indices"], weight_a=p["weight_a"], layer_idx=1.5)


def test_numpy_and_read_only_through_the_entries():
    p = {k: v.numpy() for k, v in problem(3).items()}
    want = oracle({k: torch.from_numpy(v) for k, v in p.items()}, 0, 1e-3, 0, 20)
    got = addlora.npu_batch_gather_matmul(p["y"], p["x"], p["weight_b"], p["indices"], p["weight_a"])
    assert isinstance(got, np.ndarray) and np.allclose(got.astype(np.float64), want.numpy(), rtol=2e-3, atol=2e-3)
    ro = p["y"].copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        addlora.npu_batch_gather_matmul_(ro, p["x"], p["weight_b"], p["indices"], p["weight_a"])
