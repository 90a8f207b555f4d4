"""A degradation category rating (DCR) study built from cached adversarial sets: pairs, images, sets.

One condition per cached set (its adversarial image beside the clean one it was made from) plus the hidden
reference (a clean image beside itself, seed 002's baseline). Each condition gets ``pairs_per_condition`` samples
drawn with the design's seed; the pairs are dealt round-robin into sets of ``pairs_per_set`` (a condition's share
of a set differs by at most one from another's, the last set may be shorter) and every set gets
``attention_per_set`` attention checks: a clean image beside an obviously degraded copy (blocks and noise), which a
careful evaluator rates 1 or 2.

Images are written as 8-bit PNG, losslessly: what an evaluator sees is the cached image rounded to the 8 bits a
screen shows (at most half a grey level from it). PSNR and SSIM are computed on exactly those files.

A study directory::

    study.json           design, conditions (their sets and budgets), pairs (condition, row, PSNR, SSIM), sets
    images/<pair>_ref.png, images/<pair>_test.png
    ratings.sqlite       the ratings (advdf.assess.db), created when the study is first served
    report/              what ``assess.py report`` writes
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from advdf.assess.sources import SourceSet, check_names, load_pairs, rows_of
from advdf.errors import ConfigError, DataError
from advdf.utils.io import atomic_write_json

log = logging.getLogger(__name__)

FORMAT = 1
REFERENCE = "reference"  # the hidden reference condition: a clean image beside itself
ATTENTION = "attention"  # the attention checks' condition


@dataclass(frozen=True)
class Design:
    """How a study samples and groups its pairs (seed 002: 300 pairs per condition, 21 per set).

    Args:
        pairs_per_condition: pairs drawn from each condition (the reference included).
        pairs_per_set: test pairs in one set (the attention checks come on top).
        attention_per_set: attention checks mixed into each set (0: none).
        seed: seeds which samples are drawn and how they are dealt.
        successful_only: draw only samples the attack succeeded on.
        reference_label: the reference condition's name in reports.
    """

    pairs_per_condition: int = 300
    pairs_per_set: int = 21
    attention_per_set: int = 1
    seed: int = 0
    successful_only: bool = False
    reference_label: str = "Baseline"

    def __post_init__(self) -> None:
        for name in ("pairs_per_condition", "pairs_per_set"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"design.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.attention_per_set, int) or self.attention_per_set < 0:
            raise ConfigError(f"design.attention_per_set must be 0 or more, got {self.attention_per_set!r}")


def obviously_degraded(x: torch.Tensor, seed: int) -> torch.Tensor:
    """``x`` (3, S, S) in blocks of S/8 pixels plus Gaussian noise of std 0.08: degraded beyond doubt, the face
    still recognizable."""
    side = x.shape[-1]
    blocks = F.interpolate(x[None], size=(max(1, side // 8),) * 2, mode="area")
    coarse = F.interpolate(blocks, size=(side, side), mode="nearest")[0]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)) * 0.08
    return (coarse + noise).clamp(0.0, 1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, S, S) in [0, 1] -> (S, S, 3) uint8, rounded."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise DataError(f"cannot write {path}")


def objective_scores(ref: np.ndarray, test: np.ndarray) -> dict[str, float | None]:
    """PSNR (dB; ``None`` for identical images, whose PSNR is infinite) and SSIM of one exported pair."""
    a, b = (torch.from_numpy(v).permute(2, 0, 1)[None].float() / 255 for v in (ref, test))
    psnr = peak_signal_noise_ratio(b, a, data_range=1.0).item()
    ssim = structural_similarity_index_measure(b, a, data_range=1.0).item()
    return {"psnr": psnr if np.isfinite(psnr) else None, "ssim": ssim}


def deal_sets(by_condition: dict[str, list[str]], per_set: int) -> list[list[str]]:
    """Pair ids dealt round-robin over the conditions, then cut into sets of ``per_set``: any run of the deal holds
    each condition's pairs within one of the others' (while every condition has pairs left), so every set is
    balanced, and the extra places of a set that does not divide evenly fall to each condition in turn."""
    names = list(by_condition)
    rounds = max(len(v) for v in by_condition.values())
    sequence = [by_condition[n][i] for i in range(rounds) for n in names if i < len(by_condition[n])]
    return [sequence[i:i + per_set] for i in range(0, len(sequence), per_set)]


def _draw(rng: np.random.Generator, items: list, k: int, what: str) -> list:
    if len(items) < k:
        raise ConfigError(f"{what} has {len(items)} samples; design.pairs_per_condition={k} needs that many "
                          "(lower it, or attack more samples)")
    return [items[i] for i in rng.permutation(len(items))[:k]]


def _clean_images(sources: dict[str, SourceSet], picks: list[tuple[str, int]],
                  data_dir: str | Path) -> dict[tuple[str, int], torch.Tensor]:
    """The clean images of (condition, row) ``picks``, read once per condition's set."""
    out = {}
    for condition in dict.fromkeys(c for c, _ in picks):
        rows = sorted({r for c, r in picks if c == condition})
        clean, _ = load_pairs(sources[condition], rows, data_dir)
        out.update({(condition, r): x for r, x in zip(rows, clean, strict=True)})
    return out


