"""addlora.punica against the plain-torch punica semantics a CPU deployment runs today.

The torch peer (bench/peers/common.py) gathers each token's adapter weights, one batched
contraction, adds into the output, in the style of a CPU fallback: it copies R x H weights per
token; rows with index -1 are skipped as punica defines it.  Decode-like shapes (one token per
row).  torch 1.x has no fp16 matmul on the CPU, so the peer runs in fp32 there; addlora runs
in fp16 weights / fp32 buffer as vLLM uses it.

    python bench/peers/punica_vs_torch.py [--repeats 7] [--threads N]
"""
import argparse
import sys

import torch

import addlora
from addlora import punica
from common import gather_expand, gather_shrink, median_ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        addlora.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    peer_dtype = torch.float16 if int(torch.__version__.split(".")[0]) >= 2 else torch.float32
    print(f"addlora {addlora.__version__} ({addlora.info()['simd_target']}, {addlora.num_threads()} threads) | "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads, peer weights {peer_dtype}) | "
          f"median of {args.repeats}, ms per call")
    print(f"{'op':12s} {'B':>4s} {'H':>5s} {'R':>4s} {'W':>3s} {'addlora':>9s} {'torch':>9s} {'ratio':>6s}")
    g = torch.Generator().manual_seed(0)
    for B, H, R, W in [(1, 4096, 16, 8), (16, 4096, 16, 8), (64, 4096, 64, 8), (16, 5000, 32, 4)]:
        x = torch.randn(B, H, generator=g).half()
        wa = (torch.randn(W, R, H, generator=g) / H ** 0.5).half()
        wb = (torch.randn(W, H, R, generator=g) / R ** 0.5).half()
        idx = torch.randint(-1, W, (B,), generator=g)
        z = torch.zeros(B, R)
        y = torch.zeros(B, H, dtype=torch.float16)
        xp, wap, wbp = x.to(peer_dtype), wa.to(peer_dtype), wb.to(peer_dtype)
        zp, yp = torch.zeros(B, R, dtype=peer_dtype), torch.zeros(B, H, dtype=peer_dtype)
        inner = max(1, 200 // B)
        rows = [
            ("shrink", lambda: punica.bgmv_shrink(x, wa, z, idx, 0.5), lambda: gather_shrink(xp, wap, zp, idx, 0.5, skip_invalid=True)),
            ("expand", lambda: punica.bgmv_expand(z, wb, y, idx, True), lambda: gather_expand(zp, wbp, yp, idx, skip_invalid=True)),
        ]
        for name, ours, theirs in rows:
            a = median_ms(ours, args.repeats, inner)
            b = median_ms(theirs, args.repeats, inner)
            print(f"{name:12s} {B:4d} {H:5d} {R:4d} {W:3d} {a:9.4f} {b:9.4f} {b / a:5.1f}x")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
