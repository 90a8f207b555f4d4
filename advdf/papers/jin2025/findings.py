"""Seed 000's Table 2 findings, checked on our cells (``ours`` keyed by (paper row, attack, defense column))."""

from __future__ import annotations

from functools import partial

from advdf.papers.jin2025.layout import TABLE2_DEFENSES, TABLE2_HEADERS
from advdf.report.findings import Finding, both_scopes
from advdf.report.marks import Marks
from advdf.report.render import MISSING, fmt

SMOOTHING_AND_AUGMIX = ("ms", "gs", "as", "augmix")


def _mean(ours: dict[tuple[str, str, str], float], rows: list[str], attacks: tuple[str, ...],
          column: str) -> float | None:
    """The mean of a defense column over ``rows`` (detectors) and ``attacks``, over the cells computed."""
    vals = [ours[(d, a, column)] for d in rows for a in attacks if (d, a, column) in ours]
    return sum(vals) / len(vals) if vals else None


def _ranked(values: dict[str, float | None]) -> str:
    best = sorted(((v, c) for c, v in values.items() if v is not None), reverse=True)[:5]
    return ", ".join(f"{TABLE2_HEADERS[c]} {v:.3f}" for v, c in best) or MISSING


def _every_attack(ours: dict[tuple[str, str, str], float]) -> tuple[str, ...]:
    return tuple(sorted({a for _, a, _ in ours}))


def _na_near_zero(ours: dict, rows: list[str]) -> Finding:
    """Seed 000: without a defense the white-box attacks leave almost no accuracy (mean NA at most 0.1)."""
    m = _mean(ours, rows, _every_attack(ours), "na")
    return Finding("na_near_zero", "NA ≈ 0 (no defense)", f"mean NA accuracy {fmt(m)} (holds at ≤ 0.1)",
                   None if m is None else m <= 0.1, {"mean_na": m})


def _top_defense(ours: dict, rows: list[str], attacks: tuple[str, ...]) -> tuple[dict[str, float | None], str | None]:
    means = {c: _mean(ours, rows, attacks, c) for c in TABLE2_DEFENSES if c != "na"}
    known = {c: v for c, v in means.items() if v is not None}
    return means, (max(known, key=known.get) if known else None)


def _hgd_td_best(ours: dict, rows: list[str]) -> Finding:
    """Seed 000: the learned denoisers HGD and TD recover the most accuracy against PGD and BIM."""
    means, top = _top_defense(ours, rows, ("pgd", "bim"))
    judged = any(means.get(c) is not None for c in ("hgd", "td"))
    return Finding("hgd_td_best_pgd_bim", "HGD and TD best on PGD/BIM",
                   f"mean over PGD and BIM, best defense first: {_ranked(means)}",
                   top in ("hgd", "td") if judged else None, {"means": means, "top": top})


def _smoothing_best_deepfool(ours: dict, rows: list[str]) -> Finding:
    """Seed 000: smoothing (MS, GS, AS) and AugMix recover DeepFool best."""
    means, top = _top_defense(ours, rows, ("deepfool",))
    judged = any(means.get(c) is not None for c in SMOOTHING_AND_AUGMIX)
    return Finding("smoothing_augmix_best_deepfool", "smoothing and AugMix recover DeepFool best",
                   f"DeepFool, best defense first: {_ranked(means)}",
                   top in SMOOTHING_AND_AUGMIX if judged else None, {"means": means, "top": top})


def _jpeg70_ge_jpeg90(ours: dict, rows: list[str]) -> Finding:
    """Seed 000: stronger JPEG compression (quality 70) recovers at least as much as quality 90."""
    j70, j90 = (_mean(ours, rows, _every_attack(ours), c) for c in ("jpeg70", "jpeg90"))
    return Finding("jpeg70_ge_jpeg90", "JPEG70 ≥ JPEG90", f"mean over every attack {fmt(j70)} vs {fmt(j90)}",
                   None if j70 is None or j90 is None else j70 >= j90, {"jpeg70": j70, "jpeg90": j90})


def table2_findings(ours: dict[tuple[str, str, str], float], rows: list[str], marks: Marks | None = None) -> list[Finding]:
    """Seed 000's findings on Table 2 (``ours`` keyed by paper row), each judged over every detector and over the
    detectors reaching the clean-accuracy threshold, with the means it is judged by."""
    marks = marks or Marks()
    return [f for check in (_na_near_zero, _hgd_td_best, _smoothing_best_deepfool, _jpeg70_ge_jpeg90)
            for f in both_scopes(partial(check, ours), rows, marks)]
