"""Train and evaluate seed 001's adversarial detector d(x', h') for one deepfake detector g and one XAI method.

    python train.py task=adv_detector model=xception xai=saliency                     (finetuned, Table 3)
    python train.py task=adv_detector model=xception xai=saliency adv_detector=detect_resnet50_head  (Table 4)

Training data (seed 001): real crops of the training split and fake crops attacked with PGD toward "real"; only the
crops g calls real reach d (:meth:`FrameSet.routed`), each with g's attribution map. A fraction of the crops is held
out for validation (``val/loss`` picks the checkpoint). Weights: ``adv_detector.safetensors`` in the run directory
``<g's run>/adv_detectors/<adv_detector.name>/<xai.name>-<digest>`` (:mod:`advdf.jobs.runs`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from torchmetrics.functional.classification import binary_auroc, binary_roc

from advdf.errors import CheckpointError, ConfigError
from advdf.jobs.attack import balanced_positions
from advdf.jobs.common import (
    build_datamodule,
    fit_resumable,
    load_trained_detector,
    record_run_dir,
    resolve_device,
)
from advdf.jobs.runs import Run, run_of
from advdf.jobs.xai_data import FrameSet, XaiData
from advdf.metrics import vid_accuracy
from advdf.utils.io import atomic_write_json
from advdf.xai.detect_resnet import ATTACKED, REAL

log = logging.getLogger(__name__)

WEIGHTS = "adv_detector.safetensors"


class PairSet(Dataset):
    """Equal-length tensors (``image``, ``map``, ``label``; or ``embedding``, ``label``) held in memory."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors["label"])

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.tensors.items()}


