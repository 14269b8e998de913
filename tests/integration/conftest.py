"""Integration fixtures: a worker Server on uvloop in a background thread, on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import h11
import pytest
import uvloop

from pyws.supervisor.config.model import (
    Config,
    GlobalConfig,
    MountConfig,
    OriginKind,
    VhostConfig,
)
from pyws.worker.server import Listener, Server

T = TypeVar("T")


class FileMountFactory(Protocol):
    def __call__(self, mountpoint: str, root: Path, **options: Any) -> MountConfig: ...


def make_file_mount(mountpoint: str, root: Path, **options: Any) -> MountConfig:
    return MountConfig(
        mountpoint=mountpoint,
        origin=f"file://{root}",
        kind=OriginKind.FILE,
        target=str(root),
        **options,
    )


class _ErrorCollector(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


@dataclass
class Running:
    """A started Server and what a test needs to talk to it."""

    server: Server
    loop: asyncio.AbstractEventLoop
    port: int
    other_copy: socket.socket  # the listener as another process would hold it
    thread: threading.Thread
    errors: list[logging.LogRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.collector = _ErrorCollector(self.errors)

    def stop(self) -> None:
        self.call(self.server.abort)
        self.run(self.server.wait_closed())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.other_copy.close()
        logging.getLogger("pyws").removeHandler(self.collector)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run `fn` in the server's loop thread and return its result."""

        async def run() -> T:
            return fn()

        return self.run(run(), timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


class Serve(Protocol):
    def __call__(
        self,
        mounts: tuple[MountConfig, ...],
        *,
        timeout_secs: float = 5.0,
        keepalive_timeout: float = 60.0,
        vhosts: tuple[VhostConfig, ...] = (),
        global_config: GlobalConfig | None = None,
        **vhost_options: Any,
    ) -> Running: ...


def start_server(
    mounts: tuple[MountConfig, ...],
    *,
    timeout_secs: float = 5.0,
    keepalive_timeout: float = 60.0,
    vhosts: tuple[VhostConfig, ...] = (),
    global_config: GlobalConfig | None = None,
    **vhost_options: Any,
) -> Running:
    """A Server on a fresh 127.0.0.1:0 listener, its uvloop running in a thread of its own."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    other = socket.socket(fileno=os.dup(sock.fileno()))
    main = VhostConfig(
        name="localhost",
        port=port,
        interface="127.0.0.1",
        keepalive_timeout=keepalive_timeout,
        mounts=mounts,
        **vhost_options,
    )
    all_vhosts = (main, *vhosts)
    glob = global_config or GlobalConfig(timeout_secs=timeout_secs)
    config = Config("/nonexistent", glob, all_vhosts)
    server = Server(config, [Listener(sock, f"127.0.0.1:{port}", all_vhosts)], generation=1)
    loop = uvloop.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="pyws-test-loop", daemon=True)
    thread.start()
    running = Running(server, loop, port, other, thread)
    logging.getLogger("pyws").addHandler(running.collector)
    running.run(server.start())
    return running


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start Servers for one localhost vhost (plus `vhosts`); always torn down."""
    started: list[Running] = []

    def start(mounts: tuple[MountConfig, ...], **options: Any) -> Running:
        running = start_server(mounts, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
        assert not running.errors, [r.getMessage() for r in running.errors]


@pytest.fixture
def docroot(tmp_path: Path) -> Path:
    """A document root with a few files of the common types, and a secret next to it."""
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>index</h1>\n")
    (root / "sub" / "index.html").write_text("<h1>sub</h1>\n")
    (root / "style.css").write_text("body {}\n")
    (root / "app.js").write_text("let x = 1;\n")
    (root / "data.json").write_text('{"a": 1}\n')
    (root / "one-k.txt").write_bytes(b"k" * 1024)
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (root / "notes.unknownext").write_text("never served\n")
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT\n")
    return root


class H11Client:
    """A blocking HTTP/1.1 client on one socket, with h11 as the oracle for our bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT)

    def send(self, event: h11.Request | h11.Data | h11.EndOfMessage) -> None:
        data = self.conn.send(event)
        if data:
            self.sock.sendall(data)

    def request(
        self, method: str, target: str, headers: list[tuple[str, str]] | None = None
    ) -> tuple[h11.Response, bytes]:
        fields = [("Host", "localhost"), *(headers or [])]
        self.send(h11.Request(method=method, target=target, headers=fields))
        self.send(h11.EndOfMessage())
        return self.read_response()

    def read_response(self) -> tuple[h11.Response, bytes]:
        response: h11.Response | None = None
        body = bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("server closed before a whole response")

    def next_cycle(self) -> None:
        self.conn.start_next_cycle()


@pytest.fixture
def h11_client() -> Iterator[Callable[[socket.socket], H11Client]]:
    opened: list[H11Client] = []

    def make(sock: socket.socket) -> H11Client:
        client = H11Client(sock)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.sock.close()


@pytest.fixture
def file_mount() -> FileMountFactory:
    """Build a file:// MountConfig: file_mount("/", root, default="x.html")."""
    return make_file_mount
