"""Evaluate a detector clean and on cached adversarial sets under each defense: python evaluate.py model=resnet50"""

import hydra
from omegaconf import DictConfig

from advdf.jobs.evaluate import evaluate_job
from advdf.utils.entry import exit_on_user_error, set_repo_root
from advdf.utils.overrides import exit_on_bad_command_line

set_repo_root()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_user_error
def main(cfg: DictConfig):
    return evaluate_job(cfg)


if __name__ == "__main__":
    exit_on_bad_command_line("evaluate")  # one error: line for a wrong override, before Hydra starts
    main()
