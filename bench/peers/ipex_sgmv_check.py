"""Which rows IPEX's sgmv_shrink / sgmv_expand write correctly, for a few splits of 8 tokens into sequences.

For every token, prints the adapter whose result it holds (or `garbage` / `untouched`), next to
the adapter its sequence names.  Each split runs in a child process, because a wrong split can
corrupt the heap and abort the interpreter.  addlora.punica's sgmv ops are checked on the same
data and splits.  Run under the venv of scripts/ipex-env.sh (see bench/peers/README.md):

    PYTHONPATH=build/torch2-site $PY bench/peers/ipex_sgmv_check.py
"""
import signal
import subprocess
import sys

SPLITS = [[8], [4, 4], [2, 2, 2, 2], [2, 6], [1, 1, 6], [3, 2, 3], [1, 7], [3, 5], [5, 3], [7, 1]]


def child(lens, which):
    import torch
    if which == "IPEX":
        import intel_extension_for_pytorch as ipex
        shrink, expand = ipex.llm.functional.sgmv_shrink, ipex.llm.functional.sgmv_expand
    else:
        from addlora import punica
        tokens = sum(lens)
        shrink = lambda *a: punica.sgmv_shrink(*a[:8], tokens, a[8])   # noqa: E731 (token_nums)
        expand = lambda *a: punica.sgmv_expand(*a[:8], tokens, a[8])   # noqa: E731
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    B, H, R, W = sum(lens), 256, 16, 4
    x = torch.randn(B, H, generator=g).half()
    a = (torch.randn(W, R, H, generator=g) / 16).half()
    b = (torch.randn(W, H, R, generator=g) / 4).half()
    seq = torch.tensor(lens)
    lora = torch.arange(len(lens)) % W
    start = torch.cumsum(seq, 0) - seq
    want = torch.repeat_interleave(lora, seq).tolist()

    def who(out, fill, ref):
        res = []
        for t in range(B):
            hit = [k for k in range(W)
                   if (out[t].float() - ref(t, k)).abs().max() <= 0.01 * max(1.0, ref(t, k).abs().max().item())]
            res.append(str(hit[0]) if hit else ("untouched" if (out[t] == fill).all() else "garbage"))
        return res

    z = torch.full((B, R), -3.0).half()
    shrink(x, a, z, start, seq, lora, len(lens), max(lens), 1.0)
    got_s = who(z, -3.0, lambda t, k: a[k].float() @ x[t].float())
    zin = torch.randn(B, R, generator=g).half()
    y = torch.zeros(B, H).half()
    expand(zin, b, y, start, seq, lora, len(lens), max(lens), True)
    got_e = who(y, 0.0, lambda t, k: b[k].float() @ zin[t].float())
    ok = got_s == [str(k) for k in want] and got_e == [str(k) for k in want]
    print(f"{which:8s} lengths {str(lens):14s} want {' '.join(map(str, want))} | shrink {' '.join(got_s)}"
          f" | expand {' '.join(got_e)} | {'ok' if ok else 'WRONG'}", flush=True)


def main():
    if len(sys.argv) > 1:
        child([int(v) for v in sys.argv[1].split(",")], sys.argv[2])
        return
    for which in ("addlora", "IPEX"):
        for lens in SPLITS:
            r = subprocess.run([sys.executable, __file__, ",".join(map(str, lens)), which],
                               capture_output=True, text=True)
            line = [ln for ln in r.stdout.splitlines() if ln.startswith(which)]
            if r.returncode or not line:
                how = signal.Signals(-r.returncode).name if r.returncode < 0 else f"exit {r.returncode}"
                # glibc's last words on an abort (e.g. "free(): invalid next size"); a SIGSEGV has none
                err = r.stderr.strip().splitlines()[-1:] if r.returncode == -signal.SIGABRT else []
                print(f"{which:8s} lengths {str(lens):14s} process died ({how}){': ' + err[-1] if err else ''}")
            else:
                print(line[0])


if __name__ == "__main__":
    main()
