"""Seed 000's (Jin et al. 2025) table layouts: Table 1 (clean accuracy, Base and AugMix) and Table 2 (detectors x
white-box attacks x defenses), each cell ``ours / paper`` beside the shipped paper values."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advdf import paper_values
from advdf.errors import ConfigError
from advdf.report import render
from advdf.report.marks import Marks, below_threshold, footnote_block
from advdf.report.plots import ours_and_diff_heatmaps

# Seed 000 (Jin et al. 2025), Table 2: detectors x white-box attacks x defenses, accuracy on attacked test sets.
TABLE2_DETECTORS = ("vgg16", "resnet50", "mesonet", "mesoinception4", "efficientnet_b4", "xception",
                    "densenet121", "mobilenetv2", "gramnet")
TABLE2_ATTACKS = ("bim", "mifgsm", "tifgsm", "sim", "pgd", "cw", "deepfool")
TABLE2_DEFENSES = ("na", "ms", "gs", "as", "jpeg70", "jpeg80", "jpeg90", "augmix", "dae", "hgd", "td")
TABLE2_HEADERS = {"na": "NA", "ms": "MS", "gs": "GS", "as": "AS", "jpeg70": "JPEG70", "jpeg80": "JPEG80",
                  "jpeg90": "JPEG90", "augmix": "AugMix", "dae": "DAE", "hgd": "HGD", "td": "TD"}


# Seed 000, Table 1: clean test accuracy of the nine detectors, trained without and with AugMix.
TABLE1_VARIANTS = ("base", "augmix")
TABLE1_HEADERS = {"base": "Base", "augmix": "AugMix"}


def table2_cells(ours: dict[tuple[str, str, str], float], marks: Marks | None = None,
                 counts: dict[tuple[str, str, str], int] | None = None,
                 augmix_clean: dict[str, float | None] | None = None) -> list[dict]:
    """Long-format cells of Table 2: one per (detector, attack, defense) with ``ours`` and ``paper``.

    Args:
        ours: accuracy keyed by (detector, attack, defense column) for what was computed. Detectors and attacks
            advdf ran beyond the paper's (e.g. FGSM) get rows after the paper's, with no paper value.
        marks: the rows' marks (their fields go into every cell); its paper-scale-only rows are kept.
        counts: frames each computed cell was measured on (its Wilson interval); None leaves cells without one.
        augmix_clean: the AugMix-trained detectors' clean accuracy: the AugMix column measures them, not the row's
            base detector, so its cells carry theirs.
    """
    paper = {(r["detector"], r["attack"], d): float(r[d])
             for r in paper_values.load("jin2025_table2_attack_defense_accuracy") for d in TABLE2_DEFENSES}
    cells = []
    extra = {d for d, _, _ in ours} | set(marks.paper_only if marks else ())
    for det in (*TABLE2_DETECTORS, *sorted(extra - set(TABLE2_DETECTORS))):
        extra_attacks = sorted({a for d, a, _ in ours if d == det} - set(TABLE2_ATTACKS))
        for att in (*TABLE2_ATTACKS, *extra_attacks):
            for d in TABLE2_DEFENSES:
                value = ours.get((det, att, d))
                cell = {"detector": det, "attack": att, "defense": d, "ours": value, "paper": paper.get((det, att, d))}
                if counts is not None:
                    cell.update(render.rate_fields(value, counts.get((det, att, d))))
                if marks is not None:
                    cell.update(marks.fields(det))
                    if d == "augmix" and augmix_clean is not None and det in augmix_clean:
                        cell.update(clean_acc=augmix_clean[det], below_threshold=below_threshold(augmix_clean[det]))
                cells.append(cell)
    return cells


def _table2_rows(cells: Sequence[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """Cells grouped by (detector, attack) in cell order, then by defense column."""
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for c in cells:
        rows.setdefault((c["detector"], c["attack"]), {})[c["defense"]] = c
    return rows


def table2_markdown(cells: Sequence[dict], only_computed_rows: bool = False, marks: Marks | None = None) -> str:
    """Seed 000's Table 2 layout; each cell reads ``ours / paper`` (a paper-scale-only row: ``paper scale only /
    paper``), row labels carry ``marks`` and its footnotes follow the table. ``only_computed_rows`` leaves out rows
    with nothing of ours (paper-scale-only rows too: the footnote names them)."""
    marks = marks or Marks()
    rows = [[marks.label(det), att, *(render.cell_text(by_def[d]) for d in TABLE2_DEFENSES)]
            for (det, att), by_def in _table2_rows(cells).items()
            if not (only_computed_rows and all(c["ours"] is None for c in by_def.values()))]
    table = render.markdown(["Detector", "Attack", *(TABLE2_HEADERS[d] for d in TABLE2_DEFENSES)], rows, 2)
    return table + footnote_block(marks.footnotes())


def cells_csv(cells: Sequence[dict]) -> str:
    """Table 2 as long-format CSV (one line per detector, attack and defense)."""
    return render.long_csv(cells, ["detector", "attack", "defense"], metric=False, ours_spec=".4f",
                           paper_spec=".3f")


def table2_latex(cells: Sequence[dict], caption: str, label: str = "tab:table2", marks: Marks | None = None) -> str:
    """Seed 000's Table 2 as a standalone-includable LaTeX ``table`` (needs ``\\usepackage{booktabs}``).

    One row per (detector, attack) in cell order, each defense cell reading ``ours / paper`` with three decimals
    (``--`` where a value is missing, as ``—`` is in :func:`table2_markdown`). The detector is named on the first
    row of its block only (with ``marks``), and a ``\\midrule`` separates detectors.
    """
    marks = marks or Marks()
    blocks: dict[str, list[list[str]]] = {}
    for (det, att), by_def in _table2_rows(cells).items():
        block = blocks.setdefault(det, [])
        vals = [f"{_latex_ours(by_def.get(d) or {})} / {render.latex_num((by_def.get(d) or {}).get('paper'))}"
                for d in TABLE2_DEFENSES]
        block.append([render.latex_text(marks.label(det)) if not block else "", render.latex_text(att), *vals])
    headers = ["Detector", "Attack", *(TABLE2_HEADERS[d] for d in TABLE2_DEFENSES)]
    return render.latex(headers, list(blocks.values()), caption, label, n_label_cols=2)


def _latex_ours(cell: dict) -> str:
    return render.PAPER_ONLY if cell.get("paper_only") else render.latex_num(cell.get("ours"))


def table2_matrix(cells: Sequence[dict], value: str) -> tuple[list[str], list[str], np.ndarray]:
    """Table 2 as a matrix for plotting: (row labels ``"detector / attack"`` in cell order, defense headers,
    float array of shape rows x defenses).

    Args:
        value: ``"ours"``, ``"paper"`` or ``"diff"`` (ours - paper). A missing value, or a missing operand of a
            difference, is NaN.
    """
    if value not in ("ours", "paper", "diff"):
        raise ConfigError(f"table2_matrix: value must be 'ours', 'paper' or 'diff', got {value!r}")
    grouped = _table2_rows(cells)
    matrix = np.full((len(grouped), len(TABLE2_DEFENSES)), np.nan)
    for i, by_def in enumerate(grouped.values()):
        for j, d in enumerate(TABLE2_DEFENSES):
            c = by_def.get(d) or {}
            ours, paper = c.get("ours"), c.get("paper")
            if value == "diff":
                if ours is not None and paper is not None:
                    matrix[i, j] = ours - paper
            elif c.get(value) is not None:
                matrix[i, j] = c[value]
    rows = [f"{det} / {att}" for det, att in grouped]
    return rows, [TABLE2_HEADERS[d] for d in TABLE2_DEFENSES], matrix




def table2_heatmaps(cells: Sequence[dict], path: str | Path, title: str) -> Path:
    """Seed 000's Table 2 as two heatmaps side by side: our accuracies and ours - paper."""
    rows, cols, ours = table2_matrix(cells, "ours")
    _, _, diff = table2_matrix(cells, "diff")
    return ours_and_diff_heatmaps(rows, cols, ours, diff, path, title)


