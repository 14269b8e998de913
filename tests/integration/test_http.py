"""The HTTP/1.1 engine end to end: keep-alive, pipelining, HEAD, 1.0, bodies, errors, timeouts."""

from __future__ import annotations

import gc
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import httpx
import pytest
from pyws_harness import live_objects, wait_until

from pyws.supervisor.config.model import GlobalConfig, MountConfig, OriginKind, VhostConfig
from pyws.worker.http.connection import HTTPConnection
from pyws.worker.http.protocol import HTTPProtocol

if TYPE_CHECKING:
    from tests.integration.conftest import FileMountFactory, H11Client, Running, Serve

    MakeClient = Callable[[socket.socket], H11Client]


@pytest.fixture
def site(serve: Serve, file_mount: FileMountFactory, docroot: Path) -> Running:
    return serve((file_mount("/", docroot), file_mount("/sub-mount", docroot / "sub")))


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_responses(data: bytes, methods: list[str]) -> list[tuple[h11.Response, bytes]]:
    """Split `data` into the responses to `methods`, with h11 as the judge of the framing."""
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    out = []
    for method in methods:
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        conn.send(h11.EndOfMessage())
        response: h11.Response | None = None
        body = b""
        while True:
            event = conn.next_event()
            assert event is not h11.NEED_DATA, "truncated response"
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert response is not None
        out.append((response, body))
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            break
        conn.start_next_cycle()
    return out


def test_keep_alive_serves_many_requests_on_one_connection(
    site: Running, h11_client: MakeClient
) -> None:
    client = h11_client(site.connect())
    for _ in range(3):
        response, body = client.request("GET", "/index.html")
        assert response.status_code == 200
        assert body == b"<h1>index</h1>\n"
        assert dict(response.headers)[b"content-type"] == b"text/html"
        assert b"date" in dict(response.headers)
        client.next_cycle()
    assert site.server.connections == 1


def test_pipelined_requests_are_answered_in_order(site: Running) -> None:
    targets = ["/style.css", "/app.js", "/missing", "/data.json", "/index.html", "/one-k.txt"]
    sock = site.connect()
    sock.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % t.encode() for t in targets))
    sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    responses = parse_responses(read_until_closed(sock), ["GET"] * (len(targets) + 1))
    statuses = [r.status_code for r, _ in responses]
    assert statuses == [200, 200, 404, 200, 200, 200, 200]
    assert responses[0][1] == b"body {}\n"
    assert responses[1][1] == b"let x = 1;\n"
    assert responses[3][1] == b'{"a": 1}\n'
    assert responses[5][1] == b"k" * 1024
    sock.close()


def test_head_sends_the_headers_of_get_and_no_body(site: Running) -> None:
    sock = site.connect()
    sock.sendall(
        b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    (head, head_body), (get, get_body) = parse_responses(read_until_closed(sock), ["HEAD", "GET"])
    assert head.status_code == get.status_code == 200
    assert head_body == b""
    assert dict(head.headers)[b"content-length"] == b"15"
    assert get_body == b"<h1>index</h1>\n"
    sock.close()


def test_http10_closes_by_default(site: Running) -> None:
    sock = site.connect()
    sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in data
    assert data.endswith(b"\r\n\r\n<h1>index</h1>\n")
    sock.close()


def test_http10_keep_alive_when_asked(site: Running) -> None:
    sock = site.connect()
    request = b"GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    for _ in range(2):
        sock.sendall(request)
        data = b""
        while not data.endswith(b"<h1>index</h1>\n"):
            data += sock.recv(65536)
        assert b"\r\nConnection: keep-alive\r\n" in data
    sock.close()


def test_chunked_request_content_is_read_and_discarded(
    site: Running, h11_client: MakeClient
) -> None:
    client = h11_client(site.connect())
    headers = [("Host", "localhost"), ("Transfer-Encoding", "chunked")]
    client.send(h11.Request(method="GET", target="/index.html", headers=headers))
    for piece in (b"first chunk", b"x" * 70000, b"GET /oops HTTP/1.1\r\n\r\n"):
        client.send(h11.Data(data=piece))
    client.send(h11.EndOfMessage())
    response, body = client.read_response()
    assert (response.status_code, body) == (200, b"<h1>index</h1>\n")
    client.next_cycle()
    response, body = client.request("GET", "/style.css")
    assert (response.status_code, body) == (200, b"body {}\n")


def test_content_length_request_content_is_discarded(site: Running) -> None:
    sock = site.connect()
    sock.sendall(
        b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 22\r\n\r\n"
        b"GET /oops HTTP/1.1\r\n\r\n"
        b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    (post, _), (get, body) = parse_responses(read_until_closed(sock), ["POST", "GET"])
    assert post.status_code == 405  # a file mount serves GET and HEAD
    assert dict(post.headers)[b"allow"] == b"GET, HEAD"
    assert (get.status_code, body) == (200, b"body {}\n")
    sock.close()


def test_expect_100_continue(site: Running) -> None:
    sock = site.connect()
    sock.sendall(
        b"GET /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = b""
    while not interim.endswith(b"\r\n\r\n"):
        interim += sock.recv(1)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(b"hello")
    sock.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (first, body1), (second, body2) = parse_responses(read_until_closed(sock), ["GET", "GET"])
    assert (first.status_code, body1) == (200, b"<h1>index</h1>\n")
    assert (second.status_code, body2) == (200, b"body {}\n")
    sock.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),  # a TLS ClientHello
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host (RFC 9112 section 3.2)
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
    ],
)
def test_malformed_request_gets_400_and_others_are_still_served(
    site: Running, h11_client: MakeClient, garbage: bytes
) -> None:
    bystander = h11_client(site.connect())
    assert bystander.request("GET", "/index.html")[0].status_code == 200
    bystander.next_cycle()
    sock = site.connect()
    sock.sendall(garbage)
    data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nConnection: close\r\n" in data
    assert bystander.request("GET", "/style.css")[0].status_code == 200
    assert httpx.get(site.url("/index.html")).status_code == 200


