"""Starting one CGI script: its pipes, its fds, its session, its directory and its signals.

    pid, stdout, stdin_w = spawn(program, env, cwd, stdin, stderr)

The script gets, as fds 0-2: `stdin` (an fd such as /dev/null), or when that is -1 the
read end of a new pipe whose write end comes back as `stdin_w`; the write end of a new
pipe whose read end comes back as `stdout`; and `stderr`. Every other fd of the worker is
close-on-exec. It runs in a new session and process group, in `cwd`, with exactly `env`,
and with every signal at its default and none blocked. Our ends are non-blocking and
close-on-exec; the script's stay blocking. OSError if it cannot be started, naming `cwd`
if that could not be entered and `program` otherwise, with nothing left open or running.

The C version (_spawn.c, built by tools/native.py) does all of that in one call, with
vfork. Without a build, `posix_spawn_script` below does the same with os.posix_spawn,
which has no working-directory action: the worker steps into `cwd` itself, and stays.
"""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Callable
from typing import Final

Spawn = Callable[[bytes, dict[bytes, bytes], bytes, int, int], tuple[int, int, int]]

# Every signal the C library lets a program set. An ignored signal stays ignored through
# exec: Python ignores SIGPIPE, and a script's `yes | head -1` must end by it.
_ALL_SIGNALS: Final = tuple(
    s for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)
)


def posix_spawn_script(
    program: bytes, env: dict[bytes, bytes], cwd: bytes, stdin: int, stderr: int
) -> tuple[int, int, int]:
    """spawn() with os.posix_spawn, for a worker running without its C build."""
    in_r, in_w = os.pipe() if stdin < 0 else (stdin, -1)
    out_r, out_w = os.pipe()
    # glibc carries out the dup2s in order: a source among 0-2 could be overwritten by an
    # earlier one. A copy above them is used instead.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) if fd < 3 else -1 for fd in (in_r, stderr)]
    actions = [
        (os.POSIX_SPAWN_DUP2, moved[0] if moved[0] >= 0 else in_r, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, moved[1] if moved[1] >= 0 else stderr, 2),
    ]
    try:
        # By path every time: a directory replaced under the same name (a deploy by
        # rename) must be the one the script runs in.
        os.chdir(cwd)
        pid = os.posix_spawn(
            program,
            [program],
            env,
            file_actions=actions,
            setsid=True,
            setsigmask=(),
            setsigdef=_ALL_SIGNALS,
        )
    except BaseException:
        os.close(out_r)
        if in_w >= 0:
            os.close(in_w)
        raise
    finally:
        # The script's ends: ours must not keep its EOFs away.
        for fd in [out_w, *moved] + ([in_r] if in_w >= 0 else []):
            if fd >= 0:
                os.close(fd)
    os.set_blocking(out_r, False)
    if in_w >= 0:
        os.set_blocking(in_w, False)
    return pid, out_r, in_w


def _best() -> Spawn:
    try:
        from pyws.worker.cgi._spawn import spawn as c_spawn
    except ImportError:  # not built (tools/native.py): the worker runs as pure Python
        return posix_spawn_script
    return c_spawn


spawn: Final = _best()
