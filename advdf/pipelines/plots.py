"""Pictures of paper tables: our values beside the paper's where a chart reads faster than the numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def ours_vs_paper_bars(cells: Sequence[dict], row_key: str, series_key: str, path: str | Path,
                       title: str, ylabel: str = "accuracy") -> Path:
    """Grouped bars, one group per ``row_key`` value, two bars (ours filled, paper hatched) per ``series_key``
    value; a value that was not computed has no bar. Written atomically as PNG (matplotlib's Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = list(dict.fromkeys(c[row_key] for c in cells))
    series = list(dict.fromkeys(c[series_key] for c in cells))
    by_key = {(c[row_key], c[series_key]): c for c in cells}
    fig = Figure(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / (2 * len(series))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for j, s in enumerate(series):
        for k, (source, hatch, alpha) in enumerate((("ours", None, 0.9), ("paper", "//", 0.35))):
            xs, ys = [], []
            for i, r in enumerate(rows):
                value = (by_key.get((r, s)) or {}).get(source)
                if value is not None:
                    xs.append(i - 0.4 + width * (2 * j + k + 0.5))
                    ys.append(value)
            ax.bar(xs, ys, width, color=colors[j % len(colors)], alpha=alpha, hatch=hatch,
                   label=f"{s} ({source})", edgecolor="black", linewidth=0.4)
    ax.set_xticks(range(len(rows)), rows, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.axhline(0.5, color="grey", linewidth=0.6, linestyle=":")
    ax.legend(fontsize=7, ncols=2, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path