def test_limits(site: Running) -> None:
    responses = {}
    for name, request in {
        "target": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "field": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n",
        "fields": b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 101 + b"\r\n",
        "unfinished": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70000,
        "version": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    }.items():
        sock = site.connect()
        sock.sendall(request)
        responses[name] = read_until_closed(sock).split(b" ", 2)[1]
        sock.close()
    assert responses == {
        "target": b"414",
        "field": b"431",
        "fields": b"431",
        "unfinished": b"431",
        "version": b"505",
    }


def test_statuses_redirects_and_default_documents(site: Running) -> None:
    with httpx.Client(base_url=site.url("")) as client:
        assert client.get("/missing.html").status_code == 404
        assert client.get("/notes.unknownext").status_code == 415
        assert b"never served" not in client.get("/notes.unknownext").content
        for target, location in [
            ("/sub-mount", "/sub-mount/"),
            ("/sub", "/sub/"),
            ("/sub?x=1", "/sub/?x=1"),
        ]:
            response = client.get(target)
            assert (response.status_code, response.headers["location"]) == (301, location)
        assert client.get("/").text == "<h1>index</h1>\n"
        assert client.get("/sub/").text == "<h1>sub</h1>\n"
        assert client.get("/sub-mount/").text == "<h1>sub</h1>\n"
        assert client.get("/sub-mount/index.html").text == "<h1>sub</h1>\n"
        assert client.get("/sub-mountain").status_code == 404  # not under /sub-mount


def test_mimetypes_and_validators(site: Running) -> None:
    with httpx.Client(base_url=site.url("")) as client:
        types = {p: client.get(p).headers["content-type"] for p in (
            "/index.html", "/style.css", "/app.js", "/data.json", "/image.png", "/one-k.txt",
        )}  # fmt: skip
        assert types == {
            "/index.html": "text/html",
            "/style.css": "text/css",
            "/app.js": "text/javascript",
            "/data.json": "application/json",
            "/image.png": "image/png",
            "/one-k.txt": "text/plain",
        }
        first = client.get("/index.html")
        etag = first.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        assert first.headers["cache-control"] == "no-store"
        assert first.headers["last-modified"].endswith(" GMT")
        again = client.get("/index.html", headers={"If-None-Match": etag})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
        since = client.get("/index.html", headers={"If-Modified-Since": first.headers["date"]})
        assert since.status_code == 304
        part = client.get("/one-k.txt", headers={"Range": "bytes=10-19"})
        assert (part.status_code, part.content) == (206, b"k" * 10)
        assert part.headers["content-range"] == "bytes 10-19/1024"
        beyond = client.get("/one-k.txt", headers={"Range": "bytes=5000-"})
        assert (beyond.status_code, beyond.headers["content-range"]) == (416, "bytes */1024")


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=30, check=True)


def test_curl(site: Running) -> None:
    out = curl("-D", "-", site.url("/index.html"), site.url("/style.css")).stdout
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert b"<h1>index</h1>\n" in out and b"body {}\n" in out
    head = curl("-I", site.url("/app.js")).stdout
    assert b"Content-Length: 11\r\n" in head and b"let x" not in head
    http10 = curl("--http1.0", "-D", "-", site.url("/data.json")).stdout
    assert b"Connection: close\r\n" in http10 and http10.endswith(b'{"a": 1}\n')
    status = curl("-o", "/dev/null", "-w", "%{http_code}", site.url("/notes.unknownext"))
    assert status.stdout == b"415"
    post = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect: 100-continue",
                "--data-binary", "x" * 2048, site.url("/index.html"))  # fmt: skip
    assert post.stdout == b"405"


