"""Hypothesis throws random and mutated requests at the HTTP engine, sans-I/O and over sockets."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import h11
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as event_note
from hypothesis import strategies as st

from pyws.worker.http.connection import HTTPConnection, Limits
from pyws.worker.http.dates import DateHeader
from pyws.worker.http.events import END_OF_MESSAGE, Data, Event, ProtocolError, Request
from pyws.worker.http.response import Response

if TYPE_CHECKING:
    from tests.integration.conftest import FileMountFactory, Running, Serve

REQUESTS = Path(__file__).resolve().parents[1] / "data" / "requests"
SEEDS = [path.read_bytes() for path in sorted((REQUESTS / "valid").glob("*.http"))]
# What a refusal may be: never 500, which would be our bug.
REFUSALS = {400, 408, 413, 414, 431, 501, 505}
OK = Response(200, b"Content-Length: 2\r\n", b"ok")
WALL = 1_700_000_000.0

# A mutation is (kind, where in [0, 1), what): applied in turn to a golden valid request.
INSERTS = [b"\r", b"\n", b"\x00", b" ", b"\t", b":", b",", b"\r\n", b"\r\n\r\n", b"\xff"]
mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "insert", "delete", "duplicate-line", "truncate"]),
        st.floats(0, 1, exclude_max=True),
        st.one_of(st.sampled_from(INSERTS), st.binary(min_size=1, max_size=4)),
    ),
    max_size=3,  # none at all: the golden request as it is
)


def mutate(raw: bytes, steps: list[tuple[str, float, bytes]]) -> bytes:
    for kind, where, what in steps:
        at = int(where * len(raw))
        if kind == "flip" and raw:
            at = min(at, len(raw) - 1)
            raw = raw[:at] + what[:1] + raw[at + 1 :]
        elif kind == "insert":
            raw = raw[:at] + what + raw[at:]
        elif kind == "delete":
            raw = raw[:at] + raw[at + len(what) :]
        elif kind == "duplicate-line":
            lines = raw.split(b"\r\n")
            index = int(where * len(lines))
            lines.insert(index, lines[index])
            raw = b"\r\n".join(lines)
        else:
            raw = raw[:at]
    return raw


field_lines = st.lists(
    st.tuples(
        st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Expect", b"X-A"]),
        st.sampled_from([b"", b" ", b"  "]),
        st.one_of(
            st.sampled_from([b"localhost", b"5", b"-1", b"chunked", b"gzip, chunked"]),
            st.sampled_from([b"100-continue", b"1, 2", b"a\x00b", b"[::1]:80", b"0"]),
            st.binary(max_size=8),
        ),
    ),
    max_size=6,
)
requests_from_parts = st.builds(
    lambda method, target, version, fields, body: (
        method + b" " + target + b" " + version + b"\r\n"
        + b"".join(name + b":" + space + value + b"\r\n" for name, space, value in fields)
        + b"\r\n" + body
    ),
    st.sampled_from([b"GET", b"HEAD", b"POST", b"OPTIONS", b"PUT", b"get"]),
    st.sampled_from([b"/", b"*", b"/index.html", b"http://localhost/", b"x", b"/%00"]),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/1"]),
    field_lines,
    st.sampled_from([b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"ffffffffffffffffff\r\n"]),
)  # fmt: skip
mutated = st.builds(mutate, st.sampled_from(SEEDS), mutations)
hostile = st.one_of(mutated, mutated, mutated, requests_from_parts, st.binary(max_size=300))


def run_connection(raw: bytes, cuts: list[float]) -> tuple[list[Event], int | None]:
    """Feed `raw` in pieces; answer each request; the events (content merged) and refusal."""
    conn = HTTPConnection(Limits(), 0.0, dates=DateHeader())
    points = sorted({int(cut * len(raw)) for cut in cuts} | {0, len(raw)})
    seen: list[Event] = []
    for start, end in itertools.pairwise(points):
        conn.receive_data(raw[start:end], 1.0)
        try:
            while (event := conn.next_event()) is not None:
                last = seen[-1] if seen else None
                if isinstance(event, Data) and isinstance(last, Data):
                    seen[-1] = Data(last.data + event.data)  # pieces depend on the cuts
                else:
                    seen.append(event)
                if event is END_OF_MESSAGE:
                    check_response(conn.send_response(OK, 1.0, WALL), 200)
        except ProtocolError as exc:
            assert exc.status in REFUSALS, exc
            check_response(conn.send_error(exc.status, 1.0, WALL), exc.status)
            return seen, exc.status
        if conn.closed:
            break
    return seen, None


def check_response(data: bytes, status: int) -> None:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    response = client.next_event()
    assert isinstance(response, h11.Response) and response.status_code == status


@settings(max_examples=300, deadline=None, database=None)
@given(raw=hostile, cuts=st.lists(st.floats(0, 1), max_size=5))
def test_the_engine_refuses_or_serves_and_splits_do_not_matter(
    raw: bytes, cuts: list[float]
) -> None:
    whole = run_connection(raw, [])
    event_note(f"refused {whole[1]}" if whole[1] else "served")
    assert run_connection(raw, cuts) == whole  # the same, however the bytes were cut
    events, _ = whole
    for event in events:
        if isinstance(event, Request):
            assert event.http_version in ("1.0", "1.1")
            assert event.host is not None or event.http_version == "1.0"
            assert event.target.lower().startswith((b"/", b"http://", b"https://")) or (
                event.target == b"*" and event.method == b"OPTIONS"
            )


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass  # a refusal may race the rest of what we sent: what arrived still counts
    return b"".join(chunks)


def check_answers(data: bytes, method: str) -> None:
    """`data` is zero or more well-formed HTTP/1.1 responses: any 1xx-4xx, 501 or 505."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    client.receive_data(b"")  # the server closed
    while True:
        client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        if not answer_or_clean_close(client):
            return
        if client.their_state is h11.MUST_CLOSE:
            return
        client.start_next_cycle()


def answer_or_clean_close(client: h11.Connection) -> bool:
    """One whole response (True), or a close before any byte of one (False)."""
    started = False
    while True:
        try:
            event = client.next_event()
        except h11.RemoteProtocolError:
            assert not started and client.trailing_data == (b"", True), "a truncated response"
            return False
        assert event is not h11.NEED_DATA, "a truncated response"
        if isinstance(event, h11.ConnectionClosed):
            return False
        if isinstance(event, h11.InformationalResponse | h11.Response):
            started = True
            event_note(f"answered {event.status_code}")
            assert event.status_code < 500 or event.status_code in (501, 505), event
            assert event.http_version == b"1.1"
        elif isinstance(event, h11.EndOfMessage):
            return True


@pytest.fixture
def fuzz_site(serve: Serve, file_mount: FileMountFactory, docroot: Path) -> Running:
    """One server for every example: what one hostile client does must not affect the next.
    A short timeout-secs ends the requests a mutation left unfinished quickly (408)."""
    return serve((file_mount("/", docroot),), timeout_secs=0.2)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # the shared server
)
@given(raw=hostile)
def test_the_server_answers_hostile_bytes_and_keeps_serving(fuzz_site: Running, raw: bytes) -> None:
    with fuzz_site.connect() as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # an idle server closes at once; a partial request: 408
        data = read_all(sock)
    check_answers(data, "HEAD" if raw.startswith(b"HEAD ") else "GET")
    assert httpx.get(fuzz_site.url("/index.html"), timeout=10).status_code == 200
