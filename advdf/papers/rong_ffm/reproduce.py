"""Seed 002 end to end: forensic autoencoders trained per manipulation, the perturbations that fabricate their outputs,
and Tables 1-4 with the seed's stated numbers and findings.

    python -m advdf.papers.reproduce ffm --scale smoke   (make reproduce-ffm)

Stages (each reused on a rerun): the target FFM (``reproduce.target``, ClassNSeg) on the base data set, then
fine-tuned on the others; the unseen FFMs of Table 4 on every data set; then per data set the clean outputs, IAP-cls
at each iteration count, IAP-seg on the fake frames against seeded random triangles, the UAPs crafted on every data
set's target (data-free) and the URN of the same strength, each carried to every data set and to the unseen FFMs.
Every perturbed batch is checked (budget, box, finite) before it is measured; measured cells are saved under a key
naming the weights, attack settings and frames (``<out>/cells``), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from advdf.attacks.objectives import Context
from advdf.data.dataset import FrameDataset, balanced_subset
from advdf.errors import ConfigError
from advdf.forensics import random_triangle_masks
from advdf.jobs.attack import attack_version
from advdf.jobs.plan import Trained, compose_config, ensure_trained, require_attack_configs
from advdf.jobs.stages import barrier
from advdf.metrics import iou
from advdf.models.checkpoint import file_digest
from advdf.papers.marks import clean_acc, marks_record, plan_marks
from advdf.papers.rong_ffm import layout
from advdf.papers.rong_ffm.figures import ffm_figures
from advdf.papers.rong_ffm.findings import ffm_findings
from advdf.papers.rong_ffm.measure import (
    Cells,
    Meter,
    batches,
    checked,
    mean_or_none,
    measure_predictions,
    outputs,
)
from advdf.report.findings import finding_lines
from advdf.report.render import MISSING, Lines, Reproduced, fmt, long_csv, rate_fields
from advdf.report.wandb import log_wandb_tables
from advdf.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("advdf.reproduce")
# --- the plan ------------------------------------------------------------------------------------------------
def _check_plan(spec: DictConfig) -> None:
    """ConfigError, before any work, for a plan that cannot run."""
    datasets = list(spec.datasets)
    if spec.base not in datasets:
        raise ConfigError(f"reproduce.base={spec.base!r} is not among reproduce.datasets {datasets}")
    needed = ["iap_cls", "iap_seg", "uap_overfire", "urn"]  # seed 002's four perturbations
    absent = [a for a in needed if a not in spec.attacks]
    if absent:
        raise ConfigError(f"reproduce.attacks needs {absent} (seed 002's four perturbations)")
    require_attack_configs(needed)
    for model, how in spec.transfer.items():
        if how.task not in ("ffm", "detector"):
            raise ConfigError(f"reproduce.transfer.{model}.task must be ffm or detector, got {how.task!r}")
    if any(int(k) < 1 for k in spec.iap_iterations):
        raise ConfigError(f"reproduce.iap_iterations must be positive, got {list(spec.iap_iterations)}")


def _train_overrides(base: list[str], task: str, model: str, dataset: str, extra: list[str]) -> list[str]:
    key = "data.manipulation" if task == "ffm" else "+data.manipulation"  # task=ffm declares the key
    return [*base, f"task={task}", f"model={model}", f"{key}={dataset}", *extra]


def _train_all(spec: DictConfig, base: list[str]) -> tuple[dict, dict, dict]:
    """Train (or reuse) the target per data set (the base first, the others fine-tuned from it) and the unseen
    FFMs; returns {dataset: Trained}, {(model, dataset): Trained} and {run key: overrides}."""
    targets, transfer, overrides = {}, {}, {}
    for d in [spec.base, *(d for d in spec.datasets if d != spec.base)]:
        extra = list(spec.training.base) if d == spec.base else [
            *spec.training.finetune, targets[spec.base].override("model.checkpoint_path")]
        overrides[f"{spec.target}/{d}"] = _train_overrides(base, "ffm", spec.target, d, extra)
        log.info("training %s on %s", spec.target, d)
        targets[d] = ensure_trained(overrides[f"{spec.target}/{d}"])
    for model, how in spec.transfer.items():
        for d in spec.datasets:
            overrides[f"{model}/{d}"] = _train_overrides(base, how.task, model, d, list(how.overrides))
            log.info("training %s on %s", model, d)
            transfer[model, d] = ensure_trained(overrides[f"{model}/{d}"])
    return targets, transfer, overrides


def _load(overrides: list[str], trained: Trained) -> torch.nn.Module:
    cfg = compose_config("train", overrides)
    return instantiate(cfg.model, checkpoint_path=str(trained.weights)).eval()


def _attack(spec: DictConfig, name: str):
    """The attack factory ``conf/attack/<name>.yaml`` with the plan's overrides (``factory(model=..., **kw)``), and
    its settings with the class's ``cache_version`` (a cell key: cells an older version measured are not reused)."""
    cfg = compose_config("attack", [f"attack={name}", *(f"attack.{o}" for o in spec.attacks[name])])
    settings = OmegaConf.to_container(cfg.attack, resolve=True)
    return instantiate(cfg.attack), {**settings, "cache_version": attack_version(cfg.attack._target_)}


