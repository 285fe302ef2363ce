"""ratios.png: the time, CPU and RSS ratios per scenario on a log scale, targets in red."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.results import SCENARIOS, Params, Target


def write_chart(
    summary: dict[str, dict[str, Any]], targets: list[Target], path: Path, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(summary)
    metrics = [("wall", "wall time"), ("cpu", "CPU time"), ("rss_mb", "peak RSS")]
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    width = 0.26
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=120)
    for i, (key, label) in enumerate(metrics):
        xs = [j + (i - 1) * width for j in range(len(scenarios))]
        ys = [summary[s]["ratio"][key] for s in scenarios]
        bars = ax.bar(xs, ys, width, label=f"{label} (asyncmirror / lftp)", color=colors[i])
        for bar, y in zip(bars, ys, strict=True):
            ax.annotate(
                f"{y:.2f}",
                (bar.get_x() + bar.get_width() / 2, y),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
    # Target lines over the bar they apply to (throughput ≥ 1 is time ≤ 1).
    drew = False
    for t in targets:
        if t.scenario not in summary or t.metric == "am_rss_mb":
            continue
        key = {"mb_per_s": "wall"}.get(t.metric, t.metric)
        limit = 1 / t.limit if t.metric == "mb_per_s" else t.limit
        i = [m for m, _ in metrics].index(key)
        x = scenarios.index(t.scenario) + (i - 1) * width
        ax.hlines(
            limit,
            x - width / 2,
            x + width / 2,
            colors="red",
            linewidth=2,
            label="_nolegend_" if drew else "target (at most)",
        )
        drew = True
    ax.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([SCENARIOS[s].replace(" (", "\n(") for s in scenarios], fontsize=8)
    ax.set_ylabel("ratio asyncmirror / lftp (log scale; below 1 = asyncmirror better)")
    ax.set_title(title, fontsize=10)
    top = max(summary[sc]["ratio"][k] for sc in scenarios for k, _ in metrics)
    ax.set_ylim(top=top * 4)  # room for the legend above the bars
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def chart_title(params: Params, info: dict[str, Any]) -> str:
    return (
        f"asyncmirror / lftp, {info['site']['files']} files, {params.rtt:g} ms RTT, "
        f"-j {params.jobs}, medians of {params.repeat} (ProFTPD 1.3.8, FTPS)"
    )
