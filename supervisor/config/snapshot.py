"""The exact config texts that were validated, read once from disk and handed on to workers.

Reading and validating are split so that the root validates a snapshot and the workers run that
same snapshot, never a re-read of files that may have changed in between.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pyws.supervisor.config.diagnostics import ConfigError, Diagnostic
from pyws.supervisor.config.model import Location

CONF_NAME = "conf"
CONF_D_NAME = "conf.d"


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """The exact texts that were validated; JSON-serialisable so the root can hand it to workers."""

    config_dir: str
    files: tuple[tuple[str, str], ...]  # (path, text) in load order

    def to_json(self) -> str:
        return json.dumps({"config_dir": self.config_dir, "files": [list(f) for f in self.files]})

    @classmethod
    def from_json(cls, text: str) -> ConfigSnapshot:
        """The inverse of `to_json`; ValueError if `text` is not a snapshot."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("config_dir"), str):
            raise ValueError("not a config snapshot: no config_dir")
        files = data.get("files")
        if not isinstance(files, list) or not all(_is_file_entry(f) for f in files):
            raise ValueError("not a config snapshot: files must be [path, text] pairs")
        return cls(data["config_dir"], tuple((path, body) for path, body in files))


def _is_file_entry(entry: object) -> bool:
    return (
        isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry)
    )


def read_snapshot(config_dir: str) -> ConfigSnapshot:
    """Read DIR/conf (required) and every regular file of DIR/conf.d/ in alphabetical order.

    Names holding "~" (editor backups) are skipped. Raises ConfigError naming every file that
    could not be read.
    """
    conf = os.path.join(config_dir, CONF_NAME)
    problems: list[Diagnostic] = []
    try:
        paths = [conf, *_fragment_paths(config_dir)]
    except OSError as exc:
        paths = [conf]
        problems.append(_read_problem(os.path.join(config_dir, CONF_D_NAME), exc))
    files: list[tuple[str, str]] = []
    for path in paths:
        try:
            files.append((path, _read_text(path)))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(_read_problem(path, exc))
    if problems:
        raise ConfigError(problems)
    return ConfigSnapshot(config_dir, tuple(files))


def _fragment_paths(config_dir: str) -> list[str]:
    conf_d = os.path.join(config_dir, CONF_D_NAME)
    try:
        names = sorted(os.listdir(conf_d))
    except FileNotFoundError:
        return []  # conf.d is optional
    return [
        os.path.join(conf_d, name)
        for name in names
        if "~" not in name and os.path.isfile(os.path.join(conf_d, name))
    ]


def _read_text(path: str) -> str:
    # utf-8-sig drops a BOM, so columns match what editors show.
    with open(path, encoding="utf-8-sig") as file:
        return file.read()


def _read_problem(path: str, exc: OSError | UnicodeDecodeError) -> Diagnostic:
    if isinstance(exc, UnicodeDecodeError):
        message = f"not UTF-8 text (bad byte at offset {exc.start})"
    elif isinstance(exc, FileNotFoundError) and os.path.basename(path) == CONF_NAME:
        message = "missing: a config dir must hold a 'conf' file with the global settings"
    else:
        message = f"cannot read: {exc.strerror or exc}"
    return Diagnostic(Location(path, 1, 1), "", message, "error")
