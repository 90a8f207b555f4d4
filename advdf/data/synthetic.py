"""A small FaceForensics++-shaped tree made of real faces, so every pipeline runs offline.

Faces come from scikit-image's offline data (LFW faces tinted with skin tones, and the astronaut), composed on
a room-like background above a torso, with small head motion. Each manipulation leaves its own trace, modelled
on its namesake, inside the face region; its mask video marks that region (white = manipulated):

- Deepfakes: the other identity's face re-synthesized by a low-resolution autoencoder (4x down, up again with
  the decoder's block artifacts), colour-corrected to the target and blended through a feathered ellipse.
- Face2Face: the same identity with its mouth and brows warped (expression transfer) and re-rendered softer.
- FaceSwap: the other identity pasted with a colour mismatch and a hard blending seam.
- NeuralTextures: the mouth region re-rendered with a neural texture's high-frequency pattern.

Layout and split files follow the official release (pairs ``[a, b]``; fakes ``a_b`` and ``b_a``).
"""

from __future__ import annotations

import json
import logging
import shutil
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from advdf.data.faces import HaarFaceDetector
from advdf.errors import DataError
from advdf.utils.io import atomic_write_json

log = logging.getLogger(__name__)
ORIGINAL = "original"
MANIPULATIONS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
FPS = 25
GRAIN = 0.05
MARKER = "synthetic.json"
_IN_PROGRESS = ".synthetic_in_progress"  # marks a tree advdf is writing, so a rerun may delete it
_OWNED = ("original_sequences", "manipulated_sequences", "splits", MARKER)
_VERSION = 2  # bump when the generated pixels change, so cached trees are regenerated
_BANK_SIDE = 96
_SKIN_TONES = np.array([[1.00, 0.84, 0.72], [0.98, 0.78, 0.64], [0.92, 0.70, 0.55], [0.80, 0.60, 0.46],
                        [0.66, 0.48, 0.36]])


@lru_cache(maxsize=1)
def face_bank() -> tuple[np.ndarray, ...]:
    """Real faces as float32 RGB in [0, 1] at 96x96: skin-tinted LFW faces, then the astronaut.

    Only faces the default Haar cascade finds at the sizes used here are kept (about 60 of LFW's 100), so
    that nearly every frame yields a crop, as with the well-lit footage of FF++.
    """
    import skimage.data

    detector = HaarFaceDetector()
    candidates = []
    for k, grey in enumerate(skimage.data.lfw_subset()[:100]):
        # LFW's exposures vary a lot; a percentile stretch gives every face studio-like contrast
        low, high = np.percentile(grey, (2, 98))
        grey = np.clip((grey - low) / max(high - low, 1e-3), 0, 1) * 0.85 + 0.1
        smooth = cv2.GaussianBlur(cv2.resize(grey.astype(np.float32), (_BANK_SIDE, _BANK_SIDE),
                                             interpolation=cv2.INTER_CUBIC), (0, 0), 0.8)
        candidates.append(smooth[..., None] * _SKIN_TONES[k % len(_SKIN_TONES)])
    astronaut = skimage.data.astronaut()[66:161, 177:272]
    candidates.append(cv2.resize(astronaut, (_BANK_SIDE, _BANK_SIDE), interpolation=cv2.INTER_AREA) / 255.0)
    faces = [np.clip(f, 0, 1).astype(np.float32) for f in candidates]
    return tuple(f for f in faces if all(_detectable(f, side, grey, detector)
                                         for side in (54, 60, 66, 72, 78) for grey in (0.2, 0.5, 0.8)))


def _detectable(face: np.ndarray, side: int, grey: float, detector: HaarFaceDetector) -> bool:
    canvas = np.full((side * 2, side * 2, 3), grey, np.float32)
    alpha = _ellipse(side, 0.5, 0.52, 0.46, 0.54, 0.15)[..., None]
    patch = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    canvas[side // 2:side // 2 + side, side // 2:side // 2 + side] = alpha * patch + (1 - alpha) * grey
    return bool(detector.detect((canvas * 255).astype(np.uint8)))


def _ellipse(side: int, cx: float, cy: float, rx: float, ry: float, feather: float) -> np.ndarray:
    """Soft ellipse in [0, 1] over a ``side``-square patch (centre and radii as fractions of the side)."""
    yy, xx = (np.mgrid[:side, :side].astype(np.float32) + 0.5) / side
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    if feather <= 0:
        return (r <= 1).astype(np.float32)
    return np.clip((1 - r) / feather + 0.5, 0, 1)


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    interp = cv2.INTER_AREA if side < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interp)


