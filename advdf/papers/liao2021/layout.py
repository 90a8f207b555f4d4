"""Seed 004's (Liao et al. 2021, the Key Region Attack) table layouts: Table 1 (white-box KRA: accuracy, ASR,
perceptibility, time) and Table 2 (transfer of KRA-PGD, accuracy and ATR), each cell ``ours / paper``."""

from __future__ import annotations

from collections.abc import Sequence

from advdf import paper_values
from advdf.report import render

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
        return render.MISSING
    if metric == "pl2":
        return f"{value:.1e}"
    if metric == "pl0":
        return f"{100 * value:.2f}%"
    if metric == "time_s":
        return f"{value:.2f}"
    return f"{value:.3f}"


def kra_table1_cells(ours: dict[tuple[str, str, str], dict[str, float]]) -> list[dict]:
    """Long-format cells of seed 004's Table 1: one per (attack, dataset, network, metric), ``ours`` and ``paper``.

    Args:
        ours: metrics (keys of :data:`KRA_TABLE1_METRICS`) keyed by (attack, dataset, network) for what was
            computed. The paper's rows come first in its order; rows only advdf computed follow.
    """
    paper_rows = paper_values.load("liao2021_kra_table1_whitebox")
    keys = [(r["attack"], r["dataset"], r["network"]) for r in paper_rows]
    paper = {(r["attack"], r["dataset"], r["network"], m): render.paper_float(r[m])
             for r in paper_rows for m in KRA_TABLE1_METRICS}
    keys += [k for k in ours if k not in keys]
    return [{"attack": a, "dataset": d, "network": n, "metric": m,
             "ours": (ours.get((a, d, n)) or {}).get(m), "paper": paper.get((a, d, n, m))}
            for a, d, n in keys for m in KRA_TABLE1_METRICS]


def kra_table1_markdown(cells: Sequence[dict]) -> str:
    """Seed 004's Table 1 layout; each cell reads ``ours / paper``."""
    rows: dict[tuple[str, str, str], dict[str, dict]] = {}
    for c in cells:
        rows.setdefault((c["attack"], c["dataset"], c["network"]), {})[c["metric"]] = c
    body = [[a, d, n, *(f"{_fmt_metric(m, by_metric[m]['ours'])} / {_fmt_metric(m, by_metric[m]['paper'])}"
                        for m in KRA_TABLE1_METRICS)]
            for (a, d, n), by_metric in rows.items()]
    return render.markdown(["Attack", "Dataset", "Network", *(KRA_TABLE1_HEADERS[m] for m in KRA_TABLE1_METRICS)],
                           body, 3)


def kra_table2_cells(ours: dict[tuple[str, str], dict[str, float]], clean: dict[str, float]) -> list[dict]:
    """Long-format cells of seed 004's Table 2: one per (source, target, metric ``acc``/``atr``).

    Args:
        ours: ``{"acc": ..., "atr": ...}`` keyed by (source, target) for the computed transfer cells.
        clean: each target's clean accuracy (ours); the row ``source="clean"`` carries it, with the paper's
            clean accuracy of that detector from Table 1 (KRA-PGD on FaceForensics++) where it has one.
    """
    paper = {(r["target"], r["source"], m): render.paper_float(r[m])  # transposed, see KRA_TABLE2_SOURCES
             for r in paper_values.load("liao2021_kra_table2_blackbox_kra_pgd") for m in KRA_TABLE2_METRICS}
    paper_clean = {r["network"]: render.paper_float(r["acc_clean"])
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
    body = []
    for s in dict.fromkeys(c["source"] for c in cells):
        vals = []
        for t in targets:
            for m in KRA_TABLE2_METRICS:
                c = by_key.get((s, t, m))
                vals.append("" if c is None else f"{_fmt_metric(m, c['ours'])} / {_fmt_metric(m, c['paper'])}")
        body.append([s, *vals])
    return render.markdown(["Source \\ Target", *(f"{t} {h}" for t in targets for h in ("Acc", "ATR"))], body)
