"""Per-call overhead of addlora's eager Python entry points on a tiny problem.

Times one call of each public function (torch fp16 tensors and numpy fp16 arrays; B=1, H=16 and
64, R=16, W=4) with time.perf_counter_ns over batches of calls, interleaving the cases, and
reports the per-call median and the 10th-90th percentile spread over the repeats.  The last
case cycles add_lora over 224 weight sets with the batch size changing from pass to pass, as a
serving stack calls it.  --python-entries adds every call again through the Python function
behind its public name (what the public name is where it is not a builtin, docs/python.md "Call
overhead"), interleaved with the rest.  Not a unit test: the numbers depend on the machine and
its load.

    python bench/python_overhead.py [--repeats 41] [--calls 200] [--threads 1] [--python-entries]
                                    [--cache-forms]
"""
import argparse
import statistics
import sys
import time
import types

import numpy as np

try:
    import torch
except ImportError:  # numpy rows only
    torch = None

import addlora
from addlora import punica


def timeit_all(cases, calls, repeats):
    """Per-call microseconds of every case: (median, p10, p90) over `repeats` rounds.

    The cases are interleaved (each round times every case once, in turn) so that a burst of
    load from other processes hits all of them alike instead of a few consecutive rows."""
    for _, fn in cases:  # warm-up (first-call caches, page faults)
        for _ in range(calls):
            fn()
    samples = [[] for _ in cases]
    for _ in range(repeats):
        for k, (_, fn) in enumerate(cases):
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            samples[k].append((time.perf_counter_ns() - t0) / calls / 1000.0)
    out = []
    for per_call in samples:
        per_call.sort()
        q = lambda f: per_call[min(len(per_call) - 1, int(f * len(per_call)))]  # noqa: E731
        out.append((statistics.median(per_call), q(0.1), q(0.9)))
    return out


def problems(lib, H, R=16, W=4, B=1):
    rng = np.random.default_rng(0)
    f = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float16)  # noqa: E731
    arrays = dict(y=f(B, H), x=f(B, H), wa=f(W, 1, R, H), wb=f(W, 1, H, R),
                  idx=np.zeros(B, np.int32), z=np.zeros((B, R), np.float32),
                  wa3=f(W, R, H), wb3=f(W, H, R), idx64=np.zeros(B, np.int64))
    if lib == "torch":
        arrays = {k: torch.from_numpy(v) for k, v in arrays.items()}
    return arrays


