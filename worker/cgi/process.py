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
from typing import Protocol, cast

from pyws.worker.cgi import lifecycle as lc
from pyws.worker.cgi.headers import CGIHead

log = logging.getLogger("pyws.cgi")

KILL_GRACE_SECS = 2.0  # between SIGTERM and SIGKILL of the script's process group
_STDIN, _STDOUT, _STDERR = 0, 1, 2


class CGISink(Protocol):
    """What the HTTP side does with a script's response, and its request-body flow control."""

    def send_head(self, head: CGIHead) -> None: ...
    def send_body(self, data: bytes) -> None: ...
    def end(self) -> None: ...
    def fail(self, status: int) -> None: ...
    def abort(self) -> None: ...
    def pause_request_body(self) -> None: ...
    def resume_request_body(self) -> None: ...
    def finished(self) -> None: ...


class _Pipe(asyncio.Protocol):
    """One of the script's pipes, reporting to its CGIRun by fd number."""

    def __init__(self, run: CGIRun, fd: int) -> None:
        self.run = run
        self.fd = fd

    def data_received(self, data: bytes) -> None:
        self.run.pipe_data_received(self.fd, data)

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost() reports the EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.pipe_connection_lost(self.fd)

    def pause_writing(self) -> None:
        self.run.sink.pause_request_body()  # the script's stdin pipe is full

    def resume_writing(self) -> None:
        self.run.sink.resume_request_body()


