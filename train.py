"""Train a detector: python train.py model=resnet50 [trainer=gpu] [data.root=...]"""

import hydra
from omegaconf import DictConfig

from advdf.jobs.train import train_job
from advdf.utils.entry import exit_on_user_error, set_repo_root
from advdf.utils.overrides import exit_on_bad_command_line

set_repo_root()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig):
    return train_job(cfg)


if __name__ == "__main__":
    exit_on_bad_command_line("train")  # one error: line for a wrong override, before Hydra starts
    main()