def _condition(name: str, source: SourceSet, cache_dir: str | Path) -> dict:
    """What study.json records of a condition: its set (under the cache root when it is there), attack, budget."""
    where = source.directory
    return {"name": name, "label": name, "kind": "attack", "attack": source.attack, "eps": source.eps,
            "norm": source.norm, "detector": (source.key.get("detector") or {}).get("name"),
            "set": str(where.relative_to(cache_dir) if where.is_relative_to(cache_dir) else where)}


def build_study(directory: str | Path, name: str, sources: dict[str, SourceSet], design: Design,
                data_dir: str | Path, cache_dir: str | Path) -> dict:
    """Build the study ``name`` in ``directory`` from ``sources`` ({condition: set}); returns its study.json.

    A study that already has ratings is never rebuilt (its pairs would change under them).
    """
    directory = Path(directory)
    if not sources:
        raise ConfigError("empty study: sets=[...] names no cached adversarial set")
    check_names(sources)
    if (directory / "ratings.sqlite").exists():
        raise ConfigError(f"study {name!r} already has ratings ({directory / 'ratings.sqlite'}); build under "
                          "another study name, or delete the directory")
    (directory / "study.json").unlink(missing_ok=True)  # until the new one is written, there is no study here
    if (directory / "images").exists():
        shutil.rmtree(directory / "images")
    (directory / "images").mkdir(parents=True)
    p = design.pairs_per_condition
    pairs: list[dict] = []
    by_condition: dict[str, list[str]] = {}

    def add(condition: str, source: SourceSet | None, row: int, ref: torch.Tensor, test: torch.Tensor) -> str:
        pid = f"p{len(pairs) + 1:05d}"
        ref8, test8 = to_uint8(ref), to_uint8(test)
        write_png(directory / "images" / f"{pid}_ref.png", ref8)
        write_png(directory / "images" / f"{pid}_test.png", test8)
        pairs.append({"id": pid, "condition": condition, "row": row,
                      "set": None if source is None else source.directory.name, **objective_scores(ref8, test8)})
        return pid

    pool: dict[tuple[str, int], tuple[str, int]] = {}  # (frames' index digest, row) -> (condition, row)
    for k, (condition, source) in enumerate(sources.items()):
        rows = _draw(np.random.default_rng([design.seed, k]), rows_of(source, design.successful_only), p,
                     f"set {source.directory.name}")
        clean, adv = load_pairs(source, rows, data_dir)
        by_condition[condition] = [add(condition, source, r, x, x_adv)
                                   for r, x, x_adv in zip(rows, clean, adv, strict=True)]
        for r in rows_of(source):
            pool.setdefault((source.key["data"]["index_sha256"], r), (condition, r))
    rng = np.random.default_rng([design.seed, len(sources)])
    pool_list = sorted(pool.values())
    reference = _draw(rng, pool_list, p, "the clean images of the sets")
    n_sets = -(-p * (len(sources) + 1) // design.pairs_per_set)
    attention = [pool_list[int(i)] for i in rng.integers(len(pool_list), size=n_sets * design.attention_per_set)]
    clean = _clean_images(sources, reference + attention, data_dir)
    by_condition[REFERENCE] = [add(REFERENCE, sources[c], r, clean[c, r], clean[c, r]) for c, r in reference]
    sets = deal_sets(by_condition, design.pairs_per_set)
    for i, members in enumerate(sets):
        for j in range(design.attention_per_set):
            c, r = attention[i * design.attention_per_set + j]
            degraded = obviously_degraded(clean[c, r], design.seed * 1_000_003 + i * 101 + j)
            pid = add(ATTENTION, sources[c], r, clean[c, r], degraded)
            members.insert(int(rng.integers(len(members) + 1)), pid)
    conditions = [_condition(c, s, cache_dir) for c, s in sources.items()]
    conditions.append({"name": REFERENCE, "label": design.reference_label, "kind": REFERENCE})
    study = {"name": name, "format": FORMAT, "design": asdict(design), "conditions": conditions, "pairs": pairs,
             "sets": sets}
    atomic_write_json(directory / "study.json", study)  # last: a build that stopped midway leaves no study
    log.info("study %s: %d conditions x %d pairs, %d sets, %d attention checks -> %s", name, len(conditions), p,
             len(sets), design.attention_per_set * len(sets), directory)
    return study


class Study:
    """A built study, read from its directory (see the module docstring)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        path = self.directory / "study.json"
        if not path.is_file():
            raise DataError(f"no study in {self.directory} (missing study dir or study.json): build it first with "
                            "python assess.py build study=<name> sets=[...]")
        self.meta = json.loads(path.read_text())
        self.name: str = self.meta["name"]
        self.pairs: dict[str, dict] = {p["id"]: p for p in self.meta["pairs"]}
        self.sets: list[list[str]] = self.meta["sets"]
        self.conditions: list[dict] = self.meta["conditions"]

    @property
    def db_path(self) -> Path:
        return self.directory / "ratings.sqlite"

    def image(self, pair_id: str, which: str) -> Path:
        """The PNG of ``pair_id``: ``which`` is ``ref`` (the clean image) or ``test``."""
        return self.directory / "images" / f"{pair_id}_{which}.png"
