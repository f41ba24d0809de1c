"""The ratios of `npm run bench:compare` as a bar chart: lorakit's time over PyTorch + PEFT's, per task.

    python benchmarks/compare/plot.py benchmarks/out/results.json benchmarks/results.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402


def main(results, image):
    rows = json.load(open(results))[::-1]
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    colours = ["#2a7a3b" if r["ratio"] <= 1 else "#b3412c" for r in rows]
    # Bars grow from 1 (as fast as PyTorch) to the ratio, left when lorakit is faster, right when slower.
    lefts = [min(r["ratio"], 1) for r in rows]
    tasks = [r["label"].split(" (")[0] for r in rows]  # the task without its details in parentheses
    axes.barh(tasks, [abs(r["ratio"] - 1) for r in rows], left=lefts, color=colours)
    axes.axvline(1, color="black", linewidth=0.8)
    axes.set_xscale("log")
    ratios = [r["ratio"] for r in rows]
    axes.set_xlim(min(0.5, min(ratios) / 1.5), max(2, max(ratios) * 1.5))
    axes.set_xticks([t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16) if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]])
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("lorakit time / PyTorch + PEFT time (below 1: lorakit faster)")
    for y, r in enumerate(rows):
        axes.text(r["ratio"], y, f" {r['ratio']:.2f}", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(image, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
