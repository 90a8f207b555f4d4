"""Paper-layout tables: our numbers beside the paper's, "—" wherever ours were not computed."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from advdf import paper_values
from advdf.errors import ConfigError

MISSING = "—"

# Seed 000 (Jin et al. 2025), Table 2: detectors x white-box attacks x defenses, accuracy on attacked test sets.
TABLE2_DETECTORS = ("vgg16", "resnet50", "mesonet", "mesoinception4", "efficientnet_b4", "xception",
                    "densenet121", "mobilenetv2", "gramnet")
TABLE2_ATTACKS = ("bim", "mifgsm", "tifgsm", "sim", "pgd", "cw", "deepfool")
TABLE2_DEFENSES = ("na", "ms", "gs", "as", "jpeg70", "jpeg80", "jpeg90", "augmix", "dae", "hgd", "td")
TABLE2_HEADERS = {"na": "NA", "ms": "MS", "gs": "GS", "as": "AS", "jpeg70": "JPEG70", "jpeg80": "JPEG80",
                  "jpeg90": "JPEG90", "augmix": "AugMix", "dae": "DAE", "hgd": "HGD", "td": "TD"}


def _fmt(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def table2_cells(ours: dict[tuple[str, str, str], float]) -> list[dict]:
    """Long-format cells of Table 2: one per (detector, attack, defense) with ``ours`` and ``paper``.

    Args:
        ours: accuracy keyed by (detector, attack, defense column) for what was computed. Detectors and attacks
            advdf ran beyond the paper's (e.g. FGSM) get rows after the paper's, with no paper value.
    """
    paper = {(r["detector"], r["attack"], d): float(r[d])
             for r in paper_values.load("jin2025_table2_attack_defense_accuracy") for d in TABLE2_DEFENSES}
    cells = []
    extra_detectors = sorted({d for d, _, _ in ours} - set(TABLE2_DETECTORS))
    for det in (*TABLE2_DETECTORS, *extra_detectors):
        extra_attacks = sorted({a for d, a, _ in ours if d == det} - set(TABLE2_ATTACKS))
        for att in (*TABLE2_ATTACKS, *extra_attacks):
            for d in TABLE2_DEFENSES:
                cells.append({"detector": det, "attack": att, "defense": d,
                              "ours": ours.get((det, att, d)), "paper": paper.get((det, att, d))})
    return cells


def table2_markdown(cells: Sequence[dict], only_computed_rows: bool = False) -> str:
    """Seed 000's Table 2 layout; each cell reads ``ours / paper``."""
    header = "| Detector | Attack | " + " | ".join(TABLE2_HEADERS[d] for d in TABLE2_DEFENSES) + " |"
    lines = [header, "|---|---|" + "---:|" * len(TABLE2_DEFENSES)]
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for c in cells:
        rows.setdefault((c["detector"], c["attack"]), {})[c["defense"]] = c
    for (det, att), by_def in rows.items():
        if only_computed_rows and all(c["ours"] is None for c in by_def.values()):
            continue
        vals = [f"{_fmt(by_def[d]['ours'])} / {_fmt(by_def[d]['paper'])}" for d in TABLE2_DEFENSES]
        lines.append(f"| {det} | {att} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def cells_csv(cells: Sequence[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["detector", "attack", "defense", "ours", "paper"])
    writer.writeheader()
    for c in cells:
        writer.writerow({**c, "ours": "" if c["ours"] is None else f"{c['ours']:.4f}",
                         "paper": "" if c["paper"] is None else f"{c['paper']:.3f}"})
    return buf.getvalue()


# Seed 004 (Liao et al. 2021, KRA). Table 1: white-box attacks, rows attack x dataset x network.
KRA_TABLE1_METRICS = ("acc_clean", "acc_attack", "asr", "pl2", "pl0", "time_s")
KRA_TABLE1_HEADERS = {"acc_clean": "Acc (clean)", "acc_attack": "Acc (attack)", "asr": "ASR", "pl2": "PL2",
                      "pl0": "PL0", "time_s": "Time (s)"}
# Table 2: transfer of KRA-PGD. The extracted table lists Xception, ResNet-50, ResNet-101, Inception-v3 down its
# first column and Xception, ResNet-50, ResNet-101 across; the shipped CSV keeps that as (source = row label,
# target = column label). The paper's text reads the other way ("adversarial examples generated from Xception
# have a higher ASR on Inception-v3 than that on Resnet", and only the three column detectors were attacked
# white-box in Table 1), so advdf reads the CSV transposed: its ``target`` column is the source detector (the one
# the examples were crafted on) and its ``source`` column the target.
KRA_TABLE2_SOURCES = ("xception", "resnet50", "resnet101")
KRA_TABLE2_TARGETS = ("xception", "resnet50", "resnet101", "inception_v3")
KRA_TABLE2_METRICS = ("acc", "atr")


def _fmt_metric(metric: str, value: float | None) -> str:
    if value is None:
        return MISSING
    if metric == "pl2":
        return f"{value:.1e}"
    if metric == "pl0":
        return f"{100 * value:.2f}%"
    if metric == "time_s":
        return f"{value:.2f}"
    return f"{value:.3f}"


def _paper_float(text: str) -> float | None:
    return float(text) if text.strip() else None


def kra_table1_cells(ours: dict[tuple[str, str, str], dict[str, float]]) -> list[dict]:
    """Long-format cells of seed 004's Table 1: one per (attack, dataset, network, metric), ``ours`` and ``paper``.

    Args:
        ours: metrics (keys of :data:`KRA_TABLE1_METRICS`) keyed by (attack, dataset, network) for what was
            computed. The paper's rows come first in its order; rows only advdf computed follow.
    """
    paper_rows = paper_values.load("liao2021_kra_table1_whitebox")
    keys = [(r["attack"], r["dataset"], r["network"]) for r in paper_rows]
    paper = {(r["attack"], r["dataset"], r["network"], m): _paper_float(r[m])
             for r in paper_rows for m in KRA_TABLE1_METRICS}
    keys += [k for k in ours if k not in keys]
    return [{"attack": a, "dataset": d, "network": n, "metric": m,
             "ours": (ours.get((a, d, n)) or {}).get(m), "paper": paper.get((a, d, n, m))}
            for a, d, n in keys for m in KRA_TABLE1_METRICS]


def kra_table1_markdown(cells: Sequence[dict]) -> str:
    """Seed 004's Table 1 layout; each cell reads ``ours / paper``."""
    header = "| Attack | Dataset | Network | " + " | ".join(KRA_TABLE1_HEADERS[m] for m in KRA_TABLE1_METRICS) + " |"
    lines = [header, "|---|---|---|" + "---:|" * len(KRA_TABLE1_METRICS)]
    rows: dict[tuple[str, str, str], dict[str, dict]] = {}
    for c in cells:
        rows.setdefault((c["attack"], c["dataset"], c["network"]), {})[c["metric"]] = c
    for (a, d, n), by_metric in rows.items():
        vals = [f"{_fmt_metric(m, by_metric[m]['ours'])} / {_fmt_metric(m, by_metric[m]['paper'])}"
                for m in KRA_TABLE1_METRICS]
        lines.append(f"| {a} | {d} | {n} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def kra_table2_cells(ours: dict[tuple[str, str], dict[str, float]], clean: dict[str, float]) -> list[dict]:
    """Long-format cells of seed 004's Table 2: one per (source, target, metric ``acc``/``atr``).

    Args:
        ours: ``{"acc": ..., "atr": ...}`` keyed by (source, target) for the computed transfer cells.
        clean: each target's clean accuracy (ours); the row ``source="clean"`` carries it, with the paper's
            clean accuracy of that detector from Table 1 (KRA-PGD on FaceForensics++) where it has one.
    """
    paper = {(r["target"], r["source"], m): _paper_float(r[m])  # transposed, see KRA_TABLE2_SOURCES
             for r in paper_values.load("liao2021_kra_table2_blackbox_kra_pgd") for m in KRA_TABLE2_METRICS}
    paper_clean = {r["network"]: _paper_float(r["acc_clean"])
                   for r in paper_values.load("liao2021_kra_table1_whitebox")
                   if r["attack"] == "kra_pgd" and r["dataset"] == "faceforensics_all"}
    sources = [*KRA_TABLE2_SOURCES, *sorted({s for s, _ in ours} - set(KRA_TABLE2_SOURCES))]
    targets = [*KRA_TABLE2_TARGETS, *sorted(({t for _, t in ours} | set(clean)) - set(KRA_TABLE2_TARGETS))]
    cells = [{"source": "clean", "target": t, "metric": "acc", "ours": clean.get(t), "paper": paper_clean.get(t)}
             for t in targets]
    for s in sources:
        for t in targets:
            for m in KRA_TABLE2_METRICS:
                cells.append({"source": s, "target": t, "metric": m,
                              "ours": (ours.get((s, t)) or {}).get(m), "paper": paper.get((s, t, m))})
    return cells


def kra_table2_markdown(cells: Sequence[dict]) -> str:
    """Seed 004's Table 2 with sources as rows and targets as columns (acc and ATR); cells read ``ours / paper``."""
    targets = list(dict.fromkeys(c["target"] for c in cells))
    by_key = {(c["source"], c["target"], c["metric"]): c for c in cells}
    header = "| Source \\ Target | " + " | ".join(f"{t} Acc | {t} ATR" for t in targets) + " |"
    lines = [header, "|---|" + "---:|---:|" * len(targets)]
    for s in dict.fromkeys(c["source"] for c in cells):
        vals = []
        for t in targets:
            for m in KRA_TABLE2_METRICS:
                c = by_key.get((s, t, m))
                vals.append("" if c is None else f"{_fmt_metric(m, c['ours'])} / {_fmt_metric(m, c['paper'])}")
        lines.append(f"| {s} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def long_csv(cells: Sequence[dict], keys: Sequence[str]) -> str:
    """CSV of long-format cells: ``keys`` then ``metric``, ``ours``, ``paper`` (blank where missing)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*keys, "metric", "ours", "paper"], extrasaction="ignore")
    writer.writeheader()
    for c in cells:
        writer.writerow({**c, "ours": "" if c["ours"] is None else f"{c['ours']:.6g}",
                         "paper": "" if c["paper"] is None else f"{c['paper']:.6g}"})
    return buf.getvalue()


# Seed 000, Table 1: clean test accuracy of the nine detectors, trained without and with AugMix.
TABLE1_VARIANTS = ("base", "augmix")
TABLE1_HEADERS = {"base": "Base", "augmix": "AugMix"}


def table1_cells(ours: dict[tuple[str, str], float]) -> list[dict]:
    """Long-format cells of seed 000's Table 1: one per (detector, variant) with ``ours`` and ``paper``.

    Args:
        ours: clean test accuracy keyed by (detector, variant) for the detectors that were trained.
    """
    paper = {(r["detector"], v): _paper_float(r[v])
             for r in paper_values.load("jin2025_table1_clean_accuracy") for v in TABLE1_VARIANTS}
    detectors = [*TABLE2_DETECTORS, *sorted({d for d, _ in ours} - set(TABLE2_DETECTORS))]
    return [{"detector": d, "variant": v, "metric": "acc", "ours": ours.get((d, v)), "paper": paper.get((d, v))}
            for d in detectors for v in TABLE1_VARIANTS]


def table1_markdown(cells: Sequence[dict]) -> str:
    """Seed 000's Table 1 layout (rows: detectors; columns: Base, AugMix); cells read ``ours / paper``."""
    by_key = {(c["detector"], c["variant"]): c for c in cells}
    lines = ["| Detector | " + " | ".join(TABLE1_HEADERS[v] for v in TABLE1_VARIANTS) + " |",
             "|---|" + "---:|" * len(TABLE1_VARIANTS)]
    for det in dict.fromkeys(c["detector"] for c in cells):
        vals = [f"{_fmt(by_key[det, v]['ours'])} / {_fmt(by_key[det, v]['paper'])}" for v in TABLE1_VARIANTS]
        lines.append(f"| {det} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


# Seed 001, Table 1: the deepfake detectors' clean performance per true class, video level (Vid, majority vote)
# and frame level (F2F); advdf's keys are those of advdf.metrics.detection_report.
PINHASOV_TABLE1_DETECTORS = ("xception", "efficientnet_b4_st")
PINHASOV_TABLE1_METRICS = {"real_vid": "vid_real", "real_f2f": "f2f_real", "fake_vid": "vid_fake",
                           "fake_f2f": "f2f_fake"}
PINHASOV_TABLE1_HEADERS = {"real_vid": "Real Vid", "real_f2f": "Real F2F", "fake_vid": "Fake Vid",
                           "fake_f2f": "Fake F2F"}


def pinhasov_table1_cells(ours: dict[str, dict[str, float]]) -> list[dict]:
    """Long-format cells of seed 001's Table 1: one per (detector, column).

    Args:
        ours: per detector, a :func:`advdf.metrics.detection_report` dict (``vid_real``, ``f2f_fake``, ...).
    """
    paper = {(r["detector"], m): _paper_float(r[m])
             for r in paper_values.load("pinhasov2024_table1_clean_precision") for m in PINHASOV_TABLE1_METRICS}
    detectors = [*PINHASOV_TABLE1_DETECTORS, *sorted(set(ours) - set(PINHASOV_TABLE1_DETECTORS))]
    return [{"detector": d, "metric": m, "ours": (ours.get(d) or {}).get(key), "paper": paper.get((d, m))}
            for d in detectors for m, key in PINHASOV_TABLE1_METRICS.items()]


def pinhasov_table1_markdown(cells: Sequence[dict]) -> str:
    """Seed 001's Table 1 layout (rows: detectors; columns: real/fake x Vid/F2F); cells read ``ours / paper``."""
    by_key = {(c["detector"], c["metric"]): c for c in cells}
    lines = ["| Detector | " + " | ".join(PINHASOV_TABLE1_HEADERS.values()) + " |",
             "|---|" + "---:|" * len(PINHASOV_TABLE1_HEADERS)]
    for det in dict.fromkeys(c["detector"] for c in cells):
        vals = [f"{_fmt(by_key[det, m]['ours'])} / {_fmt(by_key[det, m]['paper'])}" for m in PINHASOV_TABLE1_METRICS]
        lines.append(f"| {det} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


# LaTeX and matrix forms of seed 000's Table 2 (and of other label x column grids). In LaTeX a value that was not
# computed prints ``--`` (an en dash), the counterpart of :data:`MISSING` in the Markdown tables.
LATEX_MISSING = "--"
_LATEX_SPECIALS = {"_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#"}


def _latex_text(text: str) -> str:
    """A label (detector, attack, defense header) made safe for a LaTeX cell: ``_`` -> ``\\_`` and similar."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _latex_num(value: float | None) -> str:
    return LATEX_MISSING if value is None else f"{value:.3f}"


def _latex_table(headers: Sequence[str], n_label_cols: int, blocks: Sequence[Sequence[Sequence[str]]],
                 caption: str, label: str) -> str:
    """A booktabs ``table``: ``n_label_cols`` left-aligned label columns then right-aligned value columns.

    ``blocks`` are groups of rows (each row a list of already formatted cells) separated by ``\\midrule``;
    ``caption`` is written as given (it may hold LaTeX), headers are escaped here.
    """
    spec = "l" * n_label_cols + "r" * (len(headers) - n_label_cols)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(_latex_text(h) for h in headers) + r" \\"]
    for block in blocks:
        lines.append(r"\midrule")
        lines += [" & ".join(row) + r" \\" for row in block]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _table2_rows(cells: Sequence[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """Cells grouped by (detector, attack) in cell order, then by defense column."""
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for c in cells:
        rows.setdefault((c["detector"], c["attack"]), {})[c["defense"]] = c
    return rows


def table2_latex(cells: Sequence[dict], caption: str, label: str = "tab:table2") -> str:
    """Seed 000's Table 2 as a standalone-includable LaTeX ``table`` (needs ``\\usepackage{booktabs}``).

    One row per (detector, attack) in cell order, each defense cell reading ``ours / paper`` with three decimals
    (``--`` where a value is missing, as ``—`` is in :func:`table2_markdown`). The detector is named on the first
    row of its block only, and a ``\\midrule`` separates detectors.
    """
    blocks: dict[str, list[list[str]]] = {}
    for (det, att), by_def in _table2_rows(cells).items():
        block = blocks.setdefault(det, [])
        vals = [f"{_latex_num((by_def.get(d) or {}).get('ours'))} / {_latex_num((by_def.get(d) or {}).get('paper'))}"
                for d in TABLE2_DEFENSES]
        block.append([_latex_text(det) if not block else "", _latex_text(att), *vals])
    headers = ["Detector", "Attack", *(TABLE2_HEADERS[d] for d in TABLE2_DEFENSES)]
    return _latex_table(headers, 2, list(blocks.values()), caption, label)


def grid_latex(rows: list[str], cols: list[str], values: dict[tuple[str, str], float | None], caption: str,
               label: str) -> str:
    """A LaTeX ``table`` of single numbers (three decimals): one row per label in ``rows`` (e.g.
    ``"resnet50 / pgd"``), one column per label in ``cols``; ``values`` keyed by (row, col), ``--`` where a
    key is absent or None."""
    body = [[_latex_text(r), *(_latex_num(values.get((r, c))) for c in cols)] for r in rows]
    return _latex_table(["", *cols], 1, [body], caption, label)


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


def _mean(values: Sequence[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def pinhasov_xai_cells(ours: dict[tuple[str, str, str], float], table: int,
                       detectors: Sequence[str] = PINHASOV_TABLE1_DETECTORS[::-1],
                       xai: Sequence[str] = PINHASOV_XAI) -> list[dict]:
    """Long-format cells of seed 001's Table 3 or 4: one per (detector, row, xai) plus the ``total_average`` row
    (detector ``all``). Averages are ours only when every attack of the average was computed.

    Args:
        ours: accuracy keyed by (detector, attack, xai), attacks from :data:`PINHASOV_ROWS` without ``average``.
        table: 3 (finetuned) or 4 (head only).
        detectors: the detectors g, in the table's order (the paper's: EfficientNetB4ST, then Xception).
        xai: the XAI columns.
    """
    if table not in PINHASOV_TABLES:
        raise ConfigError(f"seed 001 has Tables {sorted(PINHASOV_TABLES)} for the adversarial detector, not {table}")
    paper = {(r["detector"], r["attack"], x): _paper_float(r[x])
             for r in paper_values.load(PINHASOV_TABLES[table]) for x in PINHASOV_XAI}
    cells, averages = [], {}
    for det in detectors:
        for x in xai:
            averages[det, x] = _mean([ours.get((det, a, x)) for a in PINHASOV_ATTACKS])
            for row in PINHASOV_ROWS:
                value = averages[det, x] if row == "average" else ours.get((det, row, x))
                cells.append({"detector": det, "attack": row, "xai": x, "metric": "acc", "ours": value,
                              "paper": paper.get((det, row, x))})
    for x in xai:
        cells.append({"detector": "all", "attack": "total_average", "xai": x, "metric": "acc",
                      "ours": _mean([averages[d, x] for d in detectors]), "paper": paper.get(("all", "total_average", x))})
    return cells


def pinhasov_xai_markdown(cells: Sequence[dict]) -> str:
    """Seed 001's Table 3/4 layout: a block per detector (rows PGD-B, PGD*, APGD, Square, NES, Average), columns
    the XAI methods, Total Average last; cells read ``ours / paper``."""
    xai = list(dict.fromkeys(c["xai"] for c in cells))
    by_key = {(c["detector"], c["attack"], c["xai"]): c for c in cells}
    lines = ["| Model | Attack | " + " | ".join(PINHASOV_XAI_HEADERS.get(x, x) for x in xai) + " |",
             "|---|---|" + "---:|" * len(xai)]
    for det in dict.fromkeys(c["detector"] for c in cells):
        for row in dict.fromkeys(c["attack"] for c in cells if c["detector"] == det):
            vals = [f"{_fmt(by_key[det, row, x]['ours'])} / {_fmt(by_key[det, row, x]['paper'])}" for x in xai]
            label = "" if det == "all" else det
            lines.append(f"| {label} | {PINHASOV_ROW_HEADERS.get(row, row)} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


PINHASOV_TABLE2_METRICS = {"vid": "vid_fake", "f2f": "f2f_fake"}
PINHASOV_ATTACK_HEADERS = {"pgd": "PGD", "apgd": "APGD", "square": "Square", "nes": "NES"}


def pinhasov_table2_cells(ours: dict[tuple[str, str], dict[str, float]],
                          detectors: Sequence[str] = PINHASOV_TABLE1_DETECTORS[::-1]) -> list[dict]:
    """Long-format cells of seed 001's Table 2: one per (attack, detector, Vid|F2F): the share of attacked fake
    crops (F2F) and videos (Vid, majority vote) the detector still calls fake.

    Args:
        ours: per (detector, attack), a :func:`advdf.metrics.detection_report` dict of the attacked fake crops.
    """
    paper = {(r["attack"], d, m): _paper_float(r[f"{d}_{m}"])
             for r in paper_values.load("pinhasov2024_table2_attacked_precision") for d in PINHASOV_TABLE1_DETECTORS
             for m in PINHASOV_TABLE2_METRICS}
    return [{"attack": a, "detector": d, "metric": m, "ours": (ours.get((d, a)) or {}).get(key),
             "paper": paper.get((a, d, m))}
            for a in PINHASOV_ATTACKS for d in detectors for m, key in PINHASOV_TABLE2_METRICS.items()]


def pinhasov_table2_markdown(cells: Sequence[dict]) -> str:
    """Seed 001's Table 2 layout (rows: attacks; columns: detector x Vid/F2F); cells read ``ours / paper``."""
    cols = list(dict.fromkeys((c["detector"], c["metric"]) for c in cells))
    by_key = {(c["attack"], c["detector"], c["metric"]): c for c in cells}
    lines = ["| Attack | " + " | ".join(f"{d} {m.upper() if m == 'f2f' else 'Vid'}" for d, m in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for a in dict.fromkeys(c["attack"] for c in cells):
        vals = [f"{_fmt(by_key[a, d, m]['ours'])} / {_fmt(by_key[a, d, m]['paper'])}" for d, m in cols]
        lines.append(f"| {PINHASOV_ATTACK_HEADERS.get(a, a)} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"
