"""A DCR study's results: MOS per condition with Student-t 95 % intervals, after screening, in seed 002's Table 5
layout beside its baseline, with the objective scores (PSNR, SSIM) of the same pairs.

The MOS of a condition is the mean of the kept evaluators' ratings of its pairs; its interval is
mean ± t(0.975, n - 1) · s / sqrt(n) over those n ratings (s with n - 1), which treats ratings as independent, as
ITU-T P.910 and ITU-R BT.500 do. The attention checks enter only the screening (:mod:`advdf.assess.screening`).
PSNR and SSIM are the means over the condition's pairs as exported (identical images, the reference, have an
infinite PSNR, printed ∞); the Spearman correlation of the pairs' MOS with them says how far they track it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from advdf.assess.screening import Screening, screen
from advdf.paper_values import load
from advdf.report.plots import save_png
from advdf.report.render import MISSING, Lines, fmt, markdown

# Seed 002's Table 5 rows and the attack configs (or the reference) that fill them.
PAPER_ROWS = (("IAP", ("iap_cls", "iap_seg")), ("UAP", ("uap_overfire",)), ("URN", ("urn",)),
              ("Baseline", ("reference",)))


def paper_baseline() -> float:
    """Seed 002's MOS of the clean image against itself (Table 5's baseline), from advdf's shipped paper values."""
    (row,) = [r for r in load("rong_ffm_reported_in_text")
              if r["experiment"] == "subjective" and r["condition"] == "clean_vs_itself_baseline"]
    return float(row["value"])


