"""The cached adversarial sets a study draws from: which directory a name means, the budget its key records, and
its samples with the clean images they were attacked from.

``attack.py`` caches only the adversarial images (see :mod:`advdf.store.cache`); the clean ones are re-read from the
prepared frames the set's key names by the sha256 of their ``index.csv`` (never by a path, so moved artifacts are
found), and the norms the attack recorded per sample are recomputed against them: a prepared set rewritten since
the attack is refused instead of shown to people beside the wrong reference.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import get_class

from advdf.attacks.base import parse_budget
from advdf.attacks.checks import TOLERANCE, check_adversarial, perturbation_norms
from advdf.data.dataset import FrameDataset, read_index
from advdf.errors import AdversarialCheckError, ConfigError, DataError
from advdf.store.cache import AdversarialCache
from advdf.utils.io import file_sha256


@dataclass(frozen=True)
class SourceSet:
    """One complete cached adversarial set.

    Attributes:
        attack: the attack's config name (``pgd``, ``iap_cls``, ``urn``, ...).
        directory: the set's cache directory.
        key: its ``key.json``.
        eps: the budget on advdf's [0, 1] scale (``None``: a minimum-norm attack without a cap).
        norm: ``linf`` or ``l2``.
        layout: its ``layout.json`` (rows, shard_size, batch_size, shards), as its first writer recorded it.
    """

    attack: str
    directory: Path
    key: dict
    eps: float | None
    norm: str
    layout: dict

    @property
    def cache(self) -> AdversarialCache:
        return AdversarialCache(self.directory, self.key, self.layout["shards"], rows=self.layout["rows"],
                                shard_size=self.layout["shard_size"], batch_size=self.layout["batch_size"])


def resolve_set(spec: str, cache_dir: str | Path) -> Path:
    """The one set directory ``spec`` names: a path (absolute, or under ``cache_dir``) or a glob under ``cache_dir``
    such as ``ffpp_synthetic/*/pgd-*``; DataError (one line) for none or several."""
    cache_dir = Path(cache_dir)
    direct = Path(spec) if Path(spec).is_absolute() else cache_dir / spec
    matches = [direct] if direct.is_dir() else sorted(p for p in cache_dir.glob(spec) if p.is_dir())
    matches = [p for p in matches if (p / "key.json").is_file()]
    if not matches:
        raise DataError(f"unknown set {spec!r}: no cached adversarial set there under {cache_dir} "
                        "(run attack.py first; sets are <data>/<detector run>/<attack>-<digest>)")
    if len(matches) > 1:
        names = ", ".join(str(p.relative_to(cache_dir)) for p in matches[:4])
        raise DataError(f"set {spec!r} matches {len(matches)} cached sets ({names}{', ...' if len(matches) > 4 else ''}); "
                        "name one")
    return matches[0]


def _constructor_takes(cls: type, name: str) -> bool:
    return any(name in inspect.signature(c.__init__).parameters for c in inspect.getmro(cls) if "__init__" in vars(c))


def recorded_budget(attack: dict) -> tuple[float | None, str]:
    """The (eps on [0, 1], norm) an attack config records: fractions parsed, a ``pixel_scale`` (seed 002's 0-255
    budgets) or a generators' ``scale`` (seed 003's [-1, 1]) divided out; a wrapping attack (KRA) has its inner
    attack's budget and norm."""
    inner = attack.get("attack")
    if isinstance(inner, dict) and "_target_" in inner:
        return recorded_budget(inner)
    try:
        cls = get_class(attack["_target_"])
    except (ImportError, ValueError):
        raise DataError(f"the set's attack {attack['_target_']} is not an advdf attack any more: its budget is "
                        "unknown") from None
    norm = getattr(cls, "norm", "linf")
    if attack.get("eps") is None:
        return None, norm
    eps = parse_budget(attack["eps"], "eps")
    if _constructor_takes(cls, "pixel_scale"):
        eps /= float(attack.get("pixel_scale", 255.0))
    elif _constructor_takes(cls, "scale"):
        eps /= float(attack.get("scale", 2.0))
    return eps, norm


def open_set(directory: Path) -> SourceSet:
    """The complete adversarial set in ``directory``; DataError naming what is wrong with it otherwise."""
    try:
        key = json.loads((directory / "key.json").read_text())
        layout = json.loads((directory / "layout.json").read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{directory} has no readable key.json and layout.json ({err}): not a cached adversarial "
                        "set") from None
    if not isinstance(key.get("attack"), dict) or "index_sha256" not in (key.get("data") or {}):
        raise DataError(f"{directory} is not an adversarial set of attack.py (its key names no attack and frames)")
    source = SourceSet(key["attack"].get("name", directory.name.rsplit("-", 1)[0]), directory, key,
                       *recorded_budget(key["attack"]), layout)
    if not source.cache.complete:
        raise DataError(f"cached set {directory} is incomplete or has bad shards; rerun its attack.py command")
    return source


def prepared_dir_of(source: SourceSet, data_dir: str | Path) -> Path:
    """The prepared frames whose ``index.csv`` has the sha256 the set's key records."""
    want = source.key["data"]["index_sha256"]
    for index in sorted(Path(data_dir).glob("prepared/*/index.csv")):
        if file_sha256(index) == want:
            return index.parent
    raise DataError(f"the clean frames of set {source.directory.name} (index.csv sha256 {want[:12]}...) are not "
                    f"under {data_dir}/prepared: prepare the same data again (train.py or attack.py with the set's "
                    "data settings)")


