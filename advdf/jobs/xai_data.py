"""The frames seed 001's adversarial detector sees, and their attribution maps, cached on disk.

Figure 3 of seed 001: a face crop x' goes to the deepfake detector g; a crop g calls fake is reported fake and goes
no further; a crop g calls real gets its XAI map h' = XAI(g, x') and goes to the adversarial detector d(x', h').
Here a :class:`FrameSet` holds crops with g's prediction on each (read from the adversarial-set cache for attacked
crops, one batched forward for clean ones); :meth:`FrameSet.routed` keeps the crops g calls real, and
:class:`XaiData.maps` computes their maps once per (g weights, XAI method, set) and stores them like adversarial
sets (sharded safetensors, resumable, re-read on the next run).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advdf.attacks.checks import check_adversarial
from advdf.jobs.attack import cache_for, run_attack
from advdf.models.base import REAL
from advdf.models.checkpoint import file_digest
from advdf.store.cache import FORMAT_VERSION, ShardedSet
from advdf.store.locks import fill_shards, finish
from advdf.xai.base import Attribution

log = logging.getLogger(__name__)


@dataclass
class FrameSet:
    """Face crops with what the pipeline knows about them.

    Attributes:
        source: identity of the crops (``clean`` or an adversarial cache's directory name), part of map cache keys.
        images: (N, 3, H, W) in [0, 1].
        label: 0 = real crop, 1 = attacked crop (the adversarial detector's classes).
        position: position of each crop in its split (the join key of every cache).
        video: video code of each crop (video-level metrics).
        g_pred: the deepfake detector's class for each crop (0 = real, 1 = fake).
    """

    source: str
    images: torch.Tensor
    label: torch.Tensor
    position: torch.Tensor
    video: torch.Tensor
    g_pred: torch.Tensor
    summary: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, keep: torch.Tensor) -> FrameSet:
        return FrameSet(self.source, self.images[keep], self.label[keep], self.position[keep], self.video[keep],
                        self.g_pred[keep], self.summary)

    def routed(self) -> FrameSet:
        """The crops g calls real: the only ones that reach the adversarial detector."""
        return self.subset(self.g_pred == REAL)

    def concat(self, other: FrameSet) -> FrameSet:
        return FrameSet(f"{self.source}+{other.source}", *(torch.cat([getattr(self, k), getattr(other, k)]) for k in
                                                             ("images", "label", "position", "video", "g_pred")))


class MapCache(ShardedSet):
    """Shards of attribution maps (float16) with the split positions of their crops (and any other per-sample
    tensors a method reports)."""

    required = ("map", "position")
    rerun_hint = "rerun the reproduce job (it recomputes bad map shards)"


def xai_version(method: Attribution) -> list[int]:
    """The versions an attribution method's maps depend on: the shared base's and the method's own
    (``cache_version``, bumped by whoever changes what it computes); part of map cache keys."""
    return [int(Attribution.cache_version), int(getattr(type(method), "cache_version", 1))]


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    """The class ``model`` predicts for each image, in batches."""
    return torch.cat([model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                      for i in range(0, len(images), batch_size)]) if len(images) else torch.zeros(0, dtype=torch.long)


class XaiData:
    """Frame sets and maps of one deepfake detector g (``cfg.model`` with the weights at ``cfg.checkpoint``).

    Args:
        cfg: a composed config with ``model``, ``checkpoint``, ``data``, ``paths``, ``seed``, ``shard_size``,
            ``batch_size`` (attack and map batches).
        datamodule: the prepared data module of ``cfg``.
        g: the trained deepfake detector, in eval mode on ``device``.
    """

    def __init__(self, cfg: DictConfig, datamodule, g: torch.nn.Module, device: torch.device) -> None:
        self.cfg, self.datamodule, self.g, self.device = cfg, datamodule, g, device
        self.g_digest = file_digest(cfg.checkpoint)

    def _cfg(self, split: str) -> DictConfig:
        cfg = self.cfg.copy()
        OmegaConf.update(cfg, "split", split, force_add=True)
        return cfg

    def _positions(self, split: str, label: int, positions: list[int]) -> list[int]:
        rows = self.datamodule.dataset(split).rows
        return [p for p in positions if int(rows[p]["label"]) == label]

    def _clean(self, split: str, positions: list[int]) -> torch.Tensor:
        dataset = self.datamodule.dataset(split)
        return torch.stack([dataset[p]["image"] for p in positions]) if positions else torch.zeros(0)

    def real(self, split: str, positions: list[int]) -> FrameSet:
        """The clean real crops among ``positions`` of ``split``, with g's prediction (one batched forward)."""
        keep = self._positions(split, REAL, positions)
        dataset = self.datamodule.dataset(split)
        images = self._clean(split, keep)
        return FrameSet("clean", images, torch.zeros(len(keep), dtype=torch.long), torch.tensor(keep, dtype=torch.long),
                        torch.tensor([dataset.video_codes[p] for p in keep], dtype=torch.long),
                        predict(self.g, images, self.device, self.cfg.batch_size))

    def attacked(self, split: str, attack_cfg: DictConfig, positions: list[int]) -> FrameSet:
        """The fake crops among ``positions`` of ``split``, attacked by ``attack_cfg`` against g (generated once,
        then read back from the adversarial-set cache) and re-checked: finite, in [0, 1], inside the eps-ball."""
        keep = self._positions(split, 1 - REAL, positions)
        cfg = self._cfg(split)
        summary = run_attack(cfg, attack_cfg, datamodule=self.datamodule, detector=self.g, positions=keep)
        dataset = self.datamodule.dataset(split)
        cache = cache_for(cfg, attack_cfg, dataset, keep)
        shards = list(cache.shards(("x_adv", "position", "video", "adv_pred")))
        joined = {k: torch.cat([s[k] for s in shards]) for k in ("x_adv", "position", "video", "adv_pred")}
        attack = instantiate(attack_cfg)(model=self.g)
        check_adversarial(joined["x_adv"], self._clean(split, joined["position"].tolist()), attack.eps, attack.norm)
        return FrameSet(cache.directory.name, joined["x_adv"], torch.ones(len(keep), dtype=torch.long),
                        joined["position"].long(), joined["video"].long(), joined["adv_pred"].long(), summary)

    def map_cache(self, frames: FrameSet, method: Attribution, split: str) -> MapCache:
        key = {"g": {"name": self.cfg.model.name, "weights_sha256": self.g_digest},
               "xai": method.config(), "xai_version": xai_version(method),
               "data": {"name": self.cfg.data.name, "split": split, "source": frames.source,
                        "positions": frames.position.tolist()},
               "store_format": FORMAT_VERSION}
        root = Path(self.cfg.paths.cache_dir) / self.cfg.data.name / Path(self.cfg.checkpoint).parent.name / "xai"
        return MapCache.for_run(root, f"{method.name}-{frames.source.split('-')[0]}", key, rows=len(frames),
                                shard_size=self.cfg.shard_size, batch_size=self.cfg.batch_size)

    def maps(self, frames: FrameSet, method: Attribution, split: str) -> torch.Tensor:
        """Attribution maps of g for ``frames`` (target: g's predicted class), in the frames' order; computed in
        batches shard by shard (a killed run resumes at the missing shards, concurrent runs share them), then read
        back from disk."""
        if not len(frames):
            return torch.zeros_like(frames.images)
        cache = self.map_cache(frames, method, split)
        if not cache.complete:
            layout = cache.open()  # the first writer's shard_size and batch_size
            bs = layout.batch_size or self.cfg.batch_size

            def compute(i: int) -> dict[str, torch.Tensor]:
                chunk = layout.span(i)
                images, target = frames.images[chunk], frames.g_pred[chunk]
                maps = torch.cat([method(self.g, images[j:j + bs].to(self.device), target[j:j + bs].to(self.device))
                                  .cpu() for j in range(0, len(images), bs)])
                return {"map": maps.half(), "position": frames.position[chunk]}

            fill_shards(cache, compute, desc=f"{method.name} maps ({frames.source.split('-')[0]})")
            finish(cache, lambda _: {"n": len(frames), "method": method.config()})
        shards = list(cache.shards(("map", "position")))
        maps = torch.cat([s["map"] for s in shards]).float()
        positions = torch.cat([s["position"] for s in shards])
        if not torch.equal(positions, frames.position):
            raise RuntimeError(f"map cache {cache.directory} is out of order with its frames; delete it and rerun")
        return maps
