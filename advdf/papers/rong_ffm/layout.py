"""Seed 002's Tables 1-4 in their layout, and the numbers its text states beside ours.

The seed's tables lost their numbers in extraction; its text states means (``rong_ffm_reported_in_text.csv``), which
the summary table prints beside ours. Every per-cell paper column prints "—". Rates are fractions (the paper writes
percent); RMSE is on the 0-255 scale.
"""

from __future__ import annotations

from collections.abc import Sequence

from advdf import paper_values
from advdf.report import render
from advdf.report.marks import Marks, footnote_block

PAPER_CSV = "rong_ffm_reported_in_text"


def stated(experiment: str, quantity: str, condition: str) -> float | None:
    """A number the seed's text states, as a fraction (percent and percentage points / 100)."""
    for row in paper_values.load(PAPER_CSV):
        if (row["experiment"], row["quantity"], row["condition"]) == (experiment, quantity, condition):
            value = render.paper_float(row["value"])
            return None if value is None else value / 100 if row["unit"].startswith("percent") else value
    return None


def _row(marks: Marks, dataset: str) -> str:
    return marks.label(dataset) if marks else dataset


def table1_markdown(cells: dict[tuple[str, int], dict], iterations: Sequence[int], marks: Marks) -> str:
    """Table 1 (IAP-cls): per data set and iteration count (0 = the original images) accuracy, RMSE and the mask's
    IoU over fake frames and over all frames (real frames' empty masks count 1 when predicted empty)."""
    rows = []
    for (dataset, k), c in cells.items():
        rows.append([_row(marks, dataset), "original" if k == 0 else f"{k} iters",
                     render.ours_text(c["acc"], interval=True), render.fmt(c["rmse"]["ours"], ".2f"),
                     render.fmt(c["iou_fake"]["ours"]), render.fmt(c["iou_all"]["ours"])])
    return (render.markdown(["Dataset", "Images", "Accuracy", "RMSE", "IoU (fake)", "IoU (all)"], rows, 2)
            + footnote_block(marks.footnotes()))


def table2_markdown(cells: dict[tuple[str, str], dict], marks: Marks) -> str:
    """Table 2 (IAP-seg, fake frames only): original and attacked rows per data set: accuracy, IoU against the
    original masks and against the adversarial (triangle) masks."""
    rows = [[_row(marks, d), state, render.ours_text(c["acc"], interval=True), render.fmt(c["iou_orig"]["ours"]),
             render.fmt(c["iou_adv"]["ours"])] for (d, state), c in cells.items()]
    return (render.markdown(["Dataset", "Images", "Accuracy (fake)", "IoU vs original mask", "IoU vs adversarial mask"],
                            rows, 2) + footnote_block(marks.footnotes()))


def table3_markdown(clean: dict[str, dict], uap: dict[tuple[str, str], dict], urn: dict[str, dict],
                    datasets: Sequence[str], marks: Marks) -> str:
    """Table 3: accuracy of each data set's ClassNSeg (columns: evaluated on) under the UAP crafted on each data
    set (rows), the URN of the same strength, and clean."""
    rows = [["clean", *(render.ours_text(clean[d], interval=True) for d in datasets)]]
    rows += [[f"UAP crafted on {a}", *(render.ours_text(uap[a, d], interval=True) for d in datasets)] for a in datasets]
    rows.append(["URN", *(render.ours_text(urn[d], interval=True) for d in datasets)])
    return (render.markdown(["Perturbation", *(f"on {_row(marks, d)}" for d in datasets)], rows)
            + footnote_block(marks.footnotes()))


def table4_markdown(cells: dict[tuple[str, str], dict[str, dict]], models: Sequence[str], datasets: Sequence[str],
                    marks: Marks) -> str:
    """Table 4: the target's UAPs carried to unseen FFMs: per model and data set, clean, UAP and URN accuracy."""
    rows = [[_row(marks, m), d, *(render.ours_text(cells[m, d][k], interval=True) for k in ("clean", "uap", "urn"))]
            for m in models for d in datasets]
    return (render.markdown(["Model", "Dataset", "Clean", "UAP", "URN"], rows, 2) + footnote_block(marks.footnotes()))


SUMMARY = (  # (our quantity, its label, the stated number's key)
    ("uap_clean_same", "clean accuracy, same data set (mean)", ("uap", "accuracy", "clean_same_dataset_mean")),
    ("uap_same", "UAP accuracy, same data set (mean)", ("uap", "accuracy", "uap_same_dataset_mean")),
    ("uap_unseen_drop", "UAP accuracy drop, unseen data sets (mean)", ("uap", "accuracy_drop",
                                                                       "uap_unseen_datasets_mean")),
    ("urn_drop", "URN accuracy drop (mean)", ("uap", "accuracy_drop", "urn_same_strength_mean")),
    ("seg_iou_orig_before", "IAP-seg: IoU vs original mask before (mean)",
     ("iap_seg", "iou_vs_original_mask", "before_attack_mean")),
    ("seg_iou_orig_after", "IAP-seg: IoU vs original mask after (mean)",
     ("iap_seg", "iou_vs_original_mask", "after_iap_seg_mean")),
    ("seg_iou_adv_after", "IAP-seg: IoU vs adversarial mask after (max over data sets)",
     ("iap_seg", "iou_vs_adversarial_mask", "after_iap_seg_max")),
)


def summary_cells(ours: dict[str, float | None], transfer_drops: dict[str, float | None]) -> list[dict]:
    """The quantities the seed's text states, ours beside the paper's; the two unseen-FFM drops are stated without
    saying which model is which, so each of ours is printed beside both."""
    cells = [{"quantity": key, "label": label, "ours": ours.get(key), "paper": stated(*ref)}
             for key, label, ref in SUMMARY]
    a = stated("uap_transfer_models", "accuracy_drop", "uap_unseen_ffm_a_mean")
    b = stated("uap_transfer_models", "accuracy_drop", "uap_unseen_ffm_b_mean")
    for model, drop in transfer_drops.items():
        cells.append({"quantity": f"transfer_drop_{model}", "label": f"UAP accuracy drop on {model} (mean)",
                      "ours": drop, "paper": None, "paper_text": f"{render.fmt(a)} or {render.fmt(b)}"})
    return cells


def summary_markdown(cells: Sequence[dict]) -> str:
    rows = [[c["label"], render.fmt(c["ours"]), c.get("paper_text") or render.fmt(c["paper"])] for c in cells]
    return render.markdown(["Quantity (seed 002's text)", "Ours", "Paper"], rows)
