"""Face detectors side by side on one FF++-layout tree: which frames and videos yield no face, time per frame.

Usage: python -m benchmarks.bench_faces [--root TREE] [--detectors haar,dlib,mtcnn] [--frames-real 8]
       [--frames-fake 2] [--out artifacts/bench/faces.md]

Every detector sees the frames preparation would crop (``--frames-real`` per original video, ``--frames-fake`` per
manipulated one, spread evenly, as ``advdf.data.prepare`` samples them). Without ``--root`` the synthetic tree that
``conf/data/ffpp.yaml`` names (its ``root`` and ``synthetic`` settings) is generated, or reused when it exists. Per detector the
report gives the videos with no face in any sampled frame, the frames with no face, the mean time per frame, and the
mean IoU of its largest box with dlib's (FaceForensics++'s own extraction) on the frames where both found one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from advdf.data.faces import FACE_DETECTORS, Box, box_iou, create_face_detector, largest_face
from advdf.data.prepare import sample_frames
from advdf.data.synthetic import generate_synthetic_ffpp
from advdf.errors import AdvdfError, ConfigError
from advdf.jobs.plan import compose_config

REFERENCE = "dlib"  # FaceForensics++'s extraction code uses dlib's frontal face detector


def videos_of(root: Path, compression: str) -> list[tuple[str, Path, bool]]:
    """(name, path, is_original) of every video of the tree."""
    out = [(f"original/{p.stem}", p, True)
           for p in sorted((root / "original_sequences" / "youtube" / compression / "videos").glob("*.mp4"))]
    for method in sorted(p.name for p in (root / "manipulated_sequences").glob("*") if p.is_dir()):
        out += [(f"{method}/{p.stem}", p, False)
                for p in sorted((root / "manipulated_sequences" / method / compression / "videos").glob("*.mp4"))]
    if not out:
        raise ConfigError(f"no videos under {root} (expected the FF++ layout with {compression} videos)")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_faces", description=__doc__.split("\n")[0])
    p.add_argument("--root", default=None, help="an FF++-layout tree (default: the synthetic tree, generated once)")
    p.add_argument("--compression", default="c23")
    p.add_argument("--detectors", default=",".join(sorted(FACE_DETECTORS)),
                   help=f"comma-separated, of {', '.join(sorted(FACE_DETECTORS))} (default: all)")
    p.add_argument("--frames-real", type=int, default=8, help="frames per original video (default 8, as smoke)")
    p.add_argument("--frames-fake", type=int, default=2, help="frames per manipulated video (default 2)")
    p.add_argument("--out", default="artifacts/bench/faces.md", help="markdown report (JSON beside it)")
    return p.parse_args(argv)


def bench(args: argparse.Namespace) -> dict:
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    unknown = [n for n in names if n not in FACE_DETECTORS]
    if unknown or not names:
        raise ConfigError(f"--detectors: unknown {', '.join(unknown) or '(empty)'}; choose from "
                          f"{', '.join(sorted(FACE_DETECTORS))}")
    if args.frames_real < 1 or args.frames_fake < 1:
        raise ConfigError("--frames-real and --frames-fake must be at least 1")
    if args.root is None:
        data = compose_config("train", []).data  # the default data config's tree, as train.py would make it
        root = generate_synthetic_ffpp(Path(data.root), **data.synthetic, compression=args.compression)
    else:
        root = Path(args.root)
        if not root.is_dir():
            raise ConfigError(f"--root {root} does not exist")
    detectors = {n: create_face_detector(n) for n in names}
    stats = {n: {"frames": 0, "no_face_frames": 0, "videos": 0, "no_face_videos": [], "seconds": 0.0,
                 "iou_sum": 0.0, "iou_n": 0} for n in names}
    videos = videos_of(root, args.compression)
    for name, path, original in tqdm(videos, desc="videos", unit="video", file=sys.stderr):
        frames = sample_frames(path, args.frames_real if original else args.frames_fake)
        decoded = [f for _, f in frames] if frames is not None else []
        boxes: dict[str, list[Box | None]] = {}
        for n, det in detectors.items():
            t0 = time.perf_counter()
            boxes[n] = [largest_face(det.detect(f)) for f in decoded]
            s = stats[n]
            s["seconds"] += time.perf_counter() - t0
            s["frames"] += len(decoded)
            s["videos"] += 1
            s["no_face_frames"] += sum(b is None for b in boxes[n])
            if all(b is None for b in boxes[n]):
                s["no_face_videos"].append(name)
        if REFERENCE in boxes:
            for n in names:
                pairs = [(a, b) for a, b in zip(boxes[n], boxes[REFERENCE], strict=True)
                         if a is not None and b is not None]
                stats[n]["iou_sum"] += sum(box_iou(a, b) for a, b in pairs)
                stats[n]["iou_n"] += len(pairs)
    return {"root": str(root), "frames_real": args.frames_real, "frames_fake": args.frames_fake,
            "videos": len(videos), "detectors": {n: {**detectors[n].describe(), **s} for n, s in stats.items()}}


def render(report: dict) -> str:
    lines = [f"# Face detectors on {report['root']}", "",
             f"- {report['videos']} videos; {report['frames_real']} frames per original video and "
             f"{report['frames_fake']} per manipulated one, sampled as preparation samples them",
             f"- IoU: of the detector's largest box with {REFERENCE}'s (FaceForensics++'s extraction), on the frames "
             "where both found a face", "",
             "| detector | videos without a face | frames without a face | ms per frame | mean IoU with dlib |",
             "| --- | --- | --- | --- | --- |"]
    for n, s in report["detectors"].items():
        ms = 1000 * s["seconds"] / s["frames"] if s["frames"] else float("nan")
        mean_iou = f"{s['iou_sum'] / s['iou_n']:.3f}" if s["iou_n"] else "—"
        lines.append(f"| {n} | {len(s['no_face_videos'])} / {s['videos']} | {s['no_face_frames']} / {s['frames']} | "
                     f"{ms:.1f} | {mean_iou} |")
    for n, s in report["detectors"].items():
        if s["no_face_videos"]:
            shown = ", ".join(s["no_face_videos"][:12]) + (" ..." if len(s["no_face_videos"]) > 12 else "")
            lines.append(f"\n{n}: no face in {shown}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    try:
        report = bench(args)
    except AdvdfError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render(report)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    print(text)
    return report


if __name__ == "__main__":
    main()
