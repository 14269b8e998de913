"""PipeWatcher on a real loop and real pipes: readiness, level triggering, forgetting, and a
failing callback that stops no other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator

import pytest

from pyws.worker.cgi.pipes import PipeWatcher, watcher_for


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):  # a test closed it
            os.close(fd)


def turns(loop: asyncio.AbstractEventLoop, n: int = 5) -> None:
    """Let the loop go round `n` times."""

    async def go() -> None:
        for _ in range(n):
            await asyncio.sleep(0)

    loop.run_until_complete(go())


def test_a_readable_fd_is_reported_until_drained(
    loop: asyncio.AbstractEventLoop, pipe: tuple[int, int]
) -> None:
    r, w = pipe
    pipes = watcher_for(loop)
    assert watcher_for(loop) is pipes  # one per loop
    seen: list[bytes] = []
    calls = 0

    def on_readable() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            seen.append(os.read(r, 100))  # drained on the third call only

    pipes.watch(r, on_readable)
    turns(loop)
    assert calls == 0  # nothing to read
    os.write(w, b"hello")
    turns(loop)
    assert seen == [b"hello"] and calls == 3  # level-triggered: called until read
    os.close(w)
    turns(loop)
    assert calls > 3  # the writer's close (EOF) is reported too
    pipes.forget(r)
    before = calls
    turns(loop)
    assert calls == before
    pipes.forget(r)  # forgetting an fd not watched does nothing
    pipes.watch(r, on_readable)  # it left the epoll set: it can be watched anew
    pipes.forget(r)


def test_a_writable_fd(loop: asyncio.AbstractEventLoop, pipe: tuple[int, int]) -> None:
    _, w = pipe
    pipes = PipeWatcher(loop)
    writable: list[int] = []
    pipes.watch(w, lambda: writable.append(w), write=True)
    turns(loop, 2)
    assert writable  # an empty pipe takes writes
    pipes.forget(w)


def test_one_failing_callback_stops_no_other(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    pipes = PipeWatcher(loop)
    fds = [os.pipe() for _ in range(3)]
    got: list[int] = []

    def reader(r: int, fail: bool) -> Callable[[], None]:
        def call() -> None:
            os.read(r, 100)
            if fail:
                raise ValueError("a bug in one script's callback")
            got.append(r)

        return call

    try:
        for i, (r, w) in enumerate(fds):
            os.set_blocking(r, False)
            pipes.watch(r, reader(r, fail=i == 1))
            os.write(w, b"x")
        with caplog.at_level(logging.ERROR, "pyws.cgi"):
            turns(loop)
        assert sorted(got) == sorted([fds[0][0], fds[2][0]])
        assert "cgi pipe callback failed" in caplog.text
    finally:
        for r, w in fds:
            pipes.forget(r)
            os.close(r)
            os.close(w)


def test_a_callback_that_forgets_another_fd_of_its_batch(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Both fds are ready in one batch; the first callback to run forgets the other: it
    is not called for an fd it no longer owns."""
    pipes = PipeWatcher(loop)
    (r1, w1), (r2, w2) = os.pipe(), os.pipe()
    calls: list[int] = []

    def first(mine: int, other: int) -> Callable[[], None]:
        def call() -> None:
            calls.append(mine)
            os.read(mine, 10)
            pipes.forget(mine)
            pipes.forget(other)

        return call

    try:
        pipes.watch(r1, first(r1, r2))
        pipes.watch(r2, first(r2, r1))
        os.write(w1, b"x")
        os.write(w2, b"x")
        turns(loop)
        assert len(calls) == 1
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)
