"""Seed 004's tables with marks: weak sources and targets (†), Wilson intervals of the accuracies in the CSVs, rows
left to the paper's scale, and the KRA finding (few pixels, high success) over all and over the strong sources."""

from __future__ import annotations

import csv
import io

from advdf.papers.liao2021.kra import kra_findings
from advdf.papers.liao2021.layout import (
    kra_table1_cells,
    kra_table1_markdown,
    kra_table2_cells,
    kra_table2_markdown,
)
from advdf.report.marks import Marks
from advdf.report.render import long_csv

ROW = {"acc_clean": 0.9, "acc_attack": 0.0, "asr": 1.0, "pl2": 0.0123, "pl0": 0.05, "time_s": 1.5}
MARKS = Marks(clean={"resnet50": 0.95, "mesonet": 0.7}, paper_only=("xception",))


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_table1_marks_weak_sources_and_prints_paper_scale_only():
    ours = {("kra_pgd", "faceforensics_all", "resnet50"): ROW,
            ("kra_pgd", "faceforensics_all", "mesonet"): {**ROW, "asr": 0.5, "pl0": 0.3}}
    cells = kra_table1_cells(ours, MARKS, {k: 10 for k in ours}, dataset="faceforensics_all")
    md = kra_table1_markdown(cells, MARKS)
    assert "| kra_pgd | faceforensics_all | mesonet† | 0.900 / — |" in md
    assert "| kra_pgd | faceforensics_all | resnet50 | 0.900 / 0.990 |" in md
    assert "| kra_pgd | faceforensics_all | xception | paper scale only / 0.990 |" in md
    assert "| l2_attack | cnn_synth_all | resnet50 | — / 0.830 |" in md  # another dataset: no marks
    assert "† clean test accuracy below 0.85: mesonet 0.700" in md
    rows = _csv(long_csv(cells, ["attack", "dataset", "network"]))
    acc = next(r for r in rows if (r["network"], r["metric"]) == ("resnet50", "acc_clean") and r["ours"])
    assert acc["n"] == "10" and acc["lo"] == "0.5958" and acc["hi"] == "0.9821" and acc["below_threshold"] == "False"
    asr = next(r for r in rows if (r["network"], r["metric"]) == ("mesonet", "asr"))
    assert asr["n"] == "" and asr["lo"] == "" and asr["below_threshold"] == "True"  # ASR is no rate over frames


def test_table2_marks_sources_and_targets():
    ours = {("resnet50", "resnet50"): {"acc": 0.0, "atr": 1.0, "n": 10},
            ("resnet50", "mesonet"): {"acc": 0.3, "atr": 0.6, "n": 10},
            ("mesonet", "resnet50"): {"acc": 0.5, "atr": 0.4, "n": 10}}
    cells = kra_table2_cells(ours, {"resnet50": 0.9, "mesonet": 0.8}, MARKS, clean_n={"resnet50": 10})
    md = kra_table2_markdown(cells, MARKS)
    header = md.splitlines()[0]
    assert "| mesonet† Acc | mesonet† ATR |" in header and "| resnet50 Acc |" in header
    # the xception target is left to the paper's scale, so is every cell transferred to it
    assert "| mesonet† | paper scale only / — | paper scale only / — | 0.500 / — | 0.400 / — |" in md
    assert "| clean | paper scale only / 0.990 |  | 0.900 / 0.990 |" in md  # the clean accuracy of each target
    assert "| xception | paper scale only / 0.006 | paper scale only / 1.000 | paper scale only / 0.430 |" in md
    rows = {(r["source"], r["target"], r["metric"]): r for r in _csv(long_csv(cells, ["source", "target"]))}
    cross = rows["resnet50", "mesonet", "acc"]
    assert cross["below_threshold"] == "True" and cross["clean_acc"] == "0.9500"  # the target is weak
    assert cross["target_clean_acc"] == "0.7000" and cross["n"] == "10" and cross["lo"]
    assert rows["resnet50", "mesonet", "atr"]["lo"] == ""
    assert rows["clean", "resnet50", "acc"]["n"] == "10" and rows["clean", "resnet50", "acc"]["below_threshold"] == "False"


def test_kra_finding_over_all_sources_and_the_strong_ones():
    ours = {("kra_pgd", "faceforensics_all", "resnet50"): ROW,
            ("kra_deepfool", "faceforensics_all", "resnet50"): {**ROW, "asr": 0.9, "pl0": 0.02},
            ("kra_pgd", "faceforensics_all", "mesonet"): {**ROW, "asr": 0.4, "pl0": 0.5}}
    found = {f.scope: f for f in kra_findings(ours, ["resnet50", "mesonet"], MARKS)}
    assert found["all"].holds is False and found["all"].values["mean_asr"] == 0.7666666666666666
    assert found["strong"].holds is True and found["strong"].values["rows"] == ["resnet50"]
    assert found["strong"].values["mean_pl0"] == 0.035
    assert found["all"].key == "kra_few_pixels_high_success"
