"""Honest marks on a reproduce table's rows: weak detectors, stand-in models, rows left to the paper's scale.

A row whose model reaches a clean test accuracy below :data:`CLEAN_ACC_THRESHOLD` gets :data:`DAGGER` after its
label and a footnote naming the accuracy: its attacked and defended cells measure a weak detector, not the paper's.
A row where one of our models stands beside another paper row (``reproduce.row_of``) gets :data:`STAND_IN` and a
footnote naming the model. A row the plan computes only at the paper's scale (``reproduce.paper_only``) prints
:data:`advdf.report.render.PAPER_ONLY` instead of numbers. Every mark lives here, keyed by the paper row a cell
stands in; the layouts only ask :class:`Marks` for labels, cell fields and footnotes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CLEAN_ACC_THRESHOLD = 0.85  # the one threshold every table marks its rows by
DAGGER = "†"
STAND_IN = "‡"


def below_threshold(acc: float | None) -> bool:
    """Whether a known clean accuracy is below :data:`CLEAN_ACC_THRESHOLD` (an unknown one is not marked)."""
    return acc is not None and acc < CLEAN_ACC_THRESHOLD


def reaches_threshold(acc: float | None) -> bool:
    """Whether a known clean accuracy is at least :data:`CLEAN_ACC_THRESHOLD`: the rows a ``≥ 0.85`` finding keeps."""
    return acc is not None and acc >= CLEAN_ACC_THRESHOLD


@dataclass(frozen=True)
class Marks:
    """The marks of one table, keyed by paper row (the ``detector``/``network``/``source`` a cell names).

    Attributes:
        clean: the clean test accuracy of each row's model (absent or None: unknown, not marked).
        models: for a row where another of our models stands in, that model (absent: the row's own name).
        paper_only: rows computed only at the paper's scale.
        substitutions: free-text caption notes of the plan, printed under the table as given.
        detail: per row, the accuracy text of its footnote when it is not just ``clean`` (e.g. two variants).
    """

    clean: Mapping[str, float | None] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)
    paper_only: tuple[str, ...] = ()
    substitutions: tuple[str, ...] = ()
    detail: Mapping[str, str] = field(default_factory=dict)

    def below(self, row: str) -> bool:
        return below_threshold(self.clean.get(row))

    def strong(self, row: str) -> bool:
        """Whether the row's model reaches the threshold (kept by the ``≥ 0.85`` version of a finding)."""
        return reaches_threshold(self.clean.get(row))

    def label(self, row: str) -> str:
        """The row's label with its marks: ``‡`` for a stand-in model, ``†`` for a weak one."""
        return f"{row}{STAND_IN if row in self.models else ''}{DAGGER if self.below(row) else ''}"

    def fields(self, row: str) -> dict:
        """The CSV fields of a cell in ``row``: our model (None where we ran none), its clean accuracy, the mark, and
        paper-scale-only."""
        return {"model": self.models.get(row, row) if row in self.clean else None,
                "clean_acc": self.clean.get(row), "below_threshold": self.below(row),
                "paper_only": row in self.paper_only}

    def footnotes(self, rows: Iterable[str] | None = None, scale: str | None = None) -> list[str]:
        """The lines under the table: weak rows (†), stand-ins (‡), rows left to the paper's scale, and the plan's
        substitution notes; ``rows`` limits the first three to the rows the table prints."""
        keep = None if rows is None else set(rows)

        def shown(row: str) -> bool:
            return keep is None or row in keep

        lines = []
        weak = [r for r in self.clean if self.below(r) and shown(r)]
        if weak:
            lines.append(f"{DAGGER} clean test accuracy below {CLEAN_ACC_THRESHOLD}: "
                         + ", ".join(f"{r}{f' ({self.models[r]})' if r in self.models else ''} "
                                     f"{self.detail.get(r) or format(self.clean[r], '.3f')}" for r in weak)
                         + "; its cells measure a weak detector")
        stand_ins = [r for r in self.models if shown(r)]
        if stand_ins:
            lines.append(f"{STAND_IN} our model stands in for the paper's: "
                         + ", ".join(f"{self.models[r]} in the {r} row" for r in stand_ins))
        only = [r for r in self.paper_only if shown(r)]
        if only:
            lines.append(f"paper scale only (not trained{f' at {scale} scale' if scale else ''}): "
                         + ", ".join(only))
        lines += [f"note: {s}" for s in self.substitutions]
        return lines


def footnote_block(lines: list[str]) -> str:
    """Footnote lines as they follow a Markdown table, after a blank line (a line right below a table would be read
    as one more row); an empty string when there are none."""
    return "\n" + "".join(f"{line}\n" for line in lines) if lines else ""
