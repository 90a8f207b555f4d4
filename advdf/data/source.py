"""A FaceForensics++ source tree and what a prepared crop set is made from, independent of where either lies.

A prepared set is named ``<name>_<compression>_crop<N>_r<R>f<F>-<digest>``. The digest covers the preparation
parameters (compression, manipulations, frames per video, crop size, scale, face detector) and the identity of the
source: for advdf's synthetic tree its generator parameters (the tree need not exist yet), for a real root the
contents of ``splits/*.json`` and the sorted relative paths and sizes of the videos and mask videos the splits use.
No absolute path enters it, so moving the artifacts directory or mounting FF++ elsewhere finds the same set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from advdf.data.faces import create_face_detector
from advdf.data.synthetic import ORIGINAL, synthetic_params
from advdf.errors import DataError
from advdf.utils.io import digest

SCALE = 1.3  # crop side as a multiple of the face box's longer side (seed 000's margin)
SPLITS = ("train", "val", "test")


def read_splits(root: Path) -> dict[str, str]:
    """Video id -> split from the official ``splits/{train,val,test}.json`` pair lists."""
    out = {}
    for split in SPLITS:
        path = Path(root) / "splits" / f"{split}.json"
        if not path.is_file():
            raise DataError(f"missing split file {path} (FF++ needs splits/train.json, val.json, test.json)")
        try:
            pairs = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"corrupt split file {path}: {err}") from err
        for a, b in pairs:
            for vid in (a, b, f"{a}_{b}", f"{b}_{a}"):
                out[vid] = split
    return out


def list_videos(root: Path, compression: str, manipulations: Sequence[str]) -> list[dict]:
    """Every original and manipulated video with its mask video (if any) and label."""
    root = Path(root)
    videos = []
    originals = root / "original_sequences" / "youtube" / compression / "videos"
    for path in sorted(originals.glob("*.mp4")):
        videos.append({"manipulation": ORIGINAL, "video_id": path.stem, "path": path, "mask": None, "label": 0})
    for m in manipulations:
        folder = root / "manipulated_sequences" / m
        for path in sorted((folder / compression / "videos").glob("*.mp4")):
            mask = folder / "masks" / "videos" / path.name
            videos.append({"manipulation": m, "video_id": path.stem, "path": path,
                           "mask": mask if mask.is_file() else None, "label": 1})
    return videos


def _tree_stamp(root: Path, compression: str, manipulations: tuple[str, ...]) -> tuple:
    """Modification times of the split files and video folders. A scan is remembered per process while they stay
    the same: videos added, removed or replaced change them; a video rewritten in place is seen by the next job."""
    paths = [root / "splits" / f"{s}.json" for s in SPLITS]
    paths.append(root / "original_sequences" / "youtube" / compression / "videos")
    for m in manipulations:
        paths += [root / "manipulated_sequences" / m / compression / "videos",
                  root / "manipulated_sequences" / m / "masks" / "videos"]
    return tuple(p.stat().st_mtime_ns if p.exists() else None for p in paths)


@lru_cache(maxsize=32)
def _scan(root: str, compression: str, manipulations: tuple[str, ...], stamp: tuple) -> dict:
    base = Path(root)
    used = read_splits(base)
    splits = {s: hashlib.sha256((base / "splits" / f"{s}.json").read_bytes()).hexdigest() for s in SPLITS}
    files = []
    for video in list_videos(base, compression, manipulations):
        if video["video_id"] not in used:
            continue  # outside the official splits: never prepared, so not part of what the set is made from
        for path in (video["path"], video["mask"]):
            if path is not None:
                files.append([path.relative_to(base).as_posix(), path.stat().st_size])
    return {"splits": splits, "videos": len(files), "videos_sha256": digest(sorted(files), length=64)}


def real_source_identity(root: str | Path, compression: str, manipulations: Sequence[str]) -> dict:
    """The identity of a real FF++ root: its split files' contents and the relative paths and sizes of the videos
    (and mask videos) those splits use; the same tree mounted anywhere gives the same identity."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist (set data.root=/path/to/FaceForensics++)")
    manips = tuple(manipulations)
    return _scan(str(root.resolve()), compression, manips, _tree_stamp(root, compression, manips))


def source_identity(root: str | Path, compression: str, manipulations: Sequence[str],
                    synthetic: dict | None = None) -> dict:
    """The synthetic generator's parameters when ``synthetic`` is set, else the scanned real root."""
    if synthetic is not None:
        return {"synthetic": synthetic_params(compression=compression, **synthetic)}
    return {"real": real_source_identity(root, compression, manipulations)}


def preparation_params(compression: str, manipulations: Sequence[str], frames_per_video_real: int,
                       frames_per_video_fake: int, crop_size: int, scale: float, face_detector: dict) -> dict:
    """The parameters that decide the crops made from a source (``face_detector``: its ``describe()``)."""
    return {"compression": compression, "manipulations": list(manipulations),
            "frames_per_video_real": int(frames_per_video_real), "frames_per_video_fake": int(frames_per_video_fake),
            "crop_size": int(crop_size), "scale": float(scale), "face_detector": dict(face_detector)}


def prepared_identity(source: dict, params: dict) -> dict:
    """What a prepared set is made from (recorded in its ``prepare.json``); its digest names the set."""
    return {"source": source, **params}


@lru_cache(maxsize=8)
def _describe_face_detector(name: str) -> tuple:
    return tuple(sorted(create_face_detector(name).describe().items()))


def describe_face_detector(name: str) -> dict:
    """The identity of a face detector by config name (its class and the parameters that move its boxes)."""
    return dict(_describe_face_detector(name))


def data_identity(root: str | Path, synthetic: dict | None, compression: str, manipulations: Sequence[str],
                  frames_per_video_real: int, frames_per_video_fake: int, crop_size: int,
                  face_detector: str = "haar", scale: float = SCALE) -> dict:
    """The identity of the prepared set a data config asks for (see :func:`prepared_identity`)."""
    params = preparation_params(compression, manipulations, frames_per_video_real, frames_per_video_fake, crop_size,
                                scale, describe_face_detector(face_detector))
    return prepared_identity(source_identity(root, compression, manipulations, synthetic), params)


def prepared_name(name: str, identity: dict) -> str:
    """``<name>_<compression>_crop<N>_r<R>f<F>-<digest>``: readable parameters, then the digest of all of them."""
    return (f"{name}_{identity['compression']}_crop{identity['crop_size']}_r{identity['frames_per_video_real']}"
            f"f{identity['frames_per_video_fake']}-{digest(identity)}")
