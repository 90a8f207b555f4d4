"""Seed 000's Table 2 as LaTeX, as a matrix and as heatmaps: same rows as the Markdown, NaN/-- where missing."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from advdf.errors import ConfigError
from advdf.papers.jin2025.layout import (
    TABLE2_ATTACKS,
    TABLE2_DEFENSES,
    TABLE2_DETECTORS,
    TABLE2_HEADERS,
    table2_cells,
    table2_heatmaps,
    table2_latex,
    table2_matrix,
)
from advdf.report.plots import grid_heatmap
from advdf.report.render import grid_latex

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OURS = {("resnet50", "pgd", "na"): 0.0123, ("resnet50", "pgd", "td"): 0.75, ("resnet50", "fgsm", "jpeg70"): 0.5}


def _data_rows(tex: str) -> list[str]:
    """Rows ending in ``\\\\`` after the header's ``\\midrule`` and before ``\\bottomrule``."""
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    return [ln for ln in body.splitlines() if ln.rstrip().endswith(r"\\")]


def test_table2_latex_has_one_row_per_detector_attack_and_prints_both_numbers():
    cells = table2_cells(OURS)
    tex = table2_latex(cells, caption="Accuracy under attack")
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\label{tab:table2}" in tex
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", tex).group(1)
    assert len(spec) == len(TABLE2_DEFENSES) + 2
    rows = _data_rows(tex)
    assert len(rows) == len({(c["detector"], c["attack"]) for c in cells})
    assert len(rows) == len(TABLE2_DETECTORS) * len(TABLE2_ATTACKS) + 1  # + resnet50's FGSM row
    assert all(r.count("&") == len(TABLE2_DEFENSES) + 1 for r in rows)
    assert tex.count(r"\midrule") == len(TABLE2_DETECTORS)  # header rule + one between each pair of detectors
    start = next(k for k, r in enumerate(rows) if r.startswith("resnet50 & "))
    pgd = next(r for r in rows[start:] if "& pgd &" in r)
    assert pgd.startswith(" & pgd & 0.012 / 0.000 & ")  # detector named on its block's first row only
    assert pgd.rstrip(" \\").endswith("0.750 / " + f"{_paper('resnet50', 'pgd', 'td'):.3f}")
    fgsm = next(r for r in rows[start:] if "& fgsm &" in r)
    assert "-- / --" in fgsm and "0.500 / --" in fgsm
    assert sum(r.startswith("efficientnet\\_b4 & ") for r in rows) == 1  # underscores escaped, named once
    assert "—" not in tex


def _paper(det: str, att: str, d: str) -> float:
    return next(c["paper"] for c in table2_cells({}) if (c["detector"], c["attack"], c["defense"]) == (det, att, d))


def test_grid_latex_prints_dashes_for_none_and_absent_values():
    rows, cols = ["resnet50 / pgd", "mesonet / cw"], ["NA", "JPEG_70"]
    tex = grid_latex(rows, cols, {("resnet50 / pgd", "NA"): 0.25, ("mesonet / cw", "NA"): None},
                     caption="Adaptive", label="tab:adaptive")
    assert re.search(r"\\begin\{tabular\}\{lrr\}", tex) and r"JPEG\_70" in tex
    assert _data_rows(tex) == [r"resnet50 / pgd & 0.250 & -- \\", r"mesonet / cw & -- & -- \\"]


def test_table2_matrix_ours_paper_and_diff():
    cells = table2_cells(OURS)
    rows, cols, ours = table2_matrix(cells, "ours")
    _, _, paper = table2_matrix(cells, "paper")
    _, _, diff = table2_matrix(cells, "diff")
    assert cols == [TABLE2_HEADERS[d] for d in TABLE2_DEFENSES]
    assert rows[0] == "vgg16 / bim" and "resnet50 / fgsm" in rows
    assert ours.shape == paper.shape == diff.shape == (len(rows), len(cols))
    i, na, td, j70 = rows.index("resnet50 / pgd"), cols.index("NA"), cols.index("TD"), cols.index("JPEG70")
    assert ours[i, na] == pytest.approx(0.0123) and ours[i, td] == pytest.approx(0.75)
    assert np.isfinite(ours).sum() == 3
    assert diff[i, td] == pytest.approx(0.75 - _paper("resnet50", "pgd", "td"))
    assert np.isfinite(diff).sum() == 2  # FGSM has no paper value, so its difference is missing
    f = rows.index("resnet50 / fgsm")
    assert ours[f, j70] == 0.5 and math.isnan(paper[f, j70]) and math.isnan(diff[f, j70])
    assert np.isnan(paper[f]).all() and np.isfinite(np.delete(paper, f, axis=0)).all()
    with pytest.raises(ConfigError):
        table2_matrix(cells, "both")


def test_heatmaps_write_valid_pngs_even_for_a_grid_with_nothing_computed(tmp_path):
    out = table2_heatmaps(table2_cells(OURS), tmp_path / "figs" / "table2.png", "Table 2")
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert not list(out.parent.glob("*.tmp.png"))
    empty = table2_heatmaps(table2_cells({}), tmp_path / "empty.png", "nothing yet")
    assert empty.read_bytes()[:8] == PNG_MAGIC
    # all-NaN rows are dropped, so the partial grid's picture is much shorter than the empty grid's 63+ rows
    from PIL import Image

    assert Image.open(out).size[1] < Image.open(empty).size[1]


def test_grid_heatmap_draws_nan_and_rejects_a_mismatched_matrix(tmp_path):
    m = np.array([[0.1, np.nan], [np.nan, 0.9]])
    out = grid_heatmap(["a / pgd", "b / pgd"], ["NA", "MS"], m, tmp_path / "g.png", "adaptive", cmap="magma")
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ConfigError):
        grid_heatmap(["a"], ["NA", "MS"], m, tmp_path / "bad.png", "bad")
