"""A LightningDataModule over a FaceForensics++ tree: raw videos -> prepared crops -> frame datasets."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, get_worker_info

from advdf.data.dataset import FrameDataset, balanced_subset, one_manipulation, read_index
from advdf.data.faces import create_face_detector
from advdf.data.prepare import PrepareReport, finished_preparation, prepare_ffpp
from advdf.data.source import data_identity
from advdf.data.synthetic import MANIPULATIONS, generate_synthetic_ffpp, tree_lock
from advdf.errors import ConfigError, DataError
from advdf.utils.io import digest

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def seed_augmentation(transform: Callable | None, offset: int = 0) -> None:
    """Seed an albumentations pipeline from torch's seed of this process (plus ``offset``).

    Albumentations draws from a generator of its own that global seeds never reach; unseeded, two runs with the same
    ``seed`` train on different augmentations. Transforms without ``set_random_seed`` are left alone.
    """
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed((torch.initial_seed() + offset) % 2**32)


def _init_augmenting_worker(worker_id: int) -> None:
    """Lightning's worker seeding (under ``seed_everything(workers=True)``), then the worker's copy of the training
    augmentation seeded from the worker's torch seed: every worker draws its own, reproducible stream."""
    if os.environ.get("PL_SEED_WORKERS") == "1":
        pl_worker_init_function(worker_id)
    seed_augmentation(get_worker_info().dataset.transform)


def check_data_options(batch_size: int, num_workers: int, crop_size: int, frames_per_video_real: int = 1,
                       frames_per_video_fake: int = 1, input_size: int = 1, test_per_class: int | None = None,
                       limit_per_split: int | None = None) -> None:
    """Raise ConfigError with one line for a data option no loader or preparation can use."""
    rules = [("batch_size", batch_size, 1, "frame per batch"), ("num_workers", num_workers, 0, "(0: load in the "
             "main process)"), ("crop_size", crop_size, 1, "pixel"), ("frames_per_video_real", frames_per_video_real,
             1, "frame"), ("frames_per_video_fake", frames_per_video_fake, 1, "frame"),
             ("input_size", input_size, 1, "pixel"), ("test_per_class", test_per_class, 1, "frame (null: all)"),
             ("limit_per_split", limit_per_split, 1, "frame (null: no limit)")]
    for key, value, least, unit in rules:
        if value is None and key in ("test_per_class", "limit_per_split"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"data.{key}={value}: must be an integer of at least {least} {unit}".rstrip())


