"""Command-line overrides checked before an entry point starts: one ``error:`` line instead of Hydra's message or a
traceback from deep inside a job.

Two kinds of mistakes are caught here, before any work:

* an override Hydra cannot apply (an unknown key such as ``attack.fooo=1``, a bad group option, a malformed value);
* a key that composes but that the object it configures does not take (``+attack.foo=1``): every config node with a
  ``_target_`` is checked against the signature of the class or function it builds.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from advdf.errors import ConfigError

# Hydra's own flags: whatever follows them is not an override, and help or completion requests are left to Hydra.
_VALUE_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}
_HYDRA_ONLY = {"--help", "-h", "--hydra-help", "--version", "--info", "-i", "--cfg", "-c", "--resolve", "--package",
               "-p", "--shell-completion", "-sc"}


def cli_overrides(argv: Sequence[str]) -> list[str] | None:
    """The overrides of a command line, or ``None`` when Hydra is asked for something else (help, another config)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _HYDRA_ONLY or arg.split("=")[0] in _HYDRA_ONLY or arg.split("=")[0] in _VALUE_FLAGS:
            return None
        if arg in ("--multirun", "-m"):
            continue
        out.append(arg)
    return out


def first_of_sweeps(overrides: Sequence[str]) -> list[str]:
    """Each sweep (``seed=0,1``, ``range(...)``) replaced by its first value; Hydra's own keys dropped.

    Every job of a sweep composes the same keys, so checking the first job checks the key of every override.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for o in OverridesParser.create().parse_overrides(list(overrides)):
        if o.is_hydra_override() or o.key_or_group.startswith("hydra"):
            continue
        if o.is_sweep_override():
            out.append(f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}")
        else:
            out.append(o.input_line)
    return out


def accepted_options(target: Callable) -> set[str] | None:
    """Keyword arguments ``target`` takes, following ``**kwargs`` up a class's bases; ``None`` when it takes any."""
    chain = [c.__init__ for c in inspect.getmro(target) if "__init__" in vars(c)] if inspect.isclass(target) \
        else [target]
    names: set[str] = set()
    for fn in chain:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self"}
        if fn is object.__init__:
            break
    return None


def _target_nodes(node, path: str = "") -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        if isinstance(node.get("_target_"), str):
            yield path, node
        for key, value in node.items():
            yield from _target_nodes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _target_nodes(value, f"{path}[{i}]")


def check_targets(cfg) -> None:
    """Raise :class:`ConfigError` naming the first key a ``_target_`` node sets that its target does not take."""
    from hydra.utils import get_object
    from omegaconf import OmegaConf

    for path, node in _target_nodes(OmegaConf.to_container(cfg, resolve=False)):
        try:
            target = get_object(node["_target_"])
        except Exception:  # noqa: BLE001 - an unimportable target is reported when it is built, with Hydra's reason
            continue
        options = accepted_options(target)
        if options is None:
            continue
        unknown = [k for k in node if not k.startswith("_") and k not in options]
        if unknown:
            where = f"{path}." if path else ""
            raise ConfigError(f"{where}{unknown[0]} is not an option of {node['_target_']} "
                              f"(its options: {', '.join(sorted(options - {'model'}))})")


def check_command_line(config_dir: Path, config_name: str, argv: Sequence[str]) -> None:
    """Compose ``config_name`` with the command line's overrides as the entry point will, and raise
    :class:`ConfigError` with one line when an override cannot apply or sets an option nothing takes."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = cli_overrides(argv)
    if overrides is None:
        return
    try:
        plain = first_of_sweeps(overrides)
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir), job_name=config_name):
            cfg = compose(config_name=config_name, overrides=plain)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(one_line(err)) from None
    check_targets(cfg)


def one_line(err: BaseException) -> str:
    """Hydra's (often multi-line) message and its cause on one line."""
    match = re.match(r"Could not override '([^']+)'", str(err))
    if match and "not in struct" in str(err.__cause__):
        key = match.group(1)
        return f"unknown config key {key!r} (a key the config does not have; to add one anyway write +{key}=...)"
    parts = [str(err).split("Config search path")[0]]
    cause = err.__cause__
    if cause is not None and str(cause) not in parts[0]:
        parts.append(str(cause).splitlines()[0])
    text = " ".join(line.strip() for part in parts for line in part.splitlines() if line.strip())
    return text.replace(".. ", ". ")


def exit_on_bad_command_line(config_name: str, argv: Sequence[str] | None = None) -> None:
    """For an entry point's ``__main__``: print one ``error:`` line and exit 2 when the command line is wrong."""
    import sys

    from advdf.utils.entry import CONF_DIR

    try:
        check_command_line(CONF_DIR, config_name, sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
