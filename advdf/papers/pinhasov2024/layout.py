"""Seed 001's (Pinhasov et al. 2024) table layouts: Table 1 (clean detectors per class), Table 2 (attacked fake
crops still called fake), Tables 3 and 4 (the adversarial detector per g, attack and XAI method), each cell
``ours / paper``."""

from __future__ import annotations

from collections.abc import Sequence

from advdf import paper_values
from advdf.errors import ConfigError
from advdf.report import render
from advdf.report.marks import Marks, footnote_block

# Seed 001, Table 1: the deepfake detectors' clean performance per true class, video level (Vid, majority vote)
# and frame level (F2F); advdf's keys are those of advdf.metrics.detection_report.
PINHASOV_TABLE1_DETECTORS = ("xception", "efficientnet_b4_st")
PINHASOV_TABLE1_METRICS = {"real_vid": "vid_real", "real_f2f": "f2f_real", "fake_vid": "vid_fake",
                           "fake_f2f": "f2f_fake"}
# The sample count of each column (keys of advdf.metrics.detection_report): the Wilson interval's n.
PINHASOV_TABLE1_COUNTS = {"real_vid": "n_videos_real", "real_f2f": "n_real", "fake_vid": "n_videos_fake",
                          "fake_f2f": "n_fake"}
PINHASOV_TABLE1_HEADERS = {"real_vid": "Real Vid", "real_f2f": "Real F2F", "fake_vid": "Fake Vid",
                           "fake_f2f": "Fake F2F"}


# Seed 001, Tables 3 and 4: accuracy of the adversarial detector (real vs attacked crops) per deepfake detector g,
# attack (rows) and XAI method (columns); "average" over the four attacks (PGD-B left out), "total_average" over
# both detectors' averages. Table 2: the deepfake detectors' precision on attacked fake crops, Vid and F2F.
PINHASOV_XAI = ("guided_backprop", "input_x_gradient", "integrated_gradients", "saliency")
PINHASOV_XAI_HEADERS = {"guided_backprop": "G-Backprop", "input_x_gradient": "Inp × Grad",
                        "integrated_gradients": "Int-Grad", "saliency": "Saliency"}
PINHASOV_ATTACKS = ("pgd", "apgd", "square", "nes")
PINHASOV_ROWS = ("pgd_black", *PINHASOV_ATTACKS, "average")
PINHASOV_ROW_HEADERS = {"pgd_black": "(PGD-B*)", "pgd": "PGD*", "apgd": "APGD", "square": "Square", "nes": "NES",
                        "average": "Average", "total_average": "Total Average"}
PINHASOV_TABLES = {3: "pinhasov2024_table3_detect_resnet50_finetuned", 4: "pinhasov2024_table4_detect_resnet50_head_only"}



def _marked(cell: dict, marks: Marks | None, row: str) -> dict:
    return {**cell, **marks.fields(row)} if marks is not None else cell


def _with_paper_only(rows: Sequence[str], marks: Marks | None) -> list[str]:
    """``rows`` followed by the paper-scale-only rows of ``marks`` that are not among them."""
    return [*rows, *(r for r in (marks.paper_only if marks else ()) if r not in rows)]


def pinhasov_table1_cells(ours: dict[str, dict[str, float]], marks: Marks | None = None,
                          intervals: bool = False) -> list[dict]:
    """Long-format cells of seed 001's Table 1: one per (detector, column).

    Args:
        ours: per detector, a :func:`advdf.metrics.detection_report` dict (``vid_real``, ``f2f_fake``, ...).
        marks: the rows' marks; their paper-scale-only rows are added.
        intervals: give each cell its sample count (from the report's ``n_*`` keys; unknown in an older run's) and
            Wilson interval.
    """
    paper = {(r["detector"], m): render.paper_float(r[m])
             for r in paper_values.load("pinhasov2024_table1_clean_precision") for m in PINHASOV_TABLE1_METRICS}
    detectors = _with_paper_only([*PINHASOV_TABLE1_DETECTORS, *sorted(set(ours) - set(PINHASOV_TABLE1_DETECTORS))],
                                 marks)
    cells = []
    for d in detectors:
        report = ours.get(d) or {}
        for m, key in PINHASOV_TABLE1_METRICS.items():
            cell = {"detector": d, "metric": m, "ours": report.get(key), "paper": paper.get((d, m))}
            if intervals:
                cell.update(render.rate_fields(cell["ours"], report.get(PINHASOV_TABLE1_COUNTS[m])))
            cells.append(_marked(cell, marks, d))
    return cells


