"""The WebSocket engine on a real socket: websockets' client and raw bytes against WSProtocol."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar

import pytest
import uvloop
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import OPEN, Protocol, Side

from pyws.supervisor.config.model import ProtocolConfig, VhostConfig
from pyws.worker.plugin_api import Plugin, WebSocket
from pyws.worker.ws.connection import WSLimits
from pyws.worker.ws.standalone import StandaloneServer, serve_plugins

KEY = base64.b64encode(b"0123456789abcdef").decode()


class Echo(Plugin):
    name = "echo"
    closed_codes: ClassVar[list[int]] = []

    def message(self, ws: WebSocket, message: str | bytes) -> None:
        if message == "boom":
            raise RuntimeError("a plugin bug")
        if message == "flood":
            for _ in range(4000):
                ws.send(b"x" * 4096)
            return
        ws.send(message)

    def closed(self, ws: WebSocket, code: int) -> None:
        Echo.closed_codes.append(code)


class Other(Plugin):
    name = "other"

    def established(self, ws: WebSocket) -> None:
        ws.send(f"other {ws.path} {ws.query_param('x')}")


CLASSES: dict[str, type[Plugin]] = {"echo": Echo, "other": Other}


def run(coro: Coroutine[Any, Any, None]) -> None:
    uvloop.run(asyncio.wait_for(coro, 30))


def serving(
    protocols: tuple[ProtocolConfig, ...] = (ProtocolConfig("echo", default=True),),
    limits: WSLimits | None = None,
    **vhost_options: Any,
) -> contextlib.AbstractAsyncContextManager[StandaloneServer]:
    vhost = VhostConfig(name="localhost", port=0, ws_protocols=protocols, **vhost_options)
    return serve_plugins(vhost, CLASSES, limits=limits)


def url(server: StandaloneServer, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def client(server: StandaloneServer, path: str = "/", **options: Any) -> connect:
    options.setdefault("proxy", None)
    options.setdefault("open_timeout", 5)
    return connect(url(server, path), **options)


async def raw_handshake(
    server: StandaloneServer, extra: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n" + extra
    )
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head


async def read_frames(reader: asyncio.StreamReader) -> list[Frame]:
    """Every frame the server sends until it closes, parsed by websockets' client side."""
    oracle = Protocol(Side.CLIENT, state=OPEN)
    while data := await reader.read(65536):
        oracle.receive_data(data)
    oracle.receive_eof()
    return [e for e in oracle.events_received() if isinstance(e, Frame)]


def close_of(frames: list[Frame]) -> Close:
    assert frames and frames[-1].opcode is Opcode.CLOSE, frames
    return Close.parse(frames[-1].data)


# -- messages ---------------------------------------------------------------------------------


def test_text_and_binary_echo_whole_and_fragmented() -> None:
    async def scenario() -> None:
        async with serving() as server, client(server) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            await ws.send(["frag", "mented ", "ünïcode"])  # one message in three frames
            assert await ws.recv() == "fragmented ünïcode"
            await ws.send([b"a", b"b"])
            assert await ws.recv() == b"ab"

    run(scenario())


def test_first_frame_in_the_same_packet_as_the_handshake() -> None:
    async def scenario() -> None:
        async with serving() as server:
            frame = Frame(Opcode.TEXT, b"early").serialize(mask=True)
            reader, writer, head = await raw_handshake(server, frame)
            assert head.startswith(b"HTTP/1.1 101 ")
            assert await reader.readexactly(7) == b"\x81\x05early"  # unmasked, from the server
            writer.write(Frame(Opcode.CLOSE, Close(1000, "").serialize()).serialize(mask=True))
            assert close_of(await read_frames(reader)).code == 1000
            writer.close()

    run(scenario())


def test_client_close_reaches_the_plugin() -> None:
    async def scenario() -> None:
        Echo.closed_codes.clear()
        async with serving() as server:
            async with client(server) as ws:
                await ws.send("x")
                await ws.recv()
            await wait_until(lambda: bool(Echo.closed_codes))
            assert Echo.closed_codes == [1000]
            assert not server.websockets

    run(scenario())


