"""Transfer (black-box) evaluation: every detector on the adversarial sets crafted on every source detector.

Seed 004 (Liao et al. 2021), Table 2: for a set crafted on a source detector and a target detector,
``ASR = 1 - acc_attack / acc_clean`` (both accuracies of the TARGET, on the same samples) and the attack transfer
ratio ``ATR = ASR_target / ASR_source``, where ``ASR_source`` is the source's own (white-box) ASR on its set; a
detector's ATR on its own set is therefore 1.

Sets come from the adversarial-set caches :func:`advdf.jobs.attack.run_attack` writes. Every adversarial
example is re-checked (finite, [0, 1], inside its budget) against the clean image freshly loaded from the
source's data before any detector sees it. Targets are matched to the source's samples by index row, so
detectors with different input sizes work: a target whose input side differs from the source's sees the
adversarial images resized bilinearly (antialiased) to its side, and its clean accuracy is that of its own
clean inputs of the same rows.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from advdf.attacks.checks import check_adversarial
from advdf.data.dataset import FrameDataset
from advdf.errors import ConfigError, DataError
from advdf.store.cache import AdversarialCache
from advdf.utils.io import atomic_write_text

log = logging.getLogger(__name__)
MISSING = "—"
# Part of the key of a saved transfer matrix (see advdf.papers.liao2021.kra): bump it when how the matrix is
# computed changes (matching, resizing, ASR/ATR), so saved matrices are recomputed.
TRANSFER_VERSION = 1


@dataclass
class TransferSource:
    """An adversarial set crafted on one detector.

    Attributes:
        name: the source detector's name.
        cache: the complete cache of the set.
        dataset: the source's split (the clean images the set was crafted from, at the source's input size).
        eps: the attack's budget (``None``: no cap) and ``norm`` its norm, for the re-check.
    """

    name: str
    cache: AdversarialCache
    dataset: FrameDataset
    eps: float | None
    norm: str

    def checked_shards(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]:
        """(shard, clean images, labels) per shard; raises unless every example passes ``check_adversarial``."""
        if not self.cache.complete:  # summary.json written and every shard verified against its record
            bad = self.cache.problems()
            named = f" (bad shards: {', '.join(self.cache.shard_path(i).name for i in sorted(bad))})" if bad else ""
            raise DataError(f"adversarial set of {self.name} is incomplete{named}: {self.cache.directory}; rerun "
                            "its attack")
        for shard in self.cache.shards():
            positions = shard["position"].tolist()
            clean, label = stack_images(self.dataset, positions)
            check_adversarial(shard["x_adv"], clean, self.eps, self.norm)
            row = torch.tensor([self.dataset.rows[p]["row"] for p in positions])
            if not torch.equal(row, shard["row"].long()) or not torch.equal(label, shard["label"].long()):
                raise DataError(f"cache {self.cache.directory} does not match the data it is read with "
                                "(rows or labels differ); delete it and rerun the attack")
            yield shard, clean, label


@dataclass
class TransferTarget:
    """A detector evaluated on every set: its model (eval mode, on ``device``) and its split of the same data."""

    name: str
    detector: nn.Module
    dataset: FrameDataset


def stack_images(dataset: FrameDataset, positions: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of ``positions`` of ``dataset``, freshly loaded."""
    items = [dataset[p] for p in positions]
    return torch.stack([it["image"] for it in items]), torch.tensor([it["label"] for it in items])


@torch.no_grad()
def predict(detector: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device,
            size: int | None = None) -> torch.Tensor:
    """Predicted classes of ``x`` in batches; ``size``: resize to this side first (a target of another size)."""
    preds = []
    for xb in x.split(batch_size):
        xb = xb.to(device)
        if size is not None and xb.shape[-1] != size:
            xb = F.interpolate(xb, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=True).clamp_(0.0, 1.0)
        preds.append(detector(xb).argmax(1).cpu())
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


def _positions_of(dataset: FrameDataset, rows: torch.Tensor, name: str) -> list[int]:
    where = {r["row"]: p for p, r in enumerate(dataset.rows)}
    missing = [r for r in rows.tolist() if r not in where]
    if missing:
        raise DataError(f"detector {name}'s split lacks {len(missing)} rows of the adversarial set (e.g. row "
                        f"{missing[0]}); evaluate targets on the same data and test subset as the source")
    return [where[r] for r in rows.tolist()]


