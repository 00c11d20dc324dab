"""The eager entry points: npu_batch_gather_matmul(_), add_lora and the six punica ops are
builtins of _core that forward whatever they do not take to the Python functions, where nothing
can trace them (torch 1.x, no torch) or torch.compile traces the Python function in the builtin's
place (torch >= 2.5 imported before addlora: torch.compiler.substitute_in_graph); otherwise they
are those Python functions.  Either way the signature, the results and the errors are the Python
functions'."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import addlora  # noqa: E402
from addlora import punica  # noqa: E402

NAMES = ("npu_batch_gather_matmul_", "npu_batch_gather_matmul", "add_lora")
PUNICA = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice", "sgmv_shrink", "sgmv_expand", "sgmv_expand_slice")
MAJOR = int(torch.__version__.split(".")[0])
SUBSTITUTES = MAJOR >= 2 and addlora.register_torch_ops() and hasattr(torch.compiler, "substitute_in_graph")


def every_entry():
    return [(addlora, n, addlora._python_entries[n]) for n in NAMES] + \
           [(punica, n, punica._python_entries[n]) for n in PUNICA]


def test_entries_look_like_their_python_functions():
    for module, name, py in every_entry():
        fn = getattr(module, name)
        assert inspect.isfunction(py) and (fn is py or inspect.isbuiltin(fn))
        assert inspect.signature(fn) == inspect.signature(py)
        assert fn.__name__ == name and fn.__module__ == module.__name__
        assert inspect.getdoc(fn) == inspect.getdoc(py)


ENTRY_KINDS = """
import sys
if sys.argv[1] == "torch-first":
    import torch
import addlora
from addlora import punica
import torch
names = [getattr(addlora, n) for n in {names!r}] + [getattr(punica, n) for n in {punica!r}]
if int(torch.__version__.split(".")[0]) >= 2 and addlora.register_torch_ops():
    def f(y, x, wb, idx, wa, z):   # every kind of entry, traced whole (fullgraph) either way
        out = addlora.add_lora(y, x, wb, idx, weight_a=wa, scale=0.5)
        punica.bgmv_shrink(x, wa[:, 0], z, idx, 0.25)
        punica.bgmv_expand(z, wb[:, 0], out, idx)
        return out * 2
    g = torch.Generator().manual_seed(0)
    args = [torch.randn(*s, generator=g) for s in ((4, 12), (4, 16), (3, 1, 12, 8), (3, 1, 8, 16), (4, 8))]
    args.insert(3, torch.tensor([2, -1, 0, 1]))   # y, x, wb, idx, wa, z
    z0 = args[5].clone()
    eager = f(*args)
    args[5].copy_(z0)
    compiled = torch.compile(f, fullgraph=True, backend="eager")(*args)
    assert torch.equal(compiled, eager), (compiled - eager).abs().max()
    print("compiled equals eager")
