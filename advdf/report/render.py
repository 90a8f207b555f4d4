"""One renderer for every table advdf prints: Markdown, LaTeX and long-format CSV.

A table is a header row, a count of left-aligned label columns and groups of rows of already formatted cells; each
paper's layout decides the rows, this module only writes them. A value that was not computed prints
:data:`MISSING` in Markdown and :data:`LATEX_MISSING` in LaTeX; a paper cell without a number prints the same.

A cell is a dict with ``ours`` and ``paper``; a cell that is a rate over ``n`` samples also carries ``n`` (None when
the count is unknown) and its Wilson interval ``lo``/``hi`` (:func:`rate_fields`), and a row the plan leaves to the
paper's scale carries ``paper_only`` (see :mod:`advdf.report.marks`).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MISSING = "—"
LATEX_MISSING = "--"  # an en dash in LaTeX, the counterpart of MISSING
_LATEX_SPECIALS = {"_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "†": r"$^\dagger$", "‡": r"$^\ddagger$"}

PAPER_ONLY = "paper scale only"  # the ours part of a row the plan computes only at the paper's scale
# Columns a long-format CSV adds after ours/paper when its cells carry them: the rate's sample count and Wilson
# interval, and the row's marks (advdf.report.marks; a transfer cell also names its target's model and accuracy).
CSV_EXTRA = ("n", "lo", "hi", "model", "clean_acc", "target_model", "target_clean_acc", "below_threshold",
             "paper_only")

Rows = Sequence[Sequence[str]]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion ``k`` of ``n`` (95 % at ``z=1.96``), or None when ``n`` is 0.

    Unlike the normal approximation it stays inside [0, 1] and keeps a width at ``k=0`` and ``k=n``, which small
    test sets hit often.
    """
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"wilson: k={k} is not between 0 and n={n}")
    p, z2 = k / n, z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_interval(rate: float | None, n: int | None) -> tuple[float, float] | None:
    """The Wilson interval of an accuracy ``rate`` measured on ``n`` samples (``k = round(rate * n)``); None when
    either is unknown or not a number."""
    if rate is None or n is None or not n or (isinstance(rate, float) and math.isnan(rate)):
        return None
    return wilson(round(rate * n), int(n))


def rate_fields(rate: float | None, n: float | int | None) -> dict:
    """``n``, ``lo`` and ``hi`` of a cell that is a rate over ``n`` samples (``lo``/``hi`` None where unknown)."""
    n = None if n is None else int(n)
    ci = rate_interval(rate, n)
    return {"n": n, "lo": None if ci is None else ci[0], "hi": None if ci is None else ci[1]}


def fmt(value: float | None, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``, or :data:`MISSING`."""
    return MISSING if value is None else format(value, spec)


def ours_paper(ours: float | None, paper: float | None, spec: str = ".3f") -> str:
    """The ``ours / paper`` cell every reproduce table prints."""
    return f"{fmt(ours, spec)} / {fmt(paper, spec)}"


def ours_text(cell: dict, spec: str = ".3f", interval: bool = False, value_fmt=None) -> str:
    """The ``ours`` part of a cell: :data:`PAPER_ONLY` for a row left to the paper's scale, else the value (through
    ``value_fmt`` when given) and, with ``interval`` and a cell that is a rate (it has ``n``), its Wilson interval
    ``[lo, hi]``, or ``[—]`` when the sample count is unknown."""
    if cell.get("paper_only"):
        return PAPER_ONLY
    ours = cell.get("ours")
    text = value_fmt(ours) if value_fmt is not None else fmt(ours, spec)
    if not interval or ours is None or "n" not in cell:
        return text
    lo, hi = cell.get("lo"), cell.get("hi")
    return f"{text} [{MISSING}]" if lo is None or hi is None else f"{text} [{lo:.2f}, {hi:.2f}]"


def cell_text(cell: dict, spec: str = ".3f", interval: bool = False, value_fmt=None) -> str:
    """A whole ``ours / paper`` cell from a cell dict (see :func:`ours_text`)."""
    paper = cell.get("paper")
    paper_text = value_fmt(paper) if value_fmt is not None else fmt(paper, spec)
    return f"{ours_text(cell, spec, interval, value_fmt)} / {paper_text}"


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


def csv_value(value: object, spec: str = ".4f") -> str:
    """A CSV field: empty for None, ``True``/``False`` for booleans, floats with ``spec``, anything else as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def long_csv(cells: Sequence[dict], keys: Sequence[str], metric: bool = True, ours_spec: str = ".6g",
             paper_spec: str = ".6g") -> str:
    """CSV of long-format cells: ``keys``, then ``metric`` (unless ``metric=False``), ``ours``, ``paper``, then
    those of :data:`CSV_EXTRA` the cells carry; a value that was not computed (or that the paper does not give) is
    an empty field."""
    buf = io.StringIO()
    extra = [k for k in CSV_EXTRA if any(k in c for c in cells) and k not in keys]
    fields = [*keys, *(["metric"] if metric else []), "ours", "paper", *extra]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for c in cells:
        writer.writerow({**c, "ours": "" if c["ours"] is None else format(c["ours"], ours_spec),
                         "paper": "" if c["paper"] is None else format(c["paper"], paper_spec),
                         **{k: csv_value(c.get(k)) for k in extra}})
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
    """What a reproduce target returns: where its tables and figures were written, and its printed report; and, for
    a comparison across data seeds, its findings (:class:`advdf.report.findings.Finding`) and its long-format cells
    (``{table: (cells, key columns)}``, each cell with ``ours``)."""

    out_dir: Path
    text: str
    findings: tuple = ()
    tables: dict = field(default_factory=dict)
