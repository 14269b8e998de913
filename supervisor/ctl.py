"""`pyws-ctl`: reload, status, stop, check and reopen-logs against a running root.

Order of a reload: validate the config here, send SIGHUP, then wait for the root's
state file to record a reload that covers our SIGHUP, and report what it says.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import psutil

from pyws.supervisor.cli import check_config, default_config_dir
from pyws.supervisor.exitcodes import EXIT_FAILURE, EXIT_OK
from pyws.supervisor.statefile import default_pidfile, read_pid, read_state
from pyws.supervisor.status import format_table, read_status

POLL = 0.02


class CtlError(Exception):
    pass


def find_root(pidfile: str, explicit: bool = False) -> int:
    """The root's pid: from the pidfile, else (unless the pidfile was named explicitly) the
    one process titled as a pyws root."""
    pid = read_pid(pidfile)
    if pid is not None and _is_root(pid):
        return pid
    if explicit:
        raise CtlError(f"no running pyws root (pidfile {pidfile})")
    roots = [p.pid for p in psutil.process_iter() if _is_root(p.pid)]
    if len(roots) == 1:
        return roots[0]
    if not roots:
        raise CtlError(f"no running pyws root (pidfile {pidfile})")
    raise CtlError(f"several pyws roots run ({roots}); name one with --pidfile")


def _is_root(pid: int) -> bool:
    try:
        return " ".join(psutil.Process(pid).cmdline()).startswith("pyws: supervisor")
    except psutil.Error:
        return False


def _config_dir(args: argparse.Namespace) -> str:
    if args.config_dir:
        return os.path.abspath(str(args.config_dir))
    state = read_state(args.pidfile)
    config_dir = (state or {}).get("config_dir")
    if isinstance(config_dir, str):
        return config_dir
    return default_config_dir()


def cmd_reload(args: argparse.Namespace) -> int:
    pid = find_root(args.pidfile, args.pidfile_given)
    config_dir = _config_dir(args)
    if check_config(config_dir) != EXIT_OK:
        print(
            f"reload refused: {config_dir} has errors; the current generation serves on",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    sent_at = time.time()
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        state = read_state(args.pidfile) or {}
        result = state.get("reload")
        if isinstance(result, dict) and result.get("covers", 0) >= sent_at:
            if result.get("ok"):
                print(f"reloaded: {result.get('message')}")
                return EXIT_OK
            print(f"reload failed: {result.get('message')}", file=sys.stderr)
            return EXIT_FAILURE
        if not psutil.pid_exists(pid):
            raise CtlError(f"the root (pid {pid}) exited during the reload")
        time.sleep(POLL)
    print(f"reload not finished after {args.timeout}s", file=sys.stderr)
    return EXIT_FAILURE


def cmd_status(args: argparse.Namespace) -> int:
    status = read_status(find_root(args.pidfile, args.pidfile_given), _config_dir(args))
    if args.json:
        print(json.dumps(status.to_json_dict(), indent=2))
    else:
        print(format_table(status))
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    pid = find_root(args.pidfile, args.pidfile_given)
    proc = psutil.Process(pid)
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while _alive(proc):
        if time.monotonic() > deadline:
            print(f"pyws (pid {pid}) still running after {args.timeout}s", file=sys.stderr)
            return EXIT_FAILURE
        time.sleep(POLL)
    print(f"stopped pyws (pid {pid})")
    return EXIT_OK


def _alive(proc: psutil.Process) -> bool:
    # An exited root stays a zombie until its own parent (systemd, a shell) reaps it.
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cmd_check(args: argparse.Namespace) -> int:
    config_dir = _config_dir(args)
    code = check_config(config_dir, sys.stdout)
    print(f"{config_dir}: {'OK' if code == EXIT_OK else 'errors found'}")
    return code


def cmd_reopen_logs(args: argparse.Namespace) -> int:
    status = read_status(find_root(args.pidfile, args.pidfile_given), _config_dir(args))
    pids = [pid for g in status.generations for pid in g.pids]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            continue
    print(f"asked {len(pids)} worker(s) to reopen their logs")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyws-ctl", description="Control a running pyws.")
    parser.add_argument("-c", "--config-dir", metavar="DIR")
    parser.add_argument("--pidfile", help=f"default: {default_pidfile()}")
    sub = parser.add_subparsers(dest="command", required=True)
    reload = sub.add_parser("reload", help="validate, SIGHUP, wait for the new generation")
    reload.add_argument("--timeout", type=float, default=60.0)
    reload.set_defaults(func=cmd_reload)
    status = sub.add_parser("status", help="live generations")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    stop = sub.add_parser("stop", help="SIGTERM the root and wait for it to exit")
    stop.add_argument("--timeout", type=float, default=60.0)
    stop.set_defaults(func=cmd_stop)
    sub.add_parser("check", help="validate the config").set_defaults(func=cmd_check)
    sub.add_parser("reopen-logs", help="SIGUSR1 every worker").set_defaults(func=cmd_reopen_logs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.pidfile_given = args.pidfile is not None
    args.pidfile = args.pidfile or default_pidfile()
    try:
        code: int = args.func(args)
    except (CtlError, psutil.Error, OSError) as exc:
        print(f"pyws-ctl: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return code


if __name__ == "__main__":
    sys.exit(main())
