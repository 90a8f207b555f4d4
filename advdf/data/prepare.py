"""FaceForensics++ preparation: videos -> evenly sampled frames -> largest face -> square PNG crops + index.csv.

The same code prepares advdf's synthetic tree and a real download. Each finished video leaves a small record,
so a killed preparation resumes where it stopped; a rerun with the same parameters returns at once.

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
from tqdm.auto import tqdm

from advdf.data.faces import FaceDetector, HaarFaceDetector, largest_face, square_crop
from advdf.data.synthetic import MANIPULATIONS, ORIGINAL
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

    def summary(self) -> str:
        text = (f"prepared {self.frames_written} face crops from {self.videos} videos; "
                f"{len(self.undecodable_videos)} undecodable videos, {len(self.no_face_videos)} videos and "
                f"{len(self.no_face_frames)} frames without a detectable face")
        for label, names in (("undecodable", self.undecodable_videos), ("no face", self.no_face_videos),
                             ("frames without a face", self.no_face_frames)):
            if names:
                text += f"\n  {label}: {', '.join(names[:20])}" + (" ..." if len(names) > 20 else "")
        return text


def read_splits(root: Path) -> dict[str, str]:
    """Video id -> split from the official ``splits/{train,val,test}.json`` pair lists."""
    out = {}
    for split in ("train", "val", "test"):
        path = root / "splits" / f"{split}.json"
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


def prepare_ffpp(
    root: str | Path,
    out_dir: str | Path,
    compression: str = "c23",
    manipulations: Sequence[str] = MANIPULATIONS,
    frames_per_video_real: int = 16,
    frames_per_video_fake: int = 4,
    crop_size: int = 256,
    scale: float = 1.3,
    face_detector: FaceDetector | None = None,
    overwrite: bool = False,
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
    """
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist")
    detector = face_detector or HaarFaceDetector()
    params = {"root": str(root.resolve()), "compression": compression, "manipulations": list(manipulations),
              "frames_per_video_real": frames_per_video_real, "frames_per_video_fake": frames_per_video_fake,
              "crop_size": crop_size, "scale": scale, "face_detector": type(detector).__name__}
    marker, report_path = out_dir / "prepare.json", out_dir / "prepare_report.json"
    if marker.is_file() and json.loads(marker.read_text()) != params or overwrite:
        shutil.rmtree(out_dir, ignore_errors=True)  # different parameters: stale crops must not mix in
    elif marker.is_file() and report_path.is_file() and (out_dir / "index.csv").is_file():
        return PrepareReport(**json.loads(report_path.read_text()))

    splits = read_splits(root)
    videos = list_videos(root, compression, manipulations)
    if not videos:
        raise DataError(f"no videos under {root} for compression {compression!r} (expected "
                        f"original_sequences/youtube/{compression}/videos/*.mp4)")
    atomic_write_json(marker, params)
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
            n = frames_per_video_real if video["label"] == 0 else frames_per_video_fake
            record = _prepare_video(video, split, out_dir, n, crop_size, scale, detector)
            atomic_write_json(record_path, record)
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
    atomic_write_json(report_path, asdict(report))
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
