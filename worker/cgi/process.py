"""Running one CGI script: the asyncio side of `CGILifecycle`.

Pipe callbacks and the child's exit (seen on a pidfd and reaped right there) become
lifecycle facts, in whatever order they come: the lifecycle does not care. Its
commands are carried out on a `CGISink`, the HTTP side of the exchange.

Order of calls: `start_cgi()`; then `feed_body()`* and `end_body()` as the
request content arrives; `pause_output()`/`resume_output()` from the client's
flow control; `client_gone()` if the connection drops. The sink hears
`finished()` exactly once, when the child was reaped and both pipes closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from typing import Final, Protocol

from pyws.worker.cgi.headers import CGIHead
from pyws.worker.cgi.lifecycle import (
    AbortResponse,
    CGILifecycle,
    Command,
    EndResponse,
    KillGroup,
    LogError,
    SendBody,
    SendError,
    SendHead,
    StopReading,
)
from pyws.worker.cgi.pipes import PipeWatcher, watcher_for
from pyws.worker.cgi.spawn import spawn
from pyws.worker.deadline import DeadlineTimer

log: Final = logging.getLogger("pyws.cgi")

READ_SIZE: Final = 65536  # of a script's stdout, at a time: what a pipe holds by default
KILL_GRACE_SECS: Final = 2.0  # between SIGTERM and SIGKILL of the script's process group

# Compiled (tools/native.py), `os.read` is a lookup in the module's dict at every call:
# what every request calls is looked up once, here.
_os_read: Final = os.read
_os_close: Final = os.close
_os_write: Final = os.write
_spawn: Final = spawn
_waitid: Final = os.waitid
_P_PID: Final = os.P_PID
_POLL: Final = os.WEXITED | os.WNOHANG
_WNOWAIT: Final = os.WNOWAIT
_CLD_EXITED: Final = os.CLD_EXITED


def _read(fd: int) -> bytes | None:
    """What the pipe `fd` holds; b"" at its EOF (or when it failed), None if it is empty."""
    try:
        return _os_read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _forget(pipes: PipeWatcher, fd: int) -> int:
    """Stop watching the open `fd` and close it; -1, to mark it closed. Callers check that
    it is open first."""
    pipes.forget(fd)
    _os_close(fd)
    return -1


@functools.cache
def _null_stdin() -> int:
    """The stdin of a script whose request has no content: opened once, kept open."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


class CGISink(Protocol):
    """What the HTTP side does with a script's response, and its request-body flow control."""

    def send_head(self, head: CGIHead, body: bytes = b"", whole: bool = False) -> None: ...
    def send_body(self, data: bytes) -> None: ...
    def end(self) -> None: ...
    def fail(self, status: int) -> None: ...
    def abort(self) -> None: ...
    def pause_request_body(self) -> None: ...
    def resume_request_body(self) -> None: ...
    def finished(self) -> None: ...


