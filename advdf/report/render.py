"""One renderer for every table advdf prints: Markdown, LaTeX and long-format CSV.

A table is a header row, a count of left-aligned label columns and groups of rows of already formatted cells; each
paper's layout decides the rows, this module only writes them. A value that was not computed prints
:data:`MISSING` in Markdown and :data:`LATEX_MISSING` in LaTeX; a paper cell without a number prints the same.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MISSING = "—"
LATEX_MISSING = "--"  # an en dash in LaTeX, the counterpart of MISSING
_LATEX_SPECIALS = {"_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#"}

Rows = Sequence[Sequence[str]]


def fmt(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``, or :data:`MISSING`."""
    return MISSING if value is None else format(value, spec)


def ours_paper(ours: float | None, paper: float | None, spec: str = ".3f") -> str:
    """The ``ours / paper`` cell every reproduce table prints."""
    return f"{fmt(ours, spec)} / {fmt(paper, spec)}"


def paper_float(text: str) -> float | None:
    """A number from a shipped paper-values CSV; an empty field (the paper gives no number) is ``None``."""
    return float(text) if text.strip() else None


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """The mean when every value was computed, else ``None`` (an average of a partial row is not printed)."""
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def markdown(headers: Sequence[str], rows: Rows, n_label_cols: int = 1) -> str:
    """A pipe table: ``n_label_cols`` left-aligned label columns, the rest right-aligned."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "---|" * n_label_cols + "---:|" * (len(headers) - n_label_cols)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def latex_text(text: str) -> str:
    """A label made safe for a LaTeX cell: ``_`` -> ``\\_`` and similar."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def latex_num(value: float | None) -> str:
    return LATEX_MISSING if value is None else f"{value:.3f}"


def latex(headers: Sequence[str], blocks: Sequence[Rows], caption: str, label: str, n_label_cols: int = 1) -> str:
    """A booktabs ``table``: ``n_label_cols`` left-aligned label columns then right-aligned value columns.

    ``blocks`` are groups of rows (each row a list of already formatted cells) separated by ``\\midrule``;
    ``caption`` is written as given (it may hold LaTeX), headers are escaped here.
    """
    spec = "l" * n_label_cols + "r" * (len(headers) - n_label_cols)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_text(h) for h in headers) + r" \\"]
    for block in blocks:
        lines.append(r"\midrule")
        lines += [" & ".join(row) + r" \\" for row in block]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def grid_latex(rows: list[str], cols: list[str], values: dict[tuple[str, str], float | None], caption: str,
               label: str) -> str:
    """A LaTeX ``table`` of single numbers (three decimals): one row per label in ``rows`` (e.g.
    ``"resnet50 / pgd"``), one column per label in ``cols``; ``values`` keyed by (row, col), ``--`` where a
    key is absent or None."""
    body = [[latex_text(r), *(latex_num(values.get((r, c))) for c in cols)] for r in rows]
    return latex(["", *cols], [body], caption, label)


def long_csv(cells: Sequence[dict], keys: Sequence[str], metric: bool = True, ours_spec: str = ".6g",
             paper_spec: str = ".6g") -> str:
    """CSV of long-format cells: ``keys``, then ``metric`` (unless ``metric=False``), ``ours``, ``paper``;
    a value that was not computed (or that the paper does not give) is an empty field."""
    buf = io.StringIO()
    fields = [*keys, *(["metric"] if metric else []), "ours", "paper"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for c in cells:
        writer.writerow({**c, "ours": "" if c["ours"] is None else format(c["ours"], ours_spec),
                         "paper": "" if c["paper"] is None else format(c["paper"], paper_spec)})
    return buf.getvalue()


class Lines:
    """The text a reproduce run reports, collected line by line (called like ``print``) and returned to the command
    line, which prints it: library code returns its report instead of writing to stdout."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, *parts: object) -> None:
        self.lines.append(" ".join(str(p) for p in parts))

    def __str__(self) -> str:
        return "\n".join(self.lines) + "\n" if self.lines else ""


@dataclass(frozen=True)
class Reproduced:
    """What a reproduce target returns: where its tables and figures were written, and its printed report."""

    out_dir: Path
    text: str
