"""A small FaceForensics++-shaped tree made of real faces, for running every pipeline offline.

Faces come from scikit-image's offline data (the 100 LFW faces of ``lfw_subset`` and the astronaut), composed on
textured backgrounds with small motion and sensor noise. Each manipulation leaves its own trace, modelled on its
namesake, inside the face region (and its mask video marks that region):

- Deepfakes: the face of the other identity re-synthesized at low resolution (4x down, bilinear up, with a
  checkerboard upsampling artifact), blended back through a feathered ellipse.
- Face2Face: the same identity with mouth and eyes warped (expression transfer) and re-rendered softer.
- FaceSwap: the other identity pasted with a colour mismatch and a hard blending seam.
- NeuralTextures: re-rendered high-frequency texture in the mouth region.

Layout and split files follow the official release (pairs ``[a, b]``; fakes ``a_b`` and ``b_a``).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from advdf.data.faces import HaarFaceDetector
from advdf.errors import DataError
from advdf.utils.io import atomic_write_json

log = logging.getLogger(__name__)
ORIGINAL = "original"
MANIPULATIONS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
FPS = 25


@lru_cache(maxsize=1)
def identities() -> tuple[np.ndarray, ...]:
    """Real faces as float RGB in [0, 1]: LFW faces tinted with skin tones, and the astronaut.

    Only faces the default face detector finds at the sizes used here are kept (about 60 of LFW's 100), so
    that every frame yields a crop, as with the studio-quality footage of FF++.
    """
    import skimage.data

    rng = np.random.default_rng(1234)
    detector = HaarFaceDetector()
    faces = []
    candidates = [np.clip(g[..., None] * (np.array([1.0, 0.80, 0.66]) * rng.uniform(0.85, 1.1)
                                          + rng.uniform(-0.05, 0.05, 3)), 0, 1)
                  for g in skimage.data.lfw_subset()[:100]]
    candidates.append(skimage.data.astronaut()[66:161, 177:272].astype(np.float64) / 255)
    for face in candidates:
        if all(_detectable(face, side, detector) for side in (44, 56, 72)):
            faces.append(face)
    return tuple(faces)


def _detectable(face: np.ndarray, side: int, detector: HaarFaceDetector) -> bool:
    canvas = np.full((side * 2, side * 2, 3), 0.5)
    canvas[side // 2:side // 2 + side, side // 2:side // 2 + side] = cv2.resize(face, (side, side),
                                                                               interpolation=cv2.INTER_CUBIC)
    return bool(detector.detect((canvas.clip(0, 1) * 255).astype(np.uint8)))


def _ellipse(side: int, cy: float, cx: float, ry: float, rx: float, feather: float) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side] / side
    r = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    if feather <= 0:
        return (r <= 1).astype(np.float64)
    return np.clip((1 - r) / feather + 0.5, 0, 1)


def _face(identity: int, side: int) -> np.ndarray:
    return cv2.resize(identities()[identity], (side, side), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _deepfakes(face: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    side = face.shape[0]
    low = cv2.resize(other, (side // 6, side // 6), interpolation=cv2.INTER_AREA)
    synth = cv2.resize(low, (side, side), interpolation=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[:side, :side]
    # transposed-convolution checkerboard at the decoder's upsampling period
    synth = synth + 0.05 * (((xx // 2) + (yy // 2)) % 2 * 2 - 1)[..., None]
    alpha = _ellipse(side, 0.52, 0.5, 0.40, 0.33, feather=0.25)[..., None]
    return alpha * synth + (1 - alpha) * face, alpha[..., 0] > 0.05


def _face2face(face: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    side = face.shape[0]
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    mouth = _ellipse(side, 0.75, 0.5, 0.13, 0.25, feather=0.6).astype(np.float32)
    eyes = np.maximum(_ellipse(side, 0.38, 0.3, 0.08, 0.14, 0.6), _ellipse(side, 0.38, 0.7, 0.08, 0.14, 0.6))
    amp = side * (0.08 + 0.02 * np.sin(t))
    map_y = yy + amp * mouth * np.sin((xx / side) * np.pi * 2) - 0.5 * amp * eyes.astype(np.float32)
    map_x = xx + 0.5 * amp * mouth * np.cos((yy / side) * np.pi * 3)
    warped = cv2.remap(face.astype(np.float32), map_x.astype(np.float32), map_y.astype(np.float32),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    region = np.maximum(mouth, eyes.astype(np.float32))[..., None]
    # the renderer re-draws the warped regions smoother and slightly brighter than the camera did
    rendered = cv2.GaussianBlur(warped, (0, 0), 2.5) * 1.12
    return region * rendered + (1 - region) * face, region[..., 0] > 0.05


def _faceswap(face: np.ndarray, other: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    side = face.shape[0]
    inner = _ellipse(side, 0.54, 0.5, 0.34, 0.28, feather=0)
    rim = _ellipse(side, 0.54, 0.5, 0.38, 0.32, feather=0) - inner
    pasted = np.clip(other * shift, 0, 1)
    out = inner[..., None] * pasted + (1 - inner[..., None]) * face
    out = out * (1 - 0.35 * rim[..., None])  # the blending seam: a dark ring where the two faces meet
    return out, (inner + rim) > 0


def _neuraltextures(face: np.ndarray, phase: float) -> tuple[np.ndarray, np.ndarray]:
    side = face.shape[0]
    yy, xx = np.mgrid[:side, :side]
    region = _ellipse(side, 0.74, 0.5, 0.17, 0.30, feather=0.4)[..., None]
    texture = 0.12 * np.sin(2 * np.pi * xx / 4.0 + phase) * np.sin(2 * np.pi * yy / 4.5)
    rendered = cv2.GaussianBlur(face, (0, 0), 1.0) + texture[..., None]
    return region * rendered + (1 - region) * face, region[..., 0] > 0.05


class _VideoPlan:
    """Everything random about one source video, drawn once so its original and fakes share it."""

    def __init__(self, rng: np.random.Generator, size: int, identity: int) -> None:
        self.size = size
        self.identity = identity
        self.face_side = int(size * rng.uniform(0.46, 0.56)) // 2 * 2
        self.offset = rng.uniform(-0.06, 0.06, 2) * size
        self.motion = rng.uniform(1.0, 3.0, 2)
        self.speed = rng.uniform(0.2, 0.5)
        colours = rng.uniform(0.15, 0.85, (2, 3))
        ramp = np.linspace(0, 1, size)[:, None, None]
        texture = cv2.resize(rng.uniform(-0.08, 0.08, (8, 8, 3)), (size, size), interpolation=cv2.INTER_CUBIC)
        self.background = np.clip(colours[0] * (1 - ramp) + colours[1] * ramp + texture, 0, 1)
        self.noise_seed = int(rng.integers(2**31))

    def placement(self, t: int) -> tuple[int, int]:
        c = self.size / 2 + self.offset + self.motion * np.sin(self.speed * t + np.array([0.0, 1.3]))
        return int(round(c[0])) - self.face_side // 2, int(round(c[1])) - self.face_side // 2


def _render(plan: _VideoPlan, face: np.ndarray, region: np.ndarray | None, t: int) -> tuple[np.ndarray, np.ndarray]:
    frame = plan.background.copy()
    mask = np.zeros(frame.shape[:2], np.uint8)
    y, x = plan.placement(t)
    s = plan.face_side
    alpha = np.clip(_ellipse(s, 0.5, 0.5, 0.62, 0.55, feather=0.35) * 1.6, 0, 1)[..., None]
    frame[y:y + s, x:x + s] = alpha * face + (1 - alpha) * frame[y:y + s, x:x + s]
    if region is not None:
        mask[y:y + s, x:x + s] = region.astype(np.uint8) * 255
    noise = np.random.default_rng(plan.noise_seed + t).normal(0, 1.5 / 255, frame.shape)
    return (np.clip(frame + noise, 0, 1) * 255).round().astype(np.uint8), mask


def _write_video(path: Path, frames: list[np.ndarray], grey: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    if not writer.isOpened():
        raise DataError(f"cannot open a video writer for {path} (OpenCV without an MPEG-4 encoder?)")
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if grey else cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()


def synthetic_params(
    num_videos: int = 40,
    num_frames: int = 16,
    size: int = 128,
    seed: int = 0,
    compression: str = "c23",
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> dict:
    """The generator's parameters as recorded in ``synthetic.json``: the synthetic tree's identity (the same
    parameters write the same tree), checked for values the generator cannot use."""
    if num_videos < 8 or num_videos % 2:
        raise DataError(f"synthetic num_videos must be even and at least 8, got {num_videos}")
    if size < 96 or num_frames < 1:
        raise DataError(f"synthetic frames must be at least 96 px and 1 frame, got size={size}, frames={num_frames}")
    return {"num_videos": num_videos, "num_frames": num_frames, "size": size, "seed": seed,
            "compression": compression, "split_fractions": list(split_fractions), "version": 1}


def tree_lock(root: str | Path) -> FileLock:
    """The lock of the synthetic tree at ``root`` (beside it), held while the tree is written and while it is read
    for a preparation, so a job generating other parameters never rewrites videos another job is cropping. One
    instance per path in a process, so holding it around :func:`generate_synthetic_ffpp` nests."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(root.parent / f".{root.name}.lock", is_singleton=True)


def write_tree_once(root: Path, params: dict, write: Callable[[Path, dict, Path], None], overwrite: bool = False,
                    check: Callable[[Path], None] | None = None) -> Path:
    """Write a synthetic tree at ``root`` with ``write(root, params, marker)`` unless its ``synthetic.json`` marker
    already records ``params``; under the tree's lock, rechecked once held (another job may have written it
    meanwhile). ``check(root)`` runs under the lock before writing (e.g. to refuse replacing real data)."""
    marker = root / "synthetic.json"

    def done() -> bool:
        return marker.is_file() and json.loads(marker.read_text()) == params and not overwrite

    if done():
        return root
    with tree_lock(root):
        if done():
            return root
        if check is not None:
            check(root)
        write(root, params, marker)
    return root


def generate_synthetic_ffpp(
    root: str | Path,
    num_videos: int = 40,
    num_frames: int = 16,
    size: int = 128,
    seed: int = 0,
    compression: str = "c23",
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    overwrite: bool = False,
) -> Path:
    """Write the synthetic tree under ``root`` (idempotent: same parameters and a finished tree return at once).

    Concurrent jobs take :func:`tree_lock`: one writes, the others wait and find the finished tree.

    Args:
        root: output directory (FF++ layout).
        num_videos: original videos; even and ≥ 8 (videos are paired, every split gets a pair).
        num_frames: frames per video.
        size: frame side in pixels (≥ 96 so the face detector finds the faces).
        seed: everything random derives from it.
        compression: name of the quality folder (``c23`` as in FF++; the videos are MPEG-4).
        split_fractions: train/val/test shares of the pairs.
        overwrite: regenerate even if a finished tree with these parameters exists.
    """
    params = synthetic_params(num_videos, num_frames, size, seed, compression, split_fractions)
    return write_tree_once(Path(root), params, _write_tree, overwrite)


def _write_tree(root: Path, params: dict, marker: Path) -> None:
    num_videos, num_frames, size, seed = (params[k] for k in ("num_videos", "num_frames", "size", "seed"))
    compression, split_fractions = params["compression"], params["split_fractions"]
    for sub in ("original_sequences", "manipulated_sequences", "splits", "synthetic.json"):
        target = root / sub
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()

    rng = np.random.default_rng(seed)
    ids = [f"{i:03d}" for i in range(num_videos)]
    order = rng.permutation(num_videos)
    pairs = [[ids[order[2 * k]], ids[order[2 * k + 1]]] for k in range(num_videos // 2)]
    n_val = max(1, round(len(pairs) * split_fractions[1]))
    n_test = max(1, round(len(pairs) * split_fractions[2]))
    split_pairs = {"train": pairs[:len(pairs) - n_val - n_test], "val": pairs[len(pairs) - n_val - n_test:
                   len(pairs) - n_test], "test": pairs[len(pairs) - n_test:]}
    for split, ps in split_pairs.items():
        atomic_write_json(root / "splits" / f"{split}.json", sorted(ps))

    n_ids = len(identities())
    identity_of = {vid: int(i) for vid, i in zip(ids, rng.permutation(max(n_ids, num_videos))[:num_videos] % n_ids,
                                                   strict=True)}
    plans = {vid: _VideoPlan(np.random.default_rng([seed, k]), size, identity_of[vid]) for k, vid in enumerate(ids)}
    targets = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]

    originals = root / "original_sequences" / "youtube" / compression / "videos"
    for vid in tqdm(ids, desc="synthetic originals", unit="video"):
        plan = plans[vid]
        face = _face(plan.identity, plan.face_side)
        _write_video(originals / f"{vid}.mp4", [_render(plan, face, None, t)[0] for t in range(num_frames)])

    for m_index, m in enumerate(MANIPULATIONS):
        folder = root / "manipulated_sequences" / m
        for target, source in tqdm(targets, desc=f"synthetic {m}", unit="video"):
            plan = plans[target]
            face = _face(plan.identity, plan.face_side)
            other = _face(plans[source].identity, plan.face_side)
            vrng = np.random.default_rng([seed, m_index, int(target), int(source)])
            shift = 1.0 + vrng.choice([-1, 1], 3) * vrng.uniform(0.10, 0.18, 3)
            frames, masks = [], []
            for t in range(num_frames):
                if m == "Deepfakes":
                    fake, region = _deepfakes(face, other, vrng)
                elif m == "Face2Face":
                    fake, region = _face2face(face, float(t))
                elif m == "FaceSwap":
                    fake, region = _faceswap(face, other, shift)
                else:
                    fake, region = _neuraltextures(face, 0.4 * t)
                frame, mask = _render(plan, np.clip(fake, 0, 1), region, t)
                frames.append(frame)
                masks.append(mask)
            name = f"{target}_{source}.mp4"
            _write_video(folder / compression / "videos" / name, frames)
            _write_video(folder / "masks" / "videos" / name, masks, grey=True)
    atomic_write_json(marker, params)
    log.info("synthetic FF++ tree written to %s", root)
