"""addlora against Intel Extension for PyTorch (IPEX) 2.8's punica ops and vLLM's CPU torch algorithm.

One LoRA update y += scale * (x A^T) B^T per call, on the shapes of bench/entry_bench.cc's grid,
by four contenders on the same tensors:

  addlora.punica   bgmv_shrink + bgmv_expand_slice (decode/batched rows) or sgmv_shrink +
                   sgmv_expand_slice (prefill rows): the same interface IPEX offers;
  addlora.add_lora the one-call op (z stays fp32 inside);
  IPEX             ipex.llm.functional.bgmv_shrink + bgmv_expand_slice / sgmv_shrink +
                   sgmv_expand_slice;
  vLLM-torch       per-token weight gather + einsum (bench/peers/common.py), sgmv by expanding
                   the per-sequence indices to per-token ones first, as vLLM's CPU fallback does.

The rank buffer z has the activations' dtype (IPEX requires the shrink output's dtype to equal the
weights', and returns zeros for fp32; fp32 is therefore not benchmarked).  Indices are int64 and
every tensor contiguous (IPEX requires both).  Weights and activations rotate over copies (--rotate-mib,
default 256 MiB, far past the L3), so every call reads them from DRAM; the tiny row (per-call
cost) stays in the caches.  Before timing, every contender's result is compared with an fp64
reference; a disagreement is printed and marked in the table.  Each row is timed in --repeats
rounds, the contenders interleaved in each round; the table gives median [min-max] per call in us
and the ratios of the medians (peer / addlora: > 1 means addlora is faster).  The DRAM floor is
the bytes a call must move (weights of the adapters in use + x, y read, y written) over the read
bandwidth of a large torch reduction measured at the start.

    PY=$(bash scripts/ipex-env.sh | tail -n 1)
    PYTHONPATH=build/torch2-site $PY bench/peers/ipex_vs_addlora.py [--repeats 7] [--dtypes fp16,bf16]
        [--threads 2] [--rows 0,1,5] [--md FILE] [--no-vllm] [--max-gather-gb 2.5]
"""
import argparse
import datetime
import math
import platform
import sys
import time

import torch

import addlora
from addlora import punica
from common import gather_expand, gather_shrink, interleaved_us

try:
    import intel_extension_for_pytorch as ipex
except ImportError as e:  # the table then has no IPEX columns' numbers
    ipex = None
    ipex_error = str(e)

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
EPS = {torch.float16: 2.0 ** -10, torch.bfloat16: 2.0 ** -7}
SCALE = 0.5

# (what, B, R, W, H, sgmv) -- bench/entry_bench.cc's grid plus the extra ranks.
SHAPES = [
    ("tiny: per-call cost", 1, 16, 1, 64, False),
    ("decode", 1, 16, 1, 4096, False),
    ("decode", 1, 64, 1, 4096, False),
    ("decode", 1, 128, 1, 4096, False),
    ("decode, distinct adapters", 16, 16, 16, 4096, False),
    ("decode, distinct adapters", 16, 64, 16, 4096, False),
    ("mid-size groups", 64, 16, 32, 4096, False),
    ("mid-size groups", 64, 64, 32, 4096, False),
    ("batched", 256, 16, 8, 4096, False),
    ("batched", 256, 64, 8, 4096, False),
    ("prefill (sgmv)", 2048, 64, 4, 4096, True),
    ("prefill (sgmv)", 2048, 128, 1, 4096, True),
    ("16 rows, one adapter (sgmv)", 16, 64, 1, 4096, True),
]


def call_bytes(B, R, W, H, elem=2):
    """Bytes a call must move: the adapters in use (all W here), x and y read, y written."""
    return min(W, B) * R * 2 * H * elem + B * 3 * H * elem


