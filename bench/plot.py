"""Plot the scale benchmark: wall time and peak memory against residents, pipeline and floor.

    python -m bench.plot [--results bench/results/scale.jsonl] [--out docs/performance-scale.png]

Reads what `python -m bench.scale` recorded (the latest run per program and size) and writes one
PNG with two panels on a logarithmic size axis: wall seconds (pipeline solid, floor dashed) and
peak memory of the process tree with the memory target (6 GB, issue 16). A pipeline run that did
not finish is an x at the time and memory it had reached, not joined to the line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter

from bench.scale import PEAK_TARGET_BYTES, RESULTS, Row, read_results, summarise

SIZE_LABELS = {540_000: "540k", 5_400_000: "5.4M", 52_000_000: "52M"}
SIZE_TICKS = list(SIZE_LABELS)


def series(rows: list[Row], program: str) -> dict[str, list[float]]:
    """Return the plotted points of one program, by size."""
    mine = sorted((r for r in rows if r.program == program), key=lambda r: r.residents)
    return {
        "residents": [r.residents for r in mine],
        "pipeline_s": [r.pipeline_seconds for r in mine],
        "floor_s": [r.floor_seconds for r in mine],
        "pipeline_gb": [r.peak_tree_bytes / 1e9 for r in mine],
        "floor_gb": [r.floor_peak_bytes / 1e9 for r in mine],
        "failed": [0.0 if r.pipeline_ok else 1.0 for r in mine],
    }


def plot(rows: list[Row], out: Path) -> None:
    """Write the two-panel PNG for ``rows`` to ``out``."""
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for i, program in enumerate(sorted({r.program for r in rows})):
        s = series(rows, program)
        ok = [j for j, failed in enumerate(s["failed"]) if not failed]
        colour = f"C{i}"

        def pick(key: str, idx: list[int], values: dict[str, list[float]] = s) -> list[float]:
            return [values[key][j] for j in idx]

        n = pick("residents", ok)
        time_ax.plot(n, pick("pipeline_s", ok), "o-", color=colour, label=program)
        memory_ax.plot(n, pick("pipeline_gb", ok), "o-", color=colour, label=program)
        every = list(range(len(s["residents"])))  # the floor completed for every size
        floor_n = pick("residents", every)
        time_ax.plot(floor_n, s["floor_s"], "s--", color=colour, alpha=0.6, label="floor")
        memory_ax.plot(floor_n, s["floor_gb"], "s--", color=colour, alpha=0.6, label="floor")
        failed = [j for j in every if j not in ok]
        if failed:  # where a run was when it ended without finishing
            label = f"{program}: did not finish"
            for ax, key in ((time_ax, "pipeline_s"), (memory_ax, "pipeline_gb")):
                ax.plot(
                    pick("residents", failed),
                    pick(key, failed),
                    "x",
                    color=colour,
                    markersize=11,
                    markeredgewidth=2,
                    label=label,
                )
    target = f"{PEAK_TARGET_BYTES / 1e9:.0f} GB target"
    memory_ax.axhline(PEAK_TARGET_BYTES / 1e9, color="grey", linestyle=":", label=target)
    time_ax.set(xscale="log", yscale="log", xlabel="residents", ylabel="wall seconds")
    time_ax.yaxis.set_major_formatter(ScalarFormatter())
    time_ax.yaxis.set_minor_formatter(NullFormatter())
    time_ax.set_title("jiwon run (solid) and streaming floor (dashed)")
    memory_ax.set(xscale="log", xlabel="residents", ylabel="peak memory, GB (process tree)")
    memory_ax.set_title("peak memory")
    memory_ax.set_ylim(bottom=0)
    for ax in (time_ax, memory_ax):
        ax.set_xticks(SIZE_TICKS, [SIZE_LABELS[n] for n in SIZE_TICKS])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(3e5, 1e8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=Path("docs/performance-scale.png"))
    args = parser.parse_args()
    rows = summarise(read_results(args.results))
    if not rows:
        raise SystemExit(f"no paired floor and pipeline records in {args.results}")
    plot(rows, args.out)
    print(f"wrote {args.out} ({len(rows)} point(s))")


if __name__ == "__main__":
    main()
