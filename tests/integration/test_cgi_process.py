"""CGIRun with real scripts and pipes, its sink recorded: whether a head can go with the
whole body is decided by what the pipe holds, so these tests decide what it holds."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyws.worker.cgi.headers import CGIHead
from pyws.worker.cgi.process import CGIRun, start_cgi

ENV = {b"PATH": b"/usr/bin:/bin"}


class Sink:
    """Every call the run makes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.finished_ = False

    def send_head(self, head: CGIHead, body: bytes = b"", whole: bool = False) -> None:
        self.calls.append(("head", head.status, body, whole))

    def send_body(self, data: bytes) -> None:
        self.calls.append(("body", data))

    def end(self) -> None:
        self.calls.append(("end",))

    def fail(self, status: int) -> None:
        self.calls.append(("fail", status))

    def abort(self) -> None:
        self.calls.append(("abort",))

    def pause_request_body(self) -> None:
        pass

    def resume_request_body(self) -> None:
        pass

    def finished(self) -> None:
        self.finished_ = True


@pytest.fixture
def stderr() -> Iterator[int]:
    fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def until(loop: asyncio.AbstractEventLoop, done: Callable[[], bool], timeout: float = 10) -> None:
    async def wait() -> None:
        while not done():
            await asyncio.sleep(0.005)

    loop.run_until_complete(asyncio.wait_for(wait(), timeout))


def start(
    tmp_path: Path, text: str, sink: Sink, loop: asyncio.AbstractEventLoop, stderr: int
) -> CGIRun:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n" + text)
    script.chmod(0o755)
    return start_cgi(
        bytes(script),
        ENV,
        bytes(tmp_path),
        sink,
        10,
        name=str(script),
        stderr=stderr,
        loop=loop,
        content=True,
    )


def test_output_whole_before_the_first_read_goes_with_its_head(
    tmp_path: Path, loop: asyncio.AbstractEventLoop, stderr: int
) -> None:
    sink = Sink()
    run = start(tmp_path, "printf 'Content-Type: text/plain\\n\\nhello\\n'\n", sink, loop, stderr)
    run.end_body()
    # The loop has not run yet: once the script has exited, its pipe holds all it wrote,
    # then EOF.
    os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOWAIT)
    until(loop, lambda: sink.finished_)
    assert sink.calls == [("head", 200, b"hello\n", True), ("end",)]


def test_output_still_coming_is_streamed(
    tmp_path: Path, loop: asyncio.AbstractEventLoop, stderr: int
) -> None:
    sink = Sink()
    # All of the head and a first piece, and then the script waits for its stdin's EOF:
    # however fast the read, no EOF can be in the pipe with them.
    text = "printf 'Content-Type: text/plain\\n\\nfirst\\n'\nread x\necho after\n"
    run = start(tmp_path, text, sink, loop, stderr)
    until(loop, lambda: bool(sink.calls))
    assert sink.calls == [("head", 200, b"first\n", False)]
    run.end_body()
    until(loop, lambda: sink.finished_)
    assert sink.calls[1:] == [("body", b"after\n"), ("end",)]
