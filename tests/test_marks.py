"""Honest marks on every reproduce table: weak detectors (†), stand-in models (‡), rows left to the paper's scale,
Wilson intervals beside accuracies, and findings judged once over all rows and once over the rows reaching 0.85."""

from __future__ import annotations

import csv
import io

import pytest
from omegaconf import OmegaConf

from advdf.errors import ConfigError
from advdf.papers.jin2025.findings import table2_findings
from advdf.papers.jin2025.layout import table1_cells, table1_markdown, table2_cells, table2_markdown
from advdf.papers.marks import check_marks, plan_marks
from advdf.papers.pinhasov2024.layout import (
    pinhasov_table1_cells,
    pinhasov_table1_markdown,
    pinhasov_xai_cells,
    pinhasov_xai_markdown,
)
from advdf.papers.pinhasov2024.reproduce import findings as seed001_findings
from advdf.report.findings import NO_STRONG_ROW, finding_lines
from advdf.report.marks import CLEAN_ACC_THRESHOLD, Marks
from advdf.report.render import long_csv, rate_fields, wilson


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_wilson_matches_known_values_and_edges():
    lo, hi = wilson(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 0) is None
    lo, hi = wilson(50, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)
    with pytest.raises(ValueError):
        wilson(11, 10)
    assert rate_fields(0.8, 10) == {"n": 10, "lo": wilson(8, 10)[0], "hi": wilson(8, 10)[1]}
    assert rate_fields(0.8, None) == {"n": None, "lo": None, "hi": None}  # an older run: count unknown
    assert rate_fields(None, 10)["lo"] is None


def test_a_row_below_the_threshold_gets_a_dagger_a_footnote_and_csv_columns():
    assert CLEAN_ACC_THRESHOLD == 0.85
    marks = Marks(clean={"resnet50": 0.9, "mesonet": 0.72})
    cells = table1_cells({("resnet50", "base"): 0.9, ("mesonet", "base"): 0.72, ("mesonet", "augmix"): 0.9},
                         marks, counts={("resnet50", "base"): 10, ("mesonet", "base"): None})
    md = table1_markdown(cells, marks)
    assert "| resnet50 | 0.900 [0.60, 0.98] / 0.939 | — / 0.939 |" in md  # 9 of 10 frames
    assert "| mesonet† | 0.720 [—] / 0.774 | 0.900 [—] / 0.807 |" in md  # count unknown: an older run
    assert "| xception | — / 0.945 | — / 0.958 |" in md  # not computed: no mark, no interval
    footnote = md.split("\n\n", 1)[1]  # a blank line between the table and its footnotes
    assert footnote.startswith("† clean test accuracy below 0.85: mesonet 0.720; its cells measure a weak detector")
    rows = {(r["detector"], r["variant"]): r for r in _csv(long_csv(cells, ["detector", "variant"]))}
    assert rows["mesonet", "base"]["clean_acc"] == "0.7200" and rows["mesonet", "base"]["below_threshold"] == "True"
    assert rows["mesonet", "augmix"]["below_threshold"] == "False"  # each variant is its own model
    assert rows["resnet50", "base"]["n"] == "10" and rows["resnet50", "base"]["lo"] == "0.5958"
    assert rows["xception", "base"]["model"] == "" and rows["xception", "base"]["clean_acc"] == ""


def test_paper_only_rows_print_paper_scale_only_and_are_flagged_in_the_csv():
    marks = Marks(clean={"resnet50": 0.95}, paper_only=("vgg16", "big_net"))
    md = table1_markdown(table1_cells({("resnet50", "base"): 0.95}, marks), marks)
    assert "| vgg16 | paper scale only / 0.955 | paper scale only / 0.960 |" in md
    assert "| big_net | paper scale only / — | paper scale only / — |" in md  # beyond the paper's rows
    assert "paper scale only (not trained): vgg16, big_net" in md
    cells = table2_cells({("resnet50", "pgd", "na"): 0.0}, marks, counts={("resnet50", "pgd", "na"): 8})
    vgg = [c for c in _csv(long_csv(cells, ["detector", "attack", "defense"])) if c["detector"] == "vgg16"]
    assert vgg and all(c["paper_only"] == "True" and c["ours"] == "" and c["paper"] for c in vgg)
    md = table2_markdown(cells, marks=marks)
    assert "| vgg16 | bim | paper scale only / " in md
    printed = table2_markdown(cells, only_computed_rows=True, marks=marks)
    assert "| vgg16 |" not in printed and "paper scale only (not trained): vgg16, big_net" in printed


