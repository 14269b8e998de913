"""Golden requests (tests/data/requests): each file's bytes through a socket, its statuses back."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import httpx
import pytest

from pyws.supervisor.config.model import VhostConfig

if TYPE_CHECKING:
    from tests.integration.conftest import FileMountFactory, Running, Serve

REQUESTS = Path(__file__).resolve().parents[1] / "data" / "requests"
VALID = sorted((REQUESTS / "valid").glob("*.http"))
INVALID = sorted((REQUESTS / "invalid").glob("*.http"))
# Cases whose expected status needs a change outside the HTTP engine, with the reason.
PENDING: dict[str, str] = {}


def expected_statuses(path: Path) -> list[int]:
    """`200+404-name.http` -> [200, 404]: every response head the server sends, in order."""
    return [int(status) for status in path.name.split("-", 1)[0].split("+")]


def case(path: Path) -> object:
    stem = path.name.removesuffix(".http")
    marks = []
    if stem in PENDING:
        marks.append(pytest.mark.xfail(reason=PENDING[stem], strict=True))
    return pytest.param(path, id=stem, marks=marks)


def read_answers(
    sock: socket.socket, method: str, finals: int
) -> tuple[list[h11.InformationalResponse | h11.Response], h11.Connection]:
    """Read `finals` whole responses (and any interim ones), with h11 judging the framing."""
    client = h11.Connection(h11.CLIENT)
    heads: list[h11.InformationalResponse | h11.Response] = []
    for _ in range(finals):
        client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
            elif isinstance(event, h11.InformationalResponse | h11.Response):
                heads.append(event)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError(f"closed after {[h.status_code for h in heads]}")
        if client.their_state is h11.MUST_CLOSE:
            break
        client.start_next_cycle()
    return heads, client


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def site(serve: Serve, file_mount: FileMountFactory, docroot: Path) -> Running:
    # timeout-secs of 1 s: the 408- cases end that soon; every other file arrives at once.
    return serve((file_mount("/", docroot),), timeout_secs=1.0)


def exchange(site: Running, path: Path) -> tuple[list[int], h11.Connection, socket.socket]:
    raw = path.read_bytes()
    statuses = expected_statuses(path)
    sock = site.connect()
    sock.sendall(raw)
    method = "HEAD" if raw.lstrip().startswith(b"HEAD ") else "GET"
    finals = sum(1 for status in statuses if status >= 200)
    heads, client = read_answers(sock, method, finals)
    for head in heads:
        names = [name for name, _ in head.headers]
        assert head.status_code < 200 or b"date" in names  # RFC 9110 §6.6.1
        assert b"server" not in names  # no server-string configured
    return [head.status_code for head in heads], client, sock


def still_serving(site: Running) -> None:
    response = httpx.get(site.url("/index.html"), timeout=10)
    assert (response.status_code, response.text) == (200, "<h1>index</h1>\n")


@pytest.mark.parametrize("path", [case(p) for p in VALID])
def test_valid_request(site: Running, path: Path) -> None:
    got, client, sock = exchange(site, path)
    with sock:
        assert got == expected_statuses(path)
        if client.their_state is h11.MUST_CLOSE:
            assert read_until_closed(sock) == b""
        else:  # the connection goes on: one more request on it
            follow_up = h11.Request(method="GET", target="/style.css", headers=[("Host", "x")])
            sock.sendall((client.send(follow_up) or b"") + (client.send(h11.EndOfMessage()) or b""))
            event = client.next_event()
            while event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
                event = client.next_event()
            assert isinstance(event, h11.Response) and event.status_code == 200
    still_serving(site)


@pytest.mark.parametrize("path", [case(p) for p in INVALID])
def test_invalid_request(site: Running, path: Path) -> None:
    got, client, sock = exchange(site, path)
    with sock:
        assert got == expected_statuses(path)
        assert client.their_state is h11.MUST_CLOSE  # Connection: close on the refusal
        assert read_until_closed(sock) == b""
    still_serving(site)


def test_the_corpus_covers_enough() -> None:
    assert len(VALID) >= 15 and len(INVALID) >= 40
    for path in VALID:  # no line ending lost its CR on the way (see .gitattributes)
        raw = path.read_bytes()
        assert raw.count(b"\n") == raw.count(b"\r\n") > 0, path.name
    for path in (*VALID, *INVALID):
        assert all(100 <= status < 600 for status in expected_statuses(path)), path.name


# -- what the files cannot show: a second vhost, and content too big to keep in the repository --


def test_absolute_form_is_routed_by_its_authority(
    serve: Serve, file_mount: FileMountFactory, docroot: Path, tmp_path: Path
) -> None:
    other_root = tmp_path / "other"
    other_root.mkdir()
    (other_root / "index.html").write_text("other\n")
    other = VhostConfig(name="other.test", port=0, mounts=(file_mount("/", other_root),))
    site = serve((file_mount("/", docroot),), vhosts=(other,))
    for target, host, body in [
        (b"http://other.test/index.html", b"localhost", b"other\n"),  # RFC 9112 §3.2.2
        (b"http://localhost/index.html", b"other.test", b"<h1>index</h1>\n"),
        (b"/index.html", b"other.test", b"other\n"),
    ]:
        with site.connect() as sock:
            sock.sendall(
                b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, host)
            )
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n" + body)


def test_chunked_content_over_max_body_gets_413(site: Running) -> None:
    """64 MiB and one byte, in 1 MiB chunks: refused as the running total passes the limit."""
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"c" * (1 << 20))
    with site.connect() as sock:
        sock.sendall(b"POST /index.html HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(64):
            sock.sendall(chunk)
        sock.sendall(b"1\r\nc\r\n0\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 ")
    still_serving(site)