class CGIRun:
    """One script: its three pipes, its pidfd, its timers, and its lifecycle."""

    def __init__(self, script: str, sink: CGISink, timeout: float) -> None:
        self.lifecycle = lc.CGILifecycle(script)
        self.sink = sink
        self.script = script
        self.pid = 0
        self._pidfd = -1
        self._pipes: dict[int, asyncio.BaseTransport] = {}
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(timeout, self._feed, lc.TimedOut())
        self._grace: asyncio.TimerHandle | None = None
        self._stdin_open = True
        self._stderr_tail = b""
        self._finished = False

    async def start(self, program: str, env: dict[str, str], cwd: str) -> None:
        """Spawn in a new session and process group with fds 0-2 only (every other fd of the
        worker is close-on-exec); OSError if it cannot be executed.

        posix_spawn (a vfork-style clone) blocks the loop least: ~0.6 ms against ~0.9 for
        subprocess and ~3.7 for uvloop's fork-based spawn. It has no working-directory
        argument, so the worker steps into `cwd` around the call: single-threaded, nothing
        else runs meanwhile, and the worker's own cwd is "/" (see boot)."""
        fds = [os.pipe() for _ in range(3)]
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = fds
        actions = [
            (os.POSIX_SPAWN_DUP2, in_r, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        try:
            os.chdir(cwd)
            try:
                self.pid = os.posix_spawn(
                    program, [program], env, file_actions=actions, setsid=True
                )
            finally:
                os.chdir("/")
        except BaseException:
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (in_r, out_w, err_w):
                os.close(fd)  # the script's ends: ours must not keep its EOFs away
        # The exit is watched on its own path: a pidfd, whatever the pipes are doing.
        self._pidfd = os.pidfd_open(self.pid)
        self._loop.add_reader(self._pidfd, self._on_exit)
        loop = self._loop
        stdin, _ = await loop.connect_write_pipe(
            functools.partial(_Pipe, self, _STDIN), os.fdopen(in_w, "wb", buffering=0)
        )
        self._pipes[_STDIN] = stdin
        for fd, raw in ((_STDOUT, out_r), (_STDERR, err_r)):
            transport, _ = await loop.connect_read_pipe(
                functools.partial(_Pipe, self, fd), os.fdopen(raw, "rb", buffering=0)
            )
            self._pipes[fd] = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == _STDOUT:
            self._feed(lc.StdoutData(data))
        elif fd == _STDERR:
            self._log_stderr(data)

    def pipe_connection_lost(self, fd: int) -> None:
        if fd == _STDOUT:
            self._feed(lc.StdoutEOF())
        elif fd == _STDERR:
            self._log_stderr(b"\n" if self._stderr_tail else b"")
            self._feed(lc.StderrEOF())
        else:
            # The script closed stdin or exited: whatever body is left has nowhere to go.
            self._stdin_open = False
            self.sink.resume_request_body()

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        try:
            # WNOWAIT: the zombie keeps its pid, so a group kill commanded by this fact
            # still reaches its own group and no other (see CGILifecycle).
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            info = None
        code = -1 if info is None else info.si_status
        if info is not None and info.si_code != os.CLD_EXITED:
            code = -info.si_status  # killed by a signal, as subprocess reports it
        for command in self.lifecycle.handle(lc.ChildExited(code)):
            self._execute(command)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self._check_done()

    # The HTTP side ----------------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        stdin = cast("asyncio.WriteTransport | None", self._pipe(_STDIN))
        if stdin is not None and self._stdin_open and not stdin.is_closing():
            stdin.write(data)

    def end_body(self) -> None:
        stdin = self._pipe(_STDIN)
        if stdin is not None and not stdin.is_closing():
            stdin.close()

    def pause_output(self) -> None:
        stdout = cast("asyncio.ReadTransport | None", self._pipe(_STDOUT))
        if stdout is not None and not stdout.is_closing():
            stdout.pause_reading()

    def resume_output(self) -> None:
        stdout = cast("asyncio.ReadTransport | None", self._pipe(_STDOUT))
        if stdout is not None and not stdout.is_closing():
            stdout.resume_reading()

    def cancel_timers(self) -> None:
        self._timer.cancel()
        if self._grace is not None:
            self._grace.cancel()

    def client_gone(self) -> None:
        self._feed(lc.ClientGone())

    # Carrying out the lifecycle's commands -------------------------------

    def _feed(self, fact: lc.Fact) -> None:
        for command in self.lifecycle.handle(fact):
            self._execute(command)
        self._check_done()

    def _check_done(self) -> None:
        if self.lifecycle.done and not self._finished:
            self._finished = True
            self.cancel_timers()
            for pipe in self._pipes.values():
                pipe.close()
            self.sink.finished()

    def _execute(self, command: lc.Command) -> None:
        match command:
            case lc.SendHead(head):
                self.sink.send_head(head)
            case lc.SendBody(data):
                self.sink.send_body(data)
            case lc.EndResponse():
                self.sink.end()
            case lc.SendError(status):
                self.sink.fail(status)
            case lc.AbortResponse():
                self.sink.abort()
            case lc.KillGroup(signum):
                self._kill(signum)
            case lc.StopReading(stderr):
                for fd in (_STDOUT, _STDERR) if stderr else (_STDOUT,):
                    pipe = self._pipe(fd)
                    if pipe is not None:
                        pipe.close()
            case lc.LogError(message):
                log.error("cgi %s", message)

    def _kill(self, signum: int) -> None:
        if self.pid:
            # The script leads its own process group: this reaches its children too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)
        if self._grace is None and signum == signal.SIGTERM:
            self._grace = self._loop.call_later(KILL_GRACE_SECS, self._feed, lc.GraceExpired())

    def _pipe(self, fd: int) -> asyncio.BaseTransport | None:
        return self._pipes.get(fd)

    def _log_stderr(self, data: bytes) -> None:
        """Stderr goes to the error log, a line at a time, named by the script: never to
        the client."""
        text = self._stderr_tail + data
        *lines, self._stderr_tail = text.split(b"\n")
        if len(self._stderr_tail) > 4096:
            lines.append(self._stderr_tail)
            self._stderr_tail = b""
        for line in lines:
            if line:
                log.warning("cgi %s stderr: %s", self.script, line.decode("utf-8", "replace"))


async def start_cgi(
    program: str,
    env: dict[str, str],
    cwd: str,
    sink: CGISink,
    timeout: float,
) -> CGIRun:
    """Run `program` for one request; raises OSError when it cannot be executed."""
    run = CGIRun(program, sink, timeout)
    try:
        await run.start(program, env, cwd)
    except BaseException:
        run.cancel_timers()
        raise
    return run