def table1_cells(ours: dict[tuple[str, str], float], marks: Marks | None = None,
                 counts: dict[tuple[str, str], int | None] | None = None) -> list[dict]:
    """Long-format cells of seed 000's Table 1: one per (detector, variant) with ``ours`` and ``paper``.

    Args:
        ours: clean test accuracy keyed by (detector, variant) for the detectors that were trained.
        marks: the rows' marks; a cell's ``clean_acc`` is its own value (each variant is its own model).
        counts: test frames per (detector, variant) for the Wilson interval (None inside: unknown, e.g. an older
            run); None leaves the cells without one.
    """
    paper = {(r["detector"], v): render.paper_float(r[v])
             for r in paper_values.load("jin2025_table1_clean_accuracy") for v in TABLE1_VARIANTS}
    extra = {d for d, _ in ours} | set(marks.paper_only if marks else ())
    detectors = [*TABLE2_DETECTORS, *sorted(extra - set(TABLE2_DETECTORS))]
    cells = []
    for d in detectors:
        for v in TABLE1_VARIANTS:
            value = ours.get((d, v))
            cell = {"detector": d, "variant": v, "metric": "acc", "ours": value, "paper": paper.get((d, v))}
            if counts is not None:
                cell.update(render.rate_fields(value, counts.get((d, v))))
            if marks is not None:
                cell.update(marks.fields(d), clean_acc=value, below_threshold=below_threshold(value))
            cells.append(cell)
    return cells


def table1_markdown(cells: Sequence[dict], marks: Marks | None = None) -> str:
    """Seed 000's Table 1 layout (rows: detectors; columns: Base, AugMix); cells read ``ours [Wilson 95 %] /
    paper`` (the interval where the cells carry one), row labels carry ``marks`` and its footnotes follow."""
    marks = marks or Marks()
    by_key = {(c["detector"], c["variant"]): c for c in cells}
    rows = [[marks.label(det), *(render.cell_text(by_key[det, v], interval=True) for v in TABLE1_VARIANTS)]
            for det in dict.fromkeys(c["detector"] for c in cells)]
    return (render.markdown(["Detector", *(TABLE1_HEADERS[v] for v in TABLE1_VARIANTS)], rows)
            + footnote_block(marks.footnotes()))
