"""Attack a trained detector over a split, shard by shard, into the adversarial-set cache."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from hydra.utils import get_class, get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from advdf.attacks.base import Attack
from advdf.attacks.checks import check_adversarial, perturbation_norms
from advdf.data.dataset import FrameDataset, balanced_subset
from advdf.defenses import AttackView
from advdf.errors import CheckpointError, ConfigError
from advdf.jobs.common import (
    build_datamodule,
    build_loggers,
    job_identity,
    load_trained_detector,
    resolve_device,
)
from advdf.jobs.curves import SweepPoint, log_curve, parse_eps_sweep, sweep_attack_config, write_curve
from advdf.models.checkpoint import file_digest
from advdf.store.cache import CORE_FIELDS, FORMAT_VERSION, AdversarialCache
from advdf.store.locks import fill_shards, finish
from advdf.utils.logging_setup import finish_wandb

log = logging.getLogger(__name__)


def selected_positions(dataset: FrameDataset, limit: int | None) -> list[int]:
    return list(range(len(dataset) if limit is None else min(limit, len(dataset))))


def balanced_positions(dataset: FrameDataset, per_class: int | None, seed: int = 0) -> list[int]:
    """Positions of a balanced subset of ``dataset`` (``per_class`` real and fake frames, fakes spread over the
    manipulations; see :func:`advdf.data.dataset.balanced_subset`); all positions when ``per_class`` is None."""
    if per_class is None:
        return list(range(len(dataset)))
    picked = {r["row"] for r in balanced_subset(dataset.rows, per_class, seed)}
    return [i for i, r in enumerate(dataset.rows) if r["row"] in picked]


# Options that change how fast an attack runs, never what it computes: left out of the cache key. (precision and
# batch_size stay in: autocast changes the numbers, and an attack draws its random numbers per batch.)
SPEED_ONLY = ("compile", "channels_last")


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_sizes(cfg: DictConfig, batch: str = "samples per attack call") -> None:
    """Raise ConfigError for a shard_size, batch_size (``batch``: what it counts) or limit no run can use."""
    if not _positive_int(cfg.shard_size):
        raise ConfigError(f"shard_size must be a positive integer (samples per cache shard), got {cfg.shard_size!r}")
    if not _positive_int(cfg.batch_size):
        raise ConfigError(f"batch_size must be a positive integer ({batch}), got {cfg.batch_size!r}")
    limit = cfg.get("limit")
    if limit is not None and not _positive_int(limit):
        raise ConfigError(f"limit must be null (the whole split) or a positive integer, got {limit!r}")


def check_attack_options(cfg: DictConfig, attack_cfg: DictConfig | None = None) -> None:
    """Raise ConfigError for a size no attack run can use (see :func:`check_sizes`, and ``attack.batch_size``),
    before any work."""
    check_sizes(cfg)
    inner = (attack_cfg if attack_cfg is not None else cfg.attack).get("batch_size")
    if inner is not None and not _positive_int(inner):
        raise ConfigError(f"attack.batch_size must be null (one call per batch) or a positive integer, got {inner!r}")


def attack_version(target: str) -> int:
    """The attack class's ``cache_version`` (1 when it has none): part of the cache key, bumped by whoever changes
    what the attack computes, so its cached sets are recomputed (and only then)."""
    return int(getattr(get_class(target), "cache_version", 1))


def attack_key(attack_cfg: DictConfig) -> dict:
    """The attack's part of a cache key: its resolved config without the speed-only options."""
    conf = OmegaConf.to_container(attack_cfg, resolve=True)
    return {k: v for k, v in conf.items() if k not in SPEED_ONLY}


def cache_for(cfg: DictConfig, attack_cfg: DictConfig, dataset: FrameDataset, positions: list[int],
              target: dict | None = None) -> AdversarialCache:
    """The cache of ``attack_cfg`` against the detector at ``cfg.checkpoint`` on ``positions`` of ``dataset``.

    ``target`` describes what was attacked beyond the detector (an adaptive attack's defense and its weights); it is
    part of the key, so each attacked model has its own set. ``cfg.shard_size`` and ``cfg.batch_size`` are not: they
    are the layout a first writer records, and every later writer and reader uses the recorded one.
    """
    key = {
        **({"target": target} if target else {}),
        "detector": {"name": cfg.model.name, "weights_sha256": file_digest(cfg.checkpoint)},
        "attack": attack_key(attack_cfg),
        "attack_version": attack_version(attack_cfg._target_),
        "data": {"name": cfg.data.name, "split": cfg.split, "input_size": dataset.input_size,
                 "rows": [dataset.rows[p]["row"] for p in positions],
                 "index_sha256": file_digest(Path(cfg.data.prepared_dir) / "index.csv")},
        "seed": cfg.seed,
        "store_format": FORMAT_VERSION,
    }
    root = Path(cfg.paths.cache_dir) / cfg.data.name / Path(cfg.checkpoint).parent.name
    label = attack_cfg.name if not target else f"{attack_cfg.name}-through-{target['name']}"
    return AdversarialCache.for_run(root, label, key, rows=len(positions), shard_size=cfg.shard_size,
                                    batch_size=cfg.batch_size)


