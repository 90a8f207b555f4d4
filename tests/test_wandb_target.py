"""A reproduce run logs its tables to the W&B project and entity its config names (conf/logger/wandb.yaml)."""

from __future__ import annotations

from advdf.jobs.plan import compose_config
from advdf.report.wandb import wandb_target


def test_the_project_and_entity_come_from_the_logger_config():
    plan = compose_config("train", ["logger.wandb.project=lab-deepfakes", "logger.wandb.entity=lab"])
    assert wandb_target(plan) == {"project": "lab-deepfakes", "entity": "lab"}
    assert wandb_target(compose_config("train", [])) == {"project": "advdf", "entity": None}  # the config's defaults


def test_without_a_wandb_logger_the_defaults_are_used():
    assert wandb_target(compose_config("train", ["logger=none"])) == {"project": "advdf", "entity": None}
    assert wandb_target(compose_config("evaluate", ["logger=csv"])) == {"project": "advdf", "entity": None}
    assert wandb_target(None) == {"project": "advdf", "entity": None}


def test_training_runs_of_a_reproduce_run_join_its_group(tmp_path, monkeypatch):
    from advdf.jobs.common import WANDB_GROUP_ENV, build_loggers

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config("train", ["logger=wandb", f"logger.wandb.save_dir={tmp_path}"])
    monkeypatch.delenv(WANDB_GROUP_ENV, raising=False)
    alone = build_loggers(cfg, "train:model=x", "sweep-1")[0]
    assert alone._wandb_init["group"] == "sweep-1"  # a multirun job: grouped by its sweep
    monkeypatch.setenv(WANDB_GROUP_ENV, "table1-smoke")
    inside = build_loggers(cfg, "train:model=x", "sweep-1")[0]
    assert inside._wandb_init["group"] == "table1-smoke" and inside._wandb_init["job_type"] == "train"
    for logger in (alone, inside):
        logger.experiment.finish()
