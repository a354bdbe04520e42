"""Name → class tables with helpful errors.

Components register themselves where they are defined (``@DATASETS.register("waveeq")``), so adding one
touches one file; looking up an unknown name raises an error that lists the valid names and the closest
match, instead of a bare ``KeyError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from varsep.errors import ConfigError

T = TypeVar("T")


def suggest(name: str, valid: list[str]) -> str:
    """A " Did you mean 'x'?" hint for a mistyped ``name``, or ""."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


class Registry(Generic[T]):
    """A table from names to components of one kind (data sets, networks, integrators…)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = sorted(self._items)
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid: {', '.join(valid)}.{suggest(name, valid)}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