def defense_target(conf: DictConfig, name: str | None = None) -> dict:
    """The identity of a defense an adaptive attack differentiates through: its name, config and, for a learned
    defense, the digest of its weights (the cache key of its adversarial sets)."""
    target = {"name": name or conf.get("name") or conf._target_.rsplit(".", 1)[-1].lower(),
              "config": OmegaConf.to_container(conf, resolve=True),
              "version": int(getattr(get_object(conf._target_), "cache_version", 1))}
    if conf.get("checkpoint"):
        target["weights_sha256"] = file_digest(conf.checkpoint)
    return target


def _finite(logits: torch.Tensor, which: str, model_name: str, checkpoint: str | None) -> None:
    """Raise before a shard is written when ``logits`` hold NaN or inf: argmax would silently read them as a class."""
    bad = ~torch.isfinite(logits.detach().reshape(len(logits), -1)).all(1)
    if bool(bad.any()):
        raise CheckpointError(f"model {model_name} (weights {checkpoint}) gives non-finite {which} logits (NaN or inf) "
                              f"on {int(bad.sum())} of {len(bad)} samples of a batch; the shard is not cached: check "
                              "the weights and attack.precision")


def attack_shard(attack: Attack, loader: DataLoader, device: torch.device, model_name: str = "detector",
                 checkpoint: str | None = None) -> dict:
    """Attack every batch of one shard; returns the shard's tensors (checked before they are returned).

    Besides :data:`~advdf.store.cache.CORE_FIELDS` a shard holds the adversarial and clean ``logits`` /
    ``clean_logits`` and every other per-sample tensor the attack's objective reports. Non-finite logits (clean or
    adversarial) raise a CheckpointError naming ``model_name`` and ``checkpoint``: argmax would read them as a
    class.
    """
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        x, y = batch["image"].to(device), batch["label"].to(device)
        start = time.perf_counter()
        out = attack.run(x, y)
        clean_logits = out.clean_logits if out.clean_logits is not None else attack.logits(x)
        if isinstance(clean_logits, dict):  # a forensic autoencoder's result (advdf.forensics): its (N, 2) logits
            clean_logits = clean_logits["logits"]
        elapsed = time.perf_counter() - start
        _finite(clean_logits, "clean", model_name, checkpoint)
        _finite(out.logits, "adversarial", model_name, checkpoint)
        check_adversarial(out.x_adv, x, attack.eps, attack.norm)
        n = len(x)
        fields = {
            "x_adv": out.x_adv.float(), "position": batch["position"], "row": batch["index"], "label": batch["label"],
            "video": batch["video"], "clean_pred": clean_logits.argmax(1), "adv_pred": out.logits.argmax(1),
            "success": out.success.to(torch.uint8), **perturbation_norms(out.x_adv, x),
            "time_s": torch.full((n,), elapsed / n), "grad_calls": out.grad_calls, "queries": out.queries,
            "logits": out.logits.float(), "clean_logits": clean_logits.float(),
        }
        for k, v in getattr(out, "extras", {}).items():
            if k == "logits" or not isinstance(v, torch.Tensor):
                continue
            if k in fields:
                raise ConfigError(f"the attack's objective reports {k!r}, a field the adversarial cache reserves")
            fields[k] = v
        for k, v in fields.items():
            parts.setdefault(k, []).append(v.detach().cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


class _Positioned(torch.utils.data.Dataset):
    """A dataset view whose items also carry their position in the full split (the cache's join key)."""

    def __init__(self, dataset: FrameDataset, positions: list[int]) -> None:
        self.dataset, self.positions = dataset, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[self.positions[i]], "position": self.positions[i]}


# What summaries are computed from (all among CORE_FIELDS, which every shard holds).
SUMMARY_FIELDS = tuple(k for k in CORE_FIELDS if k in
                       ("label", "clean_pred", "adv_pred", "success", "linf", "l2", "l0", "time_s", "grad_calls",
                        "queries"))


def summarize(cache: AdversarialCache) -> dict:
    """Accuracies, ASR, norms and costs of a complete set (read shard by shard, in order)."""
    shards = list(cache.shards(SUMMARY_FIELDS))
    cols = {k: torch.cat([s[k] for s in shards]) for k in SUMMARY_FIELDS}
    acc_clean = (cols["clean_pred"] == cols["label"]).float().mean().item()
    acc_adv = (cols["adv_pred"] == cols["label"]).float().mean().item()
    return {
        "n": len(cols["label"]), "acc_clean": acc_clean, "acc_adv": acc_adv,
        # seed 004's attack success rate: the share of clean accuracy the attack removes
        "asr": 1 - acc_adv / acc_clean if acc_clean > 0 else float("nan"),
        "success_rate": cols["success"].float().mean().item(),
        "linf_max": cols["linf"].max().item(), "l2_mean": cols["l2"].mean().item(),
        "l0_mean": cols["l0"].mean().item(), "time_s": cols["time_s"].sum().item(),
        "grad_calls_mean": cols["grad_calls"].float().mean().item(),
        "queries_mean": cols["queries"].float().mean().item(),
    }


