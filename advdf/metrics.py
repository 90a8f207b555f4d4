"""Metrics beyond torchmetrics: seed 001's frame-level (F2F) and video-level (Vid) accuracy, and seed 002's mask IoU,
pixel accuracy and RMSE on the 0-255 scale.

F2F: the fraction of frames classified correctly. Vid: a video is called fake when more than 50 % of its
frames are called fake (majority vote), then the fraction of videos classified correctly. Both are also
reported per true class (the "real" and "fake" columns of seed 001's Tables 1 and 2).
"""

from __future__ import annotations

import torch

from advdf.models.base import FAKE, REAL


def f2f_accuracy(pred: torch.Tensor, label: torch.Tensor) -> float:
    return (pred == label).float().mean().item() if len(label) else float("nan")


def video_votes(pred: torch.Tensor, label: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video (majority-vote prediction, true label) for frame predictions grouped by ``video`` codes."""
    videos, inverse = torch.unique(video, return_inverse=True)
    n = len(videos)
    fake_votes = torch.zeros(n).index_add_(0, inverse, (pred == FAKE).float())
    frames = torch.zeros(n).index_add_(0, inverse, torch.ones_like(pred, dtype=torch.float))
    video_pred = torch.where(fake_votes > frames / 2, FAKE, REAL)
    video_label = torch.zeros(n, dtype=label.dtype).scatter_(0, inverse, label)
    return video_pred, video_label


def vid_accuracy(pred: torch.Tensor, label: torch.Tensor, video: torch.Tensor) -> float:
    vp, vl = video_votes(pred, label, video)
    return f2f_accuracy(vp, vl)


def detection_report(pred: torch.Tensor, label: torch.Tensor, video: torch.Tensor) -> dict[str, float]:
    """acc/f2f/vid overall and per class (keys ``f2f``, ``vid``, ``f2f_real``, ``vid_fake``, ...) and the sample
    counts each rate is taken over (``n`` frames, ``n_real``, ``n_fake``, ``n_videos``, ``n_videos_real``,
    ``n_videos_fake``), so a table can put a confidence interval beside the rate."""
    pred, label, video = pred.cpu(), label.cpu(), video.cpu()
    vp, vl = video_votes(pred, label, video)
    out = {"f2f": f2f_accuracy(pred, label), "vid": f2f_accuracy(vp, vl), "n": len(label), "n_videos": len(vl)}
    for cls, name in ((REAL, "real"), (FAKE, "fake")):
        out[f"f2f_{name}"] = f2f_accuracy(pred[label == cls], label[label == cls])
        out[f"vid_{name}"] = f2f_accuracy(vp[vl == cls], vl[vl == cls])
        out[f"n_{name}"] = int((label == cls).sum())
        out[f"n_videos_{name}"] = int((vl == cls).sum())
    return out


def iou(pred: torch.Tensor, target: torch.Tensor, empty: float = 1.0) -> torch.Tensor:
    """Per-sample intersection over union of {0, 1} masks (N, ...).

    Empty-union rule: where neither mask marks a pixel (a real image predicted as untouched), the masks agree and
    the IoU is ``empty`` (1.0); no division by zero, and a clean real image does not drag a mean IoU down.
    """
    p, t = pred.flatten(1) > 0.5, target.flatten(1) > 0.5
    inter, union = (p & t).sum(1).float(), (p | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, empty))


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample fraction of pixels whose {0, 1} label matches (ClassNSeg's own segmentation metric)."""
    return ((pred.flatten(1) > 0.5) == (target.flatten(1) > 0.5)).float().mean(1)


def rmse(x: torch.Tensor, x_adv: torch.Tensor, scale: float = 255.0) -> torch.Tensor:
    """Per-sample root-mean-square difference on the ``scale`` pixel scale (seed 002 reports it on 0-255)."""
    return ((x_adv - x) * scale).flatten(1).pow(2).mean(1).sqrt()
