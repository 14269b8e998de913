"""Exit codes: the contract between the root, its workers and systemd."""

from __future__ import annotations

EXIT_OK = 0  # clean stop, or a worker that drained
EXIT_FAILURE = 1  # any other start failure
EXIT_WORKER_BOOT = 3  # a worker could not boot: the root does not respawn it in a loop
EXIT_CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus=78 stops restart loops
