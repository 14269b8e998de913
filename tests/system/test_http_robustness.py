"""HTTP/1.1 against hostile and demanding clients, through the real root and its workers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import h11
import pytest
from pyws_harness import Pyws, Site, vhost, wait_until

GOLDEN_INVALID = Path(__file__).resolve().parents[1] / "data" / "requests" / "invalid"
TIMEOUT = 2.0  # the timeout-secs these tests configure


def start(pyws: Pyws, site: Site, **global_: Any) -> int:
    files = site.docroot / "files"
    files.mkdir(exist_ok=True)
    for i in range(50):
        (files / f"f{i}.txt").write_text(f"file number {i}\n")
    site.write_conf(global_={"timeout-secs": str(TIMEOUT), **global_})
    pyws.start()
    return pyws.port()


def worker_pids(pyws: Pyws) -> list[int]:
    return sorted(pid for gen in pyws.generations() for pid in gen["pids"])


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_responses(data: bytes, count: int) -> list[tuple[int, bytes]]:
    """`count` responses to GETs, framed by h11: (status, body) each."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    out: list[tuple[int, bytes]] = []
    for _ in range(count):
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        status, body = 0, b""
        while not isinstance(event := client.next_event(), h11.EndOfMessage):
            assert event is not h11.NEED_DATA, f"truncated after {len(out)} responses"
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
        out.append((status, body))
        if client.their_state is not h11.MUST_CLOSE:
            client.start_next_cycle()
    return out