def run_attack(cfg: DictConfig, attack_cfg: DictConfig | None = None, datamodule=None, detector=None,
               positions: list[int] | None = None, target: dict | None = None) -> dict:
    """Generate (or finish generating) the adversarial set of ``attack_cfg`` (default ``cfg.attack``).

    ``datamodule`` and ``detector`` (the trained detector of ``cfg``, on ``cfg.device``, or the model an adaptive
    attack differentiates, described by ``target``; see :func:`cache_for`) are built when not given; ``positions``
    (of ``cfg.split``) default to the first ``cfg.limit``. Returns the set's summary (accuracies, ASR, norms, time),
    its cache directory and the shards this process ran (runs of the same set started together share its shards:
    see :mod:`advdf.store.locks`).
    """
    attack_cfg = attack_cfg if attack_cfg is not None else cfg.attack
    check_attack_options(cfg, attack_cfg)
    device = resolve_device(cfg.device)
    datamodule = datamodule or build_datamodule(cfg)
    dataset = datamodule.dataset(cfg.split)
    positions = positions if positions is not None else selected_positions(dataset, cfg.limit)
    if detector is None:
        detector = load_trained_detector(cfg, device)
        defense_cfg = cfg.get("defense")
        if defense_cfg is not None and defense_cfg.get("adaptive"):
            # The attacker knows the defense: it differentiates through it (BPDA / surrogate / EOT, per defense).
            detector = AttackView(detector, instantiate(defense_cfg).to(device))
            target = defense_target(defense_cfg)
        elif defense_cfg is not None:
            log.info("defense %s is not adaptive: the set is the bare detector's (evaluate.py scores the defense "
                     "on it); defense.adaptive=true attacks through it", defense_cfg._target_)
    cache = cache_for(cfg, attack_cfg, dataset, positions, target)
    if cache.complete:  # summary.json written and every shard verified against its record
        log.info("adversarial set already cached: %s", cache.directory)
        return {**cache.summary(), "cache_dir": str(cache.directory), "shards_run": 0}

    attack: Attack = instantiate(attack_cfg)(model=detector)
    layout = cache.open()  # the first writer's shard_size and batch_size, which every resumer keeps
    todo = cache.missing_shards()
    log.info("%s on %s: %d samples, %d/%d shards to run -> %s", attack, cfg.model.name, len(positions),
             len(todo), cache.num_shards, cache.directory)

    def compute(i: int) -> dict[str, torch.Tensor]:
        # Seeded per shard index, so a resumed (or shared) run draws the same random starts as an uninterrupted one.
        torch.manual_seed(cfg.seed * 100_003 + i)
        loader = DataLoader(_Positioned(dataset, positions[layout.span(i)]), batch_size=layout.batch_size or cfg.batch_size,
                            num_workers=datamodule.num_workers)
        return attack_shard(attack, loader, device, cfg.model.name, str(cfg.checkpoint))

    ran = fill_shards(cache, compute, todo, desc=f"{attack.name} shards")
    summary = finish(cache, summarize)
    return {**summary, "cache_dir": str(cache.directory), "shards_run": len(ran)}


def run_eps_sweep(cfg: DictConfig, points: list[SweepPoint]) -> dict:
    """Run ``cfg.attack`` once per eps of the sweep (each its own cached set: finished ones are only read back),
    then write the robust-accuracy-vs-eps curve (see :mod:`advdf.jobs.curves`)."""
    datamodule = build_datamodule(cfg)
    detector = load_trained_detector(cfg, resolve_device(cfg.device))
    summaries = []
    for point in points:
        summary = run_attack(cfg, sweep_attack_config(cfg.attack, point), datamodule=datamodule, detector=detector)
        ran = summary["shards_run"]
        log.info("eps_sweep: eps=%s robust acc %.4f (%s)", point.label, summary["acc_adv"],
                 f"{ran} shards run" if ran else "cached")
        summaries.append(summary)
    return write_curve(cfg, cfg.attack.name, points, summaries)


def attack_job(cfg: DictConfig) -> dict:
    """The body of ``attack.py``: run (one eps, or the ``eps_sweep`` and its curve), log to the configured
    loggers, close W&B."""
    sweep = parse_eps_sweep(cfg.get("eps_sweep"))  # a bad sweep fails here, before any work
    check_attack_options(cfg)
    run_name, group = job_identity()
    loggers = build_loggers(cfg, run_name, group)
    try:
        if sweep is not None:
            curve = run_eps_sweep(cfg, sweep)
            log_curve(loggers, cfg.attack.name, curve)
            return curve
        summary = run_attack(cfg)
        for logger in loggers:
            logger.log_metrics({f"attack/{k}": v for k, v in summary.items() if isinstance(v, int | float)})
            logger.save()
        log.info("summary: %s", {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})
        return summary
    finally:
        finish_wandb()
