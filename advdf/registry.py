"""One small registry type for detectors, attacks and defenses (names -> factories), timm-style."""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable
from typing import Any

from advdf.errors import ConfigError


class Registry:
    """Named factories of one kind.

    Args:
        kind: what is registered ("detector", "attack", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, obj: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        name = name or obj.__name__.lower()
        if name in self._entries:
            warnings.warn(f"{self.kind} {name!r} registered twice; the later definition wins", stacklevel=3)
        self._entries[name] = obj
        return obj

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        return self._entries[name]

    def values(self) -> list[Callable[..., Any]]:
        return list(self._entries.values())
