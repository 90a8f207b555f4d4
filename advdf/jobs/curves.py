"""Robust accuracy against the attack budget: the ``eps_sweep`` of ``attack.py``.

``python attack.py model=resnet50 attack=pgd 'eps_sweep=[1/255,2/255,4/255,8/255,16/255]'`` runs the attack once
per eps (:func:`advdf.jobs.attack.run_eps_sweep`, each eps its own cached, resumable adversarial set) and
this module turns the sets' summaries into the curve: a CSV and a PNG at
``${paths.results_dir}/curves/<data>/<detector dir>/<attack>.{csv,png}``, with the clean accuracy as the eps = 0
point, logged to W&B (a line plot, its table and the image) and as metrics to every other logger.

Each eps is set on ``attack.eps`` exactly as written in the sweep (``"4/255"`` stays the string ``"4/255"``), so a
sweep point and a single run ``attack.eps=4/255`` share one cached set. Other options (``alpha``, ``steps``) are
not rescaled with eps.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from advdf.attacks.base import parse_budget
from advdf.errors import ConfigError
from advdf.utils.io import atomic_write_text

log = logging.getLogger(__name__)

CSV_COLUMNS = ("eps", "eps_label", "kind", "robust_acc", "success_rate", "asr", "linf_max", "l2_mean",
               "grad_calls_mean", "queries_mean", "time_s", "n", "shards_run", "cache_dir")
SUMMARY_KEYS = ("success_rate", "asr", "linf_max", "l2_mean", "grad_calls_mean", "queries_mean", "time_s", "n",
                "shards_run", "cache_dir")


@dataclass(frozen=True)
class SweepPoint:
    """One budget of a sweep: its value, and the value as written (what ``attack.eps`` is set to)."""

    eps: float
    raw: float | int | str

    @property
    def label(self) -> str:
        return str(self.raw)


def parse_eps_sweep(value) -> list[SweepPoint] | None:
    """The ``eps_sweep`` option as points sorted by eps; ``None`` when unset.

    Raises :class:`ConfigError` (one line naming ``eps_sweep``) for anything but a non-empty list of distinct
    budgets in [0, 1], numbers or fractions like ``4/255``.
    """
    if value is None:
        return None
    if not (OmegaConf.is_list(value) or isinstance(value, list | tuple)):
        raise ConfigError(f"eps_sweep must be a list of budgets such as [1/255,2/255,4/255], got {value!r}")
    points: list[SweepPoint] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            raise ConfigError(f"eps_sweep entries must be numbers or fractions like 4/255, got {item!r}")
        eps = parse_budget(item, "eps_sweep entry")
        if not 0.0 <= eps <= 1.0:
            raise ConfigError(f"eps_sweep entries must be in [0, 1] (pixel scale, e.g. 16/255), got {item!r}")
        if any(abs(p.eps - eps) < 1e-12 for p in points):
            raise ConfigError(f"eps_sweep lists the budget {item!r} twice")
        points.append(SweepPoint(eps, item))
    if not points:
        raise ConfigError("eps_sweep is an empty list; give budgets such as [1/255,2/255,4/255]")
    return sorted(points, key=lambda p: p.eps)


def sweep_attack_config(attack_cfg: DictConfig, point: SweepPoint) -> DictConfig:
    """A copy of ``attack_cfg`` with ``eps`` set to the point's value as written."""
    out = copy.deepcopy(attack_cfg)
    with open_dict(out):
        out.eps = point.raw
    return out


def curve_paths(cfg: DictConfig, attack_name: str) -> tuple[Path, Path]:
    """(CSV, PNG) of ``attack_name``'s curve against the detector at ``cfg.checkpoint`` on ``cfg.data``."""
    base = Path(cfg.paths.results_dir) / "curves" / cfg.data.name / Path(cfg.checkpoint).parent.name
    return base / f"{attack_name}.csv", base / f"{attack_name}.png"


def curve_rows(points: list[SweepPoint], summaries: list[dict]) -> list[dict]:
    """The clean point (eps = 0, the detector's clean accuracy) followed by one row per swept eps."""
    clean = summaries[0]["acc_clean"]
    for p, s in zip(points, summaries, strict=True):
        if abs(s["acc_clean"] - clean) > 1e-9:
            log.warning("clean accuracy differs across the sweep (%s: %.4f vs %.4f)", p.label, s["acc_clean"], clean)
    rows = [{"eps": 0.0, "eps_label": "clean", "kind": "clean", "robust_acc": clean, "n": summaries[0]["n"]}]
    for p, s in zip(points, summaries, strict=True):
        rows.append({"eps": p.eps, "eps_label": p.label, "kind": "attack", "robust_acc": s["acc_adv"],
                     **{k: s[k] for k in SUMMARY_KEYS if k in s}})
    return rows


def write_curve_csv(path: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def plot_curve(path: Path, rows: list[dict], title: str) -> Path:
    """Robust accuracy against eps (in units of 1/255) as a PNG, written atomically with matplotlib's Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [r["eps"] * 255 for r in rows]
    ys = [r["robust_acc"] for r in rows]
    ax.plot(xs, ys, marker="o", color="tab:red", label="robust accuracy")
    ax.plot(xs[:1], ys[:1], marker="*", markersize=12, linestyle="none", color="tab:blue", label="clean (eps = 0)")
    ax.set_xlabel("eps (x 1/255, L-inf pixel scale)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    if len(xs) <= 8 and all(abs(x - round(x)) < 1e-6 for x in xs):  # k/255 budgets: a tick at each point
        ax.set_xticks(xs)
        ax.set_xticklabels([str(round(x)) for x in xs])
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def write_curve(cfg: DictConfig, attack_name: str, points: list[SweepPoint], summaries: list[dict]) -> dict:
    """Write the CSV and the PNG; returns the rows and both paths."""
    rows = curve_rows(points, summaries)
    csv_path, png_path = curve_paths(cfg, attack_name)
    write_curve_csv(csv_path, rows)
    title = (f"{attack_name} on {cfg.model.name} ({Path(cfg.checkpoint).parent.name}), "
             f"{cfg.data.name} {cfg.split}, n={rows[0]['n']}")
    plot_curve(png_path, rows, title)
    log.info("robust accuracy vs eps: %s", ", ".join(f"{r['eps_label']}={r['robust_acc']:.4f}" for r in rows))
    log.info("curve written: %s, %s", csv_path, png_path)
    return {"rows": rows, "csv": str(csv_path), "png": str(png_path)}


def log_curve(loggers: list, attack_name: str, curve: dict) -> None:
    """The curve's points as metrics (one step per point) to every logger; W&B also gets a line plot and the PNG."""
    prefix = f"curve/{attack_name}"
    for logger in loggers:
        for step, r in enumerate(curve["rows"]):
            logger.log_metrics({f"{prefix}/eps": r["eps"], f"{prefix}/robust_acc": r["robust_acc"]}, step=step)
        if type(logger).__name__ == "WandbLogger":
            import wandb

            table = wandb.Table(columns=["eps", "eps_label", "robust_acc"],
                                data=[[r["eps"], r["eps_label"], r["robust_acc"]] for r in curve["rows"]])
            logger.experiment.log({
                f"{prefix}/plot": wandb.plot.line(table, "eps", "robust_acc",
                                                  title=f"{attack_name}: robust accuracy vs eps"),
                f"{prefix}/table": table,
                f"{prefix}/image": wandb.Image(curve["png"]),
            })
        logger.save()
