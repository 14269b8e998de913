"""The one config loader: lwsws config dir -> snapshot -> validated `Config` plus diagnostics.

Order of calls:
1. `read_snapshot(config_dir)` reads DIR/conf and DIR/conf.d/* (the only file-system access);
2. `load_config(snapshot, data_dir)` validates it, purely, returning every error and warning;
3. the root hands `snapshot.to_json()` to its workers, which call `ConfigSnapshot.from_json` and
   `load_config` again, so they run exactly what was validated.
`load_config_dir` does 1 and 2 for callers that only want a `Config` or a `ConfigError`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from pyws.supervisor.config.diagnostics import ConfigError, Diagnostic, DiagnosticLog
from pyws.supervisor.config.model import Config, GlobalConfig, Location
from pyws.supervisor.config.schema import GLOBAL, TOP_KEYS, closest, unknown_key_message
from pyws.supervisor.config.section import read_section
from pyws.supervisor.config.snapshot import CONF_NAME, ConfigSnapshot, read_snapshot
from pyws.supervisor.config.source import Key, Node, ObjectNode, SourceError, describe, parse_source
from pyws.supervisor.config.values import ValueProblem, parse_list
from pyws.supervisor.config.vhosts import build_vhost

__all__ = [
    "ConfigError",
    "ConfigSnapshot",
    "Diagnostic",
    "default_data_dir",
    "load_config",
    "load_config_dir",
    "read_snapshot",
]

logger = logging.getLogger("pyws.config")

_GLOBAL_DEFAULTS = GlobalConfig()


def default_data_dir() -> str:
    """What `_lws_ddir_` stands for: the package data dir `pyws.supervisor.share`."""
    return str(Path(__file__).resolve().parent.parent / "share")


def load_config_dir(config_dir: str, data_dir: str) -> Config:
    """Read and validate a config dir; log its warnings, or raise ConfigError if it has errors.

    A ConfigError carries the warnings too, so printing it shows the whole picture once.
    """
    config, diagnostics = load_config(read_snapshot(config_dir), data_dir)
    if config is None:
        raise ConfigError(diagnostics)
    for diagnostic in diagnostics:
        logger.warning("%s", diagnostic)
    return config


def load_config(
    snapshot: ConfigSnapshot, data_dir: str
) -> tuple[Config | None, tuple[Diagnostic, ...]]:
    """Validate a snapshot without touching the file system; Config is None iff any error."""
    log = DiagnosticLog()
    gathered = _Gathered()
    for path, text in snapshot.files:
        try:
            root = parse_source(text, path, data_dir)
        except SourceError as exc:
            log.error(exc.location, "", exc.message)
            gathered.complete = False
            continue
        gathered.add_document(root, log)
    global_ = _build_global(gathered.global_members, _conf_location(snapshot), log)
    vhosts = tuple(
        vhost
        for path, node in gathered.vhost_nodes
        if (vhost := build_vhost(node, path, log)) is not None
    )
    if gathered.complete and not gathered.vhost_nodes:
        message = "no vhosts: give at least one in conf or in a conf.d/ file"
        log.error(_conf_location(snapshot), "vhosts", message)
    diagnostics = log.in_order([path for path, _ in snapshot.files])
    if log.has_errors:
        return None, diagnostics
    return Config(config_dir=snapshot.config_dir, global_=global_, vhosts=vhosts), diagnostics


def _conf_location(snapshot: ConfigSnapshot) -> Location:
    if snapshot.files:
        return Location(snapshot.files[0][0], 1, 1)
    return Location(os.path.join(snapshot.config_dir, CONF_NAME), 1, 1)


@dataclass(slots=True)
class _Gathered:
    """The top levels of all files: global members in file order and vhost objects by path."""

    global_members: list[tuple[Key, Node]] = field(default_factory=list)
    vhost_nodes: list[tuple[str, Node]] = field(default_factory=list)
    # False once a file could not be read whole: "no vhosts" would then be a guess.
    complete: bool = True

    def add_document(self, root: Node, log: DiagnosticLog) -> None:
        if not isinstance(root, ObjectNode):
            message = f"expected an object at the top level, found {describe(root)}"
            log.error(root.location, "", message)
            self.complete = False
            return
        vhost_count = 0
        for key, node in root.members:
            if key.name == "global":
                self.add_global(node, log)
            elif key.name == "vhosts":
                vhost_count += self.add_vhosts(node, vhost_count, log)
            else:
                message = unknown_key_message(key.name, closest(key.name, TOP_KEYS))
                log.warning(key.location, key.name, message)

    def add_global(self, node: Node, log: DiagnosticLog) -> None:
        if isinstance(node, ObjectNode):
            self.global_members.extend(node.members)
            return
        log.error(node.location, "global", f"expected an object, found {describe(node)}")
        self.complete = False

    def add_vhosts(self, node: Node, first_index: int, log: DiagnosticLog) -> int:
        """Take a `vhosts` list; returns how many items it held, for the next list's paths."""
        try:
            items = parse_list(node)
        except ValueProblem as exc:
            log.error(exc.location, "vhosts", exc.message)
            self.complete = False
            return 0
        self.vhost_nodes.extend(
            (f"vhosts[{first_index + i}]", item) for i, item in enumerate(items)
        )
        return len(items)


def _build_global(
    members: list[tuple[Key, Node]], location: Location, log: DiagnosticLog
) -> GlobalConfig:
    """Merge every file's `global` members: later files override, `plugin-dir`s add up."""
    section = read_section(GLOBAL, members, "global", location, log)
    base = _GLOBAL_DEFAULTS
    timeout = section.get("timeout-secs", float)
    pingpong = section.get("ws-pingpong-secs", float)
    ready = section.get("ready-timeout-secs", float)
    return GlobalConfig(
        username=section.get("username", str),
        groupname=section.get("groupname", str),
        count_threads=section.get("count-threads", int) or base.count_threads,
        server_string=section.get("server-string", str),
        ws_pingpong_secs=base.ws_pingpong_secs if pingpong is None else pingpong,
        init_ssl=section.flag("init-ssl"),
        timeout_secs=base.timeout_secs if timeout is None else timeout,
        deprecated_timeout_secs=section.get("deprecated-timeout-secs", float),
        ready_timeout_secs=base.ready_timeout_secs if ready is None else ready,
        reject_service_keywords=section.get("reject-service-keywords", tuple) or (),
        plugin_dirs=tuple(section.get_all("plugin-dir", str)),
    )
