"""Attack a detector and cache the adversarial set: python attack.py model=resnet50 attack=pgd attack.eps=8/255"""

import hydra
from omegaconf import DictConfig

from advdf.jobs.attack import attack_job
from advdf.utils.entry import exit_on_user_error, set_repo_root
from advdf.utils.overrides import exit_on_bad_command_line

set_repo_root()


@hydra.main(version_base="1.3", config_path="conf", config_name="attack")
@exit_on_user_error
def main(cfg: DictConfig):
    return attack_job(cfg)


if __name__ == "__main__":
    exit_on_bad_command_line("attack")  # one error: line for a wrong override, before Hydra starts
    main()
