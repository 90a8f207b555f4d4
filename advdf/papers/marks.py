"""A reproduce plan's marks, read from its ``reproduce`` node: which detectors are left to the paper's scale
(``paper_only``), which of ours stands beside which paper row (``row_of``), the caption notes (``substitutions``),
and the :class:`advdf.report.marks.Marks` a table prints from the trained models' clean accuracy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

from advdf.errors import ConfigError
from advdf.report.marks import CLEAN_ACC_THRESHOLD, Marks


def _plain(node, default):
    if node is None:
        return default
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def paper_only(spec: DictConfig) -> list[str]:
    """The detectors this plan does not train or attack at its scale (``reproduce.paper_only``)."""
    return [str(d) for d in _plain(spec.get("paper_only"), [])]


def row_of(spec: DictConfig) -> dict[str, str]:
    """Our detector -> the paper row it stands beside (``reproduce.row_of``); absent: its own name."""
    return {str(k): str(v) for k, v in _plain(spec.get("row_of"), {}).items()}


def substitutions(spec: DictConfig) -> list[str]:
    return [str(s) for s in _plain(spec.get("substitutions"), [])]


def runnable(spec: DictConfig, detectors: Iterable[str]) -> list[str]:
    """``detectors`` without the plan's paper-scale-only ones, in order."""
    skip = set(paper_only(spec))
    return [d for d in detectors if d not in skip]


def row(spec: DictConfig, detector: str) -> str:
    """The paper row ``detector``'s cells stand in."""
    return row_of(spec).get(detector, detector)


def check_marks(spec: DictConfig, detectors: Iterable[str]) -> None:
    """Raise ConfigError, before any work, for a ``row_of`` that puts two of our detectors in one row (or one of
    ours onto another we train), and for a plan that leaves nothing to run. A ``row_of`` entry for a detector the
    plan does not list (its detectors overridden) stands for nothing and is ignored."""
    ours = list(dict.fromkeys(detectors))
    running = runnable(spec, ours)
    if not running:
        raise ConfigError(f"reproduce.paper_only {paper_only(spec)} leaves no detector of this plan to run")
    rows = [row(spec, d) for d in running]
    clash = sorted({r for r in rows if rows.count(r) > 1})
    if clash:
        raise ConfigError(f"reproduce.row_of puts two of our detectors in the row(s) {clash}")


def plan_marks(spec: DictConfig, clean: Mapping[str, float | None], detail: Mapping[str, str] | None = None,
               among: Iterable[str] | None = None) -> Marks:
    """The marks of a table whose rows are our detectors ``clean`` (detector -> clean test accuracy), keyed by the
    paper rows they stand in; ``detail``: per detector, a footnote text other than its accuracy; ``among``: the
    detectors this table lists (a plan's ``paper_only`` names those of all its tables; None: every one)."""
    mapping = row_of(spec)
    listed = None if among is None else set(among)
    return Marks(clean={mapping.get(d, d): a for d, a in clean.items()},
                 models={r: d for d, r in mapping.items() if d in clean and r != d},
                 paper_only=tuple(mapping.get(d, d) for d in paper_only(spec) if listed is None or d in listed),
                 substitutions=tuple(substitutions(spec)),
                 detail={mapping.get(d, d): t for d, t in (detail or {}).items()})


def marks_record(marks: Marks) -> dict:
    """What report.json records of a table's marks."""
    return {"threshold": CLEAN_ACC_THRESHOLD, "clean_acc": dict(marks.clean),
            "below_threshold": [r for r in marks.clean if marks.below(r)], "stand_ins": dict(marks.models),
            "paper_only": list(marks.paper_only), "substitutions": list(marks.substitutions)}


def clean_acc(metrics: Mapping) -> float | None:
    """A trained detector's clean test accuracy (``test/acc``), or None when it was not tested."""
    value = metrics.get("test/acc")
    return None if value is None else float(value)


def test_count(metrics: Mapping, key: str = "n") -> int | None:
    """A test-sample count the detector logged (``test/n``, ``test/n_real``, ...; older runs have none: None)."""
    value = metrics.get(f"test/{key}")
    return None if value is None else int(round(float(value)))
