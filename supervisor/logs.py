"""Logging set-up shared by the root and the workers: stdlib logging to stderr."""

from __future__ import annotations

import logging
import os
import sys

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def parse_level(text: str) -> int:
    """`-d` takes a level name or a number (stdlib levels: 10 debug ... 50 critical)."""
    if text.lower() in LEVELS:
        return LEVELS[text.lower()]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"unknown log level {text!r}; use one of {', '.join(LEVELS)}") from None


def setup_logging(level: int, who: str) -> None:
    # journald stamps each line itself; a terminal wants the time.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{stamp}{who}[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