# -- negotiation ------------------------------------------------------------------------------


def test_subprotocols_only_those_offered() -> None:
    protocols = (ProtocolConfig("echo"), ProtocolConfig("other"))

    async def scenario() -> None:
        async with serving(protocols) as server:
            async with client(server, "/p?x=1", subprotocols=["nope", "other"]) as ws:
                assert ws.subprotocol == "other"
                assert await ws.recv() == "other /p 1"
            with pytest.raises(InvalidStatus) as refused:
                async with client(server, subprotocols=["nope"]):
                    pass
            assert refused.value.response.status_code == 400
            # No subprotocol and no `default`: nothing to serve it.
            with pytest.raises(InvalidStatus):
                async with client(server):
                    pass

    run(scenario())


def test_no_subprotocol_goes_to_the_default() -> None:
    protocols = (ProtocolConfig("other"), ProtocolConfig("echo", default=True))

    async def scenario() -> None:
        async with serving(protocols) as server, client(server) as ws:
            assert ws.subprotocol is None  # none asked, none echoed (RFC 6455 §4.2.2)
            await ws.send("to the default")
            assert await ws.recv() == "to the default"

    run(scenario())


def test_disable_no_protocol_ws_upgrades() -> None:
    async def scenario() -> None:
        async with serving(disable_no_protocol_ws_upgrades=True) as server:
            with pytest.raises(InvalidStatus) as refused:
                async with client(server):
                    pass
            assert refused.value.response.status_code == 400
            async with client(server, subprotocols=["echo"]) as ws:
                await ws.send("named")
                assert await ws.recv() == "named"

    run(scenario())


def test_basic_auth_pvo_protects_the_upgrade(tmp_path: Path) -> None:
    logins = tmp_path / "logins"
    logins.write_text("user:secret\n")
    protocol = ProtocolConfig("echo", (("basic-auth", str(logins)),), default=True)

    async def scenario() -> None:
        async with serving((protocol,)) as server:
            with pytest.raises(InvalidStatus) as refused:
                async with client(server):
                    pass
            assert refused.value.response.status_code == 401
            assert "Basic" in (refused.value.response.headers.get("WWW-Authenticate") or "")
            wrong = {"Authorization": "Basic " + base64.b64encode(b"user:nope").decode()}
            with pytest.raises(InvalidStatus):
                async with client(server, additional_headers=wrong):
                    pass
            right = {"Authorization": "Basic " + base64.b64encode(b"user:secret").decode()}
            async with client(server, additional_headers=right) as ws:
                await ws.send("in")
                assert await ws.recv() == "in"

    run(scenario())


def test_wrong_version_gets_426() -> None:
    async def scenario() -> None:
        async with serving() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 8\r\n\r\n"
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 426 ")
            assert b"Sec-WebSocket-Version: 13\r\n" in head
            writer.close()

    run(scenario())


# -- errors and limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (Frame(Opcode.TEXT, b"bad \xff utf-8").serialize(mask=True), 1007),
        # A text message split inside a multi-byte sequence, then broken: caught per fragment.
        (
            Frame(Opcode.TEXT, b"ok \xc3", fin=False).serialize(mask=True)
            + Frame(Opcode.CONT, b"(").serialize(mask=True),
            1007,
        ),
        (Frame(Opcode.TEXT, b"unmasked").serialize(mask=False), 1002),
        (b"\x83\x80" + b"\x00" * 4, 1002),  # reserved opcode 3
        (Frame(Opcode.CONT, b"nothing to continue").serialize(mask=True), 1002),
        (Frame(Opcode.BINARY, b"x" * 2048).serialize(mask=True), 1009),
    ],
    ids=["utf8", "utf8-fragment", "unmasked", "opcode", "continuation", "too-big"],
)
def test_bad_frames_close_with_their_code(frame: bytes, code: int) -> None:
    async def scenario() -> None:
        async with serving(limits=WSLimits(max_message=1024)) as server:
            reader, writer, head = await raw_handshake(server)
            assert head.startswith(b"HTTP/1.1 101 ")
            writer.write(frame)
            assert close_of(await read_frames(reader)).code == code
            writer.close()

    run(scenario())


