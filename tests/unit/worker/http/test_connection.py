"""HTTPConnection driven with bytes and a clock passed in: no sockets, no loop."""

from __future__ import annotations

from typing import Any

import h11
import pytest

from pyws.worker.http.connection import HTTPConnection, Limits
from pyws.worker.http.dates import DateHeader
from pyws.worker.http.events import END_OF_MESSAGE, Data, Event, ProtocolError, Request
from pyws.worker.http.response import FileSpan, Response

WALL = 1_700_000_000.0
OK = Response(200, b"Content-Length: 2\r\nContent-Type: text/plain\r\n", b"ok")
FILE = Response(200, b"Content-Length: 10\r\n", file=FileSpan("/f", 0, 10, (1, 2, 10, 3)))


def new(now: float = 0.0, **limits: Any) -> HTTPConnection:
    return HTTPConnection(Limits(**limits), now, dates=DateHeader(), server=b"Server: t\r\n")


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
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\n", 110.0)
    assert conn.deadline == 115.0  # the content gets timeout-secs of its own
    conn.receive_data(b"d" * 1024, 114.0)
    assert conn.deadline == 116.0  # each byte buys 1/min_rate seconds...
    conn.receive_data(b"d" * 7000, 114.5)
    assert conn.deadline == 119.5  # ... but never more than timeout-secs ahead


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


def refused(raw: bytes, **limits: Any) -> int:
    """The status of the ProtocolError `raw` ends in, after any events before it."""
    conn = new(**limits)
    conn.receive_data(raw, 0.0)
    with pytest.raises(ProtocolError) as caught:
        while conn.next_event() is not None:
            pass
    return caught.value.status


POST = b"POST / HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (b"Transfer-Encoding: gzip, chunked\r\n", 501),  # RFC 9112 6.1: a coding we lack
        (b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", 501),
        (b"Transfer-Encoding: chunked, gzip\r\n", 400),  # RFC 9112 6.3: chunked not final
        (b"Transfer-Encoding: identity\r\n", 400),
        (b"Transfer-Encoding: xchunked\r\n", 400),
        (b"Transfer-Encoding: chunked;q=1\r\n", 400),
        (b"Transfer-Encoding: ,\r\n", 400),
        (b"Content-Length: 67108865\r\n", 413),  # one byte over max_body, refused up front
        (b"Content-Length: 99999999999999\r\n", 413),
    ],
)
def test_framing_refused_before_the_request_comes_out(fields: bytes, status: int) -> None:
    conn = new()
    conn.receive_data(POST + fields + b"Expect: 100-continue\r\n\r\n", 0.0)
    with pytest.raises(ProtocolError) as caught:
        conn.next_event()  # no Request: the application never sends 100 to it
    assert caught.value.status == status


def test_accepted_transfer_codings() -> None:
    for value in (b"chunked", b"Chunked", b" chunked ", b", chunked"):
        conn = new()
        conn.receive_data(
            POST + b"Transfer-Encoding: " + value + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 0
        )
        assert events(conn)[1:] == [Data(b"abc"), END_OF_MESSAGE], value


def test_transfer_encoding_in_http10_is_faulty_framing() -> None:
    assert refused(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 400


def test_chunked_content_over_max_body_is_cut_off_as_it_comes() -> None:
    conn = new(max_body=10)
    conn.receive_data(POST + b"Transfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n", 0.0)
    assert events(conn)[1:] == [Data(b"abcdef")]
    conn.receive_data(b"5\r\nghijk\r\n0\r\n\r\n", 0.0)
    with pytest.raises(ProtocolError) as caught:
        events(conn)
    assert caught.value.status == 413
    assert refused(POST + b"Content-Length: 11\r\n\r\n", max_body=10) == 413
    conn = new(max_body=10)
    conn.receive_data(POST + b"Content-Length: 10\r\n\r\n0123456789", 0.0)
    assert events(conn)[1:] == [Data(b"0123456789"), END_OF_MESSAGE]


def test_chunk_extensions_cannot_outweigh_the_content() -> None:
    conn = new(max_head=4096)
    conn.receive_data(POST + b"Transfer-Encoding: chunked\r\n\r\n", 0.0)
    events(conn)
    with pytest.raises(ProtocolError) as caught:
        for _ in range(100):  # one byte of content per chunk, 500 bytes of extension each
            conn.receive_data(b"1;ext=" + b"e" * 494 + b"\r\nx\r\n", 0.0)
            events(conn)
    assert caught.value.status == 413
    conn = new(max_head=4096)
    conn.receive_data(POST + b"Transfer-Encoding: chunked\r\n\r\n1;", 0.0)
    with pytest.raises(ProtocolError) as caught:
        for _ in range(100):  # one endless extension: no content at all
            conn.receive_data(b"e" * 100, 0.0)
            events(conn)
    assert caught.value.status == 413


def test_small_chunks_with_short_extensions_are_fine() -> None:
    conn = new(max_head=4096)
    conn.receive_data(POST + b"Transfer-Encoding: chunked\r\n\r\n", 0.0)
    events(conn)
    for _ in range(2000):
        conn.receive_data(b"00001;a=b\r\nx\r\n", 0.0)
        assert events(conn) == [Data(b"x")]
    conn.receive_data(b"0\r\nX-Sum: 1\r\n\r\n", 0.0)
    assert events(conn) == [END_OF_MESSAGE]


def test_trailers_count_against_the_head_limits() -> None:
    body = b"Transfer-Encoding: chunked\r\n\r\n0\r\n" + b"T: 1\r\n" * 100 + b"\r\n"
    assert refused(POST + body) == 431


@pytest.mark.parametrize(
    ("target", "method", "status"),
    [
        (b"*", b"OPTIONS", None),  # RFC 9112 3.2.4
        (b"http://example.com/a?b", b"GET", None),  # RFC 9112 3.2.2
        (b"HTTPS://example.com:8443", b"GET", None),
        (b"*", b"GET", 400),
        (b"http:///a", b"GET", 400),  # RFC 9110 4.2.1: an empty host
        (b"http://user@example.com/", b"GET", 400),  # RFC 9110 4.2.4: userinfo
        (b"ftp://example.com/", b"GET", 400),
        (b"example.com:443", b"CONNECT", 400),  # we are not a proxy
    ],
)
def test_request_target_forms(target: bytes, method: bytes, status: int | None) -> None:
    raw = method + b" " + target + b" HTTP/1.1\r\nHost: example.com\r\n\r\n"
    if status is None:
        conn = new()
        conn.receive_data(raw, 0.0)
        assert request_of(events(conn)).target == target
    else:
        assert refused(raw) == status


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        (b"example.com", True),
        (b"example.com:8080", True),
        (b"[::1]:8080", True),
        (b"127.0.0.1", True),
        (b"", True),  # RFC 9110 7.2: empty when the target has no authority
        (b"a b", False),
        (b"a/b", False),
        (b"user@example.com", False),
        (b"example.com:80:80", False),
        (b"\xc3\xa9.example", False),
    ],
)
def test_host_syntax(host: bytes, ok: bool) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    for _ in range(2):  # the second time from the cache of good values
        if ok:
            conn = new()
            conn.receive_data(raw, 0.0)
            assert request_of(events(conn)).host == host
        else:
            assert refused(raw) == 400