def pinhasov_table1_markdown(cells: Sequence[dict], marks: Marks | None = None) -> str:
    """Seed 001's Table 1 layout (rows: detectors; columns: real/fake x Vid/F2F); cells read ``ours [Wilson 95 %] /
    paper`` (the interval where the cells carry one); row labels carry ``marks``, its footnotes follow."""
    marks = marks or Marks()
    by_key = {(c["detector"], c["metric"]): c for c in cells}
    rows = [[marks.label(det), *(render.cell_text(by_key[det, m], interval=True) for m in PINHASOV_TABLE1_METRICS)]
            for det in dict.fromkeys(c["detector"] for c in cells)]
    return (render.markdown(["Detector", *PINHASOV_TABLE1_HEADERS.values()], rows)
            + footnote_block(marks.footnotes()))


def pinhasov_xai_cells(ours: dict[tuple[str, str, str], float], table: int,
                       detectors: Sequence[str] = PINHASOV_TABLE1_DETECTORS[::-1],
                       xai: Sequence[str] = PINHASOV_XAI, marks: Marks | None = None,
                       counts: dict[tuple[str, str, str], int | None] | None = None) -> list[dict]:
    """Long-format cells of seed 001's Table 3 or 4: one per (detector, row, xai) plus the ``total_average`` row
    (detector ``all``). Averages are ours only when every attack of the average was computed.

    Args:
        ours: accuracy keyed by (detector, attack, xai), attacks from :data:`PINHASOV_ROWS` without ``average``.
        table: 3 (finetuned) or 4 (head only).
        detectors: the detectors g (paper rows), in the table's order (the paper's: EfficientNetB4ST, then Xception).
        xai: the XAI columns.
        marks: the rows' marks; their paper-scale-only rows follow as blocks of their own, outside Total Average.
        counts: crops d scored per (detector, attack, xai), for each rate's Wilson interval (averages have none).
    """
    if table not in PINHASOV_TABLES:
        raise ConfigError(f"seed 001 has Tables {sorted(PINHASOV_TABLES)} for the adversarial detector, not {table}")
    paper = {(r["detector"], r["attack"], x): render.paper_float(r[x])
             for r in paper_values.load(PINHASOV_TABLES[table]) for x in PINHASOV_XAI}
    cells, averages = [], {}
    for det in _with_paper_only(detectors, marks):
        for x in xai:
            averages[det, x] = render.mean_or_none([ours.get((det, a, x)) for a in PINHASOV_ATTACKS])
            for row in PINHASOV_ROWS:
                value = averages[det, x] if row == "average" else ours.get((det, row, x))
                cell = {"detector": det, "attack": row, "xai": x, "metric": "acc", "ours": value,
                        "paper": paper.get((det, row, x))}
                if counts is not None and row != "average":
                    cell.update(render.rate_fields(value, counts.get((det, row, x))))
                cells.append(_marked(cell, marks, det))
    for x in xai:
        cells.append({"detector": "all", "attack": "total_average", "xai": x, "metric": "acc",
                      "ours": render.mean_or_none([averages[d, x] for d in detectors]),
                      "paper": paper.get(("all", "total_average", x))})
    return cells