class CGIRun:
    """One script: its stdin and stdout pipes, its exit, its timers, and its lifecycle.

    What starts the same for every script is a class attribute: a run sets only its own."""

    pid = 0
    _stdin = -1  # our end of the script's stdin pipe, while open
    _stdout = -1  # our end of its stdout pipe, while open
    _pidfd = -1  # watched once the script may outlive its stdout (_watch_exit)
    _stdin_buf: bytearray | None = None  # what the script's full stdin pipe could not take
    _stdin_end = False  # close stdin once the buffer is written
    _out_paused = False
    _grace: DeadlineTimer | None = None  # SIGTERM went: SIGKILL follows at its deadline
    _finished = False

    def __init__(
        self, script: str, sink: CGISink, timeout: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        # Stderr goes to the mount's own pipe (stderr.py): no request waits for its EOF.
        self.lifecycle = CGILifecycle(script, stderr_open=False)
        self.sink = sink
        self.script = script
        self._loop = loop
        self._pipes = watcher_for(loop)
        self._timer = DeadlineTimer(loop, self._timed_out)
        self._timer.arm(loop.time() + timeout)

    def start(
        self, program: bytes, env: dict[bytes, bytes], cwd: bytes, stderr: int, content: bool
    ) -> None:
        """Spawn (spawn.py) with the mount's `stderr` pipe (stderr.py); OSError if it cannot
        be executed. Without request `content`, stdin is /dev/null: a pipe that would only
        carry an EOF costs five syscalls more."""
        self.pid, out_r, in_w = _spawn(program, env, cwd, -1 if content else _null_stdin(), stderr)
        self._stdout = out_r
        self._stdin = in_w
        self._pipes.watch(out_r, self._on_stdout)

    def _on_stdout(self) -> None:
        data = _read(self._stdout)
        if data is None:
            return
        if not data:
            self._stdout_closed()
            return
        if not self.lifecycle.head_sent and len(data) < READ_SIZE:
            # Before the head goes out, one read more: a short script has often written
            # everything and closed stdout already, and then the head can carry the body's
            # length. A syscall per read until the head is out, most often one.
            more = _read(self._stdout)
            if more == b"":
                self._stdout_closed(last=data)
                return
            if more:
                data += more
        self._carry_out(self.lifecycle.stdout_data(data))

    def _stdout_closed(self, last: bytes = b"") -> None:
        """Our end of stdout is to be closed: at its EOF (after the `last` bytes read, if
        any), or when the lifecycle stops reading."""
        self._stdout = _forget(self._pipes, self._stdout)
        lifecycle = self.lifecycle
        self._carry_out(lifecycle.stdout_last(last) if last else lifecycle.stdout_eof())
        # A script that closed its stdout has usually exited too: reaping it now costs
        # one syscall, where watching its exit costs a pidfd and a loop registration.
        if self.lifecycle.child_alive and not self._reap():
            self._watch_exit()

    def _close_stdin(self) -> None:
        if self._stdin >= 0:
            self._stdin = _forget(self._pipes, self._stdin)

    def _watch_exit(self) -> None:
        """Watch for the exit on a pidfd, from the moment the script may outlive its stdout
        (its EOF came first, or a kill began). Until then its exit would change nothing:
        the response ends on stdout's EOF alone, and an unreaped child cannot lose its pid."""
        if self._pidfd < 0 and self.lifecycle.child_alive:
            self._pidfd = os.pidfd_open(self.pid)
            self._pipes.watch(self._pidfd, self._on_exit)

    def _unwatch_exit(self) -> None:
        if self._pidfd >= 0:
            self._pidfd = _forget(self._pipes, self._pidfd)

    def _on_exit(self) -> None:
        # The pidfd is readable once the script has exited. Never waited for with a hang:
        # a call may come for an fd number this pidfd had before (see pipes.py).
        self._reap()

    def _reap(self) -> bool:
        """If the script has exited, feed its exit, carry out its commands and reap it;
        False if it is still running."""
        # While a group kill may follow the exit, the zombie is kept (WNOWAIT) until the
        # commands ran: it pins its pid, so the kill reaches its own group and no other.
        pinned = self.lifecycle.pins_group
        options = _POLL | (_WNOWAIT if pinned else 0)
        try:
            info = _waitid(_P_PID, self.pid, options)
        except ChildProcessError:
            info = None  # not ours to wait for any more: report it as gone
        else:
            if info is None:
                return False
        # Reaped, or about to be: a pidfd still watched would report this exit a second
        # time, and its waitid could then meet a new child that was given the same pid.
        self._unwatch_exit()
        code = -1 if info is None else info.si_status
        if info is not None and info.si_code != _CLD_EXITED:
            code = -info.si_status  # killed by a signal, as subprocess reports it
        # Not _carry_out(): the sink hears finished() only once the zombie below is reaped.
        for command in self.lifecycle.child_exited(code):
            self._execute(command)
        if pinned:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
        self._check_done()
        return True

    # The HTTP side ----------------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        if self._stdin < 0:
            return  # the script closed stdin or exited: the rest has nowhere to go
        if self._stdin_buf:
            self._stdin_buf += data
            return
        self._stdin_buf = bytearray(data)
        self._flush_stdin()
        if self._stdin_buf:
            self._pipes.watch(self._stdin, self._on_stdin_writable, write=True)
            self.sink.pause_request_body()  # the script's stdin pipe is full

    def _on_stdin_writable(self) -> None:
        self._flush_stdin()
        if not self._stdin_buf and self._stdin >= 0:
            self._pipes.forget(self._stdin)
            self.sink.resume_request_body()
            if self._stdin_end:
                self._close_stdin()

    def _flush_stdin(self) -> None:
        buf = self._stdin_buf
        assert buf is not None
        try:
            while buf:
                written = _os_write(self._stdin, buf)
                del buf[:written]
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the script will read no more
            buf.clear()
            self._close_stdin()
            self.sink.resume_request_body()

    def end_body(self) -> None:
        self._stdin_end = True
        if not self._stdin_buf:
            self._close_stdin()

    def pause_output(self) -> None:
        if self._stdout >= 0 and not self._out_paused:
            self._out_paused = True
            self._pipes.forget(self._stdout)

    def resume_output(self) -> None:
        if self._stdout >= 0 and self._out_paused:
            self._out_paused = False
            self._pipes.watch(self._stdout, self._on_stdout)

    def cancel_timers(self) -> None:
        self._timer.close()
        if self._grace is not None:
            self._grace.close()

    def client_gone(self) -> None:
        self._carry_out(self.lifecycle.client_gone())

    # Carrying out the lifecycle's commands -------------------------------

    def _timed_out(self) -> None:
        self._carry_out(self.lifecycle.timed_out())

    def _grace_expired(self) -> None:
        self._carry_out(self.lifecycle.grace_expired())

    def _carry_out(self, commands: list[Command]) -> None:
        for command in commands:
            self._execute(command)
        self._check_done()

    def _check_done(self) -> None:
        if self.lifecycle.done and not self._finished:
            self._finished = True
            self.cancel_timers()
            self._close_stdin()
            if self._stdout >= 0:
                self._stdout = _forget(self._pipes, self._stdout)
            self.sink.finished()

    def _execute(self, command: Command) -> None:
        # isinstance on classes imported by name, not `match`: compiled, each class pattern
        # is a lookup in the module's dict and each field a generic getattr.
        if isinstance(command, SendHead):
            self.sink.send_head(command.head, command.body, command.whole)
        elif isinstance(command, SendBody):
            self.sink.send_body(command.data)
        elif isinstance(command, EndResponse):
            self.sink.end()
        elif isinstance(command, SendError):
            self.sink.fail(command.status)
        elif isinstance(command, AbortResponse):
            self.sink.abort()
        elif isinstance(command, KillGroup):
            self._kill(command.signum)
        elif isinstance(command, StopReading):
            # Stderr is the mount's pipe (stderr.py): there is only stdout to stop.
            if self._stdout >= 0:
                self._stdout_closed()
        elif isinstance(command, LogError):
            log.error("cgi %s", command.message)

    def _kill(self, signum: int) -> None:
        self._watch_exit()  # the script may now end without closing its stdout first
        if self.pid:
            # The script leads its own process group: this reaches its children too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)
        if self._grace is None and signum == signal.SIGTERM:
            self._grace = DeadlineTimer(self._loop, self._grace_expired)
            self._grace.arm(self._loop.time() + KILL_GRACE_SECS)


def start_cgi(
    program: bytes,
    env: dict[bytes, bytes],
    cwd: bytes,
    sink: CGISink,
    timeout: float,
    *,
    name: str,
    stderr: int,
    loop: asyncio.AbstractEventLoop,
    content: bool = True,
) -> CGIRun:
    """Run `program` for one request; raises OSError when it cannot be executed.
    `name`: the script, as logs call it; `stderr`: the mount's stderr pipe; `loop`: the
    running one (asking asyncio costs a getpid() syscall); `content`: the request has
    content for stdin."""
    run = CGIRun(name, sink, timeout, loop)
    try:
        run.start(program, env, cwd, stderr, content)
    except BaseException:
        run.cancel_timers()
        raise
    return run
