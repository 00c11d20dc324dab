"""Shared by the peer benchmarks in bench/peers: the plain-torch punica peer and timing helpers.

The torch peer is the algorithm vLLM's CPU fallback runs for the punica ops, written here from
the ops' definition: gather every token's adapter weights (an R x H copy per token), one batched
contraction (einsum), cast to the output's dtype, write or add into the output.  sgmv is the same
after expanding the per-sequence adapter indices to per-token ones.
"""
import statistics
import time

import torch


def gather_shrink(x, w, out, idx, scale, skip_invalid=False):
    """``out[:, :R] = scale * x @ w[idx].T`` by a per-token gather.  With ``skip_invalid``, rows
    whose index is outside ``[0, W)`` keep their output (punica's meaning of -1); without it the
    index goes to torch indexing as is (vLLM's CPU code: -1 is the last adapter)."""
    sel = w[idx.clamp(0, w.shape[0] - 1) if skip_invalid else idx]          # [B, R, H] per-token copy
    res = scale * torch.einsum("bh,brh->br", x.to(out.dtype), sel.to(out.dtype))
    dst = out[:, :res.shape[1]]
    if skip_invalid:
        keep = ((idx >= 0) & (idx < w.shape[0])).unsqueeze(1)
        res = torch.where(keep, res, dst)
    dst.copy_(res)


def gather_expand(z, w, out, idx, add_inputs=True, offset=0, size=None, skip_invalid=False):
    """``out[:, offset:offset + size] (+)= z @ w[idx].T`` by a per-token gather (see gather_shrink)."""
    sel = w[idx.clamp(0, w.shape[0] - 1) if skip_invalid else idx]          # [B, H2, R] per-token copy
    res = torch.einsum("br,bhr->bh", z.to(out.dtype), sel.to(out.dtype))
    size = res.shape[1] if size is None else size
    dst = out[:, offset:offset + size]
    if skip_invalid:
        keep = ((idx >= 0) & (idx < w.shape[0])).unsqueeze(1)
        res = torch.where(keep, res, torch.zeros_like(res))
    if add_inputs:
        dst += res
    else:
        dst.copy_(res)


def median_ms(fn, repeats, inner):
    """Median over `repeats` batches of `inner` calls, ms per call (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner * 1e3)
    return statistics.median(times)


def interleaved_us(contenders, n_slots, rounds, min_round_s=0.05, pause_s=0.02):
    """Per-call microseconds of each contender as (median, min, max) over `rounds` rounds.

    `contenders` maps a name to ``fn(slot)``; every call takes the next slot of one cursor shared
    by all contenders, so a call finds its data as long untouched as the rotation allows (with
    enough slots, in DRAM rather than in the caches).  Each round times every contender once, in
    turn, so that load from other processes on a shared machine hits all of them alike; a round
    makes at least one call and goes on until `min_round_s`.  `pause_s` between contenders lets
    spinning worker threads (OpenMP, thread pools) go idle before the next one is timed."""
    cursor = 0
    calls = {}
    for name, fn in contenders.items():  # warm-up; sizes each contender's round
        t0 = time.perf_counter()
        n = 0
        while n < 2 or time.perf_counter() - t0 < min_round_s / 2:
            fn(cursor % n_slots)
            cursor += 1
            n += 1
        per_call = (time.perf_counter() - t0) / n
        calls[name] = max(1, int(min_round_s / per_call) + 1)
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            time.sleep(pause_s)
            k = calls[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn(cursor % n_slots)
                cursor += 1
            samples[name].append((time.perf_counter() - t0) / k * 1e6)
    return {name: (statistics.median(s), min(s), max(s)) for name, s in samples.items()}