class FFPPDataModule(pl.LightningDataModule):
    """FaceForensics++ (official layout) as train/val/test frame loaders.

    ``prepare_data`` (rank 0 only under DDP) generates the synthetic tree when ``synthetic`` is set and
    ``root`` has none, then runs the face-crop preparation; both are idempotent and locked, so reruns cost nothing
    and concurrent jobs prepare once. :attr:`identity` names what the crops are made from (no path): trained runs
    are keyed by it.

    Args:
        root: FF++ root (``original_sequences/``, ``manipulated_sequences/``, ``splits/``).
        prepared_dir: where crops and ``index.csv`` go (the config names it by :attr:`identity`).
        input_size: side of the images handed to the detector.
        batch_size: frames per batch.
        num_workers: DataLoader workers.
        synthetic: keyword arguments of :func:`generate_synthetic_ffpp`; ``None`` for a real download.
        compression: FF++ quality folder (``c23``, ``c40``, ``raw``).
        manipulations: fake methods to use.
        frames_per_video_real: frames sampled per original video.
        frames_per_video_fake: frames sampled per manipulated video.
        crop_size: side of the saved crops.
        face_detector: name in :data:`advdf.data.faces.FACE_DETECTORS`.
        augment: albumentations transform for training images (uint8 HWC).
        augmix: maps a training image (uint8 HWC, after ``augment`` and resizing) to two AugMix views
            (2, 3, S, S), e.g. :class:`advdf.data.augmix.AugMixViews`; train items then carry them under
            ``augmix``. Val and test never get views. ``None`` = off.
        test_per_class: balanced test subset of this many real and fake frames (seed 000: 500); ``None`` = all.
        limit_per_split: cap every split at this many frames (quick runs); ``None`` = all.
        seed: seed of the subset selection. The training augmentation follows the run's global seed instead
            (torch's seed of the process, of each loader worker under DDP ranks and workers).
        name: the data set's name (labels results and derived paths).
        manipulation: one manipulation's data set (seed 002): its fake frames and as many real ones per split
            (:func:`advdf.data.dataset.one_manipulation`); ``None``: every manipulation.
        masks: items carry the forged-region ``mask`` (segmentation training and attacks).
    """

    def __init__(
        self,
        root: str,
        prepared_dir: str,
        input_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 0,
        synthetic: dict | None = None,
        compression: str = "c23",
        manipulations: Sequence[str] = MANIPULATIONS,
        frames_per_video_real: int = 16,
        frames_per_video_fake: int = 4,
        crop_size: int = 256,
        face_detector: str = "haar",
        augment: Callable | None = None,
        augmix: Callable | None = None,
        test_per_class: int | None = None,
        limit_per_split: int | None = None,
        seed: int = 0,
        name: str = "ffpp",
        manipulation: str | None = None,
        masks: bool = False,
    ) -> None:
        super().__init__()
        check_data_options(batch_size, num_workers, crop_size, frames_per_video_real, frames_per_video_fake,
                           input_size, test_per_class, limit_per_split)
        self.name = name
        self.root = Path(root)
        self.prepared_dir = Path(prepared_dir)
        self.input_size = input_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.prepare_kwargs = dict(
            compression=compression, manipulations=tuple(manipulations),
            frames_per_video_real=frames_per_video_real, frames_per_video_fake=frames_per_video_fake,
            crop_size=crop_size,
        )
        self.face_detector = face_detector
        self.prepare_report: PrepareReport | None = None
        self._identity: dict | None = None
        self.augment = augment
        self.augmix = augmix
        self.test_per_class = test_per_class
        self.limit_per_split = limit_per_split
        self.seed = seed
        if manipulation is not None and manipulation not in manipulations:
            raise ConfigError(f"data.manipulation={manipulation!r} is not among data.manipulations "
                              f"{list(manipulations)}")
        self.manipulation = manipulation
        self.masks = masks
        self.datasets: dict[str, FrameDataset] = {}

    @property
    def identity(self) -> dict:
        """What the prepared set is made from: the source's identity (synthetic generator parameters, or the
        splits and video sizes of a real root) and the preparation parameters; never a path."""
        if self._identity is None:
            if self.synthetic is None and not self.root.is_dir():
                raise DataError(f"data root {self.root} does not exist (set data.root=/path/to/FaceForensics++)")
            self._identity = data_identity(self.root, self.synthetic, face_detector=self.face_detector,
                                           **self.prepare_kwargs)
        return self._identity

    @property
    def identity_digest(self) -> str:
        """The short digest of :attr:`identity` (the prepared directory's suffix, part of every run's digest)."""
        return digest(self.identity)

    def prepare_data(self) -> None:
        identity = self.identity
        report = finished_preparation(self.prepared_dir, identity)
        if report is None:
            detector = create_face_detector(self.face_detector)
            prepare = dict(self.prepare_kwargs, scale=identity["scale"], face_detector=detector,
                           source=identity["source"])
            if self.synthetic is not None:
                # The tree stays locked while it is cropped: a job with other generator parameters waits.
                with tree_lock(self.root):
                    generate_synthetic_ffpp(self.root, compression=self.prepare_kwargs["compression"],
                                            **self.synthetic)
                    report = prepare_ffpp(self.root, self.prepared_dir, **prepare)
            else:
                report = prepare_ffpp(self.root, self.prepared_dir, **prepare)
            log.info(report.summary())
        self.prepare_report = report

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        rows = read_index(self.prepared_dir)
        for split in SPLITS:
            part = [r for r in rows if r["split"] == split]
            if self.manipulation is not None and part:
                part = one_manipulation(part, self.manipulation, self.seed)
            if split == "test" and self.test_per_class:
                part = balanced_subset(part, self.test_per_class, self.seed)
            if self.limit_per_split:
                part = balanced_subset(part, self.limit_per_split // 2, self.seed)
            if not part:
                raise DataError(f"split {split!r} of {self.prepared_dir / 'index.csv'} is empty")
            self.datasets[split] = FrameDataset(part, self.prepared_dir, self.input_size, masks=self.masks)
        # Training batches see the augmentations (and AugMix views); every other reader of the training split
        # (attacks, denoiser training pairs) sees the frames as they are, so cached sets match their clean images.
        train = self.datasets["train"]
        self.augmented_train = FrameDataset(train.rows, train.root, train.input_size, transform=self.augment,
                                            augmix=self.augmix, masks=self.masks)

    def dataset(self, split: str) -> FrameDataset:
        """The frames of ``split``, without training augmentation."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose one of {SPLITS}")
        self.setup()
        return self.datasets[split]

    def loader(self, split: str, shuffle: bool = False, batch_size: int | None = None,
               augmented: bool = False) -> DataLoader:
        """Batches of ``split``; ``augmented`` (training split only) applies the training augmentation."""
        dataset = self.dataset(split)
        worker_init_fn = None
        if augmented and split == "train":
            dataset = self.augmented_train
            rank = self.trainer.global_rank if self.trainer is not None else 0
            seed_augmentation(dataset.transform, offset=rank)
            worker_init_fn = _init_augmenting_worker if self.num_workers > 0 else None
        return DataLoader(
            dataset, batch_size=batch_size or self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, worker_init_fn=worker_init_fn, drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True, augmented=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
