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


def one_manipulation(rows: Sequence[dict], manipulation: str, seed: int = 0) -> list[dict]:
    """The fake frames of ``manipulation`` and as many real frames (drawn with ``seed``, fewer if there are fewer):
    one of seed 002's per-manipulation data sets, balanced. Row order is kept."""
    fake = [r for r in rows if r["label"] == 1 and r["manipulation"] == manipulation]
    real = [r for r in rows if r["label"] == 0]
    if not fake:
        present = sorted({r["manipulation"] for r in rows if r["label"] == 1})
        raise DataError(f"no frames of manipulation {manipulation!r}; the prepared set has {present}")
    picked = np.random.default_rng(seed).permutation(len(real))[:len(fake)]
    return sorted(fake + [real[i] for i in picked], key=lambda r: r["row"])


def check_masks(rows: Sequence[dict], root: Path) -> None:
    """DataError (one line) when a fake frame has no mask: segmentation needs the manipulations' mask videos."""
    missing = [r for r in rows if r["label"] == 1 and not r["mask_path"]]
    if missing:
        first = missing[0]
        raise DataError(f"{len(missing)} fake frame(s) of {root} have no mask (first: {first['manipulation']}/"
                        f"{first['video_id']} frame {first['frame']}): a segmentation run needs the data root's "
                        "manipulated_sequences/<method>/masks/videos")


def load_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path} (missing or corrupt)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class FrameDataset(Dataset):
    """Face crops as float tensors in [0, 1], resized to ``input_size``.

    Items are dicts: ``image`` (3, S, S), ``label`` (0 real, 1 fake), ``index`` (row in index.csv),
    ``video`` (an integer code shared by the frames of one video, for the Vid metric); with ``augmix`` set also
    ``augmix`` (2, 3, S, S), two augmented views of the same image as ``image``; with ``masks`` also ``mask``
    (1, S, S) in {0, 1}, the forged region (empty for real frames), transformed with the image.

    Args:
        rows: index rows (see :func:`read_index`).
        root: the prepared directory the rows' paths are relative to.
        input_size: output side.
        transform: an albumentations transform applied to the uint8 HWC image before resizing.
        augmix: maps the transformed, resized uint8 HWC image to (2, 3, S, S) views in [0, 1]
            (e.g. :class:`advdf.data.augmix.AugMixViews`); ``None`` = no views.
        masks: also return each frame's forged-region mask (a fake frame without one: DataError here).
    """

    def __init__(self, rows: Sequence[dict], root: str | Path, input_size: int,
                 transform: Callable | None = None, augmix: Callable | None = None, masks: bool = False) -> None:
        self.rows = list(rows)
        self.root = Path(root)
        self.input_size = int(input_size)
        self.transform = transform
        self.augmix = augmix
        self.masks = masks
        if masks:
            check_masks(self.rows, self.root)
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
        mask = self._mask(row, image.shape[:2]) if self.masks else None
        if self.transform is not None:
            done = self.transform(image=image) if mask is None else self.transform(image=image, mask=mask)
            image, mask = done["image"], done.get("mask", mask)
        side = (self.input_size, self.input_size)
        if image.shape[:2] != side:
            image = cv2.resize(image, side, interpolation=cv2.INTER_AREA)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        item = {"image": tensor, "label": row["label"], "index": row["row"], "video": self.video_codes[i]}
        if mask is not None:
            if mask.shape[:2] != side:
                mask = cv2.resize(mask, side, interpolation=cv2.INTER_NEAREST)
            item["mask"] = torch.from_numpy((mask > 127).astype(np.float32))[None]
        if self.augmix is not None:
            item["augmix"] = self.augmix(image)
        return item

    def _mask(self, row: dict, shape: tuple[int, int]) -> np.ndarray:
        """The frame's uint8 mask (0 / 255) at the crop's size; zeros for a real frame."""
        if not row["mask_path"]:
            return np.zeros(shape, np.uint8)
        mask = cv2.imread(str(self.root / row["mask_path"]), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataError(f"cannot read mask {self.root / row['mask_path']} (missing or corrupt)")
        return mask