def pinhasov_xai_markdown(cells: Sequence[dict], marks: Marks | None = None) -> str:
    """Seed 001's Table 3/4 layout: a block per detector (rows PGD-B, PGD*, APGD, Square, NES, Average), columns
    the XAI methods, Total Average last; cells read ``ours [Wilson 95 %] / paper`` (rates only: an average has no
    interval); model labels carry ``marks``, its footnotes follow."""
    marks = marks or Marks()
    xai = list(dict.fromkeys(c["xai"] for c in cells))
    by_key = {(c["detector"], c["attack"], c["xai"]): c for c in cells}
    rows = []
    for det in dict.fromkeys(c["detector"] for c in cells):
        for row in dict.fromkeys(c["attack"] for c in cells if c["detector"] == det):
            rows.append(["" if det == "all" else marks.label(det), PINHASOV_ROW_HEADERS.get(row, row),
                         *(render.cell_text(by_key[det, row, x], interval=True) for x in xai)])
    return (render.markdown(["Model", "Attack", *(PINHASOV_XAI_HEADERS.get(x, x) for x in xai)], rows, 2)
            + footnote_block(marks.footnotes()))


PINHASOV_TABLE2_METRICS = {"vid": "vid_fake", "f2f": "f2f_fake"}
PINHASOV_TABLE2_COUNTS = {"vid": "n_videos_fake", "f2f": "n_fake"}
PINHASOV_ATTACK_HEADERS = {"pgd": "PGD", "apgd": "APGD", "square": "Square", "nes": "NES"}


def pinhasov_table2_cells(ours: dict[tuple[str, str], dict[str, float]],
                          detectors: Sequence[str] = PINHASOV_TABLE1_DETECTORS[::-1], marks: Marks | None = None,
                          intervals: bool = False) -> list[dict]:
    """Long-format cells of seed 001's Table 2: one per (attack, detector, Vid|F2F): the share of attacked fake
    crops (F2F) and videos (Vid, majority vote) the detector still calls fake.

    Args:
        ours: per (detector, attack), a :func:`advdf.metrics.detection_report` dict of the attacked fake crops.
        detectors: the detectors (paper rows, here columns); the paper-scale-only ones of ``marks`` follow.
        intervals: give each cell its sample count (the report's ``n_fake`` / ``n_videos_fake``) and Wilson interval.
    """
    paper = {(r["attack"], d, m): render.paper_float(r[f"{d}_{m}"])
             for r in paper_values.load("pinhasov2024_table2_attacked_precision") for d in PINHASOV_TABLE1_DETECTORS
             for m in PINHASOV_TABLE2_METRICS}
    cells = []
    for a in PINHASOV_ATTACKS:
        for d in _with_paper_only(detectors, marks):
            report = ours.get((d, a)) or {}
            for m, key in PINHASOV_TABLE2_METRICS.items():
                cell = {"attack": a, "detector": d, "metric": m, "ours": report.get(key), "paper": paper.get((a, d, m))}
                if intervals:
                    cell.update(render.rate_fields(cell["ours"], report.get(PINHASOV_TABLE2_COUNTS[m])))
                cells.append(_marked(cell, marks, d))
    return cells


def pinhasov_table2_markdown(cells: Sequence[dict], marks: Marks | None = None) -> str:
    """Seed 001's Table 2 layout (rows: attacks; columns: detector x Vid/F2F); cells read ``ours [Wilson 95 %] /
    paper``; detector headers carry ``marks``, its footnotes follow."""
    marks = marks or Marks()
    cols = list(dict.fromkeys((c["detector"], c["metric"]) for c in cells))
    by_key = {(c["attack"], c["detector"], c["metric"]): c for c in cells}
    rows = [[PINHASOV_ATTACK_HEADERS.get(a, a), *(render.cell_text(by_key[a, d, m], interval=True) for d, m in cols)]
            for a in dict.fromkeys(c["attack"] for c in cells)]
    headers = [f"{marks.label(d)} {m.upper() if m == 'f2f' else 'Vid'}" for d, m in cols]
    return render.markdown(["Attack", *headers], rows) + footnote_block(marks.footnotes())
