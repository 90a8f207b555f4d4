"""Train one job of a staged reproduction's wave: python stage.py wave=<file> index=<i>  (see advdf.jobs.stages)"""

import hydra
from omegaconf import DictConfig

from advdf.jobs.plan import run_wave_job
from advdf.utils.entry import exit_on_user_error, set_repo_root
from advdf.utils.overrides import exit_on_bad_command_line

set_repo_root()


@hydra.main(version_base="1.3", config_path="conf", config_name="stage")
@exit_on_user_error
def main(cfg: DictConfig):
    return run_wave_job(cfg.wave, int(cfg.index))


if __name__ == "__main__":
    exit_on_bad_command_line("stage")  # one error: line for a wrong override, before Hydra starts
    main()
