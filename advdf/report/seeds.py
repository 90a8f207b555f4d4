"""One reproduce target run on several synthetic data seeds, summarized: how often each finding holds, and each
table cell's mean, min and max across the seeds.

A smoke-scale table measures detectors trained briefly on a few hundred frames; a single data seed cannot tell a
claim that holds from one that happened to. The counts here say in how many seeds a claim held (over all rows and
over the rows reaching the clean-accuracy threshold), the spread how far a cell moves from seed to seed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

from advdf.report.findings import SCOPES, Finding
from advdf.report.render import MISSING, csv_value, markdown

# Cell fields that are not part of a cell's identity.
_VALUE_FIELDS = {"ours", "paper", "n", "lo", "hi", "model", "clean_acc", "target_model", "target_clean_acc",
                 "below_threshold", "paper_only", "non_adaptive", "adaptive"}


def finding_counts(per_seed: Mapping[int, Sequence[Finding]]) -> list[dict]:
    """Per (finding, scope): in how many seeds it held, in how many it could be judged, of how many seeds."""
    out: dict[tuple[str, str], dict] = {}
    for seed, findings in per_seed.items():
        for f in findings:
            entry = out.setdefault((f.key, f.scope), {"key": f.key, "claim": f.claim, "scope": f.scope, "holds": 0,
                                                      "judged": 0, "seeds": len(per_seed), "per_seed": {}})
            entry["per_seed"][seed] = f.holds
            entry["judged"] += f.holds is not None
            entry["holds"] += f.holds is True
    return list(out.values())


def _cell_key(cell: dict, keys: Sequence[str]) -> tuple[str, ...]:
    extra = [k for k in cell if k not in keys and k not in _VALUE_FIELDS and not isinstance(cell[k], dict | list)]
    return tuple(str(cell[k]) for k in (*keys, *extra))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def cell_spread(per_seed: Mapping[int, Mapping[str, tuple[list[dict], list[str]]]]) -> list[dict]:
    """Per table cell computed in at least one seed: its value in each seed, and their mean, min and max.

    Args:
        per_seed: per data seed, the target's ``{table: (cells, key columns)}``; a cell's identity is its key
            columns and any other label field it has (``metric``), its value ``ours``.
    """
    out: dict[tuple[str, tuple[str, ...]], dict] = {}
    for seed, tables in per_seed.items():
        for table, (cells, keys) in tables.items():
            for c in cells:
                value = _number(c.get("ours"))
                if value is None:
                    continue
                key = _cell_key(c, keys)
                entry = out.setdefault((table, key), {"table": table, "cell": " / ".join(key), "values": {}})
                entry["values"][seed] = value
    for entry in out.values():
        vals = list(entry["values"].values())
        entry.update(n_seeds=len(vals), mean=sum(vals) / len(vals), min=min(vals), max=max(vals))
    return list(out.values())


def _finding_line(entry: dict) -> str:
    not_judged = entry["seeds"] - entry["judged"]
    why = "no row reaches the threshold or cells missing" if entry["scope"] == "strong" else "cells missing"
    return f"holds in {entry['holds']}/{entry['seeds']} seeds" + (f" (not judged in {not_judged}: {why})"
                                                                  if not_judged else "")


def findings_markdown(counts: Sequence[dict]) -> str:
    """Each finding as ``holds in k/N seeds``, over all rows and over the rows reaching the threshold."""
    lines = []
    for key in dict.fromkeys(e["key"] for e in counts):
        group = [e for e in counts if e["key"] == key]
        lines.append(f"- {group[0]['claim']}")
        lines += [f"    {SCOPES.get(e['scope'], e['scope'])}: {_finding_line(e)}" for e in group]
    return "\n".join(lines) + ("\n" if lines else "")


def spread_markdown(spread: Sequence[dict], seeds: Sequence[int]) -> str:
    """Per table, one line per computed cell: mean [min, max] across the seeds, and each seed's value."""
    parts = []
    for table in dict.fromkeys(e["table"] for e in spread):
        rows = [[e["cell"], f"{e['mean']:.3f} [{e['min']:.3f}, {e['max']:.3f}]", f"{e['n_seeds']}/{len(seeds)}",
                 *(f"{e['values'][s]:.3f}" if s in e["values"] else MISSING for s in seeds)]
                for e in spread if e["table"] == table]
        parts.append(f"{table}: mean [min, max] across data seeds\n\n"
                     + markdown(["Cell", "Mean [min, max]", "Seeds", *(f"seed {s}" for s in seeds)], rows))
    return "\n".join(parts)


def spread_csv(spread: Sequence[dict], seeds: Sequence[int]) -> str:
    """The spread as CSV: table, cell, n_seeds, mean, min, max, then one column per seed (empty: not computed)."""
    buf = io.StringIO()
    fields = ["table", "cell", "n_seeds", "mean", "min", "max", *(f"seed{s}" for s in seeds)]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for e in spread:
        writer.writerow({"table": e["table"], "cell": e["cell"], "n_seeds": e["n_seeds"],
                         **{k: csv_value(e[k]) for k in ("mean", "min", "max")},
                         **{f"seed{s}": csv_value(e["values"].get(s)) for s in seeds}})
    return buf.getvalue()


def summary_markdown(title: str, seeds: Sequence[int], counts: Sequence[dict], spread: Sequence[dict],
                     out_dirs: Mapping[int, str]) -> str:
    """The whole summary: the seeds and where each wrote its tables, the finding counts, the cell spread."""
    head = [f"{title}, data seeds {', '.join(map(str, seeds))}", ""]
    head += [f"- seed {s}: {out_dirs[s]}" for s in seeds]
    findings = findings_markdown(counts) or "(this target checks no findings)\n"
    return ("\n".join(head) + "\n\nFindings across data seeds (each over all rows, and over the rows reaching the "
            "clean-accuracy threshold):\n\n" + findings + "\n" + spread_markdown(spread, seeds))
