"""Command-line checks of the entry points: one error line for a wrong override, no false alarm on any config."""

from __future__ import annotations

import pytest

from advdf.errors import ConfigError
from advdf.utils.entry import CONF_DIR
from advdf.utils.overrides import accepted_options, check_command_line, cli_overrides, first_of_sweeps

GROUPS = {"train": ["model", "augment", "trainer", "logger", "task", "experiment"],
          "attack": ["model", "attack", "defense", "logger", "experiment"],
          "evaluate": ["model", "logger", "experiment"]}


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("config,override", [(c, f"{g}={o}") for c, groups in GROUPS.items() for g in groups
                                             for o in _options(g)])
def test_every_config_option_passes_the_check(config, override):
    check_command_line(CONF_DIR, config, [override])


@pytest.mark.parametrize("argv,message", [
    (["+attack.foo=1"], r"^attack\.foo is not an option of advdf\.attacks\.PGD \(its options: .*eps"),
    (["attack=apgd", "+attack.alpha=0.1"], r"^attack\.alpha is not an option of advdf\.attacks\.APGD"),
    (["attack.fooo=1"], r"^unknown config key 'attack\.fooo' .*\+attack\.fooo="),
    (["model=nope"], r"Could not find 'model/nope'.*resnet50"),
    (["seed=0,1", "+attack.foo=2", "--multirun"], r"^attack\.foo is not an option"),
    (["attack.eps=[1,"], r"."),
])
def test_wrong_overrides_give_one_line(argv, message):
    with pytest.raises(ConfigError, match=message) as err:
        check_command_line(CONF_DIR, "attack", argv)
    assert "\n" not in str(err.value)


def test_sweeps_are_checked_on_their_first_value_and_hydra_keys_are_left_to_hydra():
    assert first_of_sweeps(["seed=0,1", "model=resnet50,mesonet", "hydra/launcher=slurm", "attack.eps=16/255"]) == [
        "seed=0", "model=resnet50", "attack.eps=16/255"]
    assert cli_overrides(["-m", "seed=0,1"]) == ["seed=0,1"]
    assert cli_overrides(["--help"]) is None and cli_overrides(["--config-name", "x"]) is None


def test_accepted_options_follow_kwargs_up_the_bases():
    class Base:
        def __init__(self, a, b=1):
            pass

    class Child(Base):
        def __init__(self, c=2, **kwargs):
            super().__init__(**kwargs)

    assert accepted_options(Child) == {"a", "b", "c"}
    assert accepted_options(lambda **kw: None) is None
