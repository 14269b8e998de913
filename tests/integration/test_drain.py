"""Draining a deprecated worker: stop accepting, finish what is in flight, then close."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pyws_harness import wait_until

if TYPE_CHECKING:
    from tests.integration.conftest import FileMountFactory, H11Client, Running, Serve

    MakeClient = Callable[[socket.socket], H11Client]


@pytest.fixture
def site(serve: Serve, file_mount: FileMountFactory, docroot: Path) -> Running:
    return serve((file_mount("/", docroot),), keepalive_timeout=1.5)


def test_keep_alive_connection_gets_close_on_its_next_response(
    site: Running, h11_client: MakeClient
) -> None:
    client = h11_client(site.connect())
    response, _ = client.request("GET", "/index.html")
    assert (b"connection", b"close") not in response.headers
    client.next_cycle()
    site.call(site.server.drain)
    response, body = client.request("GET", "/style.css")
    assert (response.status_code, body) == (200, b"body {}\n")
    assert (b"connection", b"close") in response.headers
    assert client.sock.recv(1) == b""
    site.run(site.server.wait_closed(), timeout=5)
    assert site.server.connections == 0


def test_idle_connection_closes_at_its_keepalive_timeout(
    site: Running, h11_client: MakeClient
) -> None:
    client = h11_client(site.connect())
    assert client.request("GET", "/index.html")[0].status_code == 200
    site.call(site.server.drain)
    drained = time.monotonic()
    # Not at once: the client might be sending its next request right now.
    assert site.call(lambda: site.server.connections) == 1
    assert client.sock.recv(1) == b""
    assert time.monotonic() - drained > 0.8
    site.run(site.server.wait_closed(), timeout=5)


def test_stop_closes_idle_connections_at_once(site: Running, h11_client: MakeClient) -> None:
    client = h11_client(site.connect())
    assert client.request("GET", "/index.html")[0].status_code == 200
    drained = time.monotonic()
    site.call(lambda: site.server.drain(close_idle=True))
    assert client.sock.recv(1) == b""
    assert time.monotonic() - drained < 1.0
    site.run(site.server.wait_closed(), timeout=5)


def test_in_flight_response_finishes(site: Running, docroot: Path) -> None:
    content = os.urandom(8 * 1024 * 1024)
    (docroot / "big.gz").write_bytes(content)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", site.port))
    sock.settimeout(10)
    sock.sendall(b"GET /big.gz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    site.call(site.server.drain)
    received = bytearray(first)
    while chunk := sock.recv(1024 * 1024):
        received += chunk
    sock.close()
    assert received.endswith(content)
    site.run(site.server.wait_closed(), timeout=5)


def fds_on(sock: socket.socket) -> int:
    """How many of this process's descriptors refer to the socket behind `sock`."""
    inode = os.fstat(sock.fileno()).st_ino
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            count += os.stat(f"/proc/self/fd/{name}").st_ino == inode
    return count


def test_drained_listener_is_closed_here_but_not_shut_down(site: Running) -> None:
    assert fds_on(site.other_copy) == 2
    site.call(site.server.drain)
    assert fds_on(site.other_copy) == 1  # ours is closed
    site.run(site.server.wait_closed(), timeout=5)
    # The kernel still queues the connection: the other process's copy listens on.
    client = site.connect()
    client.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    site.other_copy.settimeout(5)
    accepted, _ = site.other_copy.accept()
    assert accepted.recv(1024).startswith(b"GET /index.html")
    assert site.call(lambda: site.server.connections) == 0
    accepted.close()
    client.close()


def test_abort_closes_every_connection(site: Running, h11_client: MakeClient) -> None:
    clients = [h11_client(site.connect()) for _ in range(3)]
    for client in clients[:2]:
        assert client.request("GET", "/index.html")[0].status_code == 200
    wait_until(lambda: site.call(lambda: site.server.connections) == 3, 5, "3 connections")
    site.call(site.server.abort)
    for client in clients:
        with contextlib.suppress(ConnectionResetError):
            assert client.sock.recv(1) == b""
    site.run(site.server.wait_closed(), timeout=5)
