"""addlora vs the PyTorch CPU LoRA path of common serving stacks, in one run.

Peers (PyTorch, same inputs, same thread count):
  gather  per-token gather A[indices], B[indices] then two batched einsums (the usual CPU path)
  loop    per-adapter loop: rows of adapter w, x[rows] @ A[w].T @ B[w].T (a stronger baseline)
PyTorch 1.13 has no fp16 matmul on the CPU ("addmm_impl_cpu_" not implemented for 'Half'), so
the peers run in fp32 (its fastest CPU dtype); addlora is timed in fp16 (the CANN contract) and
fp32.  Ratios are peer time / addlora time (> 1: addlora is faster).

Usage: python python/bench_torch.py [--threads N] [--repeat K] [--quick]
"""
import argparse
import datetime
import os
import platform
import time

import sys

# Run as a script, this file's folder (python/, holding the addlora sources without the built
# extension) would shadow the installed package.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import addlora  # noqa: E402

# (label, B tokens, H1, H2 (= H3), R, W adapters)
SHAPES = [
    ("decode", 1, 4096, 4096, 16, 8),
    ("decode", 16, 4096, 4096, 16, 8),
    ("decode", 64, 4096, 4096, 64, 8),
    ("prefill", 256, 4096, 4096, 16, 8),
    ("prefill", 512, 4096, 11008, 16, 4),
]


def torch_gather(y, x, wa, wb, idx, layer, scale):
    valid = (idx >= 0) & (idx < wa.shape[0])
    ii = torch.where(valid, idx, torch.zeros_like(idx)).long()
    a = wa[ii, layer]                                  # [B, R, H1] (a copy per token)
    b = wb[ii, layer]                                  # [B, H2, R]
    z = torch.einsum("bh,brh->br", x, a)
    d = torch.einsum("br,bnr->bn", z, b) * scale
    out = y.clone()
    out[:, : d.shape[1]] += d * valid.unsqueeze(1).to(d.dtype)
    return out


def torch_loop(y, x, wa, wb, idx, layer, scale):
    out = y.clone()
    for w in torch.unique(idx).tolist():
        if not 0 <= w < wa.shape[0]:
            continue
        rows = (idx == w).nonzero().squeeze(1)
        d = (x[rows] @ wa[w, layer].t()) @ wb[w, layer].t()
        out[rows, : d.shape[1]] += d * scale
    return out


def best_time(fn, repeat):
    fn()  # warm-up (allocations, thread pools)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="the first three shapes, 3 repeats")
    args = ap.parse_args()
    shapes = SHAPES[:3] if args.quick else SHAPES
    repeat = 3 if args.quick else args.repeat
    torch.set_num_threads(args.threads)
    addlora.set_num_threads(args.threads)
    info = addlora.info()
    print(f"# {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC | {cpu_name()} | {args.threads} threads | "
          f"addlora {info['version']} ({info['simd_target']}) | torch {torch.__version__} | median of {repeat}")
    print("| shape | B | H1 | H2 | R | W | addlora fp16 ms | addlora fp32 ms | torch gather fp32 ms "
          "| torch loop fp32 ms | gather/addlora fp16 | gather/addlora fp32 | loop/addlora fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    layer, scale = 0, 0.5
    for label, B, H1, H2, R, W in shapes:
        y = torch.randn(B, H2, generator=g)
        x = torch.randn(B, H1, generator=g)
        wa = torch.randn(W, 1, R, H1, generator=g) / H1 ** 0.5
        wb = torch.randn(W, 1, H2, R, generator=g) / R ** 0.5
        idx = torch.randint(0, W, (B,), generator=g, dtype=torch.int32)
        h = [t.half() for t in (y, x, wa, wb)]

        # Same result first (fp32 both sides), then time.
        ref = torch_gather(y, x, wa, wb, idx, layer, scale)
        got = addlora.npu_batch_gather_matmul(y, x, wb, idx, wa, layer_idx=layer, scale=scale)
        err = (got - ref).abs().max().item()
        assert err < 1e-3 * (ref.abs().max().item() + 1), f"results differ by {err}"

        t16 = best_time(lambda: addlora.npu_batch_gather_matmul(h[0], h[1], h[3], idx, h[2], layer_idx=layer,
                                                                scale=scale), repeat)
        t32 = best_time(lambda: addlora.npu_batch_gather_matmul(y, x, wb, idx, wa, layer_idx=layer,
                                                                scale=scale), repeat)
        tg = best_time(lambda: torch_gather(y, x, wa, wb, idx, layer, scale), repeat)
        tl = best_time(lambda: torch_loop(y, x, wa, wb, idx, layer, scale), repeat)
        print(f"| {label} | {B} | {H1} | {H2} | {R} | {W} | {t16 * 1e3:.3f} | {t32 * 1e3:.3f} | {tg * 1e3:.3f} "
              f"| {tl * 1e3:.3f} | {tg / t16:.1f}x | {tg / t32:.1f}x | {tl / t32:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
