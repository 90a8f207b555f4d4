"""A reproduce target run once per synthetic data seed, and the findings and cells compared across the seeds.

    python -m advdf.papers.reproduce table3 --scale smoke --data-seeds 0,1,2   (make reproduce-table3 DATA_SEEDS=0,1,2)

Seed ``s`` generates its own synthetic FF++ tree (``data.synthetic.seed=s``; for ``s`` other than 0 under
``<data_dir>/ffpp_synthetic_seed<s>``) and writes its tables to ``<results>/<table>_<scale>_seed<s>/``; seed 0 keeps
the default tree and results directory, so an earlier run without ``--data-seeds`` is reused. Trained detectors are
kept apart by their run digest, which covers the data's identity. The comparison goes to
``<results>/<table>_<scale>_seeds/`` (``summary.md``, ``summary.csv``, ``summary.json``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from advdf.errors import ConfigError
from advdf.jobs.plan import compose_config
from advdf.report.render import Lines, Reproduced
from advdf.report.seeds import cell_spread, finding_counts, spread_csv, summary_markdown
from advdf.utils.io import atomic_write_json, atomic_write_text

# Per target: the experiment prefix and the config it is composed with (as the target itself composes it).
PLANS = {"table1": ("table1", "train"), "table2": ("table2", "evaluate"), "kra": ("kra", "attack"),
         "table3": ("xai", "train"), "table4": ("xai", "train"), "ffm": ("ffm", "train")}
# Set per seed: a user's override of them would be silently replaced.
SEEDED_KEYS = ("data.synthetic.seed", "data.synthetic", "data.root")


def parse_data_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ConfigError for anything but distinct non-negative integers."""
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ConfigError(f"--data-seeds takes distinct non-negative integers separated by commas (e.g. 0,1,2), "
                          f"got {text!r}")
    seeds = [int(p) for p in parts]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"--data-seeds lists {repeated} more than once (got {text!r})")
    return seeds


def seed_overrides(seed: int) -> list[str]:
    """The overrides that select data seed ``seed``: the generator's seed, and for seeds other than 0 a tree of
    its own (seed 0 keeps the default root, so earlier runs are reused)."""
    root = [f"data.root=${{paths.data_dir}}/ffpp_synthetic_seed{seed}"] if seed else []
    return [f"data.synthetic.seed={seed}", *root]


def results_suffix(seed: int) -> str:
    """The suffix of a seed's results directory (``""`` for seed 0: the default directory)."""
    return f"_seed{seed}" if seed else ""


def _trainer_override(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return key == "trainer" or key.startswith("trainer.")


def check_seeded_plan(table: str, scale: str, overrides: list[str]) -> None:
    """Raise ConfigError before any work when the plan cannot vary its data seed: it reads real data, or the user
    already sets what each seed sets."""
    clash = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] in SEEDED_KEYS]
    if clash:
        raise ConfigError(f"--data-seeds sets data.synthetic.seed and data.root itself; drop {clash}")
    prefix, config = PLANS[table]
    if config != "train":  # as the target composes it: trainer overrides reach its training stages only
        overrides = [o for o in overrides if not _trainer_override(o)]
    cfg = compose_config(config, [f"experiment={prefix}_{scale}", *overrides])
    if cfg.data.get("synthetic") is None:
        raise ConfigError(f"--data-seeds varies the synthetic data's seed, and {table} at {scale} scale reads real "
                          f"data ({cfg.data.root}, data.synthetic null); run it without --data-seeds")


def reproduce_seeds(target: Callable[..., Reproduced], table: str, scale: str, overrides: list[str],
                    seeds: list[int]) -> Reproduced:
    """Run ``target`` once per data seed and write the comparison; returns its directory and the printed report
    (each seed's report, then the summary)."""
    check_seeded_plan(table, scale, overrides)
    results: dict[int, Reproduced] = {}
    for seed in seeds:
        extra = seed_overrides(seed)
        kwargs = {"results_suffix": results_suffix(seed)} if seed else {}  # seed 0: the target's own default
        results[seed] = target(scale, [*overrides, *extra], **kwargs)
    out_dir = results[seeds[0]].out_dir.parent / f"{table}_{scale}_seeds"
    counts = finding_counts({s: r.findings for s, r in results.items()})
    spread = cell_spread({s: r.tables for s, r in results.items()})
    out_dirs = {s: str(r.out_dir) for s, r in results.items()}
    md = summary_markdown(f"reproduce-{table} ({scale})", seeds, counts, spread, out_dirs)
    atomic_write_text(out_dir / "summary.md", md)
    atomic_write_text(out_dir / "summary.csv", spread_csv(spread, seeds))
    atomic_write_json(out_dir / "summary.json", {
        "table": table, "scale": scale, "overrides": overrides, "seeds": seeds,
        "seed_overrides": {s: seed_overrides(s) for s in seeds}, "out_dirs": out_dirs, "findings": counts,
        "findings_per_seed": {s: [f.as_dict() for f in r.findings] for s, r in results.items()}, "cells": spread})
    say = Lines()
    for seed, result in results.items():
        say(f"=== data seed {seed} ({' '.join(seed_overrides(seed))}) ===")
        say(result.text)
    say(f"=== across data seeds {', '.join(map(str, seeds))} ===\n")
    say(md)
    say(f"written: {out_dir}/summary.md, summary.csv, summary.json")
    return Reproduced(out_dir, str(say))