def rows_of(source: SourceSet, successful_only: bool = False) -> list[int]:
    """The index rows of the set's samples (those the attack succeeded on, with ``successful_only``)."""
    rows = []
    for shard in source.cache.shards(("row", "success")):
        keep = shard["success"].bool() if successful_only else torch.ones(len(shard["row"]), dtype=torch.bool)
        rows += shard["row"][keep].tolist()
    return rows


def load_pairs(source: SourceSet, rows: list[int], data_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, adversarial) images of ``rows`` of the set, in that order, both (N, 3, S, S) in [0, 1].

    Every adversarial image is checked (finite, in [0, 1], inside the recorded budget:
    :func:`advdf.attacks.checks.check_adversarial`), and its L-inf distance to the re-read clean image must be the
    one the attack recorded.
    """
    want = {r: i for i, r in enumerate(rows)}
    adv, linf = [None] * len(rows), torch.zeros(len(rows))
    for shard in source.cache.shards(("row", "x_adv", "linf")):
        for j, r in enumerate(shard["row"].tolist()):
            if r in want:
                adv[want[r]], linf[want[r]] = shard["x_adv"][j], shard["linf"][j]
    if any(a is None for a in adv):
        raise DataError(f"set {source.directory.name} lacks some of the rows asked for")
    prepared = prepared_dir_of(source, data_dir)
    index = read_index(prepared)
    frames = FrameDataset([index[r] for r in rows], prepared, int(source.key["data"]["input_size"]))
    clean = torch.stack([frames[i]["image"] for i in range(len(frames))])
    x_adv = torch.stack(adv).float()
    try:
        check_adversarial(x_adv, clean, source.eps, source.norm)
    except AdversarialCheckError as err:
        raise AdversarialCheckError(f"set {source.directory.name}: {err}") from None
    drift = (perturbation_norms(x_adv, clean)["linf"] - linf).abs().max().item()
    if not math.isfinite(drift) or drift > 10 * TOLERANCE:
        raise DataError(f"the clean frames in {prepared} are not those set {source.directory.name} was attacked on "
                        f"(recorded L-inf differs by {drift:.2e}); rerun its attack.py command")
    return clean, x_adv


def check_names(sources: dict[str, SourceSet]) -> None:
    """ConfigError when a condition name is unusable (empty, or the reserved reference / attention names)."""
    for name in sources:
        if not name or name in ("reference", "attention"):
            raise ConfigError(f"condition name {name!r} is reserved or empty; name the set otherwise "
                              "(sets={NAME: <set>, ...})")