def test_fragments_add_up_to_the_message_limit() -> None:
    async def scenario() -> None:
        async with serving(limits=WSLimits(max_message=1024)) as server:
            reader, writer, _ = await raw_handshake(server)
            for _ in range(3):
                writer.write(
                    Frame(
                        Opcode.BINARY if _ == 0 else Opcode.CONT, b"y" * 500, fin=False
                    ).serialize(mask=True)
                )
            assert close_of(await read_frames(reader)).code == 1009
            writer.close()

    run(scenario())


def test_plugin_exception_closes_that_connection_only() -> None:
    async def scenario() -> None:
        async with serving() as server, client(server) as calm, client(server) as ws:
            await ws.send("boom")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
            await calm.send("still here")
            assert await calm.recv() == "still here"

    run(scenario())


def test_slow_consumer_is_closed_1008_with_bounded_memory() -> None:
    limits = WSLimits(max_queue=256 * 1024, close_timeout=30.0)

    async def scenario() -> None:
        async with serving(limits=limits) as server:
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: "
                + KEY.encode()
                + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
                + Frame(Opcode.TEXT, b"flood").serialize(mask=True)
            )
            # 16 MB asked for and not read: the server gives up past its queue bound.
            await wait_until(lambda: len(server.websockets) == 1)
            ws = next(iter(server.websockets))
            await wait_until(lambda: ws.close_code == 1008)
            assert ws.buffered <= limits.max_queue + 4096 + 64
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            await reader.readuntil(b"\r\n\r\n")
            frames = await read_frames(reader)
            assert close_of(frames).code == 1008
            assert len(frames) < 4000  # most of the flood was never queued
            writer.close()

    run(scenario())


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


# -- liveness and draining --------------------------------------------------------------------


def test_silent_peer_is_pinged_then_closed() -> None:
    async def scenario() -> None:
        async with serving(limits=WSLimits(ping_interval=0.2, close_timeout=1.0)) as server:
            reader, writer, _ = await raw_handshake(server)  # never answers a ping
            started = asyncio.get_running_loop().time()
            frames = await read_frames(reader)
            elapsed = asyncio.get_running_loop().time() - started
            assert [f.opcode for f in frames] == [Opcode.PING, Opcode.CLOSE]
            assert close_of(frames).code == 1011
            assert 0.35 < elapsed < 3.0
            writer.close()

    run(scenario())


def test_answering_peer_stays_open_through_pings() -> None:
    async def scenario() -> None:
        # websockets' client answers pings by itself; its own pings are off.
        async with (
            serving(limits=WSLimits(ping_interval=0.1)) as server,
            client(server, ping_interval=None) as ws,
        ):
            await asyncio.sleep(0.6)  # six ping intervals of silence on our side
            await ws.send("alive")
            assert await ws.recv() == "alive"

    run(scenario())


def test_drain_keeps_websockets_open_until_the_deadline() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with serving() as server, client(server) as ws:
            server.drain(None)  # a deprecated generation without a bound
            await ws.send("after drain")
            assert await ws.recv() == "after drain"
            server.drain(loop.time() + 0.2)
            started = loop.time()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert 0.15 < loop.time() - started < 3.0
            await wait_until(lambda: not server.websockets)

    run(scenario())


def test_abort_closes_with_1001() -> None:
    async def scenario() -> None:
        async with serving() as server, client(server) as ws:
            await wait_until(lambda: len(server.websockets) == 1)
            server.abort()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            await wait_until(lambda: not server.websockets)

    run(scenario())
