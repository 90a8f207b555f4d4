"""Measuring seed 002's configurations: model outputs on batches of frames, per-sample values reduced to a table's
numbers, every perturbed batch checked, and measured cells kept under a key naming their inputs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from advdf.attacks.checks import check_adversarial
from advdf.data.dataset import FrameDataset
from advdf.metrics import iou, rmse
from advdf.store.cells import CellStore

BATCH = 64


def outputs(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Predicted labels and, for a model with a segmentation branch, the predicted {0, 1} masks."""
    with torch.no_grad():
        out = model(x)
    if isinstance(out, dict):
        seg = out.get("seg")
        return out["logits"].argmax(1), None if seg is None else (seg[:, 1:] > 0.5).float()
    return out.argmax(1), None


class Meter:
    """Per-sample values of one configuration, gathered over batches, reduced to a table's numbers."""

    def __init__(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = {}

    def add(self, **values: torch.Tensor) -> None:
        for k, v in values.items():
            self.parts.setdefault(k, []).append(v.detach().float().cpu())

    def result(self) -> dict:
        out = {}
        for k, parts in self.parts.items():
            v = torch.cat(parts)
            out[k] = None if v.numel() == 0 else float(v.mean())
            out[f"n_{k}"] = int(v.numel())
        return out


def measure_predictions(meter: Meter, model, x, y, mask, x_adv=None) -> None:
    pred, seg = outputs(model, x if x_adv is None else x_adv)
    meter.add(correct=(pred == y))
    if x_adv is not None:
        meter.add(rmse=rmse(x, x_adv))
    if seg is not None:
        overlap = iou(seg, mask)
        meter.add(iou_all=overlap, iou_fake=overlap[y == 1])


class Cells:
    """A measured configuration, computed once: the cell store keyed by what it depends on."""

    def __init__(self, directory: Path) -> None:
        self.store = CellStore(directory)

    def get(self, name: str, key: dict, compute) -> dict:
        rows = self.store.get(key, name)
        if rows is None:
            rows = self.store.put(key, [compute()], name)
        return rows[0]


def batches(frames: FrameDataset):
    for batch in DataLoader(frames, batch_size=BATCH, shuffle=False):
        yield batch["image"], batch["label"], batch["mask"], batch["index"]


def checked(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    check_adversarial(x_adv, x, eps)
    return x_adv



def mean_or_none(values) -> float | None:
    """The mean of the known values (None where nothing is known)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None
