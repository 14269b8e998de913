"""The shared world: siblings of one generation see each other's messages, others never.

In-process "workers" (several Worlds in one loop), then real processes: children of this test
stand in for a root's workers (the world trusts children of the root pid it is given).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop
from websockets.asyncio.client import connect

from pyws.supervisor.config.model import ProtocolConfig, VhostConfig
from pyws.worker.world import World, list_members
from pyws.worker.ws.standalone import serve_plugins

MIRROR = VhostConfig(
    name="localhost", port=0, ws_protocols=(ProtocolConfig("lws-mirror-protocol", default=True),)
)
_generations = iter(range(1_000_000 + os.getpid() * 100, 10**12))


def new_generation() -> int:
    """A generation number no other test (or earlier run) uses with our root pid."""
    return next(_generations)


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, 30))


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def test_siblings_link_and_generations_stay_apart() -> None:
    async def scenario() -> None:
        gen = new_generation()
        one, two = World(os.getppid(), gen), World(os.getppid(), gen)
        other = World(os.getppid(), gen + 1)
        try:
            for world in (one, two, other):
                await world.start(timeout=5)
            assert one.peers == {two.name} and two.peers == {one.name}
            assert other.peers == set()
            got: dict[str, list[tuple[str, str | bytes]]] = {"one": [], "two": [], "other": []}
            for label, world in (("one", one), ("two", two), ("other", other)):
                world.channel("c").deliver = lambda k, m, label=label: got[label].append((k, m))
            one.channel("c").publish("g", "text é")
            one.channel("c").publish("g", b"\x00binary")
            await wait_until(lambda: len(got["two"]) == 2)
            assert got["two"] == [("g", "text é"), ("g", b"\x00binary")]
            assert got["one"] == got["two"]  # the publisher's own subscriber, at once
            other.channel("c").publish("g", "elsewhere")
            assert got["other"] == [("g", "elsewhere")]
            assert not other.links  # no way out of its generation
            one.channel("c").publish("g", "last")
            await wait_until(lambda: len(got["two"]) == 3)
            assert got["two"][-1] == ("g", "last") and len(got["other"]) == 1
        finally:
            for world in (one, two, other):
                world.close()

    run(scenario())


def test_a_sibling_that_leaves_is_forgotten() -> None:
    async def scenario() -> None:
        gen = new_generation()
        one, two = World(os.getppid(), gen), World(os.getppid(), gen)
        try:
            await one.start()
            await two.start()
            await wait_until(lambda: one.peers == {two.name})
            two.close()
            await wait_until(lambda: not one.peers and not one.links)
            one.channel("c").publish("k", "nobody listens")  # nothing to fail
            assert list_members(one.prefix, one.name) == []
        finally:
            one.close()

    run(scenario())


def test_a_process_that_is_not_a_worker_is_refused() -> None:
    async def scenario() -> None:
        world = World(os.getppid(), new_generation())
        try:
            await world.start()
            # A child of this test is not a child of the world's root (our parent).
            intruder = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",
                __file__,
                "intruder",
                world.name,
                stdout=subprocess.PIPE,
            )
            out, _ = await intruder.communicate()
            assert out.strip() == b"dropped"
            assert world.peers == set()
        finally:
            world.close()

    run(scenario())


def test_mirror_across_in_process_workers_of_one_generation() -> None:
    async def scenario() -> None:
        gen = new_generation()
        worlds = [World(os.getppid(), gen), World(os.getppid(), gen), World(os.getppid(), gen + 1)]
        try:
            async with (
                serve_plugins(MIRROR, world=worlds[0]) as a,
                serve_plugins(MIRROR, world=worlds[1]) as b,
                serve_plugins(MIRROR, world=worlds[2]) as c,
            ):
                for world in worlds:
                    await world.start()
                url = "ws://127.0.0.1:{}/?mirror=room"
                async with (
                    connect(url.format(a.port), proxy=None) as on_a,
                    connect(url.format(b.port), proxy=None) as on_b,
                    connect(url.format(c.port), proxy=None) as on_c,
                ):
                    await wait_until(lambda: all(len(s.websockets) == 1 for s in (a, b, c)))
                    await on_a.send("from a")
                    assert await on_a.recv() == "from a"  # the sender too
                    assert await on_b.recv() == "from a"  # the sibling worker's client
                    await on_c.send(b"from c")
                    assert await on_c.recv() == b"from c"
                    await on_b.send("from b")
                    assert await on_a.recv() == "from b"
                    assert await on_b.recv() == "from b"
                    # The other generation saw neither: its next message is its own.
                    await on_c.send("again")
                    assert await on_c.recv() == "again"
        finally:
            for world in worlds:
                world.close()

    run(scenario())


# -- real processes ---------------------------------------------------------------------------


class Worker:
    """A child process serving the mirror with a World of `generation`; root: this test."""

    def __init__(self, generation: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-P", __file__, "worker", str(generation)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the child exits when its stdin ends
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def workers() -> Iterator[Callable[[int], Worker]]:
    started: list[Worker] = []

    def start(generation: int) -> Worker:
        worker = Worker(generation)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_mirror_across_worker_processes(workers: Callable[[int], Worker]) -> None:
    gen = new_generation()
    one, two, other = workers(gen), workers(gen), workers(gen + 1)

    async def scenario() -> None:
        url = "ws://127.0.0.1:{}/?mirror=x"
        async with (
            connect(url.format(one.port), proxy=None) as on_one,
            connect(url.format(two.port), proxy=None) as on_two,
            connect(url.format(other.port), proxy=None) as on_other,
        ):
            await on_two.send(b"\x01binary stays binary")
            assert await on_one.recv() == b"\x01binary stays binary"
            assert await on_two.recv() == b"\x01binary stays binary"
            await on_other.send("other generation")
            await on_one.send("text stays text")
            assert await on_two.recv() == "text stays text"
            assert await on_one.recv() == "text stays text"
            assert await on_other.recv() == "other generation"

    run(scenario())
    prefix = f"pyws-world/{os.getpid()}/{gen}/"
    assert len(list_members(prefix, "")) == 2
    one.stop()
    two.stop()
    # Nothing of a generation outlives its workers.
    assert list_members(prefix, "") == []


# -- the child processes ------------------------------------------------------------------------


async def serve_worker(generation: int) -> None:
    world = World(os.getppid(), generation)
    async with serve_plugins(MIRROR, world=world) as server:
        await world.start(timeout=5)
        print(server.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    world.close()


def intrude(name: str) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\0" + name)
    me = f"{name.rpartition('/')[0]}/{os.getpid()}.0".encode()
    sock.sendall(len(me).to_bytes(4, "big") + b"\x00\x00\x00\x00\x00" + me)
    sock.settimeout(10)
    print("dropped" if sock.recv(1) == b"" else "kept", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        uvloop.run(serve_worker(int(sys.argv[2])))
    else:
        intrude(sys.argv[2])
