"""HTTPConnection driven with bytes and a clock passed in: no sockets, no loop."""

from __future__ import annotations

import h11
import pytest

from pyws.worker.http.connection import HTTPConnection, Limits
from pyws.worker.http.dates import DateHeader
from pyws.worker.http.events import END_OF_MESSAGE, Data, Event, ProtocolError, Request
from pyws.worker.http.response import FileSpan, Response

WALL = 1_700_000_000.0
OK = Response(200, b"Content-Length: 2\r\nContent-Type: text/plain\r\n", b"ok")
FILE = Response(200, b"Content-Length: 10\r\n", file=FileSpan("/f", 0, 10, (1, 2, 10, 3)))


def new(now: float = 0.0, *, timeout_secs: float = 5.0, max_head: int = 65536) -> HTTPConnection:
    limits = Limits(timeout_secs=timeout_secs, max_head=max_head)
    return HTTPConnection(limits, now, dates=DateHeader(), server=b"Server: t\r\n")


def events(conn: HTTPConnection) -> list[Event]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def request_of(found: list[Event]) -> Request:
    assert isinstance(found[0], Request)
    return found[0]


def client_reads(data: bytes, method: str = "GET") -> tuple[h11.Response, bytes]:
    """Parse our bytes with h11, as a client that sent `method` would."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    response = client.next_event()
    assert isinstance(response, h11.Response)
    body = b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    assert isinstance(event, h11.EndOfMessage)
    return response, body


def test_a_simple_get() -> None:
    conn = new()
    conn.receive_data(b"GET /a?b=1 HTTP/1.1\r\nHost: Example.COM\r\nX-Y: z\r\n\r\n", 1.0)
    found = events(conn)
    assert found[1:] == [END_OF_MESSAGE]
    request = request_of(found)
    assert (request.method, request.target, request.http_version) == (b"GET", b"/a?b=1", "1.1")
    assert request.host == b"Example.COM"
    assert request.headers == ((b"host", b"Example.COM"), (b"x-y", b"z"))
    assert request.header(b"x-y") == b"z" and request.header(b"nope") is None
    assert request.keep_alive and not request.expect_continue and not request.conditional
    data = conn.send_response(OK, 1.0, WALL)
    response, body = client_reads(data)
    assert (response.status_code, body) == (200, b"ok")
    assert (b"date", b"Tue, 14 Nov 2023 22:13:20 GMT") in response.headers
    assert (b"server", b"t") in response.headers
    assert not any(name == b"connection" for name, _ in response.headers)
    assert not conn.closed and conn.idle


def test_requests_split_anywhere_are_reassembled() -> None:
    raw = b"GET /split HTTP/1.1\r\nHost: x\r\nX-Long: " + b"v" * 100 + b"\r\n\r\n"
    for cut in range(1, len(raw)):
        conn = new()
        conn.receive_data(raw[:cut], 0.0)
        conn.receive_data(raw[cut:], 0.0)
        request = request_of(events(conn))
        assert request.target == b"/split"
        assert request.header(b"x-long") == b"v" * 100


def test_pipelined_requests_come_out_one_by_one_in_order() -> None:
    conn = new()
    conn.receive_data(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)), 0.0)
    targets = []
    while (event := conn.next_event()) is not None:
        if isinstance(event, Request):
            targets.append(event.target)
        elif event is END_OF_MESSAGE:
            conn.send_response(OK, 0.0, WALL)
    assert targets == [b"/0", b"/1", b"/2"]


def test_send_response_without_a_request_is_our_bug() -> None:
    with pytest.raises(RuntimeError):
        new().send_response(OK, 0.0, WALL)


def test_head_gets_headers_and_no_body() -> None:
    conn = new()
    conn.receive_data(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    events(conn)
    data = conn.send_response(OK, 0.0, WALL)
    assert data.endswith(b"Content-Length: 2\r\nContent-Type: text/plain\r\n\r\n")
    assert client_reads(data, "HEAD")[1] == b""
    conn.receive_data(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    events(conn)
    conn.send_response(FILE, 0.0, WALL)
    assert not conn.sending_file  # no body: nothing to sendfile


def test_http10_closes_unless_asked_to_keep_alive() -> None:
    conn = new()
    conn.receive_data(b"GET / HTTP/1.0\r\n\r\n", 0.0)
    events(conn)
    assert b"\r\nConnection: close\r\n" in conn.send_response(OK, 0.0, WALL)
    assert conn.closed
    conn = new()
    conn.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0.0)
    events(conn)
    assert b"\r\nConnection: keep-alive\r\n" in conn.send_response(OK, 0.0, WALL)
    assert not conn.closed


def test_connection_close_from_the_client() -> None:
    conn = new()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 0.0)
    events(conn)
    assert b"\r\nConnection: close\r\n" in conn.send_response(OK, 0.0, WALL)
    assert conn.closed
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    assert conn.next_event() is None


def test_chunked_content_and_trailers() -> None:
    conn = new()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\nHost: evil\r\n\r\n",
        0.0,
    )
    found = events(conn)
    request = request_of(found)
    assert request.host == b"x"
    body = b"".join(e.data for e in found if isinstance(e, Data))
    assert body == b"hello world"
    assert found[-1] is END_OF_MESSAGE


def test_expect_100_continue() -> None:
    conn = new()
    conn.receive_data(
        b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n", 0.0
    )
    request = request_of(events(conn))
    assert request.expect_continue
    assert conn.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert conn.send_continue() == b""
    conn.receive_data(b"abc", 0.0)
    assert events(conn) == [Data(b"abc"), END_OF_MESSAGE]
    conn.send_response(OK, 0.0, WALL)
    assert not conn.closed


@pytest.mark.parametrize(
    "head",
    [
        b"PUT / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",  # 1.0 client
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",  # no content
        b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
    ],
)
def test_no_100_continue_when_not_waited_for(head: bytes) -> None:
    conn = new()
    conn.receive_data(head, 0.0)
    assert not request_of(events(conn)).expect_continue
    assert conn.send_continue() == b""


def test_an_early_answer_discards_the_rest_of_the_content() -> None:
    conn = new()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345", 0.0)
    assert isinstance(conn.next_event(), Request)
    conn.send_response(OK, 0.0, WALL)  # before reading the content
    assert not conn.closed
    conn.receive_data(b"67890GET /next HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    found = events(conn)
    assert request_of(found).target == b"/next"
    assert found[1:] == [END_OF_MESSAGE]


def test_an_early_answer_without_100_continue_closes() -> None:
    conn = new()
    conn.receive_data(
        b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n", 0.0
    )
    assert isinstance(conn.next_event(), Request)
    assert b"\r\nConnection: close\r\n" in conn.send_response(OK, 0.0, WALL)
    assert conn.closed


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /\r\n\r\n", 505),
        (b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"b" * 66000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"A: b\r\n" * 100 + b"\r\n", 431),
    ],
)
def test_bad_requests_raise_with_their_status(raw: bytes, status: int) -> None:
    conn = new()
    conn.receive_data(raw, 0.0)
    with pytest.raises(ProtocolError) as caught:
        events(conn)
    assert caught.value.status == status
    data = conn.send_error(status, 0.0, WALL)
    response, _ = client_reads(data)
    assert response.status_code == status
    assert (b"connection", b"close") in response.headers
    assert conn.closed and conn.next_event() is None


def test_a_head_trickled_forever_is_bounded_in_memory() -> None:
    conn = new(max_head=4096)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ", 0.0)
    with pytest.raises(ProtocolError) as caught:
        for _ in range(100):
            conn.receive_data(b"a" * 100, 0.0)
            events(conn)
    assert caught.value.status == 431


def test_good_requests_before_a_bad_one_are_answered_first() -> None:
    conn = new()
    conn.receive_data(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n", 0.0)
    first = conn.next_event()
    assert isinstance(first, Request) and first.target == b"/1"
    assert conn.next_event() is END_OF_MESSAGE
    conn.send_response(OK, 0.0, WALL)
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_upgrade_stops_parsing_and_closes_after_the_answer() -> None:
    conn = new()
    conn.receive_data(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00",
        0.0,
    )
    request = request_of(events(conn))
    assert request.upgrade == b"websocket"
    assert conn.trailing_data == b"\x81\x00"
    assert b"\r\nConnection: close\r\n" in conn.send_response(OK, 0.0, WALL)


def test_file_bodies_are_left_to_the_caller() -> None:
    conn = new()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    events(conn)
    head = conn.send_response(FILE, 1.0, WALL)
    assert head.endswith(b"Content-Length: 10\r\n\r\n")
    assert conn.sending_file and conn.deadline is None
    conn.file_sent(2.0)
    assert not conn.sending_file
    assert conn.deadline == 2.0 + 5.0
    with pytest.raises(RuntimeError):
        conn.file_sent(3.0)


def test_deadlines() -> None:
    conn = new(now=100.0, timeout_secs=5.0)
    assert conn.deadline == 105.0  # a new connection has timeout-secs for its first head
    conn.receive_data(b"GET / HTTP/1.1\r\n", 101.0)
    assert conn.deadline == 106.0
    conn.receive_data(b"Host: x\r\n", 105.0)
    assert conn.deadline == 106.0  # more head bytes buy no time (slowloris)
    conn.receive_data(b"\r\n", 105.5)
    events(conn)
    assert conn.deadline is None  # the application owes a response
    conn.idle_timeout = 60.0
    conn.send_response(OK, 105.5, WALL)
    assert conn.deadline == 165.5  # keep-alive
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc", 110.0)
    assert conn.deadline == 115.0
    conn.receive_data(b"def", 114.0)
    assert conn.deadline == 119.0  # content progress does


def test_timeouts_answer_408_only_to_a_partial_request() -> None:
    conn = new()
    conn.receive_data(b"GET / HTT", 0.0)
    response, _ = client_reads(conn.handle_timeout(6.0, WALL))
    assert response.status_code == 408
    assert conn.closed
    idle = new()
    assert idle.handle_timeout(6.0, WALL) == b""
    assert idle.closed


def test_refresh_restarts_the_clock_of_a_partial_request() -> None:
    conn = new()
    conn.receive_data(b"GET / HTT", 0.0)
    conn.refresh(30.0)
    assert conn.deadline == 35.0


def test_drain_closes_after_the_next_response() -> None:
    conn = new()
    conn.drain()
    assert not conn.closed  # an idle connection waits for its timeout
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    events(conn)
    assert b"\r\nConnection: close\r\n" in conn.send_response(OK, 0.0, WALL)
    assert conn.closed


def test_date_is_formatted_once_per_second() -> None:
    dates = DateHeader()
    first = dates.line(WALL + 0.1)
    assert first == b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
    assert dates.line(WALL + 0.9) is first
    assert dates.line(WALL + 1.0) == b"Date: Tue, 14 Nov 2023 22:13:21 GMT\r\n"


def test_an_error_answer_to_head_has_no_body() -> None:
    conn = new()
    conn.receive_data(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    events(conn)
    assert conn.send_error(500, 0.0, WALL).endswith(b"Connection: close\r\n\r\n")
