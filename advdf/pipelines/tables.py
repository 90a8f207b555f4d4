"""Paper-layout tables: our numbers beside the paper's, "—" wherever ours were not computed."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from advdf import paper_values

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
        ours: accuracy keyed by (detector, attack, defense column) for what was computed. Attacks advdf ran
            beyond the paper's (e.g. FGSM) get rows after the paper's, with no paper value.
    """
    paper = {(r["detector"], r["attack"], d): float(r[d])
             for r in paper_values.load("jin2025_table2_attack_defense_accuracy") for d in TABLE2_DEFENSES}
    cells = []
    for det in TABLE2_DETECTORS:
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