def _clean_correct(target: TransferTarget, row: torch.Tensor, label: torch.Tensor,
                   known: tuple[torch.Tensor, torch.Tensor], batch_size: int,
                   device: torch.device) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Whether ``target`` classifies the clean image of each of ``row`` correctly.

    ``known`` holds (rows, correct) already evaluated; only the other rows take a forward pass. Returns the
    answer in the order of ``row`` and the updated ``known``.
    """
    known_rows, known_correct = known
    todo = ~torch.isin(row, known_rows)
    if bool(todo.any()):
        rows, labels = row[todo], label[todo]
        clean, label_t = stack_images(target.dataset, _positions_of(target.dataset, rows, target.name))
        if not torch.equal(label_t, labels):
            raise DataError(f"detector {target.name}'s labels differ from those of the adversarial set")
        correct = predict(target.detector, clean, batch_size, device) == labels
        known_rows, known_correct = torch.cat([known_rows, rows]), torch.cat([known_correct, correct])
    order = known_rows.argsort()
    at = torch.searchsorted(known_rows[order], row)
    return known_correct[order][at], (known_rows, known_correct)


def transfer_matrix(sources: Sequence[TransferSource], targets: Sequence[TransferTarget], batch_size: int = 64,
                    device: torch.device | str = "cpu") -> list[dict]:
    """One cell per (source, target): n, acc_clean and acc of the target, its ASR, and ATR.

    Every source must also be a target (its own ASR is the ATR's denominator). Cells with an undefined ratio
    (clean accuracy 0, or a source ASR of 0) carry ``None``.
    """
    device = torch.device(device)
    by_name = {t.name: t for t in targets}
    absent = [s.name for s in sources if s.name not in by_name]
    if absent:
        raise ConfigError(f"transfer sources {absent} must also be targets (ATR divides by their own ASR)")
    cells = []
    known = {t.name: (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool)) for t in targets}
    for source in sources:
        correct_adv: dict[str, list[torch.Tensor]] = {t.name: [] for t in targets}
        rows, labels = [], []
        for shard, _, label in source.checked_shards():
            for t in targets:
                pred = predict(t.detector, shard["x_adv"], batch_size, device, t.dataset.input_size)
                correct_adv[t.name].append(pred == label)
            rows.append(shard["row"].long())
            labels.append(label)
        row, label = torch.cat(rows), torch.cat(labels)
        stats = {}
        for t in targets:
            correct, known[t.name] = _clean_correct(t, row, label, known[t.name], batch_size, device)
            acc_clean = correct.float().mean().item()
            acc = torch.cat(correct_adv[t.name]).float().mean().item()
            stats[t.name] = {"n": len(label), "acc_clean": acc_clean, "acc": acc,
                             "asr": 1 - acc / acc_clean if acc_clean > 0 else None}
        own = stats[source.name]["asr"]
        for t in targets:
            asr = stats[t.name]["asr"]
            atr = asr / own if asr is not None and own else None
            cells.append({"source": source.name, "target": t.name, **stats[t.name], "atr": atr})
        log.info("transfer from %s: %s", source.name,
                 ", ".join(f"{t.name} acc {stats[t.name]['acc']:.3f}" for t in targets))
    return cells


def _fmt(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def matrix_markdown(cells: Sequence[dict]) -> str:
    """Sources as rows, targets as columns; each cell ``acc / ATR``, plus a row of the targets' clean accuracy."""
    sources = list(dict.fromkeys(c["source"] for c in cells))
    targets = list(dict.fromkeys(c["target"] for c in cells))
    cell = {(c["source"], c["target"]): c for c in cells}
    lines = ["| source \\ target | " + " | ".join(targets) + " |", "|---" + "|---:" * len(targets) + "|"]
    clean = {t: next(c["acc_clean"] for c in cells if c["target"] == t) for t in targets}
    lines.append("| clean acc | " + " | ".join(_fmt(clean[t]) for t in targets) + " |")
    for s in sources:
        vals = [f"{_fmt(cell[(s, t)]['acc'])} / {_fmt(cell[(s, t)]['atr'])}" if (s, t) in cell else MISSING
                for t in targets]
        lines.append(f"| {s} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def matrix_csv(cells: Sequence[dict]) -> str:
    buf = io.StringIO()
    fields = ["source", "target", "n", "acc_clean", "acc", "asr", "atr"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for c in cells:
        writer.writerow({k: ("" if c.get(k) is None else (f"{c[k]:.4f}" if isinstance(c[k], float) else c[k]))
                         for k in fields})
    return buf.getvalue()


def write_matrix(cells: Sequence[dict], out_dir: str | Path, stem: str = "transfer") -> tuple[Path, Path]:
    """``<stem>.md`` (acc / ATR) and ``<stem>.csv`` (every statistic) under ``out_dir``."""
    out_dir = Path(out_dir)
    md, csv_path = out_dir / f"{stem}.md", out_dir / f"{stem}.csv"
    atomic_write_text(md, "Transfer (acc of the target / ATR); rows: source detector, columns: target\n\n"
                      + matrix_markdown(cells))
    atomic_write_text(csv_path, matrix_csv(cells))
    return md, csv_path
