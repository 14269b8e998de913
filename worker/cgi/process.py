"""Running one CGI script: the asyncio side of `CGILifecycle`.

The subprocess protocol turns pipe and exit callbacks into lifecycle facts and
carries out the commands on a `CGISink`, the HTTP side of the exchange. uvloop
reaps the child itself and reports it through `process_exited`, in whatever
order relative to the pipes' EOF: the lifecycle does not care.

Order of calls: `start_cgi()`; then `feed_body()`* and `end_body()` as the
request content arrives; `pause_output()`/`resume_output()` from the client's
flow control; `client_gone()` if the connection drops. The sink hears
`finished()` exactly once, when the child was reaped and both pipes closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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


class CGIRun(asyncio.SubprocessProtocol):
    def __init__(self, script: str, sink: CGISink, timeout: float) -> None:
        self.lifecycle = lc.CGILifecycle(script)
        self.sink = sink
        self.script = script
        self.pid = 0
        self._transport: asyncio.SubprocessTransport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(timeout, self._feed, lc.TimedOut())
        self._grace: asyncio.TimerHandle | None = None
        self._stdin_open = True
        self._stderr_tail = b""
        self._finished = False

    # asyncio.SubprocessProtocol -------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport
        self.pid = transport.get_pid()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        if fd == _STDOUT:
            self._feed(lc.StdoutData(data))
        elif fd == _STDERR:
            self._log_stderr(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == _STDOUT:
            self._feed(lc.StdoutEOF())
        elif fd == _STDERR:
            self._log_stderr(b"\n" if self._stderr_tail else b"")
            self._feed(lc.StderrEOF())
        else:
            # The script closed stdin or exited: whatever body is left has nowhere to go.
            self._stdin_open = False
            self.sink.resume_request_body()

    def process_exited(self) -> None:
        assert self._transport is not None
        code = self._transport.get_returncode()
        self._feed(lc.ChildExited(code if code is not None else -1))

    def pause_writing(self) -> None:
        self.sink.pause_request_body()  # the script's stdin pipe is full

    def resume_writing(self) -> None:
        self.sink.resume_request_body()

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
        if self.lifecycle.done and not self._finished:
            self._finished = True
            self.cancel_timers()
            if self._transport is not None:
                self._transport.close()
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
            case lc.StopReading():
                for fd in (_STDOUT, _STDERR):
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
        if self._grace is None:
            self._grace = self._loop.call_later(KILL_GRACE_SECS, self._feed, lc.GraceExpired())

    def _pipe(self, fd: int) -> asyncio.BaseTransport | None:
        if self._transport is None:
            return None
        return self._transport.get_pipe_transport(fd)

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
    """Spawn `program` in its own session and process group, fds 0-2 only (every other fd
    of the worker is close-on-exec); raises OSError when it cannot be executed."""
    loop = asyncio.get_running_loop()
    run = CGIRun(program, sink, timeout)
    try:
        await loop.subprocess_exec(
            lambda: run,
            program,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        run.cancel_timers()
        raise
    return run
