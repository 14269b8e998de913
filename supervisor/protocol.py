"""What the root and its workers agree on: the signals between them and the stop bound.

Kept apart from the root's state machine so a booting worker imports only this.
"""

from __future__ import annotations

import signal

DRAIN = signal.SIGTERM  # stop accepting, finish open connections (reload)
STOP = signal.SIGINT  # stop accepting, close idle connections now (shutdown)
ACTIVATE = signal.SIGUSR2  # this worker's generation is now the active one
REOPEN_LOGS = signal.SIGUSR1
KILL = signal.SIGKILL

STOP_BOUND = 10.0  # how long a stop drains when deprecated-timeout-secs is unset
