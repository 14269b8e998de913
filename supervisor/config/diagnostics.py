"""Config diagnostics: one error or warning with its place, and the error that carries them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pyws.supervisor.config.model import Location

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem in a config; `str()` is the `FILE:LINE:COL: key.path: message` line."""

    location: Location
    path: str  # e.g. "vhosts[0].mounts[1].origin"; empty for syntax errors
    message: str
    severity: Severity

    def __str__(self) -> str:
        where = f"{self.location.file}:{self.location.line}:{self.location.col}:"
        path = f" {self.path}:" if self.path else ""
        label = " warning:" if self.severity == "warning" else ""
        return f"{where}{path}{label} {self.message}"


class ConfigError(Exception):
    """A config that cannot be served; `diagnostics` holds every error and warning found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class DiagnosticLog:
    """Collects diagnostics during one load, so every problem is reported, not just the first."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, location: Location, path: str, message: str) -> None:
        self.items.append(Diagnostic(location, path, message, "error"))

    def warning(self, location: Location, path: str, message: str) -> None:
        self.items.append(Diagnostic(location, path, message, "warning"))

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def in_order(self, files: Sequence[str]) -> tuple[Diagnostic, ...]:
        """Sorted by file in load order, then by position, as a reader goes through them."""
        rank = {file: index for index, file in enumerate(files)}

        def position(d: Diagnostic) -> tuple[int, int, int]:
            return rank.get(d.location.file, len(rank)), d.location.line, d.location.col

        return tuple(sorted(self.items, key=position))