def _frames(cfg: DictConfig, per_class: int | None) -> FrameDataset:
    """The test frames of one data set, with masks, at most ``per_class`` per class."""
    dm = instantiate(cfg.data)
    dm.prepare_data()
    test = dm.dataset("test")
    rows = balanced_subset(test.rows, per_class, dm.seed) if per_class else test.rows
    return FrameDataset(rows, test.root, test.input_size, masks=True)


# --- the tables ----------------------------------------------------------------------------------------------
def _rate(result: dict, key: str = "correct") -> dict:
    value, n = result.get(key), result.get(f"n_{key}")
    return {"ours": value, **rate_fields(value, n)}


def _value(result: dict, key: str) -> dict:
    return {"ours": result.get(key)}


def _long(table: str, keys: dict, metric: str, cell: dict, marks_fields: dict) -> dict:
    return {"table": table, **keys, "metric": metric, "ours": cell.get("ours"), "paper": None,
            **{k: cell[k] for k in ("n", "lo", "hi") if k in cell}, **marks_fields}




def reproduce_ffm(scale: str, overrides: list[str], results_suffix: str = "") -> Reproduced:
    """Seed 002's Tables 1-4 and its findings; outputs in ``<results>/ffm_<scale><results_suffix>/``."""
    say = Lines()
    base = [f"experiment=ffm_{scale}", *overrides]
    plan = compose_config("train", [*base, "task=ffm", "model=classnseg"])
    spec = plan.reproduce
    _check_plan(spec)
    datasets = list(spec.datasets)
    out_dir = Path(plan.paths.results_dir) / f"ffm_{scale}{results_suffix}"
    cells = Cells(out_dir / "cells")
    t_start = time.perf_counter()
    targets, transfer, run_overrides = _train_all(spec, base)
    barrier("seed 002's attacks")
    t_train = time.perf_counter() - t_start
    nets = {d: _load(run_overrides[f"{spec.target}/{d}"], t) for d, t in targets.items()}
    others = {(m, d): _load(run_overrides[f"{m}/{d}"], t) for (m, d), t in transfer.items()}
    weights = {**{f"{spec.target}/{d}": file_digest(t.weights) for d, t in targets.items()},
               **{f"{m}/{d}": file_digest(t.weights) for (m, d), t in transfer.items()}}
    frames = {d: _frames(compose_config("train", run_overrides[f"{spec.target}/{d}"]), spec.per_class)
              for d in datasets}
    rows_of = {d: [r["row"] for r in f.rows] for d, f in frames.items()}
    iap_cls, iap_cls_cfg = _attack(spec, "iap_cls")
    iap_seg, iap_seg_cfg = _attack(spec, "iap_seg")
    uap, uap_cfg = _attack(spec, "uap_overfire")
    urn, urn_cfg = _attack(spec, "urn")
    side = int(plan.model.input_size)
    uaps = {a: uap(model=nets[a]) for a in datasets}  # crafted on first use, once per data set's target
    noise = urn(model=nets[spec.base])

    def clean(d):
        meter = Meter()
        for x, y, m, _ in batches(frames[d]):
            measure_predictions(meter, nets[d], x, y, m)
        return meter.result()

    def iap(d, k):
        meter = Meter()
        for x, y, m, _ in batches(frames[d]):
            attack = iap_cls(model=nets[d], steps=int(k))
            x_adv = checked(attack.run(x, y).x_adv, x, attack.eps)
            measure_predictions(meter, nets[d], x, y, m, x_adv)
        return meter.result()

    def seg(d):
        meter = Meter()
        for x, y, m, idx in batches(frames[d]):
            fake = y == 1
            if not fake.any():
                continue
            x, y, m, idx = x[fake], y[fake], m[fake], idx[fake]
            adv_mask = random_triangle_masks(idx, side, seed=int(spec.mask_seed))
            attack = iap_seg(model=nets[d])
            x_adv = checked(attack.run(x, y, Context(adv_mask=adv_mask, mask=m)).x_adv, x, attack.eps)
            for state, z in (("before", x), ("after", x_adv)):
                pred, masks = outputs(nets[d], z)
                meter.add(**{f"correct_{state}": pred == y, f"iou_orig_{state}": iou(masks, m),
                             f"iou_adv_{state}": iou(masks, adv_mask)})
        return meter.result()

    def universal(model, d, perturb, eps):
        meter = Meter()
        for x, y, m, _ in batches(frames[d]):
            measure_predictions(meter, model, x, y, m, checked(perturb(x, y), x, eps))
        return meter.result()

    key = {"frames": None, "side": side}
    results = {"clean": {}, "iap": {}, "seg": {}, "uap": {}, "urn": {}, "transfer": {}}
    for d in datasets:
        k0 = {**key, "frames": rows_of[d], "weights": weights[f"{spec.target}/{d}"]}
        results["clean"][d] = cells.get(f"clean__{d}", k0, lambda d=d: clean(d))
        for k in spec.iap_iterations:
            results["iap"][d, int(k)] = cells.get(f"iap_cls_{k}__{d}", {**k0, "attack": iap_cls_cfg, "steps": int(k)},
                                                  lambda d=d, k=k: iap(d, k))
        results["seg"][d] = cells.get(f"iap_seg__{d}", {**k0, "attack": iap_seg_cfg, "mask_seed": spec.mask_seed},
                                      lambda d=d: seg(d))
        results["urn"][d] = cells.get(f"urn__{d}", {**k0, "attack": urn_cfg},
                                      lambda d=d: universal(nets[d], d, noise.apply, noise.eps))
        for a in datasets:
            ka = {**k0, "attack": uap_cfg, "crafted_on": weights[f"{spec.target}/{a}"]}
            results["uap"][a, d] = cells.get(f"uap_{a}__{d}", ka, lambda a=a, d=d: universal(
                nets[d], d, uaps[a].apply, uaps[a].eps))
        for m in spec.transfer:
            kt = {**key, "frames": rows_of[d], "weights": weights[f"{m}/{d}"]}
            results["transfer"][m, d] = {
                "clean": cells.get(f"{m}_clean__{d}", kt, lambda m=m, d=d: universal(
                    others[m, d], d, lambda x, y: x, 0.0)),
                "uap": cells.get(f"{m}_uap__{d}", {**kt, "attack": uap_cfg, "crafted_on": weights[f"{spec.target}/{d}"]},
                                 lambda m=m, d=d: universal(others[m, d], d, uaps[d].apply, uaps[d].eps)),
                "urn": cells.get(f"{m}_urn__{d}", {**kt, "attack": urn_cfg},
                                 lambda m=m, d=d: universal(others[m, d], d, noise.apply, noise.eps))}
    examples = ffm_figures(out_dir, spec, nets, frames, uaps, iap_cls, iap_seg, side)
    wall = time.perf_counter() - t_start

    # marks: each data set's target by its clean test accuracy (of its training run), Table 4 by each model's worst
    marks = plan_marks(spec, {d: clean_acc(t.metrics) for d, t in targets.items()})
    transfer_marks = plan_marks(spec, {m: min((clean_acc(transfer[m, d].metrics) or 0.0) for d in datasets)
                                       for m in spec.transfer})
    long_cells: list[dict] = []
    t1 = {}
    for d in datasets:
        t1[d, 0] = {"acc": _rate(results["clean"][d]), "rmse": {"ours": 0.0},
                    "iou_fake": _value(results["clean"][d], "iou_fake"), "iou_all": _value(results["clean"][d], "iou_all")}
        for k in spec.iap_iterations:
            r = results["iap"][d, int(k)]
            t1[d, int(k)] = {"acc": _rate(r), "rmse": _value(r, "rmse"), "iou_fake": _value(r, "iou_fake"),
                             "iou_all": _value(r, "iou_all")}
    t2 = {}
    for d in datasets:
        r = results["seg"][d]
        for state in ("before", "after"):
            t2[d, "original" if state == "before" else "attacked"] = {
                "acc": _rate(r, f"correct_{state}"), "iou_orig": _value(r, f"iou_orig_{state}"),
                "iou_adv": _value(r, f"iou_adv_{state}")}
    clean3 = {d: _rate(results["clean"][d]) for d in datasets}
    uap3 = {(a, d): _rate(results["uap"][a, d]) for a in datasets for d in datasets}
    urn3 = {d: _rate(results["urn"][d]) for d in datasets}
    t4 = {(m, d): {k: _rate(v) for k, v in results["transfer"][m, d].items()} for m in spec.transfer for d in datasets}
    for (d, k), c in t1.items():
        for metric, cell in c.items():
            long_cells.append(_long("table1", {"dataset": d, "iterations": k}, metric, cell, marks.fields(d)))
    for (d, state), c in t2.items():
        for metric, cell in c.items():
            long_cells.append(_long("table2", {"dataset": d, "images": state}, metric, cell, marks.fields(d)))
    for d in datasets:
        long_cells.append(_long("table3", {"perturbation": "clean", "dataset": d}, "acc", clean3[d], marks.fields(d)))
        long_cells.append(_long("table3", {"perturbation": "urn", "dataset": d}, "acc", urn3[d], marks.fields(d)))
        for a in datasets:
            long_cells.append(_long("table3", {"perturbation": f"uap_{a}", "dataset": d}, "acc", uap3[a, d],
                                    marks.fields(d)))
    for (m, d), c in t4.items():
        for k, cell in c.items():
            long_cells.append(_long("table4", {"model": m, "dataset": d}, k, cell, transfer_marks.fields(m)))

    same = [uap3[d, d]["ours"] for d in datasets]
    unseen_drop = [clean3[d]["ours"] - uap3[a, d]["ours"] for a in datasets for d in datasets if a != d
                   and None not in (clean3[d]["ours"], uap3[a, d]["ours"])]
    urn_drop = [clean3[d]["ours"] - urn3[d]["ours"] for d in datasets if None not in (clean3[d]["ours"], urn3[d]["ours"])]
    seg_before = [t2[d, "original"]["iou_orig"]["ours"] for d in datasets]
    seg_after = [t2[d, "attacked"]["iou_orig"]["ours"] for d in datasets]
    seg_adv = [t2[d, "attacked"]["iou_adv"]["ours"] for d in datasets if t2[d, "attacked"]["iou_adv"]["ours"] is not None]
    ours_summary = {"uap_clean_same": mean_or_none(clean3[d]["ours"] for d in datasets), "uap_same": mean_or_none(same),
                    "uap_unseen_drop": mean_or_none(unseen_drop), "urn_drop": mean_or_none(urn_drop),
                    "seg_iou_orig_before": mean_or_none(seg_before), "seg_iou_orig_after": mean_or_none(seg_after),
                    "seg_iou_adv_after": max(seg_adv) if seg_adv else None}
    drops = {m: mean_or_none(t4[m, d]["clean"]["ours"] - t4[m, d]["uap"]["ours"] for d in datasets) for m in spec.transfer}
    summary = layout.summary_cells(ours_summary, drops)
    found = ffm_findings(spec, datasets, t1, t2, clean3, uap3, urn3, t4, marks)

    md1 = layout.table1_markdown(t1, [0, *spec.iap_iterations], marks)
    md2 = layout.table2_markdown(t2, marks)
    md3 = layout.table3_markdown(clean3, uap3, urn3, datasets, marks)
    md4 = layout.table4_markdown(t4, list(spec.transfer), datasets, transfer_marks)
    mds = layout.summary_markdown(summary)
    for name, text in (("table1.md", md1), ("table2.md", md2), ("table3.md", md3), ("table4.md", md4),
                       ("summary.md", mds)):
        atomic_write_text(out_dir / name, text)
    atomic_write_text(out_dir / "cells.csv", long_csv(long_cells, ["table", "dataset", "iterations", "images",
                                                                   "perturbation", "model"]))
    report = {"scale": scale, "overrides": overrides, "wall_s": wall, "train_s": t_train,
              "runs": {k: {"run": str(t.directory), "reused": t.reused, "metrics": t.metrics}
                       for k, t in [*((f"{spec.target}/{d}", t) for d, t in targets.items()),
                                    *((f"{m}/{d}", t) for (m, d), t in transfer.items())]},
              "results": {kind: {"/".join(map(str, k if isinstance(k, tuple) else (k,))): v for k, v in r.items()}
                          for kind, r in results.items()},
              "summary": summary, "findings": [f.as_dict() for f in found], "marks": marks_record(marks),
              "uap_craft_grad_calls": {a: u.craft_grad_calls for a, u in uaps.items()}, "figures": examples}
    atomic_write_json(out_dir / "report.json", report)
    tables = {"ffm_cells": (long_cells, ["table", "dataset", "iterations", "images", "perturbation", "model"]),
              "ffm_summary": (summary, ["quantity", "label"])}
    log_wandb_tables("ffm", scale, out_dir, tables, images={k: Path(v) for k, v in examples.items()}, plan=plan)

    say(f"reproduce-ffm ({scale}): {wall:.0f} s (training {t_train:.0f} s)")
    for k, t in report["runs"].items():
        m = t["metrics"]
        say(f"  {k}: test acc {fmt(m.get('test/acc'))}, IoU (fake) {fmt(m.get('test/iou_fake'))}"
            f"{', reused' if t['reused'] else ''}")
    say(f"\nSeed 002, Table 1 — IAP-cls: accuracy [Wilson 95 %], RMSE (0-255), mask IoU; paper: {MISSING} "
        "(its table's numbers are lost)\n")
    say(md1)
    say("Seed 002, Table 2 — IAP-seg on fake frames against random triangles\n")
    say(md2)
    say("Seed 002, Table 3 — UAP (rows: crafted on) vs URN, accuracy of each data set's model (columns)\n")
    say(md3)
    say("Seed 002, Table 4 — the UAPs carried to unseen FFMs\n")
    say(md4)
    say("The numbers seed 002's text states, beside ours (fractions)\n")
    say(mds)
    say("Seed 002's findings, on these numbers (over every data set, and over those whose model reaches the "
        "clean-accuracy threshold):")
    for line in finding_lines(found):
        say(f"  {line}")
    say(f"written: {out_dir}/table1-4.md, summary.md, cells.csv, report.json, {', '.join(sorted(examples))}.png")
    return Reproduced(out_dir, str(say), findings=tuple(found),
                      tables={"ffm_cells": (long_cells, ["table", "dataset", "iterations", "images", "perturbation",
                                                         "model"])})




__all__ = ["reproduce_ffm"]
