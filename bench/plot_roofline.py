#!/usr/bin/env python3
"""Roofline plot of an addlora_bench CSV (--csv): docs/roofline.png.

x = arithmetic intensity (flop per byte of the roofline model), y = GFLOP/s.  Lines: the
measured rooflines (1 thread and all threads); points: addlora and the grouped-sgemm peer.
Needs matplotlib (Debian: python3-matplotlib); without it, says so and exits 0.
usage: plot_roofline.py results.csv docs/roofline.png
"""
import csv
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_roofline.py: matplotlib not installed (apt-get install python3-matplotlib); no plot")
        return 0
    rows = list(csv.DictReader(open(src)))
    if not rows:
        print("plot_roofline.py: empty CSV")
        return 0
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    threads = sorted({int(r["threads"]) for r in rows})
    ai_all = [float(r["flops"]) / float(r["bytes"]) for r in rows]
    lo, hi = min(ai_all) / 2, max(ai_all) * 2
    styles = {threads[0]: ("tab:blue", "o"), threads[-1]: ("tab:red", "s")}
    for t in threads:
        r0 = next(r for r in rows if int(r["threads"]) == t)
        bw, peak = float(r0["bw"]), float(r0["peak"])
        xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        color = styles[t][0]
        ax.plot(xs, [min(peak, x * bw) / 1e9 for x in xs], color=color, lw=1.5,
                label=f"roofline fp32, {t} thread(s): {bw / 1e9:.0f} GB/s, {peak / 1e9:.0f} GFLOP/s")
        if r0.get("peak64"):
            p64 = float(r0["peak64"])
            ax.plot(xs, [min(p64, x * bw) / 1e9 for x in xs], color=color, lw=1, ls="--",
                    label=f"roofline fp64 (exact's ceiling), {t} thread(s): {p64 / 1e9:.0f} GFLOP/s")
        pts = [r for r in rows if int(r["threads"]) == t]
        ax.scatter([float(r["flops"]) / float(r["bytes"]) for r in pts],
                   [float(r["flops"]) / float(r["seconds"]) / 1e9 for r in pts],
                   color=color, marker=styles[t][1], s=22, label=f"addlora, {t} thread(s)", zorder=3)
        fast = [r for r in pts if float(r.get("fast_seconds") or 0) > 0]
        if fast:
            ax.scatter([float(r["flops"]) / float(r["bytes"]) for r in fast],
                       [float(r["flops"]) / float(r["fast_seconds"]) / 1e9 for r in fast],
                       facecolors="none", edgecolors=color, marker="D", s=18,
                       label=f"addlora Precision::fast, {t} thread(s)", zorder=3)
        blas = [r for r in pts if float(r["blas"]) > 0]
        if blas:
            ax.scatter([float(r["flops"]) / float(r["bytes"]) for r in blas],
                       [float(r["flops"]) / float(r["blas"]) / 1e9 for r in blas],
                       facecolors="none", edgecolors="gray", marker="^", s=22,
                       label=f"grouped sgemm (fp32 copies), {t} thread(s)", zorder=2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flop / byte, fp16 bytes of the model)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("AddLora fp16, H1=H2=4096: measured vs roofline of this machine")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(dst)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
