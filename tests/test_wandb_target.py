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