def test_a_stalled_head_is_cut_off(
    serve: Serve, file_mount: FileMountFactory, docroot: Path
) -> None:
    site = serve((file_mount("/", docroot),), timeout_secs=1.0)
    sock = site.connect()
    sock.settimeout(0.1)
    started = time.monotonic()
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    data = b""
    while not data and time.monotonic() - started < 10:
        try:
            sock.sendall(b"X-Slow: y\r\n")  # more header bytes do not buy more time
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
    elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert 0.9 < elapsed < 3.0
    sock.close()


def test_idle_connections_close_at_their_timeouts(
    serve: Serve, file_mount: FileMountFactory, docroot: Path, h11_client: MakeClient
) -> None:
    site = serve((file_mount("/", docroot),), timeout_secs=0.5, keepalive_timeout=1.5)
    silent = site.connect()
    client = h11_client(site.connect())
    started = time.monotonic()
    assert client.request("GET", "/index.html")[0].status_code == 200
    assert silent.recv(1) == b""  # never sent a request: timeout-secs
    assert 0.4 < time.monotonic() - started < 1.4
    assert client.sock.recv(1) == b""  # idle after a response: the keep-alive timeout
    assert 1.4 < time.monotonic() - started < 3.5
    wait_until(lambda: site.server.connections == 0, 5, "server-side close")
    silent.close()


def test_vhosts_are_chosen_by_host(
    serve: Serve, file_mount: FileMountFactory, docroot: Path, tmp_path: Path
) -> None:
    other_root = tmp_path / "other"
    other_root.mkdir()
    (other_root / "index.html").write_text("other\n")
    (other_root / "404.html").write_text("custom not found\n")
    other = VhostConfig(
        name="other.test",
        port=0,
        mounts=(file_mount("/", other_root),),
        headers=(("X-Site", "other"),),
        error_document_404="/404.html",
    )
    site = serve((file_mount("/", docroot),), vhosts=(other,))
    with httpx.Client(base_url=site.url("")) as client:
        for host, body in [
            ("localhost", "<h1>index</h1>\n"),
            ("other.test:8080", "other\n"),
            ("OTHER.test.", "other\n"),
            ("www.other.test", "other\n"),  # a subdomain of a vhost's name
            ("unknown.test", "<h1>index</h1>\n"),  # the listener's first vhost
        ]:
            assert client.get("/", headers={"Host": host}).text == body, host
        found = client.get("/", headers={"Host": "other.test"})
        assert found.headers["x-site"] == "other"
        missing = client.get("/nope.html", headers={"Host": "other.test"})
        assert (missing.status_code, missing.text) == (404, "custom not found\n")
        assert client.get("/nope.html").text != "custom not found\n"


def test_what_this_worker_does_not_serve(
    serve: Serve, file_mount: FileMountFactory, docroot: Path, tmp_path: Path
) -> None:
    cgi = MountConfig("/cgi", "callback://x", OriginKind.CALLBACK, "x")  # not built yet
    rejects = GlobalConfig(reject_service_keywords=(("scumbot", 403, "Forbidden"),))
    logins = tmp_path / "logins"
    logins.write_text("user:secret\n")
    private = file_mount("/sub", docroot / "sub", basic_auth=str(logins))
    site = serve((file_mount("/", docroot), cgi, private), global_config=rejects)
    with httpx.Client(base_url=site.url("")) as client:
        assert client.get("/cgi/x").status_code == 501
        assert client.get("/sub/").status_code == 401  # never served without its password
        assert client.get("/", headers={"User-Agent": "a scumbot/1.0"}).status_code == 403
        assert client.get("/", headers={"User-Agent": "curl"}).status_code == 200
    sock = site.connect()
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    data = read_until_closed(sock)  # answered as plain HTTP, then closed
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nConnection: close\r\n" in data
    sock.close()


def test_a_closed_connection_is_freed_without_the_garbage_collector(site: Running) -> None:
    """Its protocol, HTTPConnection, parser and timer go by reference counting the moment the
    socket is gone: under connection churn, the collector has nothing of theirs to find."""
    gc.collect()
    gc.disable()
    try:
        sock = site.connect()
        sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        wait_until(lambda: site.server.connections == 1, 5, "the connection to be counted")
        protocol = site.call(lambda: next(iter(site.server._protocols)))
        assert isinstance(protocol, HTTPProtocol)
        kinds = (HTTPProtocol, HTTPConnection)
        assert all(live_objects(kind) == 1 for kind in kinds)
        del protocol
        sock.close()
        wait_until(lambda: site.server.connections == 0, 5, "the connection to close")
        wait_until(lambda: not any(live_objects(k) for k in kinds), 5, "the objects to be freed")
    finally:
        gc.enable()
