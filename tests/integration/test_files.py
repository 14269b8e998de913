"""Large files go out with sendfile: intact, in order, and never buffered whole in memory."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import struct
import subprocess
import termios
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import httpx
import pytest
from pyws_harness import wait_until

if TYPE_CHECKING:
    from tests.integration.conftest import FileMountFactory, Running, Serve

MIB = 1024 * 1024


@pytest.fixture
def big_files(docroot: Path) -> dict[str, bytes]:
    files = {"/one-mib.gz": os.urandom(MIB), "/ten-mib.gz": os.urandom(10 * MIB)}
    for name, content in files.items():
        (docroot / name.lstrip("/")).write_bytes(content)
    return files


@pytest.fixture
def site(serve: Serve, file_mount: FileMountFactory, docroot: Path) -> Running:
    return serve((file_mount("/", docroot),))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("name", ["/one-mib.gz", "/ten-mib.gz"])
def test_large_files_arrive_intact(site: Running, big_files: dict[str, bytes], name: str) -> None:
    with httpx.Client() as client:
        for _ in range(2):  # the second one comes from the metadata cache
            response = client.get(site.url(name))
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/gzip"
            assert sha256(response.content) == sha256(big_files[name])
    out = subprocess.run(
        ["curl", "-sS", site.url(name)], capture_output=True, timeout=60, check=True
    ).stdout
    assert sha256(out) == sha256(big_files[name])


def test_large_and_small_bodies_stay_in_order(site: Running, big_files: dict[str, bytes]) -> None:
    names = ["/one-mib.gz", "/index.html", "/ten-mib.gz", "/one-k.txt", "/one-mib.gz"]
    sock = site.connect(timeout=30)
    sock.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % n.encode() for n in names))
    conn = h11.Connection(h11.CLIENT)
    bodies = []
    for _ in names:
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        body = bytearray()
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(MIB))
            elif isinstance(event, h11.Data):
                body += event.data
        bodies.append(bytes(body))
        conn.start_next_cycle()
    sock.close()
    assert sha256(bodies[0]) == sha256(bodies[4]) == sha256(big_files["/one-mib.gz"])
    assert bodies[1] == b"<h1>index</h1>\n"
    assert sha256(bodies[2]) == sha256(big_files["/ten-mib.gz"])
    assert bodies[3] == b"k" * 1024


def test_ranges_and_head_of_a_large_file(site: Running, big_files: dict[str, bytes]) -> None:
    content = big_files["/ten-mib.gz"]
    with httpx.Client() as client:
        part = client.get(site.url("/ten-mib.gz"), headers={"Range": "bytes=1000000-2999999"})
        assert part.status_code == 206
        assert part.content == content[1000000:3000000]
        tail = client.get(site.url("/ten-mib.gz"), headers={"Range": "bytes=-100"})
        assert tail.content == content[-100:]
        head = client.head(site.url("/ten-mib.gz"))
        assert head.headers["content-length"] == str(len(content))
        assert head.content == b""
        assert client.get(site.url("/index.html")).status_code == 200


def test_a_slow_reader_does_not_make_the_worker_hold_the_file(
    site: Running, big_files: dict[str, bytes]
) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
    sock.connect(("127.0.0.1", site.port))
    sock.settimeout(30)
    before = rss_bytes()
    sock.sendall(b"GET /ten-mib.gz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # Read nothing until the kernel's buffers are full and the worker has to wait.
    last = [-1]

    def stalled() -> bool:
        queued: int = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]
        stable = queued == last[0] and queued > 0
        last[0] = queued
        return stable

    wait_until(stalled, 10, "the worker to stop sending")
    grown = rss_bytes() - before
    assert grown < 4 * MIB, f"the worker grew by {grown} bytes while the reader stalled"
    received = bytearray()
    while chunk := sock.recv(MIB):
        received += chunk
    sock.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert sha256(body) == sha256(big_files["/ten-mib.gz"])


def test_changed_files_are_served_fresh(site: Running, docroot: Path) -> None:
    small = docroot / "changing.txt"
    large = docroot / "changing.gz"
    with httpx.Client() as client:
        for generation in range(3):
            small.write_text(f"version {generation}\n")
            content = os.urandom(MIB + generation)
            replacement = docroot / "replacement.tmp"
            replacement.write_bytes(content)
            replacement.rename(large)  # a new inode, the way deploys replace files
            assert client.get(site.url("/changing.txt")).text == f"version {generation}\n"
            assert client.get(site.url("/changing.gz")).content == content
