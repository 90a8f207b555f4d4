"""Seed 002's subjective test on cached adversarial sets: python assess.py build|serve|report study=<name> ...

    python assess.py build study=demo 'sets=[ffpp_synthetic/*/pgd-*,ffpp_synthetic/*/urn-*]'
    python assess.py serve study=demo server.base_path=/dcr
    python assess.py report study=demo
"""

import sys

import hydra
from omegaconf import DictConfig

from advdf.assess.job import COMMANDS, assess_job
from advdf.utils.entry import exit_on_user_error, set_repo_root
from advdf.utils.overrides import exit_on_bad_command_line

set_repo_root()


@hydra.main(version_base="1.3", config_path="conf", config_name="assess")
@exit_on_user_error
def main(cfg: DictConfig):
    result = assess_job(cfg)
    print(result.get("text", ""), end="")
    return result


def command_as_override(argv: list[str]) -> list[str]:
    """``assess.py build a=b`` -> ``assess.py command=build a=b``; one error: line without a known command."""
    if len(argv) > 1 and argv[1] in COMMANDS:
        return [argv[0], f"command={argv[1]}", *argv[2:]]
    if any(a.startswith(("--", "-")) for a in argv[1:]) or any(a.startswith("command=") for a in argv[1:]):
        return argv  # Hydra's own flags (--help, --cfg) or command= given as an override
    got = f"got {argv[1]!r}" if len(argv) > 1 else "got none"
    print(f"error: assess.py needs a command first: {', '.join(COMMANDS)} ({got}); e.g. "
          "python assess.py build study=<name> sets=[...]", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    sys.argv = command_as_override(sys.argv)
    exit_on_bad_command_line("assess")  # one error: line for a wrong override, before Hydra starts
    main()
