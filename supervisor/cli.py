"""`pyws`: the root process's command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import version
from typing import TextIO

import psutil
import setproctitle

from pyws.supervisor.config.loader import (
    ConfigError,
    default_data_dir,
    load_config,
    read_snapshot,
)
from pyws.supervisor.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from pyws.supervisor.logs import parse_level, setup_logging
from pyws.supervisor.root import Root
from pyws.supervisor.statefile import StateFile, default_pidfile, read_pid

log = logging.getLogger("pyws.root")

SYSTEM_CONFIG_DIR = "/etc/pyws"


def default_config_dir() -> str:
    """`/etc/pyws` when it exists, else the embedded demo config."""
    return SYSTEM_CONFIG_DIR if os.path.isdir(SYSTEM_CONFIG_DIR) else default_data_dir()


def check_config(config_dir: str, out: TextIO | None = None) -> int:
    """Print every diagnostic; 0 when the config is good, 78 when it is not."""
    stream = sys.stderr if out is None else out
    try:
        _, diagnostics = load_config(read_snapshot(config_dir), default_data_dir())
    except ConfigError as exc:
        print(exc, file=stream)
        return EXIT_CONFIG
    for diag in diagnostics:
        print(diag, file=stream)
    return EXIT_CONFIG if any(d.severity == "error" for d in diagnostics) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyws", description="Serve an lwsws config; SIGHUP reloads, SIGTERM stops."
    )
    parser.add_argument("-c", "--config-dir", metavar="DIR", help="lwsws config dir")
    parser.add_argument(
        "--pidfile",
        metavar="PATH",
        help="pidfile (default: %(default)s)",
        default=default_pidfile(),
    )
    parser.add_argument(
        "-d",
        "--debug",
        metavar="LEVEL",
        default="info",
        help="log level: debug, info, warning, error (default: info)",
    )
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument("--version", action="version", version=f"pyws {version('pyws')}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config_dir = os.path.abspath(args.config_dir or default_config_dir())
    if args.check:
        code = check_config(config_dir, sys.stdout)
        print(f"{config_dir}: {'OK' if code == EXIT_OK else 'errors found'}")
        return code
    try:
        level = parse_level(args.debug)
    except ValueError as exc:
        print(f"pyws: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    setup_logging(level, "pyws-root")
    if check_config(config_dir) != EXIT_OK:
        return EXIT_CONFIG
    running = read_pid(args.pidfile)
    if running is not None and running != os.getpid() and _is_root_process(running):
        log.error("already running as pid %d (pidfile %s)", running, args.pidfile)
        return EXIT_FAILURE
    setproctitle.setproctitle(f"pyws: supervisor -c {config_dir}")
    state = StateFile(args.pidfile)
    state.create(config_dir)
    try:
        code = Root(config_dir, default_data_dir(), logging.getLevelName(level), state).run()
    finally:
        state.remove()
    log.info("exiting with code %d", code)
    return code


def _is_root_process(pid: int) -> bool:
    try:
        return "pyws: supervisor" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


if __name__ == "__main__":
    sys.exit(main())