print(sorted({{type(f).__name__ for f in names}}))
"""


@pytest.mark.parametrize("order", ["torch-first", "addlora-first"])
def test_builtins_exactly_where_nothing_traces_or_torch_substitutes(order):
    code = ENTRY_KINDS.format(names=NAMES, punica=PUNICA)
    r = subprocess.run([sys.executable, "-c", code, order], capture_output=True, text=True, env=dict(os.environ),
                       timeout=300)
    assert r.returncode == 0, r.stderr
    if MAJOR >= 2 and addlora.register_torch_ops():
        assert "compiled equals eager" in r.stdout
    builtin = MAJOR < 2 or (SUBSTITUTES and order == "torch-first")
    assert r.stdout.split("\n")[-2] == ("['builtin_function_or_method']" if builtin else "['function']")


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


def same_type_errors(fn, py, bad):
    """Each (args, kwargs) of `bad` raises the same TypeError through the entry and its Python function."""
    for args, kw in bad:
        with pytest.raises(TypeError) as got:
            fn(*args, **kw)
        with pytest.raises(TypeError) as want:
            py(*args, **kw)
        assert str(got.value) == str(want.value)


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
    same_type_errors(fn, py, bad)
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


# ---- the punica entries ------------------------------------------------------------------------
def punica_problem(seed):
    g = torch.Generator().manual_seed(seed)
    t = lambda *s, sc=0.3: (torch.randn(*s, generator=g) * sc).to(torch.float16)  # noqa: E731
    return dict(x=t(5, 16), wa=t(3, 8, 16), wb=t(3, 20, 8), idx=torch.tensor([2, -1, 0, 1, 2]),
                z=torch.zeros(5, 8), y=t(5, 28),
                seq=(torch.tensor([0, 2]), torch.tensor([2, 3]), torch.tensor([1, -1]), 2, 3, 5))


def punica_oracle(p, op):
    """What op writes, in fp64: (z or None, y or None) after shrink (scale 0.5) / expand."""
    per_token = p["idx"] if not op.startswith("sgmv") else torch.tensor([1, 1, -1, -1, -1])
    x, wa, wb = p["x"].double(), p["wa"].double(), p["wb"].double()
    if op.endswith("shrink"):
        z = p["z"].double().clone()
        for b, i in enumerate(per_token.tolist()):
            if 0 <= i < 3:
                z[b] = 0.5 * (wa[i] @ x[b])
        return z, None
    z = p["z"].double()
    y = p["y"].double().clone()
    off = 4 if op.endswith("slice") else 0
    add = op.startswith("bgmv")  # the defaults: bgmv adds, sgmv overwrites
    for b, i in enumerate(per_token.tolist()):
        if 0 <= i < 3:
            d = wb[i] @ z[b]
            y[b, off:off + 20] = (y[b, off:off + 20] if add else 0) + d
    return None, y


def punica_calls(op, p):
    """Ways of calling op on p's tensors (defaults left out, keywords, all positional)."""
    x, wa, wb, idx, z, y = p["x"], p["wa"], p["wb"], p["idx"], p["z"], p["y"]
    start, lens, seq_idx, batches, max_len, tokens = p["seq"]
    s = (start, lens, seq_idx, batches, max_len, tokens)
    fn = getattr(punica, op)
    return {
        "bgmv_shrink": [lambda: fn(x, wa, z, idx, 0.5), lambda: fn(x, wa, z, idx, scaling=0.5),
                        lambda: fn(inputs=x, lora_b_weights=wa, output_tensor=z, lora_indices_tensor=idx,
                                   scaling=0.5)],
        "bgmv_expand": [lambda: fn(z, wb, y, idx), lambda: fn(z, wb, y, idx, True),
                        lambda: fn(z, wb, output_tensor=y, lora_indices_tensor=idx, add_inputs=True)],
        "bgmv_expand_slice": [lambda: fn(z, wb, y, idx, 4, 20), lambda: fn(z, wb, y, idx, 4, 20, True),
                              lambda: fn(z, wb, y, idx, slice_size=20, slice_offset=4)],
        "sgmv_shrink": [lambda: fn(x, wa, z, *s, 0.5), lambda: fn(x, wa, z, *s, scaling=0.5)],
        "sgmv_expand": [lambda: fn(z, wb, y, *s), lambda: fn(z, wb, y, *s, False),
                        lambda: fn(z, wb, y, *s[:3], batches=2, max_seq_length=3, token_nums=5)],
        "sgmv_expand_slice": [lambda: fn(z, wb, y, *s, 4, 20), lambda: fn(z, wb, y, *s, 4, 20, add_inputs=False)],
    }[op]


@pytest.mark.parametrize("op", PUNICA)
def test_every_way_of_calling_a_punica_entry_gives_the_oracle(op):
    p = punica_problem(4)
    if not op.endswith("shrink"):
        p["z"] = torch.randn(5, 8, generator=torch.Generator().manual_seed(5)) * 0.3
    want_z, want_y = punica_oracle(p, op)
    z0, y0 = p["z"].clone(), p["y"].clone()
    for call in punica_calls(op, p):
        p["z"].copy_(z0)
        p["y"].copy_(y0)
        assert call() is None
        if want_z is not None:
            assert torch.allclose(p["z"].double(), want_z, rtol=1e-5, atol=1e-5)
            assert torch.equal(p["y"], y0)
        else:
            assert torch.allclose(p["y"].double(), want_y, rtol=2e-3, atol=2e-3)
            assert not torch.equal(p["y"], y0) and torch.equal(p["z"], z0)


@pytest.mark.parametrize("op", PUNICA)
def test_punica_argument_errors_are_the_python_functions(op):
    p = punica_problem(6)
    fn, py = getattr(punica, op), punica._python_entries[op]
    args = (p["x"], p["wa"], p["z"], p["idx"])
    bad = [(args[:3], {}),                              # missing arguments
           (args, {"bogus": 1}),                        # unknown keyword
           (args, {"inputs": p["x"]}),                  # given twice
           ((p["x"],) * 13, {})]                        # too many positionals
    same_type_errors(fn, py, bad)
    # a library error: the same message from both, nothing written
    z0, y0 = p["z"].clone(), p["y"].clone()
    messages = []
    for f in (fn, py):
        with pytest.raises(ValueError) as e:
            if op.endswith("shrink"):
                f(p["x"][:, :8], p["wa"], p["z"], *((p["idx"], 0.5) if op == "bgmv_shrink" else (*p["seq"], 0.5)))
            else:
                f(p["z"][:, :4], p["wb"], p["y"], *((p["idx"],) if op.startswith("bgmv") else p["seq"]),
                  *((4, 20) if op.endswith("slice") else ()))   # 4 ranks of input, 8 in the weights
        messages.append(str(e.value))
    assert messages[0] == messages[1] and messages[0].startswith("AddLora")
    assert torch.equal(p["z"], z0) and torch.equal(p["y"], y0)
