"""A small CelebA-shaped tree made of real faces whose attributes are drawn on, for running seed 003 offline.

The faces and their attributes are rendered by :mod:`advdf.data.celeba_faces`; this module writes them in CelebA's
official layout (``img_align_celeba/``, ``list_attr_celeba.txt``, ``list_eval_partition.txt``) once per parameter
set, under the tree's lock.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from advdf.data.celeba_faces import (
    CELEBA_ATTRIBUTES,
    HAIR_COLOURS,
    HEIGHT,
    RENDERED_ATTRIBUTES,
    WIDTH,
    plan_image,
    render_face,
)
from advdf.data.synthetic import write_tree_once
from advdf.errors import DataError
from advdf.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

# Probability that an attribute is +1. Bald is drawn first; a bald face has no hair colour and no bangs, the others
# get one hair colour with HAIR_PRIORS (the rest: none of the three). Every attribute ends up +1 in 20-65 % of the
# images (hair colours and bangs after the bald share is taken out), so none is too rare to learn from 1200 images.
PRIORS = {"Bald": 0.2, "Bangs": 0.35, "Bushy_Eyebrows": 0.35, "Eyeglasses": 0.3, "Male": 0.45,
          "Mouth_Slightly_Open": 0.45, "Mustache": 0.25, "No_Beard": 0.6, "Pale_Skin": 0.25, "Young": 0.6}
HAIR_PRIORS = {"Black_Hair": 0.3, "Blond_Hair": 0.25, "Brown_Hair": 0.3}


def sample_attributes(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of the rendered attributes as booleans (n, len(RENDERED_ATTRIBUTES)), columns in that order.

    Attributes are independent except that hair colours are mutually exclusive and Bald excludes hair colour and
    bangs.
    """
    col = {name: i for i, name in enumerate(RENDERED_ATTRIBUTES)}
    out = np.zeros((n, len(RENDERED_ATTRIBUTES)), bool)
    for name, p in PRIORS.items():
        out[:, col[name]] = rng.random(n) < p
    bald = out[:, col["Bald"]]
    hair = rng.choice(len(HAIR_COLOURS) + 1, size=n, p=[*HAIR_PRIORS.values(), 1 - sum(HAIR_PRIORS.values())])
    for k, name in enumerate(HAIR_COLOURS):
        out[:, col[name]] = (hair == k) & ~bald
    out[:, col["Bangs"]] &= ~bald
    return out



def synthetic_celeba_params(
    n_images: int = 1200,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    jpeg_quality: int = 95,
) -> dict:
    """The generator's parameters as recorded in ``synthetic.json``: the tree's identity (the same parameters write
    the same tree), checked for values the generator cannot use."""
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 10:
        raise DataError(f"synthetic CelebA n_images must be an integer of at least 10 (one per split), got {n_images}")
    fractions = [float(f) for f in split_fractions]
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"synthetic CelebA split_fractions must be 3 positive shares summing to 1, got {fractions}")
    if not 1 <= jpeg_quality <= 100:
        raise DataError(f"synthetic CelebA jpeg_quality must be in [1, 100], got {jpeg_quality}")
    return {"n_images": n_images, "seed": int(seed), "split_fractions": fractions, "jpeg_quality": int(jpeg_quality),
            "size": [WIDTH, HEIGHT], "priors": PRIORS, "hair_priors": HAIR_PRIORS, "version": 1}


def partition_sizes(n_images: int, split_fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Train, val and test counts: val and test rounded from their shares (at least one each), train the rest."""
    n_val = max(1, round(n_images * split_fractions[1]))
    n_test = max(1, round(n_images * split_fractions[2]))
    return n_images - n_val - n_test, n_val, n_test


def generate_synthetic_celeba(
    root: str | Path,
    n_images: int = 1200,
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    jpeg_quality: int = 95,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic tree under ``root`` in the CelebA layout (idempotent: same parameters and a finished tree
    return at once; other parameters rewrite it).

    Writes ``img_align_celeba/NNNNNN.jpg`` (1-based, six digits), ``list_attr_celeba.txt`` (count line, the 40
    names, one row of +-1 per image, values padded to two characters as in the official file),
    ``list_eval_partition.txt`` (contiguous train, val, test blocks like the official one) and, last,
    ``synthetic.json`` (the parameters; its presence marks a finished tree). Concurrent jobs take
    :func:`advdf.data.synthetic.tree_lock`: one writes, the others wait and find the finished tree.

    Args:
        root: output directory.
        n_images: number of images (at least 10).
        seed: everything random derives from it.
        split_fractions: train/val/test shares.
        jpeg_quality: OpenCV JPEG quality of the images.
        overwrite: regenerate even if a finished tree with these parameters exists.
    """
    params = synthetic_celeba_params(n_images, seed, tuple(split_fractions), jpeg_quality)
    return write_tree_once(Path(root), params, _write_tree, overwrite, check=_not_a_real_tree)


def _not_a_real_tree(root: Path) -> None:
    if (root / "list_attr_celeba.txt").exists() and not (root / "synthetic.json").is_file():
        raise DataError(f"{root} holds a CelebA tree the synthetic generator did not write; refusing to replace "
                        "it (use data.synthetic=null to read it)")


def _write_tree(root: Path, params: dict, marker: Path) -> None:
    n, seed = params["n_images"], params["seed"]
    for sub in ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt", "synthetic.json"):
        target = root / sub
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    images = root / "img_align_celeba"
    images.mkdir(parents=True)

    drawn = sample_attributes(n, np.random.default_rng([seed, 0]))
    values = -np.ones((n, len(CELEBA_ATTRIBUTES)), np.int8)
    for k, name in enumerate(RENDERED_ATTRIBUTES):
        values[:, CELEBA_ATTRIBUTES.index(name)] = np.where(drawn[:, k], 1, -1)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    quality = [cv2.IMWRITE_JPEG_QUALITY, params["jpeg_quality"]]
    for i in tqdm(range(n), desc="synthetic CelebA", unit="image"):
        rgb = render_face(plan_image(seed, i), dict(zip(RENDERED_ATTRIBUTES, drawn[i].tolist(), strict=True)))
        bgr = cv2.cvtColor((rgb * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, quality)
        if not ok:
            raise DataError(f"OpenCV could not encode {names[i]} as JPEG")
        (images / names[i]).write_bytes(data.tobytes())

    rows = [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, values.tolist(), strict=True)]
    atomic_write_text(root / "list_attr_celeba.txt", "\n".join([str(n), " ".join(CELEBA_ATTRIBUTES) + " ", *rows])
                      + "\n")
    n_train, n_val, _ = partition_sizes(n, params["split_fractions"])
    parts = [0 if i < n_train else 1 if i < n_train + n_val else 2 for i in range(n)]
    atomic_write_text(root / "list_eval_partition.txt",
                      "".join(f"{name} {p}\n" for name, p in zip(names, parts, strict=True)))
    atomic_write_json(marker, params)
    log.info("synthetic CelebA tree (%d images) written to %s", n, root)
