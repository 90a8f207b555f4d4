"""How long a staged plan's training runs take: optimizer steps from a run's config, seconds per step measured here.

A run's steps are ``max_epochs`` times the batches of its training split. The split's size comes from the data
config without reading the data: the official FaceForensics++ split has 720 training videos, CelebA 162,770
training images; advdf's synthetic trees split 70 % / 15 % / 15 % (FF++) and by the official partition's shares
(CelebA). A step's time is measured on this machine's device (``auto``: CUDA when present): the run's model, one
forward and backward pass on a random batch of the run's batch size and input side, the median of a few. A
generator's step counts its critic steps too (``module.n_critic``), each as one more pass.
"""

from __future__ import annotations

import math
import statistics
import time

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

FFPP_TRAIN_VIDEOS = 720  # FaceForensics++'s official splits/train.json pairs x 2
CELEBA_TRAIN_IMAGES = 162_770  # list_eval_partition.txt's partition 0
CELEBA_TRAIN_SHARE = CELEBA_TRAIN_IMAGES / 202_599
SYNTHETIC_FFPP_TRAIN_SHARE = 0.7


def train_items(data: DictConfig) -> int:
    """Training items per epoch of ``data`` (frames of FF++-shaped data, images of CelebA-shaped data)."""
    synthetic = data.get("synthetic")
    if "frames_per_video_real" in data:
        videos = (round(synthetic.num_videos * SYNTHETIC_FFPP_TRAIN_SHARE) if synthetic else FFPP_TRAIN_VIDEOS)
        manipulation = OmegaConf.select(data, "manipulation", default=None)
        fakes = 1 if manipulation else len(data.manipulations)
        items = videos * (data.frames_per_video_real + fakes * data.frames_per_video_fake)
    else:
        items = round(synthetic.n_images * CELEBA_TRAIN_SHARE) if synthetic else CELEBA_TRAIN_IMAGES
    cap = data.get("limit_per_split")
    return min(items, cap) if cap else items


def train_steps(cfg: DictConfig) -> int:
    """Optimizer steps of the run ``cfg`` trains (``trainer.max_steps`` when set)."""
    max_steps = OmegaConf.select(cfg, "trainer.max_steps", default=-1)
    if max_steps and max_steps > 0:
        return int(max_steps)
    batches = math.ceil(train_items(cfg.data) / int(cfg.data.batch_size))
    return int(cfg.trainer.max_epochs) * batches


def _side(cfg: DictConfig) -> int:
    return int(OmegaConf.select(cfg, "model.input_size", default=None)
               or OmegaConf.select(cfg, "generator.image_size", default=None) or cfg.data.get("image_size") or 64)


# a network's starting weights do not change its step time: the timed copy reads none (no file, no hub download)
NO_WEIGHTS = {"checkpoint_path": None, "pretrained": False, "weights": None}


def _network(cfg: DictConfig) -> torch.nn.Module:
    conf = cfg.generator if cfg.get("trains") == "generator" else cfg.model
    return instantiate(conf, **{k: v for k, v in NO_WEIGHTS.items() if k in conf})


def _loss(out) -> torch.Tensor:
    if isinstance(out, dict):
        return sum(v.float().mean() for v in out.values())
    if isinstance(out, tuple | list):
        return sum(v.float().mean() for v in out if torch.is_tensor(v))
    return out.float().mean()


def step_seconds(cfg: DictConfig, device: torch.device, repeats: int = 3) -> float:
    """Seconds of one forward + backward pass of the run's network on a random batch (median of ``repeats``)."""
    net = _network(cfg).to(device).train()
    n, side = int(cfg.data.batch_size), _side(cfg)
    x = torch.rand(n, 3, side, side, device=device) * 2 - 1
    extra = []
    if cfg.get("trains") == "generator":
        n_attrs = len(OmegaConf.select(cfg, "generator.attributes", default=None) or cfg.data.attributes)
        extra = [torch.zeros(n, n_attrs, device=device)]
    times = []
    for i in range(repeats + 1):  # the first is a warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            out = net(x, *extra)
        except TypeError:
            out = net(x)
        _loss(out).backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    passes = 1 + int(OmegaConf.select(cfg, "module.n_critic", default=0) or 0)
    return statistics.median(times) * passes
