"""Seed 004's (Liao et al. 2021, the Key Region Attack) table layouts: Table 1 (white-box KRA: accuracy, ASR,
perceptibility, time) and Table 2 (transfer of KRA-PGD, accuracy and ATR), each cell ``ours / paper``."""

from __future__ import annotations

from collections.abc import Sequence

from advdf import paper_values
from advdf.report import render
from advdf.report.marks import Marks, footnote_block

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
KRA_RATES = ("acc_clean", "acc_attack", "acc")  # the cells that are a rate over the attacked frames (Wilson interval)



def _fmt_metric(metric: str, value: float | None) -> str:
    if value is None:
        return render.MISSING
    if metric == "pl2":
        return f"{value:.1e}"
    if metric == "pl0":
        return f"{100 * value:.2f}%"
    if metric == "time_s":
        return f"{value:.2f}"
    return f"{value:.3f}"


def kra_table1_cells(ours: dict[tuple[str, str, str], dict[str, float]], marks: Marks | None = None,
                     counts: dict[tuple[str, str, str], int | None] | None = None,
                     dataset: str | None = None) -> list[dict]:
    """Long-format cells of seed 004's Table 1: one per (attack, dataset, network, metric), ``ours`` and ``paper``.

    Args:
        ours: metrics (keys of :data:`KRA_TABLE1_METRICS`) keyed by (attack, dataset, network) for what was
            computed. The paper's rows come first in its order; rows only advdf computed follow.
        marks: the networks' marks, given to the rows of ``dataset`` (the paper dataset ours stand beside; None:
            the rows computed); its paper-scale-only networks print so there.
        counts: frames each computed row was attacked on, for the Wilson interval of its accuracies.
    """
    paper_rows = paper_values.load("liao2021_kra_table1_whitebox")
    keys = [(r["attack"], r["dataset"], r["network"]) for r in paper_rows]
    paper = {(r["attack"], r["dataset"], r["network"], m): render.paper_float(r[m])
             for r in paper_rows for m in KRA_TABLE1_METRICS}
    keys += [k for k in ours if k not in keys]
    cells = []
    for a, d, n in keys:
        for m in KRA_TABLE1_METRICS:
            value = (ours.get((a, d, n)) or {}).get(m)
            cell = {"attack": a, "dataset": d, "network": n, "metric": m, "ours": value, "paper": paper.get((a, d, n, m))}
            if counts is not None and m in KRA_RATES:
                cell.update(render.rate_fields(value, counts.get((a, d, n))))
            ours_rows = d == dataset if dataset is not None else (a, d, n) in ours
            if marks is not None and ours_rows:
                cell.update(marks.fields(n))
            cells.append(cell)
    return cells


def kra_table1_markdown(cells: Sequence[dict], marks: Marks | None = None) -> str:
    """Seed 004's Table 1 layout; each cell reads ``ours / paper`` (intervals in the CSV), networks of our rows carry
    ``marks`` and its footnotes follow."""
    marks = marks or Marks()
    rows: dict[tuple[str, str, str], dict[str, dict]] = {}
    for c in cells:
        rows.setdefault((c["attack"], c["dataset"], c["network"]), {})[c["metric"]] = c
    body = [[a, d, marks.label(n) if "model" in by_metric[KRA_TABLE1_METRICS[0]] else n,
             *(render.cell_text(by_metric[m], value_fmt=lambda v, m=m: _fmt_metric(m, v)) for m in KRA_TABLE1_METRICS)]
            for (a, d, n), by_metric in rows.items()]
    return (render.markdown(["Attack", "Dataset", "Network", *(KRA_TABLE1_HEADERS[m] for m in KRA_TABLE1_METRICS)],
                            body, 3) + footnote_block(marks.footnotes()))