def mos_interval(scores: Sequence[float], level: float = 0.95) -> dict:
    """``n``, ``mos``, ``sd`` and the Student-t interval ``lo``/``hi`` of ``scores`` (None where undefined), the
    interval cut to the scale's 1-5 (a symmetric interval near 5 would otherwise promise more than 5)."""
    n = len(scores)
    if n == 0:
        return {"n": 0, "mos": None, "sd": None, "lo": None, "hi": None}
    mean = float(np.mean(scores))
    if n == 1:
        return {"n": 1, "mos": mean, "sd": None, "lo": None, "hi": None}
    sd = float(np.std(scores, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mos": mean, "sd": sd, "lo": max(1.0, mean - half), "hi": min(5.0, mean + half)}


def _spearman(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(stats.spearmanr(x, y).statistic)


def mos_report(ratings: list[dict], conditions: list[dict], pairs: dict[str, dict], screening: Screening) -> dict:
    """The study's numbers: per condition (in ``conditions``' order) the MOS cell, its evaluators, mean PSNR and
    SSIM and the paper's value; per evaluator the screening row; the pair-level correlations.

    Args:
        ratings: rows with ``evaluator``, ``pair``, ``condition`` and ``rating`` (``attention`` for the checks).
        conditions: the study's conditions (``name``, ``label``, ``kind``, ``attack``).
        pairs: the study's pairs by id (``condition``, ``psnr``, ``ssim``).
        screening: how evaluators are screened.
    """
    evaluators = screen(ratings, screening)
    kept = {e["evaluator"] for e in evaluators if e["kept"]}
    used = [r for r in ratings if r["evaluator"] in kept and r["condition"] != "attention"]
    baseline = paper_baseline()
    cells = []
    for c in conditions:
        mine = [r for r in used if r["condition"] == c["name"]]
        its_pairs = [p for p in pairs.values() if p["condition"] == c["name"]]
        finite = [p["psnr"] for p in its_pairs if p["psnr"] is not None]
        cells.append({"condition": c["name"], "label": c.get("label", c["name"]), "kind": c.get("kind", "attack"),
                      "attack": c.get("attack", c["name"]), **mos_interval([float(r["rating"]) for r in mine]),
                      "evaluators": len({r["evaluator"] for r in mine}),
                      "psnr": float(np.mean(finite)) if finite else (math.inf if its_pairs else None),
                      "ssim": float(np.mean([p["ssim"] for p in its_pairs])) if its_pairs else None,
                      "paper": baseline if c.get("kind") == "reference" else None})
    by_pair: dict[str, list[float]] = defaultdict(list)
    for r in used:
        by_pair[r["pair"]].append(float(r["rating"]))
    rated = sorted(by_pair)
    pair_mos = [float(np.mean(by_pair[p])) for p in rated]
    psnr = [math.inf if pairs[p]["psnr"] is None else pairs[p]["psnr"] for p in rated]
    return {"conditions": cells, "evaluators": evaluators, "ratings_total": len(ratings), "ratings_kept": len(used),
            "spearman": {"psnr": _spearman(pair_mos, psnr), "ssim": _spearman(pair_mos, [pairs[p]["ssim"] for p in rated])},
            "paper_baseline": baseline}


def _mos_text(cell: dict) -> str:
    if cell["mos"] is None:
        return MISSING
    interval = f" [{cell['lo']:.2f}, {cell['hi']:.2f}]" if cell["lo"] is not None else f" [{MISSING}]"
    return f"{cell['mos']:.2f}{interval}"


def _psnr_text(value: float | None) -> str:
    return "∞" if value is not None and math.isinf(value) else fmt(value, ".1f")


def table5_rows(cells: list[dict]) -> list[list[str]]:
    """Seed 002's Table 5 rows (IAP, UAP, URN, Baseline: each filled by our conditions of that kind, ``—`` where
    we have none), then our other conditions."""
    rows, placed = [], set()
    for paper_row, attacks in PAPER_ROWS:
        mine = [c for c in cells if (c["kind"] == "reference" and "reference" in attacks) or
                (c["kind"] != "reference" and c["attack"] in attacks)]
        for c in mine or [None]:
            if c is None:
                rows.append([paper_row, MISSING, "0", "0", MISSING, MISSING, fmt(None)])
                continue
            placed.add(c["condition"])
            label = paper_row if c["label"] in (paper_row, c["attack"]) else f"{paper_row} ({c['label']})"
            rows.append([label, _mos_text(c), str(c["n"]), str(c["evaluators"]), _psnr_text(c["psnr"]),
                         fmt(c["ssim"]), fmt(c["paper"], ".2f")])
    for c in cells:
        if c["condition"] not in placed:
            rows.append([c["label"], _mos_text(c), str(c["n"]), str(c["evaluators"]), _psnr_text(c["psnr"]),
                         fmt(c["ssim"]), fmt(c["paper"], ".2f")])
    return rows


TABLE5_HEADERS = ["condition", "MOS ours [95 % CI]", "ratings", "evaluators", "PSNR (dB)", "SSIM", "MOS paper"]


def long_cells(result: dict) -> list[dict]:
    """Long-format cells (condition, metric, ours, paper, n, lo, hi) for CSV and W&B."""
    out = []
    for c in result["conditions"]:
        out.append({"condition": c["label"], "metric": "mos", "ours": c["mos"], "paper": c["paper"], "n": c["n"],
                    "lo": c["lo"], "hi": c["hi"]})
        for metric in ("psnr", "ssim"):
            value = c[metric]
            out.append({"condition": c["label"], "metric": metric, "paper": None,
                        "ours": None if value is None or math.isinf(value) else value})
    return out


def mos_chart(cells: list[dict], path: str | Path, title: str) -> Path:
    """Bars of our MOS per condition with their 95 % intervals, and the paper's value (hatched) where it has one;
    written atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(5.0, 1.2 * len(cells) + 2), 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = np.arange(len(cells))
    ours = [c["mos"] if c["mos"] is not None else 0.0 for c in cells]
    err = [[(c["mos"] - c["lo"]) if c["lo"] is not None else 0.0 for c in cells],
           [(c["hi"] - c["mos"]) if c["hi"] is not None else 0.0 for c in cells]]
    ax.bar(xs - 0.2, [o - 1 for o in ours], 0.4, bottom=1, yerr=err, capsize=4, color="tab:blue", alpha=0.9,
           label="ours (95 % CI)", edgecolor="black", linewidth=0.4)
    paper = [(x, c["paper"]) for x, c in zip(xs, cells, strict=True) if c["paper"] is not None]
    if paper:
        ax.bar([x + 0.2 for x, _ in paper], [v - 1 for _, v in paper], 0.4, bottom=1, color="tab:orange",
               alpha=0.35, hatch="//", label="paper", edgecolor="black", linewidth=0.4)
    ax.set_xticks(xs, [c["label"] for c in cells], rotation=20, ha="right")
    ax.set_ylim(1, 5.2)
    ax.set_ylabel("MOS (DCR, 1-5)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, frameon=False)
    fig.tight_layout()
    return save_png(fig, path)


def report_text(name: str, result: dict) -> str:
    """What ``assess.py report`` prints."""
    say = Lines()
    ev = result["evaluators"]
    why = defaultdict(int)
    for e in ev:
        if not e["kept"]:
            why[e["rejected_for"]] += 1
    say(f"Study {name}: {len(ev)} evaluators, {sum(e['kept'] for e in ev)} kept (rejected: {why['attention']} for "
        f"failed attention checks, {why['bt500']} by BT.500 screening); {result['ratings_kept']} of "
        f"{result['ratings_total']} ratings used (attention checks excluded)\n")
    say("Seed 002, Table 5 — subjective test (DCR, 5 = imperceptible): MOS with Student-t 95 % intervals, and "
        f"objective scores of the same pairs; the paper's baseline is {result['paper_baseline']:.2f}, its other "
        "MOS values are lost (—)\n")
    say(markdown(TABLE5_HEADERS, table5_rows(result["conditions"])))
    rho = result["spearman"]
    say(f"pair-level Spearman rho of MOS with PSNR: {fmt(rho['psnr'], '.2f')}, with SSIM: {fmt(rho['ssim'], '.2f')}")
    return str(say)


__all__ = ["mos_report", "mos_interval", "report_text", "table5_rows", "long_cells", "mos_chart"]
