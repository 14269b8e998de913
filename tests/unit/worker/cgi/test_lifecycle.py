"""Every ordering of the CGI facts ends with a whole or correctly failed response and a
reaped child: the lighttpd mod_cgi race (bug #2217) cannot happen by construction."""

from __future__ import annotations

import itertools
import signal

import pytest

from pyws.worker.cgi.lifecycle import (
    AbortResponse,
    CGILifecycle,
    ChildExited,
    ClientGone,
    Command,
    EndResponse,
    Fact,
    GraceExpired,
    KillGroup,
    SendBody,
    SendError,
    SendHead,
    StderrEOF,
    StdoutData,
    StdoutEOF,
    StdoutLast,
    StopReading,
    TimedOut,
)

GOOD = b"Content-type: text/html\n\nPlain text cxx!\n"  # the seed's script output
NO_BLANK_LINE = b"Content-type: text/html\nPlain text"
NO_TYPE = b"X-A: 1\n\nbody"
OUTPUTS = {"good": GOOD, "unterminated": NO_BLANK_LINE, "no-type": NO_TYPE}

# The six facts of the issue, in every order.
SIX = ("exit", "data", "eof", "stderr-eof", "client-gone", "timeout")


def fact(name: str, output: bytes, code: int) -> Fact:
    facts: dict[str, Fact] = {
        "exit": ChildExited(code),
        "data": StdoutData(output),
        "eof": StdoutEOF(),
        "stderr-eof": StderrEOF(),
        "client-gone": ClientGone(),
        "timeout": TimedOut(),
    }
    return facts[name]


def run(
    order: tuple[str, ...], output: bytes, code: int, own_stderr: bool = True, joined: bool = False
) -> tuple[CGILifecycle, list[Command]]:
    """Feed the facts as the process layer would, then what a kill brings about.
    `own_stderr`: the request has a stderr pipe of its own; pyws's process layer gives the
    script the mount's pipe instead (stderr.py), so its lifecycle starts with it closed.
    `joined`: a "data" right before "eof" is fed as one StdoutLast, as the process layer
    does when one read found the output and the next its EOF."""
    machine = CGILifecycle("/srv/cgi/test", stderr_open=own_stderr)
    commands: list[Command] = []
    for i, name in enumerate(order):
        pinned = machine.pins_group
        if joined and name == "eof" and order[i - 1] == "data":
            continue  # fed with the data
        if joined and name == "data" and order[i + 1 : i + 2] == ("eof",):
            commands += machine.handle(StdoutLast(output))
            continue
        new = machine.handle(fact(name, output, code))
        if name == "exit" and any(isinstance(c, KillGroup) for c in new):
            # The process layer reaps before feeding the exit unless the group is pinned.
            assert pinned, order
        commands += new
    if any(isinstance(c, KillGroup) for c in commands):
        commands += machine.handle(GraceExpired())
    return machine, commands


def check_response(
    order: tuple[str, ...], output: bytes, commands: list[Command], joined: bool = False
) -> None:
    heads = [c for c in commands if isinstance(c, SendHead | SendError)]
    # Only output that ended with the read that completed its head is known to be whole.
    joined = joined and order.index("eof") == order.index("data") + 1
    assert all(c.whole == joined for c in heads if isinstance(c, SendHead)), order
    ends = [c for c in commands if isinstance(c, EndResponse | AbortResponse)]
    client_gone_at = order.index("client-gone")
    timeout_at = order.index("timeout")
    eof_at = order.index("eof")
    data_at = order.index("data")
    whole = output == GOOD and data_at < eof_at < min(client_gone_at, timeout_at)
    if whole:
        # The response is whole however the exit and stderr fell around it.
        assert [type(c) for c in heads] == [SendHead]
        assert ends == [EndResponse()]
        body = b"".join(
            c.data if isinstance(c, SendBody) else c.body
            for c in commands
            if isinstance(c, SendBody | SendHead)
        )
        assert body == b"Plain text cxx!\n"
        return
    # Otherwise it failed correctly: at most one head, never a clean end after a failure.
    assert len(heads) <= 1
    assert EndResponse() not in commands
    if heads and isinstance(heads[0], SendHead):
        gone_first = client_gone_at < timeout_at
        assert ends == ([] if gone_first else [AbortResponse()])
    if heads and isinstance(heads[0], SendError):
        assert heads[0].status in (502, 504)
        assert ends == []


@pytest.mark.parametrize("own_stderr", [True, False], ids=["own-stderr", "mount-stderr"])
@pytest.mark.parametrize("output", list(OUTPUTS), ids=list(OUTPUTS))
@pytest.mark.parametrize("code", [0, 1, -signal.SIGSEGV])
def test_every_ordering_ends_well(output: str, code: int, own_stderr: bool) -> None:
    for order, joined in itertools.product(itertools.permutations(SIX), (False, True)):
        machine, commands = run(order, OUTPUTS[output], code, own_stderr, joined)
        assert machine.done, order
        assert not machine.child_alive, order  # reaped: the exit was seen and recorded
        assert machine.outcome in ("complete", "failed"), order
        check_response(order, OUTPUTS[output], commands, joined)
        # Nothing is sent after the client left.
        gone = order.index("client-gone")
        sent_after = run(order[: gone + 1], OUTPUTS[output], code, own_stderr)[1]
        assert len([c for c in commands if isinstance(c, SendBody)]) == len(
            [c for c in sent_after if isinstance(c, SendBody)]
        ), order


