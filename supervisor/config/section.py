"""One config object read against its level's keys: typed values, unknown-key and not-built checks.

`read_section` reports every problem to the log and keeps only the values that were valid, so the
builders can go on and find the next problem instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from pyws.supervisor.config.diagnostics import DiagnosticLog
from pyws.supervisor.config.features import not_built
from pyws.supervisor.config.model import Location
from pyws.supervisor.config.schema import Level, unknown_key_message
from pyws.supervisor.config.source import Key, Node
from pyws.supervisor.config.values import PARSERS, ValueProblem

T = TypeVar("T")


@dataclass(slots=True)
class Section:
    """The known keys of one object (or of several merged `global` objects), by canonical name."""

    path: str
    location: Location
    keys: dict[str, Key] = field(default_factory=dict)  # the last spelling seen
    nodes: dict[str, Node] = field(default_factory=dict)
    values: dict[str, list[object]] = field(default_factory=dict)  # valid values only

    def has(self, name: str) -> bool:
        """Whether the key was given at all, valid or not."""
        return name in self.keys

    def key_path(self, name: str) -> str:
        written = self.keys[name].name if name in self.keys else name
        return f"{self.path}.{written}"

    def get(self, name: str, kind: type[T]) -> T | None:
        """The last valid value of `name`; later occurrences override earlier ones."""
        found = self.values.get(name)
        if found and isinstance(found[-1], kind):
            return found[-1]
        return None

    def get_all(self, name: str, kind: type[T]) -> list[T]:
        return [value for value in self.values.get(name, ()) if isinstance(value, kind)]

    def flag(self, name: str) -> bool:
        return self.get(name, bool) or False


def read_section(
    level: Level,
    members: Iterable[tuple[Key, Node]],
    path: str,
    location: Location,
    log: DiagnosticLog,
) -> Section:
    section = Section(path, location)
    for key, node in members:
        name = level.canonical(key.name)
        key_path = f"{path}.{key.name}"
        if name is None:
            log.warning(
                key.location, key_path, unknown_key_message(key.name, level.suggest(key.name))
            )
            continue
        _check_repeat(level, section, name, key, log)
        section.keys[name] = key
        section.nodes[name] = node
        message = not_built(f"{level.name}.{name}")
        if message is not None:
            log.error(key.location, key_path, message)
        try:
            value = PARSERS[level.keys[name]](node)
        except ValueProblem as exc:
            log.error(exc.location, key_path + exc.suffix, exc.message)
            continue
        section.values.setdefault(name, []).append(value)
    return section


def _check_repeat(level: Level, section: Section, name: str, key: Key, log: DiagnosticLog) -> None:
    """Warn about a key given twice in one file; across files, a later file overriding is normal."""
    previous = section.keys.get(name)
    if previous is None or name in level.repeatable:
        return
    if previous.location.file != key.location.file:
        return
    at = previous.location
    log.warning(
        key.location,
        f"{section.path}.{key.name}",
        f"'{key.name}' is given again: this value overrides the one at {at.line}:{at.col}",
    )


def require(section: Section, name: str, log: DiagnosticLog) -> bool:
    """Report a missing required key at the object that lacks it; True when it is there."""
    if section.has(name):
        return True
    log.error(section.location, f"{section.path}.{name}", f"missing required key '{name}'")
    return False
