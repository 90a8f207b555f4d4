"""Train a denoiser defense in front of a frozen, trained detector (``train.py task=denoiser defense=<name>``).

The training pairs are clean frames of the training split and their adversarial examples against the detector,
one cached adversarial set per attack in ``cfg.denoiser_data.attacks``. Those sets live in the same cache as the
test-time sets, so the DAE, HGD and TD of one detector share them and a rerun only reads them back.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from advdf.attacks.checks import check_adversarial
from advdf.errors import ConfigError
from advdf.jobs.attack import balanced_positions, cache_for, run_attack
from advdf.jobs.common import (
    build_datamodule,
    fit_resumable,
    load_trained_detector,
    record_run_dir,
    resolve_device,
)
from advdf.jobs.runs import run_of
from advdf.utils.io import atomic_write_json

log = logging.getLogger(__name__)


class PairSet(Dataset):
    """Clean images, their adversarial counterparts, labels and the detector's clean logits, held in memory."""

    def __init__(self, image: torch.Tensor, adv: torch.Tensor, label: torch.Tensor, clean_logits: torch.Tensor):
        self.tensors = {"image": image, "adv": adv, "label": label, "clean_logits": clean_logits}

    def __len__(self) -> int:
        return len(self.tensors["label"])

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.tensors.items()}


@torch.no_grad()
def _logits(detector, images: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    return torch.cat([detector(images[i:i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)])


def build_pairs(cfg: DictConfig, datamodule, detector, device: torch.device) -> tuple[PairSet, PairSet, dict]:
    """(train pairs, validation pairs, per-attack summaries): every attack's set is generated once (or read back),
    re-checked against the clean frames, and split by frame so a frame's pairs never straddle train and val."""
    dataset = datamodule.dataset(cfg.split)
    positions = balanced_positions(dataset, cfg.denoiser_data.per_class, cfg.seed)
    images = torch.stack([dataset[p]["image"] for p in positions])
    labels = torch.tensor([int(dataset.rows[p]["label"]) for p in positions])
    index = {p: i for i, p in enumerate(positions)}
    clean_logits = _logits(detector, images, device, cfg.batch_size)  # once per frame, reused by every epoch
    advs, summaries = [], {}
    for name, attack_cfg in cfg.denoiser_data.attacks.items():
        summaries[name] = run_attack(cfg, attack_cfg, datamodule=datamodule, detector=detector, positions=positions)
        attack = instantiate(attack_cfg)(model=detector)
        adv = torch.empty_like(images)
        for shard in cache_for(cfg, attack_cfg, dataset, positions).shards():
            rows = torch.tensor([index[p] for p in shard["position"].tolist()])
            check_adversarial(shard["x_adv"], images[rows], attack.eps, attack.norm)
            adv[rows] = shard["x_adv"]
        advs.append(adv)
    if not advs:
        raise ConfigError("denoiser_data.attacks is empty: a denoiser needs at least one attack's training pairs")
    n = len(positions)
    n_val = round(n * cfg.denoiser_data.val_fraction)
    if not 0 < n_val < n:
        raise ConfigError(f"denoiser_data.val_fraction={cfg.denoiser_data.val_fraction} leaves no train or no "
                          f"validation frames out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    splits = []
    for part in (order[n_val:], order[:n_val]):
        k = len(advs)
        splits.append(PairSet(images[part].repeat(k, 1, 1, 1), torch.cat([a[part] for a in advs]),
                              labels[part].repeat(k), clean_logits[part].repeat(k, 1)))
    return splits[0], splits[1], summaries


def _best_state(path: str) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("denoiser."): v for k, v in state.items() if k.startswith("denoiser.")}


def train_denoiser(cfg: DictConfig) -> dict[str, float]:
    """Train ``cfg.defense``'s denoiser for ``cfg.model``'s trained detector; returns validation metrics.

    Writes ``run.json``, ``last.ckpt`` (resume), ``best.ckpt`` (lowest validation loss), ``denoiser.safetensors``
    (the best weights, which the defense loads) and ``train_summary.json`` to the run directory
    ``<detector run>/denoisers/<defense name>-<digest>`` (:mod:`advdf.jobs.runs`).
    """
    pl.seed_everything(cfg.seed, workers=True)
    device = resolve_device(cfg.device)
    datamodule = build_datamodule(cfg)
    run = run_of(cfg, datamodule.identity_digest)
    out_dir = run.open()
    record_run_dir(cfg, out_dir, {"defense.checkpoint": str(run.weights)})
    log.info("run directory: %s", out_dir)
    detector = load_trained_detector(cfg, device)
    train_set, val_set, attacks = build_pairs(cfg, datamodule, detector, device)
    log.info("%s for %s: %d training and %d validation pairs from attacks %s", cfg.defense.name, cfg.model.name,
             len(train_set), len(val_set), list(attacks))
    bs = cfg.denoiser_data.batch_size
    train_loader = DataLoader(train_set, batch_size=bs, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=bs)

    module = instantiate(cfg.module, denoiser=instantiate(cfg.defense.denoiser), detector=detector)
    trainer, best = fit_resumable(cfg, module, out_dir, train_dataloaders=train_loader, val_dataloaders=val_loader)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best_path = best.best_model_path or str(out_dir / "last.ckpt")
    if trainer.is_global_zero:
        save_file({k: v.contiguous() for k, v in _best_state(best_path).items()}, str(out_dir / "denoiser.safetensors"))
        atomic_write_json(out_dir / "train_summary.json", {
            "metrics": metrics, "best_checkpoint": best_path, "epochs": trainer.current_epoch, "run": run.digest,
            "pairs": {"train": len(train_set), "val": len(val_set)}, "attacks": attacks,
            "config": OmegaConf.to_container(cfg, resolve=True),
        })
    log.info("denoiser weights: %s", out_dir / "denoiser.safetensors")
    return metrics
