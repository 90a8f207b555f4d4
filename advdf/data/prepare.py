"""FaceForensics++ preparation: videos -> evenly sampled frames -> largest face -> square PNG crops + index.csv.

The same code prepares advdf's synthetic tree and a real download. Each finished video leaves a small record,
so a killed preparation resumes where it stopped; a rerun with the same parameters returns at once.

``prepare.json`` records what the set is made from (:func:`advdf.data.source.prepared_identity`: the source's
identity and the parameters, no absolute path), so a moved set is still recognised. A preparation holds the lock
``.<dir name>.lock`` beside its directory: of two identical jobs one crops and the other waits, then reuses the
set. A directory holding another preparation is refused, never deleted (jobs with other parameters prepare into
other directories; ``overwrite`` rebuilds only its own directory, under its lock).

    python -m advdf.data.prepare /data/FaceForensics++ /data/ffpp_prepared --crop-size 256
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from advdf.data.faces import FaceDetector, HaarFaceDetector, largest_face, square_crop
from advdf.data.source import (
    SCALE,
    list_videos,
    preparation_params,
    prepared_identity,
    read_splits,
    real_source_identity,
)
from advdf.data.synthetic import MANIPULATIONS
from advdf.errors import DataError
from advdf.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)
INDEX_COLUMNS = ("path", "mask_path", "video_id", "manipulation", "label", "frame", "split")


@dataclass
class PrepareReport:
    """What the preparation did, including everything it could not use (never silently dropped)."""

    videos: int = 0
    frames_written: int = 0
    undecodable_videos: list[str] = field(default_factory=list)
    no_face_videos: list[str] = field(default_factory=list)
    no_face_frames: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    cropped_now: int = 0  # videos cropped by this call (0: the set was reused); not stored

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "cropped_now"}

    def summary(self) -> str:
        text = (f"prepared {self.frames_written} face crops from {self.videos} videos; "
                f"{len(self.undecodable_videos)} undecodable videos, {len(self.no_face_videos)} videos and "
                f"{len(self.no_face_frames)} frames without a detectable face")
        for label, names in (("undecodable", self.undecodable_videos), ("no face", self.no_face_videos),
                             ("frames without a face", self.no_face_frames)):
            if names:
                text += f"\n  {label}: {', '.join(names[:20])}" + (" ..." if len(names) > 20 else "")
        return text


def sample_frames(path: Path, n: int) -> Iterator[tuple[int, np.ndarray]] | None:
    """``n`` frames spread evenly over the video as (index, RGB); ``None`` if it cannot be decoded."""
    cap = cv2.VideoCapture(str(path))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    if count <= 0:
        cap.release()
        return None
    wanted = sorted(set(np.linspace(0, count - 1, n).round().astype(int).tolist()))

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        try:
            for i in range(wanted[-1] + 1):
                if not cap.grab():
                    return
                if i in wanted:
                    ok, bgr = cap.retrieve()
                    if ok:
                        yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    return frames()


def _read_mask_frames(path: Path | None, indices: set[int]) -> dict[int, np.ndarray]:
    if path is None:
        return {}
    cap = cv2.VideoCapture(str(path))
    out = {}
    i = 0
    while indices and i <= max(indices) and cap.grab():
        if i in indices:
            ok, bgr = cap.retrieve()
            if ok:
                out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        i += 1
    cap.release()
    return out


def _prepare_video(video: dict, split: str, out_dir: Path, n_frames: int, crop_size: int, scale: float,
                   detector: FaceDetector) -> dict:
    """Crops of one video; returns its record (rows, missing faces) for the index."""
    name = f"{video['manipulation']}/{video['video_id']}"
    frames = sample_frames(video["path"], n_frames)
    record = {"name": name, "rows": [], "no_face_frames": [], "undecodable": frames is None}
    if frames is None:
        return record
    decoded = list(frames)
    if not decoded:
        record["undecodable"] = True
        return record
    masks = _read_mask_frames(video["mask"], {i for i, _ in decoded})
    crop_dir = out_dir / "crops" / video["manipulation"] / video["video_id"]
    mask_dir = out_dir / "masks" / video["manipulation"] / video["video_id"]
    crop_dir.mkdir(parents=True, exist_ok=True)
    for index, frame in decoded:
        box = largest_face(detector.detect(frame))
        if box is None:
            record["no_face_frames"].append(f"{name}#{index}")
            continue
        crop_path = crop_dir / f"{index:04d}.png"
        cv2.imwrite(str(crop_path), cv2.cvtColor(square_crop(frame, box, scale, crop_size), cv2.COLOR_RGB2BGR))
        mask_rel = ""
        if index in masks:
            mask_dir.mkdir(parents=True, exist_ok=True)
            mask_crop = square_crop(masks[index], box, scale, crop_size)
            cv2.imwrite(str(mask_dir / f"{index:04d}.png"), np.where(mask_crop > 127, 255, 0).astype(np.uint8))
            mask_rel = str((mask_dir / f"{index:04d}.png").relative_to(out_dir))
        record["rows"].append({"path": str(crop_path.relative_to(out_dir)), "mask_path": mask_rel,
                               "video_id": video["video_id"], "manipulation": video["manipulation"],
                               "label": video["label"], "frame": index, "split": split})
    return record


def prepare_lock(out_dir: str | Path) -> FileLock:
    """The lock of the prepared directory ``out_dir`` (a sibling file, so rebuilding the directory keeps it)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(out_dir.parent / f".{out_dir.name}.lock", is_singleton=True)


