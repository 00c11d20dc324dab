"""Per-call overhead of addlora's eager Python entry points on a tiny problem.

Times one call of each public function (torch fp16 tensors and numpy fp16 arrays; B=1, H=16..64,
R=16, W=4) with time.perf_counter_ns over batches of calls, and reports per-call median, the
10th-90th percentile spread over the repeats, and the C++ floor for comparison is the CANN
bench (not timed here).  Not a unit test: numbers depend on the machine and its load.

    python bench/python_overhead.py [--repeats 41] [--calls 200] [--threads 1]
"""
import argparse
import statistics
import sys
import time

import numpy as np

try:
    import torch
except ImportError:  # numpy rows only
    torch = None

import addlora
from addlora import punica


def timeit(fn, calls, repeats):
    for _ in range(calls):  # warm-up (first-call caches, page faults)
        fn()
    per_call = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        per_call.append((time.perf_counter_ns() - t0) / calls / 1000.0)
    per_call.sort()
    q = lambda f: per_call[min(len(per_call) - 1, int(f * len(per_call)))]  # noqa: E731
    return statistics.median(per_call), q(0.1), q(0.9)


def problems(lib, H, R=16, W=4, B=1):
    rng = np.random.default_rng(0)
    f = lambda *s: (rng.standard_normal(s) * 0.1).astype(np.float16)  # noqa: E731
    arrays = dict(y=f(B, H), x=f(B, H), wa=f(W, 1, R, H), wb=f(W, 1, H, R),
                  idx=np.zeros(B, np.int32), z=np.zeros((B, R), np.float32),
                  wa3=f(W, R, H), wb3=f(W, H, R), idx64=np.zeros(B, np.int64))
    if lib == "torch":
        arrays = {k: torch.from_numpy(v) for k, v in arrays.items()}
    return arrays


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=41)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None, help="addlora.set_num_threads (default: unchanged)")
    args = ap.parse_args()
    if args.threads:
        addlora.set_num_threads(args.threads)
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
            cases = [
                ("npu_batch_gather_matmul_ (in place)",
                 lambda: addlora.npu_batch_gather_matmul_(y, x, wb, idx, wa, 0, 1e-3)),
                ("add_lora(out=...)", lambda: addlora.add_lora(y, x, wb, idx, weight_a=wa, out=out)),
                ("add_lora (allocates out)", lambda: addlora.add_lora(y, x, wb, idx, weight_a=wa)),
                ("npu_batch_gather_matmul (allocates)",
                 lambda: addlora.npu_batch_gather_matmul(y, x, wb, idx, wa, 0, 1e-3)),
                ("punica.bgmv_shrink", lambda: punica.bgmv_shrink(x, p["wa3"], z, p["idx64"], 0.5)),
                ("punica.bgmv_expand", lambda: punica.bgmv_expand(z, p["wb3"], y, p["idx64"], True)),
                ("punica.bgmv_expand_slice",
                 lambda: punica.bgmv_expand_slice(z, p["wb3"], y, p["idx64"], 0, H, True)),
            ]
            for name, fn in cases:
                med, lo, hi = timeit(fn, args.calls, args.repeats)
                print(f"{name:44s} {lib:6s} {H:4d} {med:8.2f} {lo:8.2f} {hi:8.2f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
