"""Frames of a prepared FaceForensics++ tree (``index.csv`` written by :mod:`advdf.data.prepare`)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from advdf.errors import DataError

INDEX_COLUMNS = ("path", "mask_path", "video_id", "manipulation", "label", "frame", "split")


def read_index(prepared_dir: str | Path) -> list[dict]:
    """Rows of ``index.csv`` with ``label``/``frame`` as ints and a global ``row`` number."""
    path = Path(prepared_dir) / "index.csv"
    if not path.is_file():
        raise DataError(f"no index.csv in {prepared_dir}: run the data preparation first")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(INDEX_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path} lacks columns {sorted(missing)}")
        rows = list(reader)
    for i, r in enumerate(rows):
        r["row"], r["label"], r["frame"] = i, int(r["label"]), int(r["frame"])
    return rows


def balanced_subset(rows: Sequence[dict], per_class: int, seed: int = 0) -> list[dict]:
    """At most ``per_class`` real and ``per_class`` fake frames, fakes spread evenly over manipulations.

    This is seed 000's test set (500 real + 500 fake, 125 per manipulation) at any size. Deterministic.
    """
    rng = np.random.default_rng(seed)
    real = [r for r in rows if r["label"] == 0]
    manips = sorted({r["manipulation"] for r in rows if r["label"] == 1})
    picked = list(rng.permutation(len(real))[:per_class])
    out = [real[i] for i in sorted(picked)]
    for k, m in enumerate(manips):
        group = [r for r in rows if r["manipulation"] == m]
        quota = per_class // len(manips) + (1 if k < per_class % len(manips) else 0)
        out += [group[i] for i in sorted(rng.permutation(len(group))[:quota])]
    return sorted(out, key=lambda r: r["row"])


def load_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path} (missing or corrupt)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class FrameDataset(Dataset):
    """Face crops as float tensors in [0, 1], resized to ``input_size``.

    Items are dicts: ``image`` (3, S, S), ``label`` (0 real, 1 fake), ``index`` (row in index.csv),
    ``video`` (an integer code shared by the frames of one video, for the Vid metric); with ``augmix`` set also
    ``augmix`` (2, 3, S, S), two augmented views of the same image as ``image``.

    Args:
        rows: index rows (see :func:`read_index`).
        root: the prepared directory the rows' paths are relative to.
        input_size: output side.
        transform: an albumentations transform applied to the uint8 HWC image before resizing.
        augmix: maps the transformed, resized uint8 HWC image to (2, 3, S, S) views in [0, 1]
            (e.g. :class:`advdf.data.augmix.AugMixViews`); ``None`` = no views.
    """

    def __init__(self, rows: Sequence[dict], root: str | Path, input_size: int,
                 transform: Callable | None = None, augmix: Callable | None = None) -> None:
        self.rows = list(rows)
        self.root = Path(root)
        self.input_size = int(input_size)
        self.transform = transform
        self.augmix = augmix
        keys = sorted({(r["manipulation"], r["video_id"]) for r in self.rows})
        code = {k: i for i, k in enumerate(keys)}
        self.video_codes = [code[(r["manipulation"], r["video_id"])] for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([r["label"] for r in self.rows])

    def __getitem__(self, i: int) -> dict:
        row = self.rows[i]
        image = load_rgb(self.root / row["path"])
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        if image.shape[0] != self.input_size or image.shape[1] != self.input_size:
            image = cv2.resize(image, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        item = {"image": tensor, "label": row["label"], "index": row["row"], "video": self.video_codes[i]}
        if self.augmix is not None:
            item["augmix"] = self.augmix(image)
        return item