@torch.no_grad()
def frozen_embeddings(detector, images: torch.Tensor, maps: torch.Tensor, device: torch.device,
                      batch_size: int) -> torch.Tensor:
    """The frozen backbone's embeddings of every (crop, map) pair, once: a head-only run trains on these instead of
    sending the same pairs through the same backbone every epoch."""
    detector = detector.to(device)
    return torch.cat([detector.embed(images[i:i + batch_size].to(device), maps[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(images), batch_size)])


def routed_with_maps(data: XaiData, sets: list[FrameSet], method, split: str) -> tuple[FrameSet, torch.Tensor]:
    """The crops of ``sets`` that g calls real, concatenated, with their maps (cached per set)."""
    routed = [s.routed() for s in sets]
    frames = routed[0]
    for s in routed[1:]:
        frames = frames.concat(s)
    return frames, torch.cat([data.maps(s, method, split) for s in routed])


def train_adv_detector(cfg: DictConfig) -> dict[str, float]:
    """Train ``cfg.adv_detector`` on maps of ``cfg.xai`` for g = ``cfg.model``; returns validation metrics."""
    pl.seed_everything(cfg.seed, workers=True)
    device = resolve_device(cfg.device)
    datamodule = build_datamodule(cfg)
    run = adv_detector_run(cfg, datamodule.identity_digest)
    out_dir = run.open()
    record_run_dir(cfg, out_dir)
    g = load_trained_detector(cfg, device)
    data = XaiData(cfg, datamodule, g, device)
    method = instantiate(cfg.xai)
    positions = balanced_positions(datamodule.dataset(cfg.split), cfg.adv_data.per_class, cfg.seed)
    real = data.real(cfg.split, positions)
    attacked = data.attacked(cfg.split, cfg.adv_data.attack, positions)
    frames, maps = routed_with_maps(data, [real, attacked], method, cfg.split)
    counts = {"real": len(real), "attacked": len(attacked), "real_routed": int((frames.label == REAL).sum()),
              "attacked_routed": int((frames.label == ATTACKED).sum())}
    n = len(frames)
    n_val = round(n * cfg.adv_data.val_fraction)
    if not 0 < n_val < n or len(frames.label.unique()) < 2:
        raise ConfigError(f"{cfg.model.name}: {counts['real_routed']} of {counts['real']} real and "
                          f"{counts['attacked_routed']} of {counts['attacked']} attacked training crops reach the "
                          "adversarial detector (g calls the others fake); "
                          f"adv_data.val_fraction={cfg.adv_data.val_fraction} leaves no train or no validation crops")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    val, train = order[:n_val], order[n_val:]
    bs = cfg.adv_data.batch_size
    detector = instantiate(cfg.adv_detector)
    if detector.freeze_backbone:
        inputs = {"embedding": frozen_embeddings(detector, frames.images, maps, device, cfg.batch_size)}
    else:
        inputs = {"image": frames.images, "map": maps}
    train_loader = DataLoader(PairSet(**{k: v[train] for k, v in inputs.items()}, label=frames.label[train]),
                              batch_size=bs, shuffle=True)
    val_loader = DataLoader(PairSet(**{k: v[val] for k, v in inputs.items()}, label=frames.label[val]),
                            batch_size=bs)
    log.info("%s on %s maps of %s: %d training and %d validation crops (%s); backbone %s", cfg.adv_detector.name,
             method.name, cfg.model.name, len(train), len(val), counts, detector.init)
    module = instantiate(cfg.module, detector=detector)
    trainer, best = fit_resumable(cfg, module, out_dir, train_dataloaders=train_loader, val_dataloaders=val_loader)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best_path = best.best_model_path or str(out_dir / "last.ckpt")
    if trainer.is_global_zero:
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        save_file({k.removeprefix("detector."): v.contiguous() for k, v in state.items()
                   if k.startswith("detector.")}, str(out_dir / WEIGHTS))
        atomic_write_json(out_dir / "train_summary.json", {
            "metrics": metrics, "best_checkpoint": best_path, "epochs": trainer.current_epoch, "crops": counts,
            "backbone_init": detector.init, "train_attack": attacked.summary, "run": run.digest,
            "config": OmegaConf.to_container(cfg, resolve=True)})
    log.info("adversarial detector weights: %s", out_dir / WEIGHTS)
    return metrics


def adv_detector_run(cfg: DictConfig, identity_digest: str | None = None) -> Run:
    """The run of ``cfg``'s adversarial detector: its digest covers g's weights, the XAI method, the model, its data
    and training (see :func:`advdf.jobs.runs.settings_of`)."""
    return run_of(cfg, identity_digest)


def trained_summary(cfg: DictConfig) -> dict | None:
    """The finished training run of ``cfg``, or None; a directory recording other settings (another g, XAI
    configuration, data or schedule) raises ConfigError rather than being reused or overwritten."""
    return adv_detector_run(cfg).finished()


def load_adv_detector(cfg: DictConfig, device: torch.device) -> torch.nn.Module:
    """``cfg.adv_detector`` with its trained weights, in eval mode (no hub download: the weights replace them)."""
    path = adv_detector_run(cfg).weights
    if not path.is_file():
        raise CheckpointError(f"no trained adversarial detector at {path}; train it first: python train.py "
                              f"task=adv_detector model={cfg.model.name} xai={cfg.xai.name}")
    detector = instantiate(cfg.adv_detector, pretrained=False, weights=None)
    detector.load_state_dict(load_file(str(path)))
    return detector.to(device).eval()


@torch.no_grad()
def attacked_scores(d: torch.nn.Module, images: torch.Tensor, maps: torch.Tensor, device: torch.device,
                    batch_size: int) -> torch.Tensor:
    """d's probability of "attacked" for each (crop, map) pair, in batches."""
    return torch.cat([d(images[i:i + batch_size].to(device), maps[i:i + batch_size].to(device)).softmax(1)[:, 1]
                      .cpu() for i in range(0, len(images), batch_size)]) if len(images) else torch.zeros(0)


@dataclass
class Scored:
    """d's scores on one test set (real crops + one attack's crops) and what g caught before d."""

    attack: str
    scores: torch.Tensor      # P(attacked) for the routed crops
    label: torch.Tensor       # their labels (0 real, 1 attacked)
    video: torch.Tensor       # their video codes
    real_total: int           # real crops in the test set (routed or not)
    attacked_total: int       # attacked crops in the test set
    attacked_caught: int      # attacked crops g itself called fake (never reach d)

    def metrics(self, threshold: float = 0.5) -> dict:
        """Accuracy of d at ``threshold`` on the crops that reach it (F2F) and on their videos (Vid, majority vote),
        AUC, and the whole pipeline's accuracy (a real crop is right when g and d both say real; an attacked one when
        g says fake or d says attacked)."""
        pred = (self.scores > threshold).long()
        right = pred == self.label
        n = len(self.label)
        both = len(self.label.unique()) == 2
        total = self.real_total + self.attacked_total
        return {"attack": self.attack, "n_routed": n, "n_real_routed": int((self.label == REAL).sum()),
                "n_attacked_routed": int((self.label == ATTACKED).sum()), "caught_by_g": self.attacked_caught,
                "acc": right.float().mean().item() if n else None,
                "vid_acc": vid_accuracy(pred, self.label, self.video) if n else None,
                "auc": binary_auroc(self.scores, self.label).item() if both else None,
                "pipeline_acc": (int(right.sum()) + self.attacked_caught) / total if total else None}

    def roc(self) -> tuple[list[float], list[float]] | None:
        if len(self.label.unique()) < 2:
            return None
        fpr, tpr, _ = binary_roc(self.scores, self.label)
        return fpr.tolist(), tpr.tolist()


def score_sets(d: torch.nn.Module, data: XaiData, method, real: FrameSet, attacked: dict[str, FrameSet],
               batch_size: int, zero_maps_for: str | None = "pgd") -> list[Scored]:
    """Score d on the real crops plus each attack's crops; and, as ``<attack>_black``, on the ``zero_maps_for``
    set with every map replaced by zeros (seed 001's PGD-B: d without its XAI input)."""
    real_routed = real.routed()
    real_maps = data.maps(real_routed, method, "test")
    real_scores = attacked_scores(d, real_routed.images, real_maps, data.device, batch_size)
    out = []
    for name, frames in attacked.items():
        routed = frames.routed()
        maps = data.maps(routed, method, "test")
        variants = [(name, real_scores, maps)]
        if name == zero_maps_for:
            zero_real = attacked_scores(d, real_routed.images, torch.zeros_like(real_maps), data.device, batch_size)
            variants.append((f"{name}_black", zero_real, torch.zeros_like(maps)))
        for label, r_scores, m in variants:
            scores = torch.cat([r_scores, attacked_scores(d, routed.images, m, data.device, batch_size)])
            out.append(Scored(label, scores, torch.cat([real_routed.label, routed.label]),
                              torch.cat([real_routed.video, routed.video]), len(real), len(frames),
                              len(frames) - len(routed)))
    return out