def test_a_stand_in_model_takes_the_paper_row_with_a_double_dagger():
    spec = OmegaConf.create({"detectors": {"efficientnet_lite0_st": [], "xception": []}, "paper_only": [],
                             "substitutions": ["EfficientNet-Lite0 ST replaces EfficientNetB4ST on CPU"],
                             "row_of": {"efficientnet_lite0_st": "efficientnet_b4_st"}})
    check_marks(spec, spec.detectors)
    marks = plan_marks(spec, {"efficientnet_lite0_st": 0.6, "xception": 0.9})
    assert marks.label("efficientnet_b4_st") == "efficientnet_b4_st‡†" and marks.label("xception") == "xception"
    report = {"vid_real": 1.0, "f2f_real": 0.75, "vid_fake": 0.5, "f2f_fake": 0.25, "n_videos_real": 4,
              "n_real": 8, "n_videos_fake": 4, "n_fake": 8}
    cells = pinhasov_table1_cells({"efficientnet_b4_st": report}, marks, intervals=True)
    md = pinhasov_table1_markdown(cells, marks)
    assert "| efficientnet_b4_st‡† | 1.000 [0.51, 1.00] / 0.960 | 0.750 [0.41, 0.93] / 0.886 |" in md
    assert "‡ our model stands in for the paper's: efficientnet_lite0_st in the efficientnet_b4_st row" in md
    assert "note: EfficientNet-Lite0 ST replaces EfficientNetB4ST on CPU" in md
    row = next(c for c in cells if c["detector"] == "efficientnet_b4_st")
    assert row["model"] == "efficientnet_lite0_st" and row["below_threshold"]

    # Seed 001's Tables 3/4 take the stand-in in the paper's row, beside the paper's numbers
    ours = {("efficientnet_b4_st", a, "saliency"): 0.5 for a in ("pgd_black", "pgd", "apgd", "square", "nes")}
    xai = pinhasov_xai_cells(ours, 3, ["efficientnet_b4_st"], ["saliency"], marks,
                             counts={k: 10 for k in ours})
    md = pinhasov_xai_markdown(xai, marks)
    assert "| efficientnet_b4_st‡† | PGD* | 0.500 [0.24, 0.76] / 0.996 |" in md
    assert "| efficientnet_b4_st‡† | Average | 0.500 / 0.890 |" in md  # an average is no rate: no interval


def test_a_row_of_putting_two_detectors_in_one_row_is_refused():
    with pytest.raises(ConfigError, match="two of our detectors"):
        check_marks(OmegaConf.create({"paper_only": [], "row_of": {"a": "xception"}}), ["a", "xception"])
    # an entry for a detector this plan does not list (its detectors overridden) maps nothing
    check_marks(OmegaConf.create({"paper_only": [], "row_of": {"no_such": "xception"}}), ["xception"])


def test_a_plan_with_every_detector_paper_only_is_refused():
    with pytest.raises(ConfigError, match="leaves no detector"):
        check_marks(OmegaConf.create({"paper_only": ["a"], "row_of": {}}), ["a"])


def _table2_ours(strong: float, weak: float) -> dict:
    """Two detectors: in ``strong`` JPEG70 beats JPEG90, in ``weak`` it loses by more."""
    ours = {}
    for det, (j70, j90, na) in {"resnet50": (strong, 0.2, 0.0), "mesonet": (weak, 0.9, 0.5)}.items():
        for att in ("pgd", "bim", "deepfool"):
            ours.update({(det, att, "na"): na, (det, att, "jpeg70"): j70, (det, att, "jpeg90"): j90,
                         (det, att, "hgd"): 0.8 if det == "resnet50" else 0.1, (det, att, "ms"): 0.3})
    return ours


def test_table2_findings_are_judged_again_without_the_weak_rows():
    ours = _table2_ours(strong=0.6, weak=0.1)
    marks = Marks(clean={"resnet50": 0.95, "mesonet": 0.6})
    found = {(f.key, f.scope): f for f in table2_findings(ours, ["resnet50", "mesonet"], marks)}
    assert found["jpeg70_ge_jpeg90", "all"].holds is False  # 0.35 vs 0.55: the weak MesoNet decides
    strong = found["jpeg70_ge_jpeg90", "strong"]
    assert strong.holds is True and strong.values["rows"] == ["resnet50"] and strong.values["jpeg70"] == 0.6
    assert found["na_near_zero", "all"].holds is False and found["na_near_zero", "strong"].holds is True
    assert found["hgd_td_best_pgd_bim", "strong"].values["top"] == "hgd"
    assert found["smoothing_augmix_best_deepfool", "strong"].holds is False
    text = "\n".join(finding_lines(list(found.values())))
    assert "- JPEG70 ≥ JPEG90\n    all rows (resnet50, mesonet): does not hold: mean over every attack 0.350 vs 0.550" in text
    assert "    rows with clean acc ≥ 0.85 (resnet50): holds: mean over every attack 0.600 vs 0.200" in text


def test_no_row_reaching_the_threshold_is_said_so():
    marks = Marks(clean={"resnet50": 0.7, "mesonet": 0.6})
    found = table2_findings(_table2_ours(0.6, 0.1), ["resnet50", "mesonet"], marks)
    strong = [f for f in found if f.scope == "strong"]
    assert len(strong) == 4 and all(f.holds is None and f.text == NO_STRONG_ROW for f in strong)
    assert f"    rows with clean acc ≥ 0.85: {NO_STRONG_ROW}" in finding_lines(found)


def test_seed001_findings_over_all_g_and_over_the_strong_ones(tmp_path):
    ours = {}
    for det, (pgd, black, square) in {"xception": (0.9, 0.5, 0.4), "efficientnet_b4_st": (0.4, 0.6, 0.9)}.items():
        for x in ("saliency", "guided_backprop"):
            ours.update({(det, "pgd", x): pgd, (det, "pgd_black", x): black, (det, "square", x): square,
                         (det, "apgd", x): 0.7, (det, "nes", x): 0.7})
    marks = Marks(clean={"xception": 0.9, "efficientnet_b4_st": 0.5})
    cells = pinhasov_xai_cells(ours, 3, ["efficientnet_b4_st", "xception"], ["saliency", "guided_backprop"], marks)
    found = {(f.key, f.scope): f for f in seed001_findings(cells, tmp_path / "table4_smoke", 3, marks)}
    assert found["maps_beat_pgd_b", "all"].values["wins"] == 2 and found["maps_beat_pgd_b", "all"].holds is False
    assert found["maps_beat_pgd_b", "strong"].holds is True and found["maps_beat_pgd_b", "strong"].values["pairs"] == 2
    assert found["square_hardest", "strong"].holds is True
    assert found["square_hardest", "all"].values["hardest_attack"] == "pgd"
    assert found["finetune_beats_head", "all"].holds is None  # Table 4 has not run
