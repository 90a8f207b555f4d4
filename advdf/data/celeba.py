"""CelebA in its official layout: attribute and partition files, an attribute dataset and a LightningDataModule.

A root holds ``img_align_celeba/NNNNNN.jpg`` (178 x 218 aligned faces), ``list_attr_celeba.txt`` (line 1: the
image count; line 2: the 40 attribute names; then ``name v1 ... v40`` with values +-1, separated by one or more
spaces) and ``list_eval_partition.txt`` (``name 0|1|2`` for train / val / test). Images are read as CMUA-Watermark
reads them (CenterCrop 170, Resize, Normalize 0.5): float (3, S, S) in [-1, 1]; attributes become {0, 1}.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from advdf.data.celeba_faces import ATTGAN_ATTRIBUTES, CELEBA_ATTRIBUTES, STARGAN_ATTRIBUTES, STGAN_ATTRIBUTES
from advdf.data.synthetic_celeba import generate_synthetic_celeba, synthetic_celeba_params
from advdf.errors import ConfigError, DataError
from advdf.utils.io import digest, file_sha256

__all__ = ["ATTGAN_ATTRIBUTES", "CELEBA_ATTRIBUTES", "CMUA_TEST_FIRST", "SPLITS", "STARGAN_ATTRIBUTES",
           "STGAN_ATTRIBUTES", "CelebADataModule", "CelebADataset", "read_attributes", "read_partition",
           "real_celeba_identity", "split_rows"]

log = logging.getLogger(__name__)
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
PARTITIONS = {"train": 0, "val": 1, "test": 2}
# CMUA-Watermark's test set: rows 182637 onward (0-based) of the official attribute file, which lists 000001.jpg
# to 202599.jpg in order, i.e. the files 182638.jpg to 202599.jpg, which is also the official test partition.
# Selected here by file number, so a root with other rows (or a made-up one) follows the same rule.
CMUA_TEST_FIRST = 182638
SPLITS = (*PARTITIONS, "cmua_test")


@dataclass(frozen=True)
class CelebAAttributes:
    """The parsed attribute file.

    Attributes:
        names: the attribute names of line 2, in file order.
        images: the image file names, in file order.
        values: (len(images), len(names)) int8 of +-1.
    """

    names: tuple[str, ...]
    images: tuple[str, ...]
    values: np.ndarray


def _root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CelebA root {root} does not exist (set data.root=/path/to/CelebA)")
    return root


def _file(root: str | Path, name: str) -> Path:
    path = _root(root) / name
    if not path.is_file():
        raise DataError(f"missing {name} in CelebA root {root} (expected {ATTR_FILE}, {PARTITION_FILE} and "
                        f"{IMAGE_DIR}/)")
    return path


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def read_attributes(root: str | Path) -> CelebAAttributes:
    """Parse ``list_attr_celeba.txt`` (remembered per file size and modification time: the train, val and test
    datasets of one root share one parse of its 200k rows)."""
    return _parse_attributes(*_stamp(_file(root, ATTR_FILE)))


@lru_cache(maxsize=8)
def _parse_attributes(path: str, size: int, mtime_ns: int) -> CelebAAttributes:
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines) < 2:
        raise DataError(f"{path}: needs a count line and a line of attribute names, found {len(lines)} lines")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataError(f"{path}: line 1 should be the image count, found {lines[0].strip()[:40]!r}") from None
    names = tuple(lines[1].split())
    if len(set(names)) != len(names):
        raise DataError(f"{path}: line 2 repeats attribute names")
    rows = [line.split() for line in lines[2:]]
    if count != len(rows):
        raise DataError(f"{path}: the count line says {count} images but {len(rows)} rows follow")
    for number, row in enumerate(rows, start=3):
        if len(row) != len(names) + 1:
            raise DataError(f"{path} line {number}: {len(row) - 1} values for {len(names)} attributes")
    images = tuple(row[0] for row in rows)
    try:
        values = np.array([row[1:] for row in rows], dtype=np.int64).reshape(len(rows), len(names))
    except ValueError as err:
        raise DataError(f"{path}: an attribute value is not an integer ({err})") from None
    bad = np.argwhere(np.abs(values) != 1)
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{path} line {r + 3}: {names[c]}={values[r, c]}; values must be 1 or -1")
    return CelebAAttributes(names, images, values.astype(np.int8))


def read_partition(root: str | Path) -> dict[str, int]:
    """Image name -> 0 (train), 1 (val) or 2 (test) from ``list_eval_partition.txt``."""
    return dict(_parse_partition(*_stamp(_file(root, PARTITION_FILE))))


@lru_cache(maxsize=8)
def _parse_partition(path: str, size: int, mtime_ns: int) -> tuple[tuple[str, int], ...]:
    out = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataError(f"{path} line {number}: expected 'name 0|1|2', found {line.strip()[:60]!r}")
        out.append((parts[0], int(parts[1])))
    return tuple(out)


def split_rows(root: str | Path, split: str) -> list[int]:
    """Rows of the attribute file (indices, file order) that belong to ``split``.

    ``train`` / ``val`` / ``test`` follow the partition file, which must list exactly the attribute file's images;
    ``cmua_test`` takes the images numbered :data:`CMUA_TEST_FIRST` (182638.jpg) and later, as CMUA-Watermark does.
    """
    if split not in SPLITS:
        raise DataError(f"unknown CelebA split {split!r}; choose one of {list(SPLITS)}")
    attrs = read_attributes(root)
    if split == "cmua_test":
        rows = []
        for i, name in enumerate(attrs.images):
            stem = Path(name).stem
            if not stem.isdigit():
                raise DataError(f"{Path(root) / ATTR_FILE}: image {name!r} is not numbered, so the cmua_test split "
                                f"(images {CMUA_TEST_FIRST}.jpg on) is undefined")
            if int(stem) >= CMUA_TEST_FIRST:
                rows.append(i)
        return rows
    partition = read_partition(root)
    missing = [name for name in attrs.images if name not in partition]
    extra = len(set(partition) - set(attrs.images))
    if missing or extra:
        example = f", e.g. {missing[0]} has no partition" if missing else ""
        raise DataError(f"{Path(root) / PARTITION_FILE} does not match {ATTR_FILE}: {len(missing)} images without "
                        f"a partition, {extra} partitioned images without attributes{example}")
    wanted = PARTITIONS[split]
    return [i for i, name in enumerate(attrs.images) if partition[name] == wanted]


def attribute_columns(names: Sequence[str], attributes: Sequence[str], path: str | Path = ATTR_FILE) -> list[int]:
    """Column of each requested attribute, in the requested order."""
    columns = []
    for name in attributes:
        if name not in names:
            raise DataError(f"unknown CelebA attribute {name!r}; {Path(path).name} has: {', '.join(names)}")
        columns.append(names.index(name))
    return columns


class CelebADataset(Dataset):
    """Aligned CelebA images with the chosen attributes.

    Items are ``(image, attrs)``: ``image`` float32 (3, S, S) in [-1, 1] (center crop of ``crop`` pixels, bilinear
    resize to ``image_size``, ``x / 127.5 - 1``: CMUA-Watermark's CenterCrop(170), Resize, ToTensor,
    Normalize(0.5, 0.5) on the same PIL image), ``attrs`` float32 in {0, 1}, one per requested attribute in the
    requested order.

    Args:
        root: CelebA root (official layout).
        split: ``train``, ``val``, ``test`` (the partition file) or ``cmua_test`` (images 182638.jpg on, whatever
            their partition).
        attributes: attribute names of ``list_attr_celeba.txt``.
        image_size: output side S.
        crop: side of the center crop taken first (170 as CMUA-Watermark: the face without most background).
        limit: keep the first ``limit`` images of the split (file order); ``None`` = all.
    """

    def __init__(self, root: str | Path, split: str, attributes: Sequence[str], image_size: int = 128,
                 crop: int = 170, limit: int | None = None) -> None:
        for key, value in (("image_size", image_size), ("crop", crop), ("limit", limit)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"CelebA {key}={value}: must be a positive integer")
        if not attributes:
            raise ConfigError("CelebA attributes: name at least one attribute")
        self.root = _root(root)
        self.split = split
        self.attributes = tuple(attributes)
        self.image_size = image_size
        self.crop = crop
        if not (self.root / IMAGE_DIR).is_dir():
            raise DataError(f"missing {IMAGE_DIR}/ in CelebA root {self.root}")
        table = read_attributes(self.root)
        columns = attribute_columns(table.names, self.attributes, self.root / ATTR_FILE)
        rows = split_rows(self.root, split)[:limit]
        self.images = [table.images[i] for i in rows]
        self.labels = torch.from_numpy((table.values[np.asarray(rows, dtype=np.int64)][:, columns] > 0)
                                       .astype(np.float32).reshape(len(rows), len(columns)))

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int) -> torch.Tensor:
        """The image of item ``index`` as float32 (3, S, S) in [-1, 1]."""
        path = self.root / IMAGE_DIR / self.images[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except FileNotFoundError:
            raise DataError(f"missing CelebA image {path}") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise DataError(f"cannot read CelebA image {path}: {err}") from None
        w, h = img.size
        if w < self.crop or h < self.crop:
            raise DataError(f"CelebA image {path} is {w}x{h}, smaller than the {self.crop} px center crop")
        # torchvision's CenterCrop: offsets rounded half to even, as int(round(...)) does
        top, left = int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))
        img = img.crop((left, top, left + self.crop, top + self.crop))
        if self.image_size != self.crop:
            img = img.resize((self.image_size, self.image_size), Image.BILINEAR)
        pixels = np.asarray(img, dtype=np.float32) / 127.5 - 1
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.load(index), self.labels[index]


def real_celeba_identity(root: str | Path) -> dict:
    """The identity of a real CelebA root: the names, sizes and sha256 of its attribute and partition files (they
    list every image and its labels); never its path, so the same download mounted elsewhere is the same data."""
    files = {}
    for name in (ATTR_FILE, PARTITION_FILE):
        path = _file(root, name)
        files[name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return {"files": files}


def check_celeba_options(image_size: int, crop: int, batch_size: int, num_workers: int,
                         limit_per_split: int | None, attributes: Sequence[str]) -> None:
    """Raise ConfigError with one line for an option no loader can use."""
    rules = [("image_size", image_size, 1), ("crop", crop, 1), ("batch_size", batch_size, 1),
             ("num_workers", num_workers, 0), ("limit_per_split", limit_per_split, 1)]
    for key, value, least in rules:
        if value is None and key == "limit_per_split":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"data.{key}={value}: must be an integer of at least {least}")
    if isinstance(attributes, str) or not attributes:
        raise ConfigError(f"data.attributes={attributes!r}: must be a non-empty list of CelebA attribute names")
    if len(set(attributes)) != len(attributes):
        raise ConfigError(f"data.attributes={list(attributes)}: names an attribute twice")


class CelebADataModule(pl.LightningDataModule):
    """CelebA (official layout) as train/val/test loaders of ``(image, attrs)``.

    ``prepare_data`` (rank 0 only under DDP) writes the synthetic tree at ``root`` when ``synthetic`` is set;
    generation is locked and idempotent (a finished tree with the same parameters costs nothing), and it refuses to
    overwrite a tree it did not write. A real root needs no preparation. :attr:`identity` names what the items are
    made from (no path), so runs trained on them are keyed by it.

    Args:
        root: CelebA root (``img_align_celeba/``, ``list_attr_celeba.txt``, ``list_eval_partition.txt``).
        attributes: attribute names, in the order of the ``attrs`` vector (default: AttGAN's 13).
        image_size: side of the images (128: AttGAN's and STGAN's official size).
        crop: center crop before resizing (170 as CMUA-Watermark).
        batch_size: images per batch.
        num_workers: DataLoader workers.
        limit_per_split: keep the first N images of every split (quick runs); ``None`` = all.
        synthetic: keyword arguments of :func:`advdf.data.synthetic_celeba.generate_synthetic_celeba`; ``None``
            for a real download.
        name: the data set's name (labels results and derived paths).
        test_split: the split behind :meth:`test_dataloader`: ``test`` (the partition file) or ``cmua_test``.
        augmix: must be ``None``; accepted because ``train.yaml``'s ``augment`` group sets ``data.augmix`` on
            whichever data config is chosen, and AugMix views exist only for detector training.
    """

    def __init__(
        self,
        root: str,
        attributes: Sequence[str] = ATTGAN_ATTRIBUTES,
        image_size: int = 128,
        crop: int = 170,
        batch_size: int = 32,
        num_workers: int = 0,
        limit_per_split: int | None = None,
        synthetic: dict | None = None,
        name: str = "celeba",
        test_split: str = "test",
        augmix: None = None,
    ) -> None:
        super().__init__()
        attributes = list(attributes)
        check_celeba_options(image_size, crop, batch_size, num_workers, limit_per_split, attributes)
        if test_split not in ("test", "cmua_test"):
            raise ConfigError(f"data.test_split={test_split!r}: choose 'test' or 'cmua_test'")
        if augmix is not None:
            raise ConfigError("data.augmix: AugMix views are for detector training, not CelebA (use augment=none)")
        self.name = name
        self.root = Path(root)
        self.attributes = attributes
        self.image_size = image_size
        self.crop = crop
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.limit_per_split = limit_per_split
        self.synthetic = dict(synthetic) if synthetic is not None else None
        if self.synthetic is not None:
            synthetic_celeba_params(**self.synthetic)  # a bad generator option fails here, not in prepare_data
        self.test_split = test_split
        self._identity: dict | None = None
        self.datasets: dict[str, CelebADataset] = {}

    @property
    def identity(self) -> dict:
        """What the items are made from: the source (synthetic generator parameters, or the attribute and partition
        files of a real root) and the options that change an item; never a path."""
        if self._identity is None:
            if self.synthetic is not None:
                source = {"synthetic": synthetic_celeba_params(**self.synthetic)}
            else:
                source = {"real": real_celeba_identity(self.root)}
            self._identity = {"source": source, "attributes": list(self.attributes), "image_size": self.image_size,
                              "crop": self.crop, "limit_per_split": self.limit_per_split,
                              "test_split": self.test_split}
        return self._identity

    @property
    def identity_digest(self) -> str:
        """The short digest of :attr:`identity`."""
        return digest(self.identity)

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            generate_synthetic_celeba(self.root, **self.synthetic)
        else:
            _root(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.synthetic is not None:
            self.prepare_data()  # idempotent; lets a notebook call setup() or dataset() directly
        for split, source in (("train", "train"), ("val", "val"), ("test", self.test_split)):
            dataset = CelebADataset(self.root, source, self.attributes, self.image_size, self.crop,
                                    self.limit_per_split)
            if not len(dataset):
                raise DataError(f"split {source!r} of CelebA root {self.root} is empty")
            self.datasets[split] = dataset

    def dataset(self, split: str) -> CelebADataset:
        """The items of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown split {split!r}; choose one of ['train', 'val', 'test']")
        self.setup()
        return self.datasets[split]

    def loader(self, split: str, shuffle: bool = False, batch_size: int | None = None) -> DataLoader:
        """Batches of ``split``."""
        return DataLoader(self.dataset(split), batch_size=batch_size or self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")
