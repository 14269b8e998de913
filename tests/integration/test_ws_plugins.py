"""The built-in plugins on the wire, with websockets' client as the oracle."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from pyws.supervisor.config.model import MountConfig, OriginKind, ProtocolConfig, VhostConfig
from pyws.worker.plugin_api import WorkerInfo
from pyws.worker.ws.standalone import StandaloneServer, serve_plugins


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, 30))


def vhost(*protocols: ProtocolConfig, **options: Any) -> VhostConfig:
    return VhostConfig(name="localhost", port=7681, ws_protocols=protocols, **options)


def ws_url(server: StandaloneServer, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


# -- dumb-increment-protocol ----------------------------------------------------------------


def test_dumb_increment_counts_every_50ms_resets_and_closes() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        config = vhost(ProtocolConfig("dumb-increment-protocol"))
        async with (
            serve_plugins(config) as server,
            connect(
                ws_url(server), subprotocols=[Subprotocol("dumb-increment-protocol")], proxy=None
            ) as ws,
        ):
            started = loop.time()
            numbers = [await ws.recv() for _ in range(10)]
            elapsed = loop.time() - started
            assert numbers == [str(n) for n in range(10)]  # text, from 0, one by one
            assert 0.3 < elapsed < 2.0  # ten ticks of 50 ms
            await ws.send("reset\n")
            seen = [int(await ws.recv())]  # numbers already on their way, then 0 again
            while seen[-1] >= 9 and len(seen) < 50:
                seen.append(int(await ws.recv()))
            assert seen[-1] == 0
            assert [int(await ws.recv()) for _ in range(3)] == [1, 2, 3]
            await ws.send("closeme\n")
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "seeya")

    run(scenario())


# -- lws-mirror-protocol ----------------------------------------------------------------------


def test_mirror_groups_kinds_and_whole_messages() -> None:
    async def scenario() -> None:
        config = vhost(ProtocolConfig("lws-mirror-protocol", default=True))
        async with serve_plugins(config) as server:
            url = ws_url(server, "/?mirror={}")
            async with (
                connect(url.format("a"), proxy=None) as a1,
                connect(url.format("a"), proxy=None) as a2,
                connect(url.format("b"), proxy=None) as b1,
                connect(ws_url(server), proxy=None) as default,
            ):
                await a1.send("hello a")
                assert await a1.recv() == "hello a"  # the sender too
                assert await a2.recv() == "hello a"
                big = bytes(range(256)) * 400  # 100 KiB, sent in four fragments
                await a2.send([big[i : i + 25600] for i in range(0, len(big), 25600)])
                assert await a1.recv() == big  # one whole binary message
                assert await a2.recv() == big
                await b1.send("only b")
                assert await b1.recv() == "only b"
                await default.send("no name")
                assert await default.recv() == "no name"
                # Nothing of b or the default group reached a: its next message is its own.
                await a1.send("a again")
                assert await a2.recv() == "a again"

    run(scenario())


# -- lws-server-status ------------------------------------------------------------------------


@pytest.fixture
def fake_workers() -> Iterator[Callable[[str], int]]:
    """Children of this test titled like workers: the plugin reads the root's children."""
    started: list[subprocess.Popen[bytes]] = []

    def start(title: str) -> int:
        code = (
            "import setproctitle, sys; setproctitle.setproctitle(sys.argv[1]); "
            "print(flush=True); sys.stdin.read()"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, title], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # titled
        started.append(proc)
        return proc.pid

    yield start
    for proc in started:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


def test_server_status_reports_generations_vhosts_and_files(
    fake_workers: Callable[[str], int], tmp_path: Path
) -> None:
    old = fake_workers("pyws: worker gen=6 deprecated")
    new = [fake_workers("pyws: worker gen=7 active") for _ in range(2)]
    temperature = tmp_path / "temp"
    temperature.write_text("42000\n")
    pvo = (("update-ms", "100"), ("filespath", str(temperature)), ("filespath", "/nonexistent"))
    mount = MountConfig("/", f"file://{tmp_path}", OriginKind.FILE, str(tmp_path))
    config = vhost(ProtocolConfig("lws-server-status", pvo), mounts=(mount,))
    worker = WorkerInfo(generation=7, root_pid=os.getpid())

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with (
            serve_plugins(config, worker=worker) as server,
            connect(
                ws_url(server), subprotocols=[Subprotocol("lws-server-status")], proxy=None
            ) as ws,
        ):
            first = json.loads(await ws.recv())  # at once, then every update-ms
            started = loop.time()
            second = json.loads(await ws.recv())
            assert 0.05 < loop.time() - started < 1.5
            for doc in (first, second):
                contexts = {c["generation"]: c for c in doc["i"]["contexts"]}
                assert set(contexts) == {6, 7}
                assert contexts[6]["state"] == "deprecated" and contexts[6]["pids"] == [old]
                assert contexts[6]["deprecated"] == "1" and "vhosts" not in contexts[6]
                assert contexts[7]["state"] == "active" and contexts[7]["pids"] == sorted(new)
                assert contexts[7]["rss_bytes"] > 0 and contexts[7]["age_s"] >= 0
                assert contexts[7]["connections"] == 0  # our fake workers hold none
                (described,) = contexts[7]["vhosts"]
                assert described["name"] == "localhost" and described["port"] == "7681"
                assert described["mounts"][0]["mountpoint"] == "/"
                assert described["ws-protocols"] == [{"lws-server-status": {"status": "ok"}}]
                assert doc["files"] == [{"path": str(temperature), "val": "42000\n"}]

    run(scenario())


def test_server_status_hide_vhosts(fake_workers: Callable[[str], int]) -> None:
    fake_workers("pyws: worker gen=3 active")
    config = vhost(ProtocolConfig("lws-server-status", (("hide-vhosts", "1"),), default=True))

    async def scenario() -> None:
        worker = WorkerInfo(generation=3, root_pid=os.getpid())
        async with (
            serve_plugins(config, worker=worker) as server,
            connect(ws_url(server), proxy=None) as ws,
        ):
            (context,) = json.loads(await ws.recv())["i"]["contexts"]
            assert context["generation"] == 3 and "vhosts" not in context

    run(scenario())