class Trickler(threading.Thread):
    """A client that sends `head`, then one byte of `drip` every `every` seconds until cut off."""

    def __init__(self, port: int, head: bytes, drip: bytes, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.head, self.drip, self.every = head, drip, every
        self.answer = b""
        self.elapsed = 0.0
        self.sent = 0

    def run(self) -> None:
        started = time.monotonic()
        self.sock.sendall(self.head)
        self.sock.settimeout(self.every)  # the recv timeout paces the drip
        try:
            for byte in self.drip:
                self.sock.sendall(bytes((byte,)))
                self.sent += 1
                try:
                    chunk = self.sock.recv(65536)
                except TimeoutError:
                    continue
                self.sock.settimeout(10)
                self.answer = chunk + read_until_closed(self.sock)
                break
        except OSError:
            pass  # cut off while sending
        self.elapsed = time.monotonic() - started
        self.sock.close()


@pytest.mark.parametrize(
    ("head", "drip"),
    [
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n", b"X-Slow: " + b"a" * 100),  # slowloris
        (b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n", b"b" * 100),
    ],
    ids=["head", "body"],
)
def test_a_trickling_client_is_cut_off_at_timeout_secs(
    pyws: Pyws, site: Site, head: bytes, drip: bytes
) -> None:
    port = start(pyws, site)
    slow = Trickler(port, head, drip)
    slow.start()
    served = 0
    while slow.is_alive():  # others are served all along
        assert pyws.get("/", port) == (200, b"<h1>hello from pyws</h1>\n")
        served += 1
    slow.join()
    assert slow.answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"\r\nConnection: close\r\n" in slow.answer
    # One byte every half second buys no time: cut off at timeout-secs, not at the drip's end.
    assert TIMEOUT - 0.1 < slow.elapsed < TIMEOUT + 1.5, slow.elapsed
    assert 2 <= slow.sent < 10
    assert served > 5


def test_fifty_pipelined_requests_are_answered_in_order(pyws: Pyws, site: Site) -> None:
    port = start(pyws, site)
    requests = [b"GET /files/f%d.txt HTTP/1.1\r\nHost: localhost\r\n\r\n" % i for i in range(49)]
    requests.append(b"GET /files/f49.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"".join(requests))
        responses = parse_responses(read_until_closed(sock), 50)
    assert responses == [(200, b"file number %d\n" % i) for i in range(50)]


async def keep_alive_client(port: int, index: int, requests: int, opened: asyncio.Event) -> int:
    """Open a connection, wait until all are open, then GET `requests` files on it: # of 200s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await opened.wait()
    client = h11.Connection(h11.CLIENT)
    ok = 0
    try:
        for n in range(requests):
            target = f"/files/f{(index + n) % 50}.txt"
            writer.write(
                client.send(h11.Request(method="GET", target=target, headers=[("Host", "x")]))
                or b""
            )
            writer.write(client.send(h11.EndOfMessage()) or b"")
            status, body = 0, b""
            while not isinstance(event := client.next_event(), h11.EndOfMessage):
                if event is h11.NEED_DATA:
                    client.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
            ok += status == 200 and body == f"file number {(index + n) % 50}\n".encode()
            client.start_next_cycle()
    finally:
        writer.close()
        await writer.wait_closed()
    return ok


def test_200_concurrent_keep_alive_connections(pyws: Pyws, site: Site) -> None:
    port = start(pyws, site)

    async def run() -> list[int]:
        opened = asyncio.Event()
        clients = [asyncio.create_task(keep_alive_client(port, i, 5, opened)) for i in range(200)]
        await asyncio.to_thread(
            wait_until,
            lambda: pyws.generations()[0]["connections"] >= 200,
            30,
            "200 open connections",
        )
        opened.set()
        return await asyncio.wait_for(asyncio.gather(*clients), 120)

    assert asyncio.run(run()) == [5] * 200


def test_malformed_requests_are_refused_and_the_worker_survives(pyws: Pyws, site: Site) -> None:
    port = start(pyws, site)
    pids = worker_pids(pyws)
    cases = [p for p in sorted(GOLDEN_INVALID.glob("*.http")) if not p.name.startswith("408-")]
    assert len(cases) >= 40
    for path in cases:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(path.read_bytes())
            answer = read_until_closed(sock)
        status = path.name.split("-", 1)[0].split("+")[-1].encode()
        assert answer.startswith(b"HTTP/1.1 " + status + b" "), (path.name, answer[:40])
        assert b"\r\nConnection: close\r\n" in answer
    assert worker_pids(pyws) == pids  # the same worker: none crashed and was respawned
    assert pyws.get("/", port) == (200, b"<h1>hello from pyws</h1>\n")


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=30, check=True)


def test_curl_http10_head_date_and_server(pyws: Pyws, site: Site) -> None:
    port = start(pyws, site, **{"server-string": "pyws-test/1"})
    url = f"http://127.0.0.1:{port}/index.html"
    http10 = curl("--http1.0", "-D", "-", url).stdout
    assert http10.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in http10 and b"\r\nDate: " in http10
    assert b"\r\nServer: pyws-test/1\r\n" in http10
    assert http10.endswith(b"\r\n\r\n<h1>hello from pyws</h1>\n")
    kept = curl("--http1.0", "-v", "-H", "Connection: keep-alive", "-o", "/dev/null",
                "-o", "/dev/null", url, url)  # fmt: skip
    assert b"Re-using existing connection" in kept.stderr  # 1.0 keep-alive when asked
    head = curl("-I", url).stdout
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 25\r\n" in head and b"hello" not in head


def test_no_server_field_without_server_string(pyws: Pyws, site: Site) -> None:
    port = start(pyws, site)
    head = curl("-I", f"http://127.0.0.1:{port}/").stdout
    assert b"\r\nDate: " in head and b"\r\nServer:" not in head


def idle_close_after(port: int, target: str) -> float:
    """Seconds from the end of a response to `target` until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while not data.endswith(b"</h1>\n"):
            data += sock.recv(65536)
        answered = time.monotonic()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" not in data
        assert sock.recv(1) == b""  # blocks until the server closes
        return time.monotonic() - answered


def test_keep_alive_timeouts_of_the_vhost_and_of_a_mount(pyws: Pyws, site: Site) -> None:
    short = site.docroot / "short"
    short.mkdir()
    (short / "index.html").write_text("<h1>short</h1>\n")
    mounts = [
        site.mount(),
        {"mountpoint": "/short", "origin": f"file://{short}", "keepalive-timeout": "1"},
    ]
    # `keeplive-timeout`: one of the spellings lwsws accepts (CONTRACT.md).
    site.write_conf(vhosts=[{**vhost(mounts=mounts), "keeplive-timeout": "3"}])
    pyws.start()
    port = pyws.port()
    vhost_wait = idle_close_after(port, "/index.html")
    mount_wait = idle_close_after(port, "/short/")
    assert 2.8 < vhost_wait < 4.5, vhost_wait
    assert 0.8 < mount_wait < 2.2, mount_wait
