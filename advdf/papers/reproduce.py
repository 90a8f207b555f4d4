"""Reproduce a paper table end to end from the same configs the entry points use.

    python -m advdf.papers.reproduce table3 --scale smoke [hydra overrides...]   (seed 001: Detect-ResNet50)
    python -m advdf.papers.reproduce table4 --scale smoke   (seed 001: Detect-ResNet50, head only)
    python -m advdf.papers.reproduce table2 --scale smoke   (seed 000: attacks x defenses)
    python -m advdf.papers.reproduce kra --scale smoke      (seed 004: white-box KRA and its transfer)
    python -m advdf.papers.reproduce table1 --scale smoke   (seed 000's and seed 001's clean detectors)
    python -m advdf.papers.reproduce ffm --scale smoke      (seed 002: IAPs and UAPs on forensic autoencoders)
    python -m advdf.papers.reproduce cdmaa --scale smoke    (seed 003: protections against four generators)
    python -m advdf.papers.reproduce table1 --scale smoke --data-seeds 0,1,2   (once per synthetic data seed, and
        the findings and cells compared across them: advdf.papers.seeds)

Every stage is cached: trained detectors (``train_summary.json``), adversarial sets (complete caches) and the
prepared data are reused, so a rerun or a resumed run only does what is missing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from functools import partial
from pathlib import Path

from hydra.errors import ConfigCompositionException, OverrideParseException

from advdf.errors import ConfigError
from advdf.jobs.common import WANDB_GROUP_ENV
from advdf.jobs.plan import compose_config
from advdf.jobs.stages import dry_run_report, plan_stages, run_staged
from advdf.papers.jin2025.table1 import reproduce_table1
from advdf.papers.jin2025.table2 import reproduce_table2
from advdf.papers.liao2021.kra import reproduce_kra
from advdf.papers.pinhasov2024.reproduce import reproduce_xai
from advdf.papers.qiu2022.reproduce import reproduce_cdmaa
from advdf.papers.rong_ffm.reproduce import reproduce_ffm
from advdf.papers.seeds import parse_data_seeds, reproduce_seeds
from advdf.utils.entry import set_repo_root, user_error

TABLES = {"table1": reproduce_table1, "table2": reproduce_table2, "kra": reproduce_kra,
          "table3": partial(reproduce_xai, "table3"), "table4": partial(reproduce_xai, "table4"),
          "ffm": reproduce_ffm, "cdmaa": reproduce_cdmaa}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--scale", choices=("smoke", "paper"), default="smoke")
    parser.add_argument("--data-seeds", default="", metavar="S,S,...",
                        help="run once per synthetic data seed (e.g. 0,1,2) and compare findings and cells across "
                             "them; empty: one run on the configured data")
    parser.add_argument("--launcher", default=None, metavar="NAME",
                        help="staged: train the plan's runs wave by wave as multiruns of stage.py through "
                             "hydra/launcher=NAME (basic: here, one after another; slurm, slurm_cpu: job arrays), "
                             "then collect the tables; overrides starting with hydra. go to those multiruns")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the stages, their jobs and steps and the device-hours they take (steps timed on "
                             "this machine), and run nothing")
    parser.add_argument("--no-timing", action="store_true", help="with --dry-run: do not time any step")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every stage (e.g. trainer=gpu)")
    args = parser.parse_intermixed_args(argv)  # overrides may follow --scale
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s", datefmt="%H:%M:%S")
    set_repo_root()
    plan_overrides = [o for o in args.overrides if not o.startswith(("hydra.", "hydra/"))]
    launcher_overrides = [o for o in args.overrides if o not in plan_overrides]
    plan = partial(TABLES[args.table], args.scale, plan_overrides)
    # the W&B group of the tables' run (advdf.report.wandb), which every training job of this run joins
    own_group = WANDB_GROUP_ENV not in os.environ
    os.environ.setdefault(WANDB_GROUP_ENV, f"{args.table}-{args.scale}")
    try:
        if (args.launcher or args.dry_run) and args.data_seeds.strip():
            raise ConfigError("--data-seeds runs each seed serially; it does not combine with --launcher or --dry-run")
        if launcher_overrides and not args.launcher:
            raise ConfigError(f"{launcher_overrides[0]}: hydra overrides go to --launcher's multiruns; add --launcher")
        if args.dry_run:
            collector, err = plan_stages(plan)
            print(dry_run_report(f"reproduce-{args.table} ({args.scale})", collector, err, not args.no_timing), end="")
            return 0
        if args.launcher:
            work_dir = Path(compose_config("stage", []).paths.artifacts_dir)
            result = run_staged(plan, work_dir / "stages" / f"{args.table}_{args.scale}", args.launcher,
                                launcher_overrides)
        elif args.data_seeds.strip():
            seeds = parse_data_seeds(args.data_seeds)
            result = reproduce_seeds(TABLES[args.table], args.table, args.scale, args.overrides, seeds)
        else:
            result = TABLES[args.table](args.scale, args.overrides)
    except Exception as err:
        user = user_error(err)
        if user is None and isinstance(err, (OverrideParseException, ConfigCompositionException)):
            user = err  # a malformed override or an unknown config option: the user's input, not a bug
        if user is None:
            raise
        print(f"error: {user}", file=sys.stderr)
        return 2
    finally:
        if own_group:
            os.environ.pop(WANDB_GROUP_ENV, None)
    print(result.text, end="")  # the library returns its report; the command line prints it
    return 0


if __name__ == "__main__":
    sys.exit(main())