def _deepfakes(patch: np.ndarray, other: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    side = patch.shape[0]
    inner = _ellipse(side, 0.5, 0.54, 0.38, 0.45, feather=0.35)[..., None]
    low = cv2.resize(other, (side // 4, side // 4), interpolation=cv2.INTER_AREA)
    # a decoder upsamples in blocks: mixing nearest into bilinear leaves faint 4-px block edges
    blocky = cv2.resize(low, (side, side), interpolation=cv2.INTER_NEAREST)
    synth = 0.7 * cv2.resize(low, (side, side), interpolation=cv2.INTER_LINEAR) + 0.3 * blocky
    weight = inner[..., 0] > 0.5
    # the face-swap tool matches colour statistics to the target, imperfectly
    synth = (synth - synth[weight].mean(0)) * (patch[weight].std(0) / (synth[weight].std(0) + 1e-3) * 0.9)
    synth = synth + patch[weight].mean(0) + shift
    return inner * synth + (1 - inner) * patch, inner[..., 0] > 0.1


def _face2face(patch: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
    side = patch.shape[0]
    yy, xx = (np.mgrid[:side, :side].astype(np.float32) + 0.5) / side
    mouth = _ellipse(side, 0.5, 0.76, 0.26, 0.16, feather=0.9)
    brows = _ellipse(side, 0.5, 0.33, 0.36, 0.10, feather=0.9)
    # backward map: mouth opens (stretched vertically about its centre, corners pulled out), brows lift
    map_x = xx + strength * 0.35 * (xx - 0.5) * mouth
    map_y = yy - strength * 0.45 * (yy - 0.76) * mouth + strength * 0.06 * brows
    warped = cv2.remap(patch, (map_x * side - 0.5).astype(np.float32), (map_y * side - 0.5).astype(np.float32),
                       cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT)
    # the expression renderer re-draws the mouth softer and brighter than the camera did
    rendered = cv2.GaussianBlur(warped, (0, 0), 1.6) * 1.08
    out = mouth[..., None] * rendered + brows[..., None] * warped + (1 - mouth - brows)[..., None] * patch
    return out, np.maximum(mouth, brows) > 0.1


def _faceswap(patch: np.ndarray, other: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    side = patch.shape[0]
    inner = _ellipse(side, 0.5, 0.54, 0.37, 0.44, feather=0.04)[..., None]  # nearly hard: the seam shows
    rim = _ellipse(side, 0.5, 0.54, 0.40, 0.47, feather=0.04)[..., None] - inner
    pasted = other * gain  # landmark-based pasting with no colour correction
    out = inner * pasted + (1 - inner) * patch
    return out * (1 - 0.35 * rim), (inner + rim)[..., 0] > 0.5


def _neuraltextures(patch: np.ndarray, phase: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    side = patch.shape[0]
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    region = _ellipse(side, 0.5, 0.76, 0.30, 0.17, feather=0.5)[..., None]
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    # a learned texture sampled by a neural renderer leaves a fine, regular pattern over the re-rendered mouth
    pattern = 0.06 * np.sin(2 * np.pi * u / 4.0 + phase) * np.sin(2 * np.pi * v / 4.5)
    rendered = cv2.GaussianBlur(patch, (0, 0), 1.0) + pattern[..., None]
    return region * rendered + (1 - region) * patch, region[..., 0] > 0.1


class _VideoPlan:
    """Everything random about one source video, drawn once so its original and its fakes share it."""

    def __init__(self, rng: np.random.Generator, size: int, identity: int) -> None:
        self.size = size
        self.identity = identity
        self.face_side = size * rng.uniform(0.50, 0.58)
        self.centre = size * (0.5 + rng.uniform(-0.05, 0.05, 2)) - np.array([0.0, 0.04 * size])
        self.motion = rng.uniform(1.0, 3.0, 2)
        self.zoom = rng.uniform(0.02, 0.04)
        self.speed = rng.uniform(0.25, 0.5)
        self.background = self._room(rng, size)
        self.shirt = rng.uniform(0.1, 0.8, 3).astype(np.float32)
        self.noise_seed = int(rng.integers(2**31))

    @staticmethod
    def _room(rng: np.random.Generator, size: int) -> np.ndarray:
        """A wall with a vertical light falloff, a darker panel or two, and low-frequency texture."""
        wall = rng.uniform(0.3, 0.85, 3)
        ramp = np.linspace(1.05, 0.8, size)[:, None, None]
        room = np.broadcast_to(wall * ramp, (size, size, 3)).copy()
        for _ in range(rng.integers(1, 3)):
            x0, x1 = np.sort(rng.integers(0, size, 2))
            room[:, x0:x1] *= rng.uniform(0.7, 0.9)
        texture = cv2.resize(rng.uniform(-0.04, 0.04, (6, 6, 3)), (size, size), interpolation=cv2.INTER_CUBIC)
        return cv2.GaussianBlur(np.clip(room + texture, 0, 1), (0, 0), 2.0).astype(np.float32)

    def box(self, t: int) -> tuple[int, int, int]:
        """Face patch ``(x, y, side)`` at frame ``t``: a slow sway and a slight zoom."""
        side = int(round(self.face_side * (1 + self.zoom * np.sin(0.7 * self.speed * t + 0.5))))
        centre = self.centre + self.motion * np.sin(self.speed * t + np.array([0.0, 1.3]))
        x, y = (np.round(centre) - side // 2).astype(int)
        return int(np.clip(x, 0, self.size - side)), int(np.clip(y, 0, self.size - side)), side

    def render(self, t: int, face: np.ndarray) -> np.ndarray:
        """Background, torso and face of frame ``t`` as float32 RGB."""
        frame = self.background.copy()
        x, y, side = self.box(t)
        torso = np.zeros(frame.shape[:2], np.float32)
        cv2.ellipse(torso, (x + side // 2, y + int(1.35 * side)), (int(0.85 * side), int(0.55 * side)),
                    0, 0, 360, 1.0, -1)
        torso = cv2.GaussianBlur(torso, (0, 0), 1.5)[..., None]
        frame = torso * self.shirt + (1 - torso) * frame
        alpha = _ellipse(side, 0.5, 0.52, 0.46, 0.54, feather=0.15)[..., None]
        region = frame[y:y + side, x:x + side]
        frame[y:y + side, x:x + side] = alpha * _resize(face, side) + (1 - alpha) * region
        # the camera's grain: manipulations that re-synthesize a region replace it with their own (clean) pixels
        grain = np.random.default_rng([self.noise_seed, t]).normal(0, GRAIN, frame.shape).astype(np.float32)
        return frame + cv2.GaussianBlur(grain, (0, 0), 0.6)

    @staticmethod
    def finish(frame: np.ndarray) -> np.ndarray:
        return (np.clip(frame, 0, 1) * 255).round().astype(np.uint8)


def _fake_video(method: str, plan: _VideoPlan, face: np.ndarray, other: np.ndarray, rng: np.random.Generator,
                num_frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames and mask frames of ``plan``'s video manipulated by ``method`` (``other`` is the source face)."""
    shift = rng.uniform(-0.03, 0.03, 3).astype(np.float32)
    gain = ((1 + rng.choice([-1, 1]) * rng.uniform(0.08, 0.15)) * rng.uniform(0.95, 1.05, 3)).astype(np.float32)
    angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    frames, masks = [], []
    for t in range(num_frames):
        frame = plan.render(t, face)
        x, y, side = plan.box(t)
        patch = frame[y:y + side, x:x + side]
        if method == "Deepfakes":
            fake, region = _deepfakes(patch, _resize(other, side), shift)
        elif method == "Face2Face":
            fake, region = _face2face(patch, 0.7 + 0.3 * np.sin(0.8 * t + phase))  # the driver keeps talking
        elif method == "FaceSwap":
            fake, region = _faceswap(patch, _resize(other, side), gain)
        else:
            fake, region = _neuraltextures(patch, phase + 0.5 * t, angle)
        frame[y:y + side, x:x + side] = fake
        mask = np.zeros(frame.shape[:2], np.uint8)
        mask[y:y + side, x:x + side] = region * 255
        frames.append(plan.finish(frame))
        masks.append(np.repeat(mask[..., None], 3, axis=2))
    return frames, masks


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    """Write RGB frames as MPEG-4 and check that they decode back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    if not writer.isOpened():
        raise DataError(f"cannot open a video writer for {path} (OpenCV without an MPEG-4 encoder?)")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    capture, decoded = cv2.VideoCapture(str(path)), 0
    while capture.grab():
        decoded += 1
    capture.release()
    if decoded != len(frames):
        raise DataError(f"{path} decodes to {decoded} frames instead of {len(frames)} (broken MPEG-4 codec?)")


def _split_pairs(pairs: list[list[str]], fractions: tuple[float, float, float]) -> dict[str, list[list[str]]]:
    """Cut the pair list into train/val/test by ``fractions``, each split getting at least one pair."""
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise DataError(f"split_fractions must be three non-negative shares (train, val, test), got {fractions}")
    total = sum(fractions)
    n_val = max(1, round(len(pairs) * fractions[1] / total))
    n_test = max(1, round(len(pairs) * fractions[2] / total))
    n_train = len(pairs) - n_val - n_test
    if n_train < 1:
        raise DataError(f"split_fractions {fractions} leave no training pair out of {len(pairs)}")
    return {"train": pairs[:n_train], "val": pairs[n_train:n_train + n_val], "test": pairs[n_train + n_val:]}


def _clear(root: Path, overwrite: bool) -> None:
    """Delete an earlier (finished or partial) synthetic tree, never a tree advdf did not write."""
    ours = (root / MARKER).exists() or (root / _IN_PROGRESS).exists()
    present = [root / name for name in _OWNED if (root / name).exists()]
    if present and not ours and not overwrite:
        raise DataError(f"{root} holds an FF++ tree that advdf did not generate; refusing to overwrite it "
                        f"(pass overwrite=True to replace it)")
    for path in present:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


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
    """Write the synthetic tree under ``root`` in the official FF++ layout.

    Idempotent: a finished tree with the same parameters (``synthetic.json``, written last) returns at once;
    a partial or different synthetic tree is regenerated.

    Args:
        root: Output directory.
        num_videos: Original videos; even and at least 8 (videos are paired and every split gets a pair).
        num_frames: Frames per video.
        size: Frame side in pixels (at least 96, so that the face detector finds the faces).
        seed: Everything random derives from it.
        compression: Name of the quality folder (``c23`` as in FF++; the videos are MPEG-4).
        split_fractions: Train/val/test shares of the pairs.
        overwrite: Regenerate even if a finished tree with these parameters exists.

    Returns:
        ``root`` as a Path.

    Raises:
        DataError: On impossible parameters, a foreign tree at ``root``, or videos that do not decode back.
    """
    if num_videos < 8 or num_videos % 2:
        raise DataError(f"synthetic num_videos must be even and at least 8, got {num_videos}")
    if size < 96 or num_frames < 1:
        raise DataError(f"synthetic frames must be at least 96 px and 1 frame, got size={size}, frames={num_frames}")
    root = Path(root)
    params = {"num_videos": num_videos, "num_frames": num_frames, "size": size, "seed": seed,
              "compression": compression, "split_fractions": list(split_fractions), "version": _VERSION}
    if not overwrite and _read_marker(root / MARKER) == params:
        return root
    _clear(root, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    (root / _IN_PROGRESS).touch()

    rng = np.random.default_rng(seed)
    ids = [f"{i:03d}" for i in range(num_videos)]
    order = rng.permutation(num_videos)
    pairs = [[ids[order[2 * k]], ids[order[2 * k + 1]]] for k in range(num_videos // 2)]
    splits = _split_pairs(pairs, split_fractions)
    for split, split_pairs in splits.items():
        atomic_write_json(root / "splits" / f"{split}.json", split_pairs)

    bank = face_bank()
    # distinct identities while the bank lasts, so test videos show faces never seen in training
    picks = rng.permutation(max(len(bank), num_videos))[:num_videos] % len(bank)
    plans = {vid: _VideoPlan(np.random.default_rng([seed, k]), size, int(picks[k])) for k, vid in enumerate(ids)}
    originals = root / "original_sequences" / "youtube" / compression / "videos"
    for vid in tqdm(ids, desc="synthetic originals", unit="video"):
        plan = plans[vid]
        face = bank[plan.identity]
        _write_video(originals / f"{vid}.mp4", [plan.finish(plan.render(t, face)) for t in range(num_frames)])

    targets = [(a, b) for a, b in pairs] + [(b, a) for a, b in pairs]
    for m_index, method in enumerate(MANIPULATIONS):
        folder = root / "manipulated_sequences" / method
        for target, source in tqdm(targets, desc=f"synthetic {method}", unit="video"):
            plan = plans[target]
            video_rng = np.random.default_rng([seed, m_index, int(target), int(source)])
            frames, masks = _fake_video(method, plan, bank[plan.identity], bank[plans[source].identity],
                                        video_rng, num_frames)
            _write_video(folder / compression / "videos" / f"{target}_{source}.mp4", frames)
            _write_video(folder / "masks" / "videos" / f"{target}_{source}.mp4", masks)
    atomic_write_json(root / MARKER, params)
    (root / _IN_PROGRESS).unlink()
    log.info("synthetic FF++ tree (%d videos, %d pairs per split train/val/test %s) written to %s", num_videos,
             len(pairs), "/".join(str(len(p)) for p in splits.values()), root)
    return root