def test_exit_before_eof_still_completes() -> None:
    """The seed's race: the script exits while its output still sits in the pipe."""
    machine = CGILifecycle("s")
    commands = machine.handle(StdoutData(GOOD[:10]))
    commands += machine.handle(ChildExited(0))
    assert not machine.done
    commands += machine.handle(StdoutData(GOOD[10:]))
    commands += machine.handle(StdoutEOF())
    commands += machine.handle(StderrEOF())
    assert machine.done and machine.outcome == "complete"
    assert commands[-1] == EndResponse()


def test_grandchild_holding_stdout_keeps_the_response_open_until_timeout() -> None:
    machine = CGILifecycle("s")
    machine.handle(StdoutData(b"Content-Type: text/plain\n\npartial"))
    machine.handle(ChildExited(0))
    machine.handle(StderrEOF())
    assert not machine.done and machine.outcome is None
    commands = machine.handle(TimedOut())
    assert AbortResponse() in commands  # headers were sent: close the connection
    assert KillGroup(signal.SIGTERM) in commands and StopReading() in commands
    assert not machine.done  # the grandchild holding stdout may ignore SIGTERM
    assert machine.handle(GraceExpired()) == [KillGroup(signal.SIGKILL)]
    assert machine.done


def test_timeout_before_headers_is_504_and_kills_the_group() -> None:
    machine = CGILifecycle("s")
    commands = machine.handle(TimedOut())
    assert SendError(504) in commands
    assert KillGroup(signal.SIGTERM) in commands and StopReading() in commands
    # Stderr was read through the grace, for the script's last words; then it is closed.
    expected = [KillGroup(signal.SIGKILL), StopReading(stderr=True)]
    assert machine.handle(GraceExpired()) == expected
    machine.handle(ChildExited(-signal.SIGKILL))
    assert machine.done


def test_content_length_is_honoured() -> None:
    machine = CGILifecycle("s")
    commands = machine.handle(StdoutData(b"Content-Type: a/b\nContent-Length: 3\n\nabcdef"))
    assert isinstance(commands[-1], SendHead) and commands[-1].body == b"abc"
    assert machine.handle(StdoutEOF()) == [EndResponse()]


def test_output_whole_at_its_first_read_goes_with_its_head() -> None:
    machine = CGILifecycle("s", stderr_open=False)
    commands = machine.stdout_last(GOOD)
    assert len(commands) == 2 and commands[1] == EndResponse()
    head = commands[0]
    assert isinstance(head, SendHead) and head.whole and head.body == b"Plain text cxx!\n"
    assert machine.outcome == "complete" and not machine.stdout_open
    # After a head that went out, the last bytes are plain body.
    machine = CGILifecycle("s")
    machine.stdout_data(b"Content-Type: a/b\n\nfirst ")
    body, end = machine.stdout_last(b"last")
    assert isinstance(body, SendBody) and body.data == b"last" and end == EndResponse()
    # A declared length still rules: short of it, the response is cut off.
    machine = CGILifecycle("s")
    commands = machine.stdout_last(b"Content-Type: a/b\nContent-Length: 9\n\nabc")
    assert isinstance(commands[0], SendHead) and commands[0].head.content_length == 9
    assert AbortResponse() in commands and machine.outcome == "failed"


def test_short_body_aborts() -> None:
    machine = CGILifecycle("s")
    machine.handle(StdoutData(b"Content-Type: a/b\nContent-Length: 9\n\nabc"))
    commands = machine.handle(StdoutEOF())
    assert AbortResponse() in commands and machine.outcome == "failed"


def test_client_leaving_after_a_whole_response_does_not_kill_a_lingering_script() -> None:
    machine = CGILifecycle("s")
    machine.handle(StdoutData(GOOD))
    machine.handle(StdoutEOF())
    machine.handle(StderrEOF())
    assert machine.handle(ClientGone()) == []
    assert machine.outcome == "complete" and not machine.done
    machine.handle(ChildExited(0))
    assert machine.done


@pytest.mark.parametrize(
    "pieces",
    [
        [b"Content-Type: a/b\n", b"\nbody"],
        [b"Content-Type: a/b\r\n\r", b"\nbody"],
        [b"Content-", b"Type: a/b\r", b"\n", b"\r\nbo", b"dy"],
    ],
    ids=["lf", "crlf", "bytewise"],
)
def test_a_blank_line_split_between_reads_still_ends_the_header_section(
    pieces: list[bytes],
) -> None:
    machine = CGILifecycle("s")
    commands: list[Command] = []
    for piece in pieces:
        commands += machine.handle(StdoutData(piece))
    heads = [c for c in commands if isinstance(c, SendHead)]
    assert len(heads) == 1 and heads[0].head.headers == ((b"Content-Type", b"a/b"),)
    sent = heads[0].body + b"".join(c.data for c in commands if isinstance(c, SendBody))
    assert sent == b"body"
