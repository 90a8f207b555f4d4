"""Pictures of paper tables: our values beside the paper's where a chart reads faster than the numbers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advdf.errors import ConfigError


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
    return save_png(fig, path)


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` as PNG atomically (a temporary file of this process, then rename) so a reader never sees half
    a picture and two processes writing the same figure never share a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def _heatmap_figure(n_rows: int, n_cols: int, n_panels: int):
    """An Agg figure sized for ``n_panels`` side-by-side heatmaps of ``n_rows`` x ``n_cols`` (~0.18 in a row)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = max(4.0, 0.18 * n_rows + 1.5)
    width = 2.5 + n_panels * (0.45 * n_cols + 1.2)
    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _draw_heatmap(fig, ax, matrix: np.ndarray, rows: Sequence[str] | None, cols: Sequence[str], title: str,
                  cmap: str, vmin: float, vmax: float) -> None:
    """One heatmap panel with its colorbar: NaN cells grey, each finite cell annotated (2 decimals) when there are
    at most 70 rows; ``rows=None`` leaves the row axis unlabelled (a panel beside one that carries the labels)."""
    import matplotlib

    colormap = matplotlib.colormaps[cmap].with_extremes(bad="lightgrey")
    norm = matplotlib.colors.Normalize(vmin=vmin, vmax=vmax)
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colormap, norm=norm, aspect="auto",
                      interpolation="nearest")
    n_rows, n_cols = matrix.shape
    ax.set_xticks(range(n_cols), list(cols), rotation=45, ha="left", fontsize=7)
    ax.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False)
    if rows is None:
        ax.set_yticks(range(n_rows))
        ax.tick_params(axis="y", labelleft=False)
    else:
        ax.set_yticks(range(n_rows), list(rows), fontsize=6 if n_rows > 20 else 8)
    ax.set_title(title, fontsize=9)
    if n_rows <= 70:
        fontsize = 5 if n_rows > 30 else 6
        for i, j in zip(*np.nonzero(np.isfinite(matrix)), strict=True):
            r, g, b, _ = colormap(norm(matrix[i, j]))
            color = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=fontsize, color=color)
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02, aspect=40).ax.tick_params(labelsize=7)


def _check_grid(rows: Sequence[str], cols: Sequence[str], matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (len(rows), len(cols)) or matrix.size == 0:
        raise ConfigError(f"heatmap: matrix of shape {matrix.shape} does not match {len(rows)} rows x {len(cols)} "
                          "columns (both must be non-empty)")
    return matrix


def grid_heatmap(rows: Sequence[str], cols: Sequence[str], matrix: np.ndarray, path: str | Path, title: str,
                 cmap: str = "viridis", vmin: float = 0, vmax: float = 1) -> Path:
    """A single-panel heatmap of ``matrix`` (rows x cols, NaN drawn grey), written atomically as PNG."""
    matrix = _check_grid(rows, cols, matrix)
    fig = _heatmap_figure(len(rows), len(cols), 1)
    _draw_heatmap(fig, fig.add_subplot(), matrix, rows, cols, title, cmap, vmin, vmax)
    return save_png(fig, path)


def ours_and_diff_heatmaps(rows: Sequence[str], cols: Sequence[str], ours: np.ndarray, diff: np.ndarray,
                           path: str | Path, title: str) -> Path:
    """Two heatmaps side by side: our values (0..1) and ours - paper (-1..1, centred at 0). Rows with no value of
    ours are left out so a partly computed grid stays readable (all rows are kept when none has a value). Written
    atomically as PNG."""
    keep = ~np.all(np.isnan(ours), axis=1)
    if keep.any():
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        ours, diff = ours[keep], diff[keep]
    ours = _check_grid(rows, cols, ours)
    fig = _heatmap_figure(len(rows), len(cols), 2)
    fig.suptitle(title, fontsize=10)
    left, right = fig.subplots(1, 2)
    _draw_heatmap(fig, left, ours, rows, cols, "ours", "viridis", 0.0, 1.0)
    _draw_heatmap(fig, right, diff, None, cols, "ours − paper", "RdBu", -1.0, 1.0)
    return save_png(fig, path)


def roc_curves(curves: dict[str, tuple[Sequence[float], Sequence[float], float | None]], path: str | Path,
               title: str) -> Path:
    """ROC curves, one line per label: ``{label: (fpr, tpr, auc)}``, the chance diagonal dotted; written
    atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, linewidth=1.4, label=f"{label} (AUC {auc:.3f})" if auc is not None else label)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate (real called attacked)")
    ax.set_ylabel("true positive rate (attacked caught)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_png(fig, path)


def image_grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], path: str | Path, title: str = "",
               row_labels: Sequence[str] | None = None) -> Path:
    """A grid of images (one list per row, HxWx3 in [0, 1] or HxW masks), column titles above, written as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(1.9 * n_cols, 1.9 * n_rows + 0.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(row):
                image = np.asarray(row[j])
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)
            if i == 0 and j < len(titles):
                ax.set_title(titles[j], fontsize=8)
            if j == 0 and row_labels:
                ax.set_ylabel(row_labels[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_png(fig, path)


def min_max(image: np.ndarray) -> np.ndarray:
    """``image`` scaled to [0, 1] by its own minimum and maximum (how perturbations are shown)."""
    lo, hi = float(image.min()), float(image.max())
    return np.zeros_like(image) if hi <= lo else (image - lo) / (hi - lo)