def finished_preparation(out_dir: str | Path, params: dict) -> PrepareReport | None:
    """The report of the finished preparation with ``params`` in ``out_dir``, or None when there is none yet.

    Raises DataError when ``out_dir`` holds a preparation with other parameters (it is left as it is).
    """
    out_dir = Path(out_dir)
    marker, report_path = out_dir / "prepare.json", out_dir / "prepare_report.json"
    if not marker.is_file():
        return None
    recorded = json.loads(marker.read_text())
    if recorded != json.loads(json.dumps(params)):
        changed = sorted(k for k in {*recorded, *params} if recorded.get(k) != params.get(k))
        raise DataError(f"{out_dir} holds a preparation with other {', '.join(changed)}; prepare into another "
                        "directory (data.prepared_dir, named by these parameters unless set) or move it away")
    if report_path.is_file() and (out_dir / "index.csv").is_file():
        return PrepareReport(**json.loads(report_path.read_text()))
    return None


def prepare_ffpp(
    root: str | Path,
    out_dir: str | Path,
    compression: str = "c23",
    manipulations: Sequence[str] = MANIPULATIONS,
    frames_per_video_real: int = 16,
    frames_per_video_fake: int = 4,
    crop_size: int = 256,
    scale: float = SCALE,
    face_detector: FaceDetector | None = None,
    overwrite: bool = False,
    source: dict | None = None,
) -> PrepareReport:
    """Prepare an FF++ tree at ``root`` into ``out_dir`` (crops, masks, ``index.csv``, ``prepare_report.json``).

    Args:
        root: FF++ root in the official layout.
        out_dir: output directory.
        compression: quality folder (``c23``, ``c40``, ``raw``).
        manipulations: fake methods to include.
        frames_per_video_real: frames sampled evenly from each original video.
        frames_per_video_fake: frames sampled evenly from each manipulated video.
        crop_size: side of the saved square crops.
        scale: crop side as a multiple of the face box's longer side.
        face_detector: defaults to :class:`HaarFaceDetector`.
        overwrite: redo everything even if a finished preparation with these parameters exists.
        source: the identity of the tree at ``root`` (:func:`advdf.data.source.source_identity`); by default the
            tree is scanned as a real root.
    """
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist")
    detector = face_detector or HaarFaceDetector()
    params = prepared_identity(
        source or {"real": real_source_identity(root, compression, manipulations)},
        preparation_params(compression, manipulations, frames_per_video_real, frames_per_video_fake, crop_size, scale,
                           detector.describe()))
    report = None if overwrite else finished_preparation(out_dir, params)
    if report is not None:
        return report
    with prepare_lock(out_dir):
        report = None if overwrite else finished_preparation(out_dir, params)
        if report is not None:
            log.info("reusing %s (prepared by another job meanwhile)", out_dir)
            return report
        if overwrite:
            shutil.rmtree(out_dir, ignore_errors=True)  # its own directory, under its lock
        return _prepare(root, out_dir, params, detector)


def _prepare(root: Path, out_dir: Path, params: dict, detector: FaceDetector) -> PrepareReport:
    """Crop every video of the splits into ``out_dir`` (resuming from per-video records) and write the index."""
    splits = read_splits(root)
    videos = list_videos(root, params["compression"], params["manipulations"])
    if not videos:
        raise DataError(f"no videos under {root} for compression {params['compression']!r} (expected "
                        f"original_sequences/youtube/{params['compression']}/videos/*.mp4)")
    atomic_write_json(out_dir / "prepare.json", params)
    report = PrepareReport(params=params)
    rows: list[dict] = []
    for video in tqdm(videos, desc="prepare", unit="video"):
        split = splits.get(video["video_id"])
        if split is None:
            continue  # FF++ ships videos outside the official splits; they are not used
        record_path = out_dir / "records" / video["manipulation"] / f"{video['video_id']}.json"
        if record_path.is_file():
            record = json.loads(record_path.read_text())
        else:
            real = video["label"] == 0
            n = params["frames_per_video_real"] if real else params["frames_per_video_fake"]
            record = _prepare_video(video, split, out_dir, n, params["crop_size"], params["scale"], detector)
            atomic_write_json(record_path, record)
            report.cropped_now += 1
        report.videos += 1
        rows += record["rows"]
        report.no_face_frames += record["no_face_frames"]
        if record["undecodable"]:
            report.undecodable_videos.append(record["name"])
        elif not record["rows"]:
            report.no_face_videos.append(record["name"])
    report.frames_written = len(rows)
    if not rows:
        raise DataError(f"no face crops could be made from {root}: {report.summary()}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / "index.csv", buf.getvalue())
    atomic_write_json(out_dir / "prepare_report.json", report.to_json())
    log.info("prepared %s: %d videos cropped now", out_dir, report.cropped_now)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Prepare a FaceForensics++ tree into face crops + index.csv")
    parser.add_argument("root")
    parser.add_argument("out_dir")
    parser.add_argument("--compression", default="c23")
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--frames-real", type=int, default=16)
    parser.add_argument("--frames-fake", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        report = prepare_ffpp(args.root, args.out_dir, args.compression, frames_per_video_real=args.frames_real,
                              frames_per_video_fake=args.frames_fake, crop_size=args.crop_size)
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    print(report.summary())


if __name__ == "__main__":
    main()
