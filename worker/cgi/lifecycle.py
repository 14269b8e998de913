"""The life of one CGI request as a sans-I/O state machine: facts in, commands out.

The lighttpd mod_cgi race (a child reaped before its stdout was drained, and a
response never finished) cannot happen here by construction:
- the response ends only on EOF of stdout (or a failure), never on the child's exit;
- the child's exit is just a fact to record: reaping is the process layer's job and
  happens whenever the exit is seen, in any order relative to EOF;
- the request is over (`done`) only when the response has ended AND the child was
  reaped AND both pipes are closed AND a kill, once begun, has ended with SIGKILL, so
  nothing is dropped and nothing leaks.

Order of calls: feed facts with `handle()`; carry out the returned commands; after
`KillGroup(SIGTERM)` arm a grace timer and feed `GraceExpired`; stop when `done`.
While `pins_group`, feed `ChildExited` before reaping the child, and carry out its
commands first: a zombie leader still holds its process group's id, so a group kill
cannot miss. Otherwise the fact brings no kill, and may come after the reaping.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Final, Literal

from pyws.worker.cgi.headers import (
    MAX_HEADER_BYTES,
    CGIHead,
    CGIHeaderError,
    find_header_end,
    parse_cgi_head,
)

# Facts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StdoutData:
    data: bytes


@dataclass(frozen=True, slots=True)
class StdoutEOF:
    pass


@dataclass(frozen=True, slots=True)
class StdoutLast:
    """The last data and the EOF after it, seen in one go."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StderrEOF:
    pass


@dataclass(frozen=True, slots=True)
class ChildExited:
    code: int  # exit status, or -signal


@dataclass(frozen=True, slots=True)
class ClientGone:
    pass


@dataclass(frozen=True, slots=True)
class TimedOut:
    pass


@dataclass(frozen=True, slots=True)
class GraceExpired:
    """SIGTERM was sent a while ago and the group may still be alive."""


Fact = (
    StdoutData
    | StdoutEOF
    | StdoutLast
    | StderrEOF
    | ChildExited
    | ClientGone
    | TimedOut
    | GraceExpired
)


# Commands -------------------------------------------------------------------


# The two commands every request makes are plain classes with Final fields (read-only once
# compiled): mypyc builds a frozen dataclass through its interpreted __init__, ten times
# slower than a compiled one.


class SendHead:
    """The head, and the body bytes that came with it: one write for both. `whole`: the
    output ended with them, so the connection may give the body's length."""

    __match_args__ = ("head", "body", "whole")
    __slots__ = ("body", "head", "whole")

    def __init__(self, head: CGIHead, body: bytes = b"", whole: bool = False) -> None:
        self.head: Final = head
        self.body: Final = body
        self.whole: Final = whole


class SendBody:
    __match_args__ = ("data",)
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data: Final = data


@dataclass(frozen=True, slots=True)
class EndResponse:
    pass


@dataclass(frozen=True, slots=True)
class SendError:
    """No header was sent yet: answer with this status instead."""

    status: int


@dataclass(frozen=True, slots=True)
class AbortResponse:
    """A header was sent: the only honest way to fail now is to close the connection."""


@dataclass(frozen=True, slots=True)
class KillGroup:
    signum: int


@dataclass(frozen=True, slots=True)
class StopReading:
    """Close our end of stdout: nothing more will be forwarded. Stderr stays open through
    the grace after SIGTERM (a script's last words; and a shell that reports its killed
    child there would die of SIGPIPE before its TERM trap ran): `stderr` closes it too."""

    stderr: bool = False


@dataclass(frozen=True, slots=True)
class LogError:
    message: str


END_RESPONSE: Final = EndResponse()  # no fields: one value serves every request

Command = (
    SendHead
    | SendBody
    | EndResponse
    | SendError
    | AbortResponse
    | KillGroup
    | StopReading
    | LogError
)


