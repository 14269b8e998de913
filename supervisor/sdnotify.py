"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import time
from contextlib import suppress


class Notifier:
    def __init__(self) -> None:
        path = os.environ.pop("NOTIFY_SOCKET", None)
        self._addr: str | None = None
        if path:
            # A leading '@' names a socket in the abstract namespace.
            self._addr = "\0" + path[1:] if path.startswith("@") else path

    def notify(self, state: str) -> None:
        if self._addr is None:
            return
        if state == "RELOADING=1":
            # systemd wants the reload's start time to order it against READY=1.
            state += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        # If systemd went away there is nobody to tell.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, suppress(OSError):
            sock.sendto(state.encode(), self._addr)
