"""Accuracy of a detector, clean and on cached adversarial sets, under each defense."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

from advdf.attacks.checks import check_adversarial
from advdf.data.dataset import FrameDataset
from advdf.jobs.attack import cache_for, check_sizes, selected_positions
from advdf.jobs.common import (
    build_datamodule,
    build_loggers,
    job_identity,
    load_trained_detector,
    resolve_device,
)
from advdf.metrics import detection_report
from advdf.report.render import MISSING
from advdf.store.cache import AdversarialCache
from advdf.utils.io import atomic_write_text
from advdf.utils.logging_setup import finish_wandb

log = logging.getLogger(__name__)


def _stack(dataset: FrameDataset, positions: list[int]) -> dict[str, torch.Tensor]:
    items = [dataset[p] for p in positions]
    return {"image": torch.stack([it["image"] for it in items]),
            "label": torch.tensor([it["label"] for it in items]),
            "video": torch.tensor([it["video"] for it in items])}


@torch.no_grad()
def _predict(detector, defenses: dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: detector(defense(x)).argmax(1).cpu() for name, defense in defenses.items()}


def evaluate_clean(cfg: DictConfig, detector, defenses: dict, dataset: FrameDataset, positions: list[int],
                   device: torch.device) -> list[dict]:
    """One row (attack "clean", defense, n, acc, f2f, vid, ...) per defense on the clean frames at ``positions``."""
    preds: dict[str, list] = {d: [] for d in defenses}
    labels, videos = [], []
    for start in tqdm(range(0, len(positions), cfg.batch_size), desc="clean", unit="batch"):
        batch = _stack(dataset, positions[start:start + cfg.batch_size])
        for d, p in _predict(detector, defenses, batch["image"].to(device)).items():
            preds[d].append(p)
        labels.append(batch["label"])
        videos.append(batch["video"])
    label, video = torch.cat(labels), torch.cat(videos)
    return [{"attack": "clean", "defense": d, "n": len(label), **detection_report(torch.cat(p), label, video)}
            for d, p in preds.items()]


def evaluate_cached(cfg: DictConfig, name: str, attack_cfg: DictConfig, cache: AdversarialCache, detector,
                    defenses: dict, dataset: FrameDataset, device: torch.device) -> list[dict]:
    """One row per defense on the complete cached set ``cache`` of ``attack_cfg``.

    Adversarial examples are re-checked against the clean images (eps-ball, [0, 1], finite) before use.
    """
    attack = instantiate(attack_cfg)(model=detector)  # its resolved budget and norm, for the re-check
    preds: dict[str, list] = {d: [] for d in defenses}
    labels, videos = [], []
    for shard in tqdm(cache.shards(), total=cache.num_shards, desc=name, unit="shard"):
        pos = shard["position"].tolist()
        clean = _stack(dataset, pos)
        check_adversarial(shard["x_adv"], clean["image"], attack.eps, attack.norm)
        for start in range(0, len(pos), cfg.batch_size):
            x_adv = shard["x_adv"][start:start + cfg.batch_size].to(device)
            for d, p in _predict(detector, defenses, x_adv).items():
                preds[d].append(p)
        labels.append(clean["label"])
        videos.append(clean["video"])
    label, video = torch.cat(labels), torch.cat(videos)
    return [{"attack": name, "defense": d, "n": len(label), **detection_report(torch.cat(p), label, video)}
            for d, p in preds.items()]


def incomplete(cache: AdversarialCache) -> str:
    """Why ``cache`` is not a complete set, in a few words: its bad shards by name, how many are missing."""
    if not cache.directory.is_dir():
        return "never generated"
    bad = cache.problems()
    missing = [i for i in cache.missing_shards() if i not in bad]
    parts = [f"bad shards {', '.join(cache.shard_path(i).name for i in sorted(bad))}"] if bad else []
    if missing:
        parts.append(f"{len(missing)}/{cache.num_shards} shards missing")
    return "; ".join(parts) or "no summary.json (unfinished)"


def evaluate_sets(cfg: DictConfig, detector, defenses: dict, dataset: FrameDataset, positions: list[int],
                  device: torch.device) -> list[dict]:
    """Rows (attack, defense, n, acc, f2f, vid, ...) for the clean set and every cached attack of ``cfg.attacks``;
    an attack without a complete cached set gets rows with n = 0 (its cells print "—")."""
    rows = evaluate_clean(cfg, detector, defenses, dataset, positions, device)
    for name, attack_cfg in (cfg.get("attacks") or {}).items():
        cache = cache_for(cfg, attack_cfg, dataset, positions)
        if not cache.complete:  # every shard is verified against its record: a bad one is named, never used
            log.warning("no complete cached set for attack %r (%s: %s): its cells print %s; run "
                        "python attack.py attack=%s model=%s", name, cache.directory, incomplete(cache), MISSING,
                        name, cfg.model.name)
            rows += [{"attack": name, "defense": d, "n": 0} for d in defenses]
            continue
        rows += evaluate_cached(cfg, name, attack_cfg, cache, detector, defenses, dataset, device)
    return rows


def format_markdown(rows: list[dict], metric: str = "f2f") -> str:
    """Attacks as rows, defenses as columns; cells never computed print "—"."""
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    cell = {(r["attack"], r["defense"]): r.get(metric) for r in rows}
    lines = ["| attack | " + " | ".join(defenses) + " |", "|---" * (len(defenses) + 1) + "|"]
    for a in attacks:
        vals = [MISSING if cell.get((a, d)) is None else f"{cell[(a, d)]:.3f}" for d in defenses]
        lines.append(f"| {a} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def write_rows(rows: list[dict], path: Path) -> None:
    """CSV of ``rows`` (union of their keys as columns), written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def evaluate(cfg: DictConfig, datamodule=None) -> list[dict]:
    """Evaluate ``cfg.checkpoint`` under ``cfg.defenses`` on the clean split and ``cfg.attacks``' cached sets.

    Writes ``results.csv`` and ``results.md`` under ``cfg.paths.results_dir`` and returns the rows.
    """
    check_sizes(cfg, "samples per forward pass")
    device = resolve_device(cfg.device)
    datamodule = datamodule or build_datamodule(cfg)
    dataset = datamodule.dataset(cfg.split)
    positions = selected_positions(dataset, cfg.limit)
    detector = load_trained_detector(cfg, device)
    defenses = {name: instantiate(conf).to(device) for name, conf in cfg.defenses.items()}
    rows = [{"detector": cfg.model.name, **r} for r in evaluate_sets(cfg, detector, defenses, dataset, positions, device)]
    out = Path(cfg.paths.results_dir) / "evaluate" / cfg.data.name / Path(cfg.checkpoint).parent.name
    write_rows(rows, out / "results.csv")
    atomic_write_text(out / "results.md", format_markdown(rows))
    log.info("results: %s\n%s", out, format_markdown(rows))
    return rows


def evaluate_job(cfg: DictConfig) -> list[dict]:
    """The body of ``evaluate.py``: evaluate, log a table to each logger, close W&B."""
    run_name, group = job_identity()
    loggers = build_loggers(cfg, run_name, group)
    try:
        rows = evaluate(cfg)
        columns = ["detector", "attack", "defense", "n", "f2f", "vid", "f2f_real", "f2f_fake"]
        data = [[r.get(c) for c in columns] for r in rows]
        for logger in loggers:
            if hasattr(logger, "log_table"):
                logger.log_table(key="evaluate/accuracy", columns=columns, data=data)
            logger.log_metrics({f"acc/{r['attack']}/{r['defense']}": r["f2f"] for r in rows if "f2f" in r})
            logger.save()
        return rows
    finally:
        finish_wandb()