def read_bandwidth():
    """Bytes/s of a sum over 512 MiB of fp32 with torch's threads (median of 5)."""
    big = torch.ones(128 << 20)
    big.sum()
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        big.sum()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return big.numel() * 4 / ts[len(ts) // 2]


class Data:
    """`n` slots of one shape: x, y, A, B, z per slot, as slices of one tensor each."""

    def __init__(self, B, R, W, H, sgmv, dtype, rotate_bytes, seed):
        g = torch.Generator().manual_seed(seed)
        self.B, self.R, self.W, self.H, self.sgmv = B, R, W, H, sgmv
        self.n = max(2, math.ceil(rotate_bytes / call_bytes(B, R, W, H))) if rotate_bytes else 1

        def rand(shape, std):
            t = torch.empty((self.n,) + shape, dtype=torch.float32)
            t.normal_(0.0, std, generator=g)
            return t.to(dtype)

        self.x = rand((B, H), 1.0)
        self.y = rand((B, H), 0.5)  # about the size of the delta
        self.a = rand((W, R, H), 1.0 / math.sqrt(H))
        self.b = rand((W, H, R), 1.0 / math.sqrt(R))
        self.z = torch.zeros((self.n, B, R), dtype=dtype)
        if sgmv:  # W sequences of B / W tokens, sequence k on adapter k
            self.seq_len = torch.full((W,), B // W, dtype=torch.int64)
            self.seq_start = torch.cumsum(self.seq_len, 0) - self.seq_len
            self.seq_lora = torch.arange(W, dtype=torch.int64)
            self.idx = torch.repeat_interleave(self.seq_lora, self.seq_len)
        else:     # every adapter in use, interleaved
            self.idx = torch.arange(B, dtype=torch.int64) % W

    def slot(self, s, z=None, y=None):
        """Slot s's views in a contender's argument order (z and y may be replaced)."""
        a, b = self.a[s], self.b[s]
        return (self.x[s], a, b, self.z[s] if z is None else z, self.y[s] if y is None else y,
                a.unsqueeze(1), b.unsqueeze(1))

    def reference(self, s):
        """y[s] + SCALE * (x A^T) B^T in fp64, adapter by adapter."""
        out = self.y[s].double().clone()
        x = self.x[s].double()
        for k in range(self.W):
            rows = self.idx == k
            if rows.any():
                z = SCALE * (x[rows] @ self.a[s, k].double().T)
                out[rows] += z @ self.b[s, k].double().T
        return out


def contenders(d, with_ipex, with_vllm):
    """name -> fn(x, a, b, z, y, a_l, b_l): one LoRA update of y in place (a_l, b_l: a and b with
    a layer dimension of 1, [W, 1, R, H] and [W, 1, H, R], the weights as add_lora takes them)."""
    B, H, W = d.B, d.H, d.W
    idx = d.idx
    out = {}
    if d.sgmv:
        nseq, maxlen = W, B // W
        st, ln, li = d.seq_start, d.seq_len, d.seq_lora

        def ours(x, a, b, z, y, a_l, b_l):
            punica.sgmv_shrink(x, a, z, st, ln, li, nseq, maxlen, B, SCALE)
            punica.sgmv_expand_slice(z, b, y, st, ln, li, nseq, maxlen, B, 0, H, True)
    else:
        def ours(x, a, b, z, y, a_l, b_l):
            punica.bgmv_shrink(x, a, z, idx, SCALE)
            punica.bgmv_expand_slice(z, b, y, idx, 0, H, True)
    out["addlora.punica"] = ours

    def ours_op(x, a, b, z, y, a_l, b_l):
        addlora.add_lora(y, x, b_l, idx, weight_a=a_l, scale=SCALE, out=y)
    out["addlora.add_lora"] = ours_op

    if with_ipex:
        F = ipex.llm.functional
        if d.sgmv:
            def theirs(x, a, b, z, y, a_l, b_l):
                F.sgmv_shrink(x, a, z, st, ln, li, nseq, maxlen, SCALE)
                F.sgmv_expand_slice(z, b, y, st, ln, li, nseq, maxlen, 0, H, True)
        else:
            def theirs(x, a, b, z, y, a_l, b_l):
                F.bgmv_shrink(x, a, z, idx, SCALE)
                F.bgmv_expand_slice(z, b, y, idx, 0, H, True)
        out["IPEX"] = theirs

    if with_vllm:
        if d.sgmv:
            def vllm(x, a, b, z, y, a_l, b_l):
                tok = torch.repeat_interleave(li, ln)
                gather_shrink(x, a, z, tok, SCALE)
                gather_expand(z, b, y, tok, True, 0, H)
        else:
            def vllm(x, a, b, z, y, a_l, b_l):
                gather_shrink(x, a, z, idx, SCALE)
                gather_expand(z, b, y, idx, True, 0, H)
        out["vLLM-torch"] = vllm
    return out


def check(d, fns):
    """Relative max error of each contender on slot 0 against the fp64 reference, and whether it
    is within the tolerance (8 units of the dtype's epsilon of max |y + delta|)."""
    ref = d.reference(0)
    norm = ref.abs().max().item()
    tol = 8 * EPS[d.x.dtype]
    res = {}
    for name, fn in fns.items():
        y = d.y[0].clone()
        z = torch.zeros_like(d.z[0])
        fn(*d.slot(0, z=z, y=y))
        err = (y.double() - ref).abs().max().item() / norm
        res[name] = (err, err <= tol)  # NaN compares False: a failure
    return res, tol


def fmt(t):
    return "-" if t is None else f"{t[0]:.1f} [{t[1]:.1f}-{t[2]:.1f}]"


def ratio(peer, ours):
    return "-" if peer is None or ours is None else f"{peer[0] / ours[0]:.2f}x"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per row (median, min-max)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtypes", default="fp16,bf16")
    ap.add_argument("--rows", default=None, help="comma-separated indices into the grid (default: all)")
    ap.add_argument("--rotate-mib", type=float, default=256.0, help="bytes of data copies to rotate over")
    ap.add_argument("--min-round-s", type=float, default=0.05)
    ap.add_argument("--max-gather-gb", type=float, default=2.5,
                    help="skip the vLLM-torch peer where its per-token weight copy would exceed this")
    ap.add_argument("--no-vllm", action="store_true")
    ap.add_argument("--md", default=None, help="append the markdown table to this file")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    addlora.set_num_threads(args.threads)
    dtypes = [DTYPES[s] for s in args.dtypes.split(",")]
    rows = SHAPES if args.rows is None else [SHAPES[int(i)] for i in args.rows.split(",")]
    bw = read_bandwidth()
    head = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC | {platform.processor() or platform.machine()}"
            f" | addlora {addlora.__version__} ({addlora.info()['simd_target']}, {addlora.num_threads()} threads) | "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads) | "
            f"IPEX {ipex.__version__ if ipex else 'not importable: ' + ipex_error} | "
            f"read bandwidth {bw / 1e9:.1f} GB/s | {args.repeats} rounds per row")
    print(head)
    if ipex is None:
        print("IPEX columns empty: run under the venv of scripts/ipex-env.sh", file=sys.stderr)

    lines = []
    problems = []
    meets = {"addlora.punica": [], "addlora.add_lora": []}
    for what, B, R, W, H, sgmv in rows:
        for dtype in dtypes:
            dn = [k for k, v in DTYPES.items() if v is dtype][0]
            rotate = 0 if what.startswith("tiny") else args.rotate_mib * (1 << 20)
            d = Data(B, R, W, H, sgmv, dtype, rotate, seed=B * 1000 + R * 10 + W)
            gather_gb = B * R * H * 2 / 1e9
            with_vllm = not args.no_vllm and gather_gb <= args.max_gather_gb
            fns = contenders(d, ipex is not None, with_vllm)
            errs, tol = check(d, fns)
            print(f"  {what} B={B} R={R} W={W} {dn}: {d.n} data slots; max error / max|y| vs fp64: "
                  + ", ".join(f"{k} {e:.2g}" for k, (e, _) in errs.items()))
            for name, (err, ok) in errs.items():
                if not ok:
                    msg = f"{what} B={B} R={R} W={W} {dn}: {name} disagrees with the fp64 reference " \
                          f"(max error {err:.3g} of max|y|, tolerance {tol:.3g})"
                    problems.append(msg)
                    print("DISAGREEMENT:", msg, file=sys.stderr)
            # Each slot's views made once: making them per call costs about 4 us of Python (1.6 us
            # more for add_lora's layer-stacked weights), which no user pays every call and which
            # would compress the ratios of short calls.
            slots = [d.slot(s) for s in range(d.n)]
            timed = {name: (lambda s, fn=fn: fn(*slots[s])) for name, fn in fns.items()}
            t = interleaved_us(timed, d.n, args.repeats, args.min_round_s)
            mark = lambda name: "" if errs[name][1] else " (wrong)"  # noqa: E731
            p, o, i, v = (t.get(k) for k in ("addlora.punica", "addlora.add_lora", "IPEX", "vLLM-torch"))
            floor = call_bytes(B, R, W, H) / bw * 1e6 if rotate else None
            vcell = fmt(v) + mark("vLLM-torch") if v else (f"skipped ({gather_gb:.1f} GB gather)" if not args.no_vllm else "-")
            line = (f"| {what} | {B} | {R} | {W} | {H} | {dn} | {'-' if floor is None else f'{floor:.1f}'} | "
                    f"{fmt(p)}{mark('addlora.punica')} | {fmt(o)}{mark('addlora.add_lora')} | "
                    f"{fmt(i) + mark('IPEX') if i else '-'} | {ratio(i, p)} | {ratio(i, o)} | {vcell} | {ratio(v, p)} |")
            print(line)
            sys.stdout.flush()
            lines.append(line)
            if i is not None:
                for k, ours_t in (("addlora.punica", p), ("addlora.add_lora", o)):
                    meets[k].append((f"{what} B={B} R={R} W={W} {dn}", i[0] / ours_t[0]))
            del d, fns, timed, slots

    table = ("| shape | B | R | W | H | dtype | DRAM floor us | addlora.punica us | addlora.add_lora us | IPEX us | "
             "IPEX / punica | IPEX / add_lora | vLLM-torch us | vLLM / punica |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")
    summary = []
    for k, rs in meets.items():
        if rs:
            miss = [f"{n} ({r:.2f}x)" for n, r in rs if r < 2.0]
            summary.append(f"- {k}: >= 2x IPEX on {len(rs) - len(miss)} of {len(rs)} rows"
                           + (f"; below 2x: {'; '.join(miss)}" if miss else ""))
    summary += [f"- disagreement: {m}" for m in problems]
    print()
    print(head + "\n")
    print(table)
    print("\n".join(summary))
    if args.md:
        with open(args.md, "a") as f:
            f.write(f"\n{head}\n\nTimes per call in us, median [min-max] over {args.repeats} rounds; "
                    f"ratios are of the medians (peer / addlora, > 1: addlora faster).\n\n{table}\n"
                    + "\n".join(summary) + "\n")


if __name__ == "__main__":
    main()