def _pair_fields(marks: Marks, source: str, target: str) -> dict:
    """The CSV fields of a transfer cell: the source's marks, the target's accuracy, and the mark when either the
    source or the target is below the threshold."""
    t = marks.fields(target)
    s = marks.fields(source) if source != "clean" else {"model": None, "clean_acc": None, "below_threshold": False,
                                                        "paper_only": False}
    return {**s, "target_model": t["model"], "target_clean_acc": t["clean_acc"],
            "below_threshold": bool(s["below_threshold"] or t["below_threshold"]),
            "paper_only": bool(s["paper_only"] or t["paper_only"])}


def kra_table2_cells(ours: dict[tuple[str, str], dict[str, float]], clean: dict[str, float],
                     marks: Marks | None = None, clean_n: dict[str, int | None] | None = None) -> list[dict]:
    """Long-format cells of seed 004's Table 2: one per (source, target, metric ``acc``/``atr``).

    Args:
        ours: ``{"acc": ..., "atr": ...}`` (and ``n``, the frames transferred) keyed by (source, target) for the
            computed transfer cells.
        clean: each target's clean accuracy (ours); the row ``source="clean"`` carries it, with the paper's
            clean accuracy of that detector from Table 1 (KRA-PGD on FaceForensics++) where it has one.
        marks: the detectors' marks, for sources and targets alike; with them, accuracies carry their Wilson
            interval (``n`` of the cell; ``clean_n`` for the clean row).
    """
    paper = {(r["target"], r["source"], m): render.paper_float(r[m])  # transposed, see KRA_TABLE2_SOURCES
             for r in paper_values.load("liao2021_kra_table2_blackbox_kra_pgd") for m in KRA_TABLE2_METRICS}
    paper_clean = {r["network"]: render.paper_float(r["acc_clean"])
                   for r in paper_values.load("liao2021_kra_table1_whitebox")
                   if r["attack"] == "kra_pgd" and r["dataset"] == "faceforensics_all"}
    sources = [*KRA_TABLE2_SOURCES, *sorted({s for s, _ in ours} - set(KRA_TABLE2_SOURCES))]
    targets = [*KRA_TABLE2_TARGETS, *sorted(({t for _, t in ours} | set(clean)) - set(KRA_TABLE2_TARGETS))]
    if marks is not None:
        sources += [d for d in marks.paper_only if d not in sources]
        targets += [d for d in marks.paper_only if d not in targets]

    def marked(cell: dict, n: int | None) -> dict:
        if marks is None:
            return cell
        rate = render.rate_fields(cell["ours"], n) if cell["metric"] == "acc" else {}
        return {**cell, **rate, **_pair_fields(marks, cell["source"], cell["target"])}

    cells = [marked({"source": "clean", "target": t, "metric": "acc", "ours": clean.get(t), "paper": paper_clean.get(t)},
                    (clean_n or {}).get(t)) for t in targets]
    for s in sources:
        for t in targets:
            for m in KRA_TABLE2_METRICS:
                cell = ours.get((s, t)) or {}
                cells.append(marked({"source": s, "target": t, "metric": m, "ours": cell.get(m),
                                     "paper": paper.get((s, t, m))}, cell.get("n")))
    return cells


def kra_table2_markdown(cells: Sequence[dict], marks: Marks | None = None) -> str:
    """Seed 004's Table 2 with sources as rows and targets as columns (acc and ATR); cells read ``ours / paper``
    (intervals in the CSV); sources and targets carry ``marks`` and its footnotes follow."""
    marks = marks or Marks()
    targets = list(dict.fromkeys(c["target"] for c in cells))
    by_key = {(c["source"], c["target"], c["metric"]): c for c in cells}
    body = []
    for s in dict.fromkeys(c["source"] for c in cells):
        vals = []
        for t in targets:
            for m in KRA_TABLE2_METRICS:
                c = by_key.get((s, t, m))
                vals.append("" if c is None else render.cell_text(c, value_fmt=lambda v, m=m: _fmt_metric(m, v)))
        body.append([s if s == "clean" else marks.label(s), *vals])
    headers = ["Source \\ Target", *(f"{marks.label(t)} {h}" for t in targets for h in ("Acc", "ATR"))]
    return render.markdown(headers, body) + footnote_block(marks.footnotes())

