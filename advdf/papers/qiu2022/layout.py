"""Seed 003's Tables 1-4 in their layout: one row per configuration, one column per generator, each cell the average
distortion L and the attack rate (with its Wilson 95 % interval) beside the paper's, which is "—" everywhere: none of
its numbers survived extraction, and none is invented here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from advdf.report import render
from advdf.report.marks import footnote_block

DAGGER = "†"


def model_cell(metrics: Mapping | None) -> dict:
    """One (row, generator) cell: average L and attack rate with its interval; ``paper`` is None (no number)."""
    if metrics is None:
        return {"ours": None, "avg_l": None, "paper": None}
    return {"ours": metrics["rate"], "avg_l": metrics["avg_l"], "paper": None,
            **render.rate_fields(metrics["rate"], metrics["n"])}


def cell_text(cell: dict) -> str:
    if cell.get("ours") is None:
        return f"{render.MISSING} / {render.MISSING}"
    return f"L {cell['avg_l']:.4f}, {render.ours_text(cell, '.2f', interval=True)} / {render.MISSING}"


def table_markdown(rows: Sequence[tuple[str, str]], results: Mapping[str, dict | None], generators: Sequence[str],
                   weak: Mapping[str, str], notes: Sequence[str] = ()) -> str:
    """``rows``: (label, result key); ``results``: key -> the measured row (:func:`row_record`) or None."""
    header = ["Configuration", *(f"{g}{DAGGER if g in weak else ''}" for g in generators), "s / photo"]
    body = []
    for label, key in rows:
        r = results.get(key)
        cells = [cell_text(model_cell(None if r is None else r["metrics"]["models"].get(g))) for g in generators]
        body.append([label, *cells, render.fmt(None if r is None else r["s_per_image"], ".2f")])
    lines = [f"{DAGGER} {g}: {why}" for g, why in weak.items()] + [f"note: {n}" for n in notes]
    return render.markdown(header, body) + footnote_block(lines)


def robustness_markdown(rows: Sequence[tuple[str, str]], results: Mapping[str, dict], generators: Sequence[str],
                        transforms: Sequence[str]) -> str:
    """Attack rate per generator after each transformation of the protected photo (rows: protections)."""
    header = ["Protection", "Transformation", *generators, "mean rate"]
    body = []
    for label, key in rows:
        r = results.get(key)
        for t in ("none", *transforms):
            m = None if r is None else (r["metrics"] if t == "none" else r["robustness"].get(t))
            body.append([label, t, *(render.fmt(None if m is None else m["models"][g]["rate"], ".2f")
                                     for g in generators), render.fmt(None if m is None else m["mean_rate"], ".2f")])
    return render.markdown(header, body, 2)


def generator_markdown(edits: Mapping[str, dict]) -> str:
    """The generators' own check: per generator, how often the attribute classifier sees the edit, against the
    identity map, and how far the output moves from the input."""
    body = [[g, render.fmt(e.get("edit_rate")), render.fmt(e.get("identity_rate")), render.fmt(e.get("moved"), ".3f")]
            for g, e in edits.items()]
    return render.markdown(["Generator", "edit success", "identity map", "mean |G(x, c) - x|"], body)
