"""Face detection behind a small interface: OpenCV's Haar cascade (the default), dlib's HOG frontal face detector
(what FaceForensics++'s own extraction uses) and MTCNN (facenet-pytorch, weights inside its wheel); RetinaFace or
any other plugs in as a :class:`FaceDetector` registered in :data:`FACE_DETECTORS`."""

from __future__ import annotations

import abc
import importlib
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from advdf.errors import DataError

Box = tuple[int, int, int, int]  # x, y, w, h


class FaceDetector(abc.ABC):
    """Finds faces in one RGB uint8 frame (H, W, 3)."""

    @abc.abstractmethod
    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        """All face boxes as (x, y, w, h)."""

    def describe(self) -> dict:
        """What identifies this detector's boxes (part of a prepared set's identity); subclasses add their
        parameters."""
        return {"name": type(self).__name__}


class HaarFaceDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade, shipped inside the opencv-python wheel (no download).

    Args:
        scale_factor: image-pyramid step.
        min_neighbors: detections a box needs to be kept.
        min_size: smallest face side in pixels.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24) -> None:
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        if not path.is_file():
            raise DataError(f"Haar cascade not found at {path} (opencv-python-headless 5.x ships none; use 4.x)")
        self.cascade = cv2.CascadeClassifier(str(path))
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = (min_size, min_size)

    def describe(self) -> dict:
        return {"name": type(self).__name__, "scale_factor": self.scale_factor, "min_neighbors": self.min_neighbors,
                "min_size": self.min_size[0]}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        gray = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
        boxes = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors, minSize=self.min_size)
        return [tuple(int(v) for v in b) for b in boxes]


def clipped(corners: list[tuple[int, int, int, int]], width: int, height: int) -> list[Box]:
    """Boxes given as corners (x0, y0, x1, y1), clipped to the frame, as (x, y, w, h); empty ones dropped (dlib
    and MTCNN box faces that reach past the border)."""
    out = []
    for x0, y0, x1, y1 in corners:
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 > x0 and y1 > y0:
            out.append((x0, y0, x1 - x0, y1 - y0))
    return out


def _optional(module: str, package: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise DataError(f"face detector {name!r} needs the {package} package ({err}); install advdf's faces extra: "
                        "pip install -e '.[faces]' (make install does)") from None


class DlibFaceDetector(FaceDetector):
    """dlib's HOG + linear SVM frontal face detector (the ``dlib-bin`` wheel), run on the grayscale frame as
    FaceForensics++'s extraction code runs it.

    Args:
        upsample: times the frame is upsampled before detection (finds smaller faces; FF++ uses 1).
    """

    def __init__(self, upsample: int = 1) -> None:
        self.detector = _optional("dlib", "dlib-bin", "dlib").get_frontal_face_detector()
        self.upsample = int(upsample)

    def describe(self) -> dict:
        return {"name": type(self).__name__, "upsample": self.upsample}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        gray = np.ascontiguousarray(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY))
        h, w = gray.shape
        return clipped([(r.left(), r.top(), r.right() + 1, r.bottom() + 1)
                        for r in self.detector(gray, self.upsample)], w, h)


class MTCNNFaceDetector(FaceDetector):
    """MTCNN (Zhang et al. 2016) from facenet-pytorch, whose P/R/O-net weights ship inside the wheel.

    Args:
        min_face_size: smallest face side in pixels.
        thresholds: the three stages' face-probability thresholds.
        min_prob: boxes of lower final probability are dropped.
        device: where the three networks run.
    """

    def __init__(self, min_face_size: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 min_prob: float = 0.9, device: str = "cpu") -> None:
        mtcnn = _optional("facenet_pytorch", "facenet-pytorch", "mtcnn").MTCNN
        self.min_face_size, self.thresholds, self.min_prob = int(min_face_size), tuple(thresholds), float(min_prob)
        self.mtcnn = mtcnn(keep_all=True, min_face_size=self.min_face_size, thresholds=list(self.thresholds),
                           device=device)

    def describe(self) -> dict:
        return {"name": type(self).__name__, "min_face_size": self.min_face_size,
                "thresholds": list(self.thresholds), "min_prob": self.min_prob}

    def detect(self, frame_rgb: np.ndarray) -> list[Box]:
        boxes, probs = self.mtcnn.detect(np.ascontiguousarray(frame_rgb))
        if boxes is None:
            return []
        h, w = frame_rgb.shape[:2]
        kept = [tuple(int(round(float(v))) for v in box) for box, prob in zip(boxes, probs, strict=True)
                if prob >= self.min_prob]
        return clipped(kept, w, h)


FACE_DETECTORS: dict[str, type[FaceDetector]] = {"haar": HaarFaceDetector, "dlib": DlibFaceDetector,
                                                 "mtcnn": MTCNNFaceDetector}


def create_face_detector(name: str = "haar", **kwargs) -> FaceDetector:
    if name not in FACE_DETECTORS:
        raise DataError(f"unknown face detector {name!r}; available: {', '.join(sorted(FACE_DETECTORS))}")
    return FACE_DETECTORS[name](**kwargs)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    iw = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def largest_face(boxes: list[Box]) -> Box | None:
    return max(boxes, key=lambda b: b[2] * b[3]) if boxes else None


def square_crop(frame: np.ndarray, box: Box, scale: float, size: int) -> np.ndarray:
    """A square of ``scale`` × the box's longer side around its centre, edge-padded, resized to ``size``."""
    x, y, w, h = box
    side = int(round(max(w, h) * scale))
    cx, cy = x + w // 2, y + h // 2
    x0, y0 = cx - side // 2, cy - side // 2
    pad = max(0, -x0, -y0, x0 + side - frame.shape[1], y0 + side - frame.shape[0])
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    crop = frame[y0:y0 + side, x0:x0 + side]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interp)
