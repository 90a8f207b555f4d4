"""Paper tables: the paper's numbers come from the shipped CSVs; ours only from computed cells."""

from advdf import paper_values
from advdf.pipelines.tables import (
    TABLE2_ATTACKS,
    TABLE2_DEFENSES,
    TABLE2_DETECTORS,
    table2_cells,
    table2_markdown,
)


def test_paper_values_ship_with_the_package():
    rows = paper_values.load("jin2025_table2_attack_defense_accuracy")
    assert len(rows) == len(TABLE2_DETECTORS) * len(TABLE2_ATTACKS)
    vgg_bim = next(r for r in rows if r["detector"] == "vgg16" and r["attack"] == "bim")
    assert vgg_bim["td"] == "0.568"


def test_uncomputed_cells_print_a_dash_and_computed_ones_print_ours():
    cells = table2_cells({("resnet50", "pgd", "na"): 0.0123, ("resnet50", "fgsm", "jpeg70"): 0.5})
    ours = [c for c in cells if c["ours"] is not None]
    assert len(ours) == 2
    md = table2_markdown(cells)
    assert "| resnet50 | pgd | 0.012 / 0.000 | — / 0.150 |" in md
    # an attack beyond the paper's gets its own row with no paper value
    assert "| resnet50 | fgsm | — / — | — / — | — / — | — / — | 0.500 / — |" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "Detector" not in ln]
    assert len(rows) == len(TABLE2_DETECTORS) * len(TABLE2_ATTACKS) + 1  # the extra FGSM row: resnet50 only
    assert all(ln.count("|") == len(TABLE2_DEFENSES) + 3 for ln in rows)
