"""What pyws's own code costs per request and per message, next to the library under it.

    .venv/bin/python -m bench.layers [--count 100000] [--rounds 5]

No sockets and no server process: the protocols run on uvloop with a transport that drops
what it is given, so only Python work is timed (best of the rounds). Each case runs the
library alone and pyws's whole path on top of it, back to back, and prints both and their
ratio:
- http: httptools parsing a keep-alive GET with a parser whose callbacks do nothing, then
  pyws's HTTPProtocol answering the same bytes from a cached 1 KB file mount;
- ws: one echo of a masked 32-byte text frame through websockets' sans-I/O Protocol alone,
  then through pyws's WSProtocol, WSConnection and the `lws-mirror-protocol` plugin.
See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httptools
import uvloop
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, Protocol, Side

from pyws.supervisor.config.model import (
    Config,
    GlobalConfig,
    MountConfig,
    OriginKind,
    ProtocolConfig,
    VhostConfig,
)
from pyws.worker.dispatch import Site, build_origins
from pyws.worker.http.events import Request
from pyws.worker.http.protocol import HTTPProtocol
from pyws.worker.plugin_api import WorkerInfo
from pyws.worker.plugins import PluginSet
from pyws.worker.server import Listener, Server
from pyws.worker.world import World
from pyws.worker.ws.connection import WSLimits
from pyws.worker.ws.handshake import Accept, negotiate
from pyws.worker.ws.protocol import take_over

GET = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\n\r\n"
TEXT = Frame(Opcode.TEXT, b"pyws bench: thirty-two bytes ...").serialize(mask=True)
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


class NullTransport(asyncio.Transport):
    """Counts what it is asked to send, and sends nothing."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        super().__init__()
        self.sent = 0
        self.sock = sock  # what get_extra_info("socket") returns: its fd is only logged

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def best(step: Callable[[], None], count: int, rounds: int) -> float:
    """Seconds per call of `step`, the best of `rounds` runs of `count` calls."""
    for _ in range(count // 10):
        step()
    fastest = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            step()
        fastest = min(fastest, (time.perf_counter() - started) / count)
    return fastest


class _Quiet:
    """httptools callbacks that keep nothing: the parser's own cost."""

    def on_url(self, url: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        pass


def http_case(count: int, rounds: int) -> tuple[float, float]:
    parser = httptools.HttpRequestParser(_Quiet())
    alone = best(lambda: parser.feed_data(GET), count, rounds)
    root = Path(tempfile.mkdtemp(prefix="pyws-layers-"))
    sock = socket.socket()  # a Listener's socket, never bound: nothing is served on it
    try:
        (root / "index.html").write_bytes(b"x" * 1024)
        mount = MountConfig(
            mountpoint="/", origin=f"file://{root}", kind=OriginKind.FILE, target=str(root)
        )
        vhost = VhostConfig(name="localhost", port=8080, interface="127.0.0.1", mounts=(mount,))
        config = Config("/nonexistent", GlobalConfig(), (vhost,))
        server = Server(config, [Listener(sock, "bench", (vhost,))], generation=1)
        site = Site((vhost,), build_origins((vhost,)), ())
        protocol = HTTPProtocol(server, site, asyncio.get_running_loop())
        transport = NullTransport(sock)
        protocol.connection_made(transport)
        full = best(lambda: protocol.data_received(GET), count, rounds)
    finally:
        sock.close()
        for path in root.iterdir():
            path.unlink()
        root.rmdir()
    if transport.sent < count * 1024:
        raise SystemExit("http: pyws did not answer with the file")
    return alone, full


def ws_case(count: int, rounds: int) -> tuple[float, float]:
    library = Protocol(Side.SERVER, state=OPEN)

    def echo_alone() -> None:
        library.receive_data(TEXT)
        for frame in library.events_received():
            assert isinstance(frame, Frame)
            library.send_text(frame.data)
        library.data_to_send()

    alone = best(echo_alone, count, rounds)
    protocols = (ProtocolConfig("lws-mirror-protocol", default=True),)
    vhost = VhostConfig(name="localhost", port=0, ws_protocols=protocols)
    world = World(os.getppid(), generation=-os.getpid())
    plugins = PluginSet(Config("/nonexistent", GlobalConfig(), (vhost,)), world, WorkerInfo(0, 0))
    plugins.start(asyncio.get_running_loop())
    try:
        headers = (
            (b"host", b"localhost"),
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-key", KEY),
            (b"sec-websocket-version", b"13"),
        )
        request = Request(
            b"GET",
            b"/?mirror=bench",
            "1.1",
            headers,
            b"localhost",
            True,
            False,
            False,
            b"websocket",
        )
        decision = negotiate(request, plugins.offer(vhost))
        if not isinstance(decision, Accept):
            raise SystemExit(f"ws: the upgrade was refused: {decision.reason}")
        transport = NullTransport()
        ws = take_over(transport, request, decision, limits=WSLimits())
        before = transport.sent
        full = best(lambda: ws.data_received(TEXT), count, rounds)
    finally:
        plugins.stop()
        world.close()
    if transport.sent - before < count * len(TEXT):
        raise SystemExit("ws: pyws did not echo every message")
    return alone, full


CASES = {
    "http": ("keep-alive GET of a cached 1 KB file", "httptools alone", http_case),
    "ws": ("echo of a 32-byte text message", "websockets alone", ws_case),
}


async def run(args: argparse.Namespace) -> None:
    for name in args.cases:
        what, library, case = CASES[name]
        alone, full = case(args.count, args.rounds)
        print(f"{name}: {what}")
        print(f"  {library:<18} {alone * 1e6:6.2f} us")
        print(f"  {'pyws, whole path':<18} {full * 1e6:6.2f} us   ({full / alone:.2f}x)")
        print(f"  pyws's own layer   {(full - alone) * 1e6:6.2f} us")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best one counts")
    parser.add_argument("--cases", default="http,ws", help="which: http, ws")
    args = parser.parse_args(argv)
    args.cases = args.cases.split(",")
    if set(args.cases) - set(CASES):
        parser.error("--cases: http and ws only")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (nothing is pinned)")
    uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
