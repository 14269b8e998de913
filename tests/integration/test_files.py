"""Large files go out with sendfile: intact, in order, and never buffered whole in memory."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import httpx
import pytest
from pyws_harness import parse_byteranges, wait_until

from pyws.worker import static

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
    head, body = read_after_a_stall(sock, before)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert sha256(body) == sha256(big_files["/ten-mib.gz"])


def test_changed_files_are_served_fresh(
    site: Running, docroot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static, "REVALIDATE_SECS", 0.0)
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


def test_a_cached_small_file_is_revalidated_within_a_second(site: Running, docroot: Path) -> None:
    small = docroot / "soon.txt"
    small.write_text("old\n")
    with httpx.Client() as client:
        assert client.get(site.url("/soon.txt")).text == "old\n"
        small.write_text("new!\n")
        started = time.monotonic()
        wait_until(lambda: client.get(site.url("/soon.txt")).text == "new!\n", 5, "new text")
        assert time.monotonic() - started < static.REVALIDATE_SECS + 1.0


def read_after_a_stall(sock: socket.socket, before: int) -> tuple[bytes, bytes]:
    """Read nothing until the kernel's buffers are full and the worker has to wait; check the
    worker did not buffer the file meanwhile; then read the whole response."""
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
    return head, body


def test_several_ranges_of_a_large_file(site: Running, big_files: dict[str, bytes]) -> None:
    content = big_files["/ten-mib.gz"]
    size = len(content)
    ranges = "bytes=5000000-5999999,0-99,-1000,100-199"  # unsorted; the 2nd and 4th touch
    with httpx.Client() as client:
        response = client.get(site.url("/ten-mib.gz"), headers={"Range": ranges})
        assert response.status_code == 206
        assert int(response.headers["content-length"]) == len(response.content)
        parts = parse_byteranges(response.headers["content-type"], response.content)
        assert [(span, data) for span, _, data in parts] == [
            (f"bytes 0-199/{size}", content[:200]),
            (f"bytes 5000000-5999999/{size}", content[5000000:6000000]),
            (f"bytes {size - 1000}-{size - 1}/{size}", content[-1000:]),
        ]
        # The connection is still in step: the next response follows the last delimiter.
        assert client.get(site.url("/index.html")).text == "<h1>index</h1>\n"


def test_a_slow_reader_of_several_ranges_does_not_make_the_worker_hold_them(
    site: Running, big_files: dict[str, bytes]
) -> None:
    content = big_files["/ten-mib.gz"]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", site.port))
    sock.settimeout(30)
    before = rss_bytes()
    sock.sendall(
        b"GET /ten-mib.gz HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4999999,5000001-\r\n"
        b"Connection: close\r\n\r\n"
    )
    head, body = read_after_a_stall(sock, before)
    assert head.startswith(b"HTTP/1.1 206 Partial Content\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert int(fields[b"Content-Length"]) == len(body)
    parts = parse_byteranges(fields[b"Content-Type"].decode(), body)
    assert [data for _, _, data in parts] == [content[:5000000], content[5000001:]]


def test_several_ranges_then_more_requests_pipelined(
    site: Running, big_files: dict[str, bytes]
) -> None:
    content = big_files["/one-mib.gz"]
    request = b"GET /one-mib.gz HTTP/1.1\r\nHost: x\r\nRange: bytes=1-1,3-3,-2\r\n\r\n"
    sock = site.connect()
    sock.sendall(request * 3 + b"GET /one-k.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    conn = h11.Connection(h11.CLIENT)
    answers: list[tuple[h11.Response, bytes]] = []
    while len(answers) < 4:
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        response, body = None, bytearray()
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(MIB))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
        assert response is not None
        answers.append((response, bytes(body)))
        conn.start_next_cycle()
    sock.close()
    for answer, payload in answers[:3]:
        assert answer.status_code == 206
        content_type = dict(answer.headers)[b"content-type"].decode()
        assert [data for _, _, data in parse_byteranges(content_type, payload)] == [
            content[1:2],
            content[3:4],
            content[-2:],
        ]
    assert answers[3][0].status_code == 200 and answers[3][1] == b"k" * 1024


def test_error_document_404(serve: Serve, file_mount: FileMountFactory, docroot: Path) -> None:
    (docroot / "errors").mkdir()
    (docroot / "errors" / "404.html").write_text("<h1>gone fishing</h1>\n")
    site = serve((file_mount("/", docroot),), error_document_404="/errors/404.html")
    with httpx.Client() as client:
        missing = client.get(site.url("/no/such/page.html"))
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "text/html"
        assert missing.text == "<h1>gone fishing</h1>\n"
        head = client.head(site.url("/nothing.css"))
        assert head.status_code == 404 and head.content == b""
        assert head.headers["content-length"] == str(len("<h1>gone fishing</h1>\n"))
        # Neither a Range nor a validator turns the error document into a 206 or a 304.
        etag = client.get(site.url("/errors/404.html")).headers["etag"]
        conditional = client.get(
            site.url("/gone.txt"), headers={"If-None-Match": etag, "Range": "bytes=0-1"}
        )
        assert (conditional.status_code, conditional.text) == (404, "<h1>gone fishing</h1>\n")
        assert client.get(site.url("/index.html")).status_code == 200
        # Other statuses are left alone.
        assert client.get(site.url("/notes.unknownext")).status_code == 415


@pytest.mark.parametrize("document", ["/absent.html", "/notes.unknownext", "/sub/"])
def test_an_unusable_error_document_falls_back_to_the_plain_404(
    serve: Serve, file_mount: FileMountFactory, docroot: Path, document: str
) -> None:
    (docroot / "sub" / "index.html").unlink()
    site = serve((file_mount("/", docroot),), error_document_404=document)
    with httpx.Client() as client:
        missing = client.get(site.url("/missing.html"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>404 Not Found</h1>" in missing.text
