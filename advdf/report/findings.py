"""A paper's findings checked on our numbers, as data: once over every row of a table and once over the rows whose
model reaches the clean-accuracy threshold (:data:`advdf.report.marks.CLEAN_ACC_THRESHOLD`).

A weak detector's cells can make a claim hold or fail for reasons that have nothing to do with the claim (a detector
at one class scores 0.5 under every defense), so each claim is judged both ways, and the verdicts can be counted
across data seeds (:mod:`advdf.report.seeds`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

from advdf.report.marks import CLEAN_ACC_THRESHOLD, Marks

SCOPES = {"all": "all rows", "strong": f"rows with clean acc ≥ {CLEAN_ACC_THRESHOLD}"}
NO_STRONG_ROW = f"no row reaches {CLEAN_ACC_THRESHOLD}"


@dataclass(frozen=True)
class Finding:
    """One claim of a paper checked on one set of rows.

    Attributes:
        key: a stable name of the claim (the same in every run and data seed).
        claim: the paper's claim in a few words.
        text: our numbers the verdict rests on.
        holds: the claim checked on our numbers; None when the cells it needs were not computed.
        values: those numbers as data (means, counts, the rows used).
        scope: ``"all"`` (every row) or ``"strong"`` (the rows whose model reaches the threshold).
    """

    key: str
    claim: str
    text: str
    holds: bool | None
    values: dict = field(default_factory=dict)
    scope: str = "all"

    def as_dict(self) -> dict:
        return asdict(self)


def both_scopes(check: Callable[[list[str]], Finding], rows: Sequence[str], marks: Marks) -> list[Finding]:
    """``check`` run over every row and over the rows ``marks`` calls strong; the second says
    :data:`NO_STRONG_ROW` (and holds None) when no row reaches the threshold."""
    every = check(list(rows))
    out = [replace(every, scope="all", values={**every.values, "rows": list(rows)})]
    strong = [r for r in rows if marks.strong(r)]
    if strong:
        found = check(strong)
        out.append(replace(found, scope="strong", values={**found.values, "rows": strong}))
    else:
        out.append(Finding(every.key, every.claim, NO_STRONG_ROW, None, {"rows": []}, "strong"))
    return out


def verdict(holds: bool | None) -> str:
    return {True: "holds", False: "does not hold", None: "not computed"}[holds]


def finding_lines(findings: Sequence[Finding]) -> list[str]:
    """Printable lines: per claim, its verdict over all rows and over the rows reaching the threshold."""
    lines = []
    for key in dict.fromkeys(f.key for f in findings):
        group = [f for f in findings if f.key == key]
        lines.append(f"- {group[0].claim}")
        for f in group:
            rows = f.values.get("rows")
            scope = SCOPES.get(f.scope, f.scope) + (f" ({', '.join(rows)})" if rows else "")
            lines.append(f"    {scope}: {f.text}" if f.holds is None and f.text == NO_STRONG_ROW
                         else f"    {scope}: {verdict(f.holds)}: {f.text}")
    return lines
