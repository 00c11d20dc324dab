"""Tensor-parallel LoRA'd linears with addlora over torch.distributed (gloo, CPU).

    python examples/python/tensor_parallel_lora.py --world-size 2 [--timeout 120]

starts WORLD_SIZE ranks on 127.0.0.1 (a free port; each rank runs this file with --rank), one
addlora thread per rank, and checks two layers against the unsharded call:

* column-parallel (the output dim H2 is sharded: base weight rows and LoRA B rows): every rank
  holds a full-width y buffer, writes its own columns with ``y_offset`` / ``y_slice_size`` and
  its shard of B, and an all-gather of the column blocks assembles the output;
* row-parallel (the input dim H1 is sharded: base weight columns and LoRA A columns): every rank
  shrinks its slice of x into a partial fp32 z (``addlora.punica.bgmv_shrink``), the partial z
  (and the partial base output) are all-reduced in fp32, then every rank expands
  (``addlora.punica.bgmv_expand``) into the reduced y.

Both results must equal the unsharded ``addlora.add_lora`` within the library's contract (every
element within 1 ulp of fp16 + 2^-16 of the sum of |terms| of the fp64 result).  The launcher
exits non-zero if a rank fails or the whole run exceeds --timeout seconds (ranks are killed).
"""
import argparse
import datetime
import os
import socket
import subprocess
import sys
import time

B, H_IN, H_OUT, R, W, L = 7, 96, 100, 16, 3, 2
LAYER, SCALE = 1, 0.5


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world_size, timeout):
    port = free_port()
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", ADDLORA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--rank", str(r), "--world-size",
                               str(world_size), "--port", str(port), "--timeout", str(timeout)], env=env)
             for r in range(world_size)]
    deadline = time.monotonic() + timeout
    codes = [None] * world_size
    try:
        while None in codes:
            if time.monotonic() > deadline:
                print(f"tensor_parallel_lora: timed out after {timeout} s", file=sys.stderr)
                return 2
            for k, p in enumerate(procs):
                if codes[k] is None:
                    codes[k] = p.poll()
                    if codes[k] not in (None, 0):
                        print(f"tensor_parallel_lora: rank {k} failed (exit {codes[k]})", file=sys.stderr)
                        return 1
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(f"tensor_parallel_lora: {world_size} ranks OK")
    return 0


def within_contract(got, exact, magnitude):
    """Every element within 1 ulp of got's dtype + 2^-16 * magnitude of the fp64 value."""
    import torch
    e = exact.abs().clamp_min(2.0 ** -14)
    ulp = torch.pow(2.0, torch.floor(torch.log2(e)) - 10)          # fp16: 10 fraction bits
    return bool(((got.double() - exact).abs() <= ulp + 2.0 ** -16 * magnitude).all())


def lora_exact(base, x, wb, idx, wa):
    """fp64 y + scale * (x A^T) B^T for rows with an adapter, and the sum of |terms|."""
    import torch
    exact, mag = base.double().clone(), base.double().abs()
    for b in range(x.shape[0]):
        i = int(idx[b])
        if not 0 <= i < W:
            continue
        a, bm = wa[i, LAYER].double(), wb[i, LAYER].double()
        z = a @ x[b].double()
        exact[b] += SCALE * (bm @ z)
        mag[b] += abs(SCALE) * (bm.abs() @ (a.abs() @ x[b].double().abs()))
    return exact, mag


def rank_main(rank, world_size, port, timeout):
    import torch
    import torch.distributed as dist

    import addlora
    from addlora import punica

    torch.set_num_threads(1)
    addlora.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout))
    g = torch.Generator().manual_seed(1234)                       # every rank makes the same full weights
    h = lambda *s, sc=1.0: (torch.randn(*s, generator=g) * sc).half()  # noqa: E731
    x = h(B, H_IN)
    w0 = h(H_OUT, H_IN, sc=H_IN ** -0.5)                           # base linear weight
    wa = h(W, L, R, H_IN, sc=H_IN ** -0.5)
    wb = h(W, L, H_OUT, R, sc=R ** -0.5)
    idx = torch.randint(0, W, (B,), generator=g)
    idx[:2] = torch.tensor([-1, W])                               # rows without adapter

    # ---- column-parallel: B (and the base weight) sharded on the output dim --------------------
    assert H_OUT % world_size == 0
    n = H_OUT // world_size
    off = rank * n
    base_k = (x.float() @ w0[off:off + n].float().t()).half()     # this rank's base columns
    y = torch.zeros(B, H_OUT, dtype=torch.float16)
    y[:, off:off + n] = base_k
    wb_k = wb[:, :, off:off + n]                                  # a strided view, no copy
    addlora.npu_batch_gather_matmul_(y, x, wb_k, idx, wa, LAYER, SCALE, off, n)
    blocks = [torch.empty(B, n, dtype=torch.float16) for _ in range(world_size)]
    dist.all_gather(blocks, y[:, off:off + n].contiguous())
    col_out = torch.cat(blocks, 1)
    bases = [torch.empty(B, n, dtype=torch.float16) for _ in range(world_size)]
    dist.all_gather(bases, base_k.contiguous())
    base = torch.cat(bases, 1)
    unsharded = addlora.add_lora(base, x, wb, idx, weight_a=wa, layer_idx=LAYER, scale=SCALE)
    exact, mag = lora_exact(base, x, wb, idx, wa)
    assert within_contract(col_out, exact, mag), "column-parallel result outside the contract"
    assert within_contract(unsharded, exact, mag)
    col_bitwise = torch.equal(col_out, unsharded)

    # ---- row-parallel: A (and the base weight) sharded on the input dim ------------------------
    assert H_IN % world_size == 0
    m = H_IN // world_size
    cols = slice(rank * m, (rank + 1) * m)
    y32 = x[:, cols].float() @ w0[:, cols].float().t()            # partial base output
    dist.all_reduce(y32)
    y = y32.half()
    base = y.clone()
    z = torch.zeros(B, R, dtype=torch.float32)                    # partial shrink, fp32
    punica.bgmv_shrink(x[:, cols], wa[:, LAYER, :, cols], z, idx, SCALE)
    dist.all_reduce(z)
    punica.bgmv_expand(z, wb[:, LAYER], y, idx, True)
    unsharded = addlora.add_lora(base, x, wb, idx, weight_a=wa, layer_idx=LAYER, scale=SCALE)
    exact, mag = lora_exact(base, x, wb, idx, wa)
    assert within_contract(y, exact, mag), "row-parallel result outside the contract"
    assert within_contract(unsharded, exact, mag)
    row_bitwise = torch.equal(y, unsharded)
    if rank == 0:
        print(f"rank 0/{world_size}: column-parallel ok (bitwise equal to unsharded: {col_bitwise}), "
              f"row-parallel ok (bitwise: {row_bitwise})")
    dist.barrier()
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("--rank", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    if args.rank is None:
        sys.exit(launch(args.world_size, args.timeout))
    rank_main(args.rank, args.world_size, args.port, args.timeout)


if __name__ == "__main__":
    main()