@pytest.mark.parametrize(
    ("version", "served_as"),
    [(b"1.1", "1.1"), (b"1.0", "1.0"), (b"1.2", "1.1"), (b"1.9", "1.1")],
)
def test_minor_versions_are_served_as_the_highest_we_know(version: bytes, served_as: str) -> None:
    conn = new()
    conn.receive_data(b"GET / HTTP/" + version + b"\r\nHost: x\r\n\r\n", 0.0)
    assert request_of(events(conn)).http_version == served_as


@pytest.mark.parametrize("version", [b"0.9", b"2.0", b"3.0", b"9.9"])
def test_other_major_versions_get_505(version: bytes) -> None:
    assert refused(b"GET / HTTP/" + version + b"\r\nHost: x\r\n\r\n") == 505


def test_a_trickled_body_is_cut_off_at_the_minimum_rate() -> None:
    conn = new(timeout_secs=2.0, min_rate=1024.0)
    conn.receive_data(POST + b"Content-Length: 100000\r\n\r\n", 0.0)
    events(conn)
    now = 0.0
    for _ in range(100):  # bounded: a deadline that each byte renewed would never come
        deadline = conn.deadline
        assert deadline is not None
        if now >= deadline:
            break
        conn.receive_data(b"x", now)
        events(conn)
        now += 1.0
    assert 2.0 <= now <= 3.0  # one byte a second buys ~1 ms each
    assert client_reads(conn.handle_timeout(now, WALL))[0].status_code == 408


def test_a_body_at_a_good_rate_is_never_cut_off() -> None:
    conn = new(timeout_secs=2.0, min_rate=1024.0)
    conn.receive_data(POST + b"Content-Length: 100000\r\n\r\n", 0.0)
    events(conn)
    for second in range(50):  # 2000 bytes a second: slow, but above the minimum
        deadline = conn.deadline
        assert deadline is not None and deadline > second
        conn.receive_data(b"x" * 2000, float(second))
        events(conn)
    assert conn.deadline is None  # complete: the application owes the response


def test_a_stalled_body_is_cut_off_at_timeout_secs_however_much_came_before() -> None:
    conn = new(timeout_secs=2.0)
    conn.receive_data(POST + b"Content-Length: 100000\r\n\r\n" + b"x" * 50000, 0.0)
    events(conn)
    assert conn.deadline == 2.0


def test_no_100_continue_once_the_response_went_out() -> None:
    conn = new()
    conn.receive_data(POST + b"Content-Length: 3\r\nExpect: 100-continue\r\n\r\n", 0.0)
    assert isinstance(conn.next_event(), Request)
    conn.send_response(OK, 0.0, WALL)
    assert conn.send_continue() == b""


def test_every_response_has_a_date_and_server_only_when_configured() -> None:
    conn = HTTPConnection(Limits(), 0.0, dates=DateHeader())
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    events(conn)
    response, _ = client_reads(conn.send_response(OK, 0.0, WALL))
    names = [name for name, _ in response.headers]
    assert b"date" in names and b"server" not in names
    error, _ = client_reads(conn.send_error(400, 0.0, WALL))
    assert b"date" in [name for name, _ in error.headers]


def answered(raw: bytes) -> HTTPConnection:
    """A connection that received `raw` and answered its first request whole."""
    conn = new()
    conn.receive_data(raw, 0.0)
    assert isinstance(conn.next_event(), Request)
    if not raw.startswith(b"POST"):
        assert conn.next_event() is END_OF_MESSAGE  # as the protocol reads it, then answers
    conn.send_response(OK, 0.0, WALL)
    return conn


def test_a_client_that_said_close_and_sent_nothing_more_is_done() -> None:
    """pyws then closes at once; otherwise it half-closes and lingers (RFC 9112 §9.6)."""
    assert answered(b"GET / HTTP/1.0\r\n\r\n").client_done
    assert answered(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").client_done
    # It may still send: keep-alive, or content not all read yet (an early answer).
    assert not answered(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").client_done
    assert not answered(b"POST / HTTP/1.0\r\nContent-Length: 9\r\n\r\nabc").client_done
    assert not new().client_done  # nothing answered yet