class CGILifecycle:
    """One request's state. `outcome` is None until the response has ended.

    Each fact has a method of its own, which the process layer calls; `handle()` takes any
    fact as a value, as the table test feeds them. What starts the same for every request
    is a class attribute: a request sets only what differs."""

    outcome: str | None = None  # "complete" | "failed"
    head_sent = False
    stdout_open = True
    # A stderr pipe of the request's own, whose EOF the request waits for. pyws's process
    # layer starts with it closed: its scripts write to their mount's pipe (stderr.py).
    stderr_open = True
    child_alive = True
    client_open = True
    exit_code: int | None = None
    # "term": SIGTERM went to the group and SIGKILL is still owed; "ended": SIGKILL went.
    kill: Literal["term", "ended"] | None = None
    _buffer: bytearray | None = None  # a header section that came in pieces, so far
    _remaining: int | None = None  # body bytes still owed when the script set Content-Length

    def __init__(self, script: str, *, stderr_open: bool = True) -> None:
        self.script = script
        if not stderr_open:
            self.stderr_open = False

    @property
    def done(self) -> bool:
        return (
            self.outcome is not None
            and not self.child_alive
            and not self.stdout_open
            and not self.stderr_open
            and self.kill != "term"
        )

    @property
    def pins_group(self) -> bool:
        """A group kill may follow ChildExited: the process layer must feed it before it
        reaps the child (see the module's docstring)."""
        return self.kill == "term"

    def handle(self, fact: Fact) -> list[Command]:
        match fact:
            case StdoutData(data):
                return self.stdout_data(data)
            case StdoutEOF():
                return self.stdout_eof()
            case StdoutLast(data):
                return self.stdout_last(data)
            case StderrEOF():
                return self.stderr_eof()
            case ChildExited(code):
                return self.child_exited(code)
            case ClientGone():
                return self.client_gone()
            case TimedOut():
                return self.timed_out()
            case GraceExpired():
                return self.grace_expired()
        raise AssertionError(fact)

    # The facts ----------------------------------------------------------------

    def stdout_data(self, data: bytes, whole: bool = False) -> list[Command]:
        if self.outcome is not None or not self.stdout_open:
            return []
        if self.head_sent:
            return self._body(data)
        # Most scripts' header section comes whole in one read: it is parsed from `data`
        # itself, and only a section in pieces is gathered in a buffer.
        buffer = self._buffer
        section: bytes | bytearray = data
        start = 0
        if buffer is not None:
            start = max(len(buffer) - 2, 0)  # a blank line may straddle the two reads
            buffer += data
            section = buffer
        bounds = find_header_end(section, start)
        if bounds is None:
            if buffer is None:
                self._buffer = buffer = bytearray(data)
            if len(buffer) > MAX_HEADER_BYTES:
                return self._fail(502, "header section larger than 64 KiB")
            return []
        end, body_start = bounds
        try:
            head = parse_cgi_head(bytes(section[:end]))
        except CGIHeaderError as exc:
            return self._fail(502, str(exc))
        rest = bytes(section[body_start:])
        self._buffer = None
        self.head_sent = True
        self._remaining = head.content_length
        return [SendHead(head, self._clip(rest), whole)]

    def stdout_last(self, data: bytes) -> list[Command]:
        """`data`, then EOF: what a script that wrote everything before its first read
        was served says. A head that has not gone out goes with the whole body, whose
        length the client is then told: no chunked coding, and an HTTP/1.0 connection
        may be kept alive (lighttpd does the same)."""
        return self.stdout_data(data, whole=True) + self.stdout_eof()

    def stdout_eof(self) -> list[Command]:
        self.stdout_open = False
        if self.outcome is not None:
            return []
        if not self.head_sent:
            return self._fail(502, f"output ended before a complete header section{self._why()}")
        if self._remaining:
            return self._fail(502, f"output ended {self._remaining} bytes short of Content-Length")
        self.outcome = "complete"
        return [END_RESPONSE] if self.client_open else []

    def stderr_eof(self) -> list[Command]:
        self.stderr_open = False
        return []

    def child_exited(self, code: int) -> list[Command]:
        self.child_alive = False
        self.exit_code = code
        cmds: list[Command] = []
        if code != 0:
            cmds.append(LogError(f"{self.script} exited with {_describe(code)}"))
        # The script is gone after our SIGTERM: the rest of its group (a grandchild that
        # ignores SIGTERM, say) gets SIGKILL now, while the unreaped leader pins the group id.
        return cmds + self._kill_hard()

    def client_gone(self) -> list[Command]:
        self.client_open = False
        if self.outcome is not None:
            return []  # the response was whole: a lingering script may finish its work
        self.outcome = "failed"
        return self._kill()

    def timed_out(self) -> list[Command]:
        cmds: list[Command] = []
        if self.outcome is None:
            cmds += self._fail(504, "cgi-timeout reached")
        # The response may be complete while the script (or a grandchild holding
        # stdout) lingers: the timeout ends the whole process group either way.
        return cmds + self._kill()

    def grace_expired(self) -> list[Command]:
        cmds = self._kill_hard()
        if self.stderr_open:
            # Whatever still holds stderr (a process that left the group) must not hold the
            # request open.
            self.stderr_open = False
            cmds.append(StopReading(stderr=True))
        return cmds

    # -----------------------------------------------------------------------------

    def _body(self, data: bytes) -> list[Command]:
        data = self._clip(data)
        return [SendBody(data)] if data and self.client_open else []

    def _clip(self, data: bytes) -> bytes:
        if self._remaining is not None:
            data = data[: self._remaining]  # never send more than the script declared
            self._remaining -= len(data)
        return data

    def _fail(self, status: int, message: str) -> list[Command]:
        self.outcome = "failed"
        cmds: list[Command] = [LogError(f"{self.script}: {message}")]
        if self.client_open:
            cmds.append(AbortResponse() if self.head_sent else SendError(status))
        return cmds + self._kill()

    def _kill(self) -> list[Command]:
        cmds: list[Command] = []
        # A pipe still open means some process of the group still holds it, even when the
        # script itself has exited: the whole group goes.
        if self.kill is None and (self.child_alive or self.stdout_open or self.stderr_open):
            self.kill = "term"
            cmds.append(KillGroup(signal.SIGTERM))
        if self.stdout_open:
            self.stdout_open = False
            cmds.append(StopReading())
        return cmds

    def _kill_hard(self) -> list[Command]:
        if self.kill != "term":
            return []
        self.kill = "ended"
        return [KillGroup(signal.SIGKILL)]

    def _why(self) -> str:
        return "" if self.exit_code is None else f" (it exited with {_describe(self.exit_code)})"


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
