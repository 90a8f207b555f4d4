"""Paper tables: the paper's numbers come from the shipped CSVs; ours only from computed cells."""

from advdf import paper_values
from advdf.papers.jin2025.layout import (
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


def test_table1_layouts_print_ours_beside_the_paper():
    from advdf.papers.jin2025.layout import table1_cells, table1_markdown
    from advdf.papers.pinhasov2024.layout import pinhasov_table1_cells, pinhasov_table1_markdown

    md = table1_markdown(table1_cells({("resnet50", "base"): 0.9123, ("tiny_cnn", "augmix"): 0.5}))
    lines = md.splitlines()
    assert lines[0] == "| Detector | Base | AugMix |"
    assert "| resnet50 | 0.912 / 0.939 | — / 0.939 |" in lines
    assert "| gramnet | — / 0.953 | — / 0.952 |" in lines
    assert lines[-1] == "| tiny_cnn | — / — | 0.500 / — |"  # a detector beyond the paper's follows its rows
    assert len(lines) == 2 + len(TABLE2_DETECTORS) + 1

    report = {"vid_real": 1.0, "f2f_real": 0.75, "vid_fake": 0.5, "f2f_fake": 0.25}
    md = pinhasov_table1_markdown(pinhasov_table1_cells({"xception": report}))
    assert md.splitlines()[0] == "| Detector | Real Vid | Real F2F | Fake Vid | Fake F2F |"
    assert "| xception | 1.000 / 1.000 | 0.750 / 0.994 | 0.500 / 1.000 | 0.250 / 0.998 |" in md
    assert "| efficientnet_b4_st | — / 0.960 | — / 0.886 | — / 0.980 | — / 0.966 |" in md
