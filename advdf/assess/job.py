"""The body of ``assess.py``: build a study from cached sets, serve it, report it."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from advdf.assess.db import RatingsDB
from advdf.assess.report import long_cells, mos_chart, mos_report, report_text
from advdf.assess.sources import SourceSet, open_set, resolve_set
from advdf.assess.study import ATTENTION, Study, build_study
from advdf.errors import ConfigError, DataError
from advdf.report.render import long_csv, markdown
from advdf.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

COMMANDS = ("build", "serve", "report")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _sources(cfg: DictConfig) -> dict[str, SourceSet]:
    """{condition: set} from ``cfg.sets``: a list (conditions named by ``cfg.labels`` of their attack, else the
    attack's name) or a mapping {condition: set}."""
    specs = cfg.get("sets")
    if specs is None or len(specs) == 0:
        raise ConfigError("empty study: give the cached sets to rate, e.g. sets=[ffpp_synthetic/*/pgd-*] or "
                          "sets={IAP:<set>,URN:<set>}")
    if not isinstance(specs, DictConfig | ListConfig | dict | list):
        raise ConfigError(f"sets must be a list or a mapping of cached sets, got {specs!r}")
    named = specs.items() if isinstance(specs, DictConfig | dict) else [(None, s) for s in specs]
    labels = OmegaConf.to_container(cfg.labels) if cfg.get("labels") else {}
    out: dict[str, SourceSet] = {}
    for name, spec in named:
        source = open_set(resolve_set(str(spec), cfg.paths.cache_dir))
        label = str(name) if name is not None else labels.get(source.attack, source.attack)
        if label in out:
            raise ConfigError(f"two sets are both condition {label!r} ({out[label].directory.name}, "
                              f"{source.directory.name}); name them: sets={{A:<set>,B:<set>}}")
        out[label] = source
    return out


def study_dir(cfg: DictConfig) -> Path:
    name = str(cfg.study)
    if not _NAME.fullmatch(name):
        raise ConfigError(f"study must be a plain name (letters, digits, _ . -), got {name!r}")
    return Path(cfg.paths.artifacts_dir) / "studies" / name


def build(cfg: DictConfig) -> dict:
    directory = study_dir(cfg)
    design = instantiate(cfg.design)
    study = build_study(directory, str(cfg.study), _sources(cfg), design, cfg.paths.data_dir, cfg.paths.cache_dir)
    counts = {c["name"]: sum(p["condition"] == c["name"] for p in study["pairs"]) for c in study["conditions"]}
    text = (f"study {cfg.study}: {len(study['conditions'])} conditions ({', '.join(f'{k} {v}' for k, v in counts.items())} "
            f"pairs), {len(study['sets'])} sets of up to {design.pairs_per_set} pairs + {design.attention_per_set} "
            f"attention check(s) -> {directory}\n")
    return {"command": "build", "study_dir": str(directory), "sets": len(study["sets"]), "text": text}


def serve(cfg: DictConfig) -> dict:
    from advdf.assess.server import serve as run_server

    study = Study(study_dir(cfg))
    run_server(study, instantiate(cfg.server))
    return {"command": "serve", "study_dir": str(study.directory), "text": ""}


def ratings_of(study: Study) -> list[dict]:
    """The study's ratings with each pair's condition."""
    if not study.db_path.is_file():
        raise DataError(f"study {study.name} has no ratings yet ({study.db_path}): serve it first "
                        f"(python assess.py serve study={study.name})")
    return [{**r, "condition": study.pairs[r["pair"]]["condition"]} for r in RatingsDB(study.db_path).ratings()]


def report(cfg: DictConfig) -> dict:
    study = Study(study_dir(cfg))
    ratings = ratings_of(study)
    if not any(r["condition"] != ATTENTION for r in ratings):
        raise DataError(f"study {study.name} has no ratings of test pairs yet: nothing to report")
    result = mos_report(ratings, study.conditions, study.pairs, instantiate(cfg.screening))
    out = study.directory / "report"
    text = report_text(study.name, result)
    cells = long_cells(result)
    png = mos_chart(result["conditions"], out / "mos.png", f"DCR MOS per condition — study {study.name}")
    atomic_write_text(out / "table5.md", text)
    atomic_write_text(out / "mos.csv", long_csv(cells, ["condition"]))
    atomic_write_text(out / "screening.md", markdown(
        ["evaluator", "ratings", "attention checks", "failed", "P", "Q", "J", "kept", "rejected for"],
        [[str(e["evaluator"]), str(e["ratings"]), str(e["attention_checks"]), str(e["attention_failed"]),
          str(e["P"]), str(e["Q"]), str(e["J"]), str(e["kept"]), e["rejected_for"] or ""] for e in result["evaluators"]]))
    atomic_write_json(out / "report.json", _finite(result))
    if cfg.report.wandb:
        from advdf.report.wandb import log_wandb_tables

        log_wandb_tables("assess", study.name, out, {"assess_mos": (cells, ["condition"])},
                         images={"assess_mos": png}, plan=cfg)
    text += f"written: {out}/table5.md, mos.csv, mos.png, screening.md, report.json\n"
    return {"command": "report", "study_dir": str(study.directory), "text": text,
            **{f"mos/{c['condition']}": c["mos"] for c in result["conditions"]}}


def _finite(obj):
    """``obj`` with infinite floats (the reference's PSNR) as the string "inf": strict JSON has no infinity."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return "inf" if isinstance(obj, float) and math.isinf(obj) else obj


def assess_job(cfg: DictConfig) -> dict:
    """Run ``cfg.command`` (build, serve or report)."""
    command = cfg.get("command")
    if command not in COMMANDS:
        raise ConfigError(f"unknown command {command!r}: python assess.py build|serve|report study=<name> ...")
    return {"build": build, "serve": serve, "report": report}[command](cfg)