def serving(lib, H, R=16, W=4, sets=224, batches=16):
    """One add_lora call per invocation, as a serving stack's forward pass makes them: `sets`
    weight sets (a model's projections) in turn, the batch size (1..`batches`) changing from one
    pass to the next.  The bookkeeping (a counter, two lookups) is included in the time."""
    rng = np.random.default_rng(1)
    f = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float16)  # noqa: E731
    conv = (lambda v: torch.from_numpy(v)) if lib == "torch" else (lambda v: v)  # noqa: E731
    weights = [(conv(f(W, 1, H, R)), conv(f(W, 1, R, H))) for _ in range(sets)]
    acts = [(conv(f(B, H)), conv(f(B, H)), conv(np.zeros(B, np.int32)), conv(f(B, H))) for B in range(1, batches + 1)]
    state = [0]

    def call():
        k = state[0]
        state[0] = k + 1
        wb, wa = weights[k % sets]
        y, x, idx, out = acts[(k // sets * 7) % batches]
        addlora.add_lora(y, x, wb, idx, weight_a=wa, out=out)
    return call


def cache_forms(args):
    """The serving case under each form of the description cache, the forms interleaved."""
    from addlora import _core, _guards
    factory = _guards.factory()
    if torch is None or factory is None or not factory.dynamic_rows:
        sys.exit("--cache-forms needs a torch whose guards can leave the batch dimension open")
    from torch._C._dynamo.guards import TensorGuards
    forms = [("batch dimension open", factory), ("an entry per batch size", _guards._make_with(TensorGuards, False)),
             ("no cache", None)]
    calls = 224 * 16  # one pass over every weight set at every batch size
    fns = []
    for _, f in forms:
        _core.set_guard_factory(f)
        fns.append(serving("torch", 64))
    samples = [[] for _ in forms]
    for _ in range(args.repeats):
        for k, (_, f) in enumerate(forms):
            _core.set_guard_factory(f)  # (clears the cache)
            for _ in range(calls):      # warm: every set and batch size seen once
                fns[k]()
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                fns[k]()
            samples[k].append((time.perf_counter_ns() - t0) / calls / 1000.0)
    _core.set_guard_factory(factory)
    print(f"serving case (torch, H=64), {args.repeats} repeats x {calls} calls, per-call us")
    for (name, _), v in zip(forms, samples):
        v.sort()
        print(f"{name:26s} median {statistics.median(v):6.2f}  min {v[0]:6.2f}  max {v[-1]:6.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=41)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="addlora.set_num_threads (default: unchanged)")
    ap.add_argument("--python-entries", action="store_true",
                    help="also time each call through the Python function behind the public name "
                         "(addlora._python_entries: what the public names are where they are not builtins)")
    ap.add_argument("--cache-forms", action="store_true",
                    help="only the serving case (torch, H=64) under three forms of the description cache: "
                         "the batch dimension open (the default), one entry per batch size, no cache")
    args = ap.parse_args()
    if args.threads:
        addlora.set_num_threads(args.threads)
    if args.cache_forms:
        return cache_forms(args)
    libs = ["numpy"] + (["torch"] if torch is not None else [])
    print(f"addlora {addlora.__version__} ({addlora.info()['simd_target']}, {addlora.num_threads()} threads) | "
          f"torch {torch.__version__ if torch else '-'} | python {sys.version.split()[0]} | "
          f"{args.repeats} repeats x {args.calls} calls, per-call us")
    print(f"{'call':44s} {'lib':6s} {'H':>4s} {'median':>8s} {'p10':>8s} {'p90':>8s}")
    for lib in libs:
        for H in (16, 64):
            p = problems(lib, H)
            y, x, wa, wb, idx, z = p["y"], p["x"], p["wa"], p["wb"], p["idx"], p["z"]
            out = y * 1  # a separate output
            def entries(A, P, tag):
                return [
                    ("npu_batch_gather_matmul_ (in place)" + tag,
                     lambda: A.npu_batch_gather_matmul_(y, x, wb, idx, wa, 0, 1e-3)),
                    ("add_lora(out=...)" + tag, lambda: A.add_lora(y, x, wb, idx, weight_a=wa, out=out)),
                    ("add_lora (allocates out)" + tag, lambda: A.add_lora(y, x, wb, idx, weight_a=wa)),
                    ("npu_batch_gather_matmul (allocates)" + tag,
                     lambda: A.npu_batch_gather_matmul(y, x, wb, idx, wa, 0, 1e-3)),
                    ("punica.bgmv_shrink" + tag, lambda: P.bgmv_shrink(x, p["wa3"], z, p["idx64"], 0.5)),
                    ("punica.bgmv_expand" + tag, lambda: P.bgmv_expand(z, p["wb3"], y, p["idx64"], True)),
                    ("punica.bgmv_expand_slice" + tag,
                     lambda: P.bgmv_expand_slice(z, p["wb3"], y, p["idx64"], 0, H, True)),
                ]
            cases = entries(addlora, punica, "")
            if args.python_entries:  # the same calls through the Python functions, interleaved
                cases += entries(types.SimpleNamespace(**addlora._python_entries),
                                 types.SimpleNamespace(**punica._python_entries), " [py]")
            cases.append(("add_lora(out=...), 224 sets, B 1-16 by pass", serving(lib, H)))
            for (name, _), (med, lo, hi) in zip(cases, timeit_all(cases, args.calls, args.repeats)):
                print(f"{name:44s} {lib:6s} {H:4d} {med:8.2f} {lo:8.2f} {hi:8.2f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
