"""Streamed responses on HTTPConnection (send_stream_head/send_stream_data/end_stream), read
back by h11 as an independent client: no sockets, no loop."""

from __future__ import annotations

import h11
import pytest

from pyws.worker.http.connection import HTTPConnection, Limits
from pyws.worker.http.dates import DateHeader
from pyws.worker.http.events import END_OF_MESSAGE, Data, Event, Request

WALL = 1_700_000_000.0
TYPE = b"Content-Type: text/plain\r\n"


def new() -> HTTPConnection:
    return HTTPConnection(Limits(), 0.0, dates=DateHeader(), server=b"Server: t\r\n")


def events(conn: HTTPConnection) -> list[Event]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def opened(raw: bytes) -> tuple[HTTPConnection, list[Event]]:
    conn = new()
    conn.receive_data(raw, 0.0)
    return conn, events(conn)


def stream(conn: HTTPConnection, pieces: list[bytes], length: int | None = None) -> bytes:
    """A whole streamed response: head, each piece, end."""
    out = conn.send_stream_head(200, TYPE, length, 0.0, WALL)
    assert conn.streaming and not conn.idle and conn.deadline is None
    out += b"".join(conn.send_stream_data(piece) for piece in pieces)
    return out + conn.end_stream(1.0)


class Client:
    """h11 as the client that sent the requests: it judges our framing."""

    def __init__(self) -> None:
        self.conn = h11.Connection(h11.CLIENT)

    def read(
        self, data: bytes, method: str = "GET", eof: bool = False
    ) -> tuple[h11.Response, bytes]:
        headers = [("Host", "x")]
        self.conn.send(h11.Request(method=method, target="/", headers=headers))
        self.conn.send(h11.EndOfMessage())
        self.conn.receive_data(data)
        if eof:
            self.conn.receive_data(b"")
        response = self.conn.next_event()
        assert isinstance(response, h11.Response), response
        body = b""
        while isinstance(event := self.conn.next_event(), h11.Data):
            body += event.data
        assert isinstance(event, h11.EndOfMessage), event
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return response, body

    @staticmethod
    def field(response: h11.Response, name: bytes) -> bytes | None:
        values = [v for n, v in response.headers if n == name]
        return values[0] if values else None


def test_chunked_on_http11_and_keep_alive_survives() -> None:
    conn, _ = opened(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    data = stream(conn, [b"hello", b"", b" world"])  # an empty piece must not end the body
    client = Client()
    response, body = client.read(data)
    assert (response.status_code, body) == (200, b"hello world")
    assert Client.field(response, b"transfer-encoding") == b"chunked"
    assert Client.field(response, b"connection") is None
    assert data.endswith(b"\r\n0\r\n\r\n")
    assert not conn.closed and conn.idle and conn.deadline == 1.0 + conn.idle_timeout
    conn.receive_data(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", 2.0)
    found = events(conn)
    assert isinstance(found[0], Request) and found[0].target == b"/b"
    response, body = client.read(stream(conn, [b"again"]))
    assert (response.status_code, body) == (200, b"again")


def test_close_delimited_on_http10() -> None:
    conn, _ = opened(b"GET / HTTP/1.0\r\n\r\n")
    data = stream(conn, [b"one ", b"two"])
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert b"\r\nConnection: close" in head and body == b"one two"  # raw, unframed
    assert conn.closed
    # Even when the 1.0 client asked to keep alive: without a length, only the close ends it.
    conn, _ = opened(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    response, body = Client().read(stream(conn, [b"x"]), eof=True)
    assert body == b"x" and Client.field(response, b"connection") == b"close"
    assert conn.closed


def test_content_length_from_the_origin_passes_through() -> None:
    conn, _ = opened(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = stream(conn, [b"abc", b"de"], length=5)
    response, body = Client().read(data)
    assert body == b"abcde" and Client.field(response, b"content-length") == b"5"
    assert Client.field(response, b"transfer-encoding") is None
    assert not conn.closed
    # On HTTP/1.0 a length lets the connection live on, when the client asked for that.
    conn, _ = opened(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head = stream(conn, [b"ab"], length=2).partition(b"\r\n\r\n")[0]
    assert b"\r\nConnection: keep-alive" in head and not conn.closed


@pytest.mark.parametrize("length", [None, 7])
def test_head_gets_no_body(length: int | None) -> None:
    conn, _ = opened(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = conn.send_stream_head(200, TYPE, length, 0.0, WALL)
    assert conn.send_stream_data(b"ignored") == b""
    tail = conn.end_stream(0.0)
    assert tail == b"" and head.endswith(b"\r\n\r\n")
    response, body = Client().read(head, method="HEAD")
    assert body == b"" and not conn.closed
    assert Client.field(response, b"transfer-encoding") is None  # nothing to frame


@pytest.mark.parametrize("status", [204, 304])
def test_statuses_without_content(status: int) -> None:
    conn, _ = opened(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = conn.send_stream_head(status, b"", None, 0.0, WALL)
    assert b"Transfer-Encoding" not in head and conn.send_stream_data(b"x") == b""
    assert conn.end_stream(0.0) == b"" and not conn.closed


def test_a_pipelined_request_waits_for_the_streamed_response() -> None:
    conn = new()
    conn.receive_data(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    first = conn.next_event()
    assert isinstance(first, Request) and first.target == b"/1"
    assert conn.next_event() is END_OF_MESSAGE
    client = Client()
    out = conn.send_stream_head(200, TYPE, None, 0.0, WALL) + conn.send_stream_data(b"one")
    out += conn.end_stream(0.0)
    second = conn.next_event()
    assert isinstance(second, Request) and second.target == b"/2"
    assert conn.next_event() is END_OF_MESSAGE
    out += stream(conn, [b"two"])
    assert client.read(out)[1] == b"one"
    assert client.read(b"")[1] == b"two"  # h11 kept the rest: both framed correctly


def test_request_content_still_arriving_when_the_head_goes_out() -> None:
    conn, found = opened(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhell")
    assert found[1:] == [Data(b"hell")]
    client = Client()
    out = conn.send_stream_head(200, TYPE, None, 0.0, WALL) + conn.send_stream_data(b"[hell]")
    conn.receive_data(b"o worl", 1.0)
    assert events(conn) == [Data(b"o worl")]  # content keeps flowing to the origin
    assert conn.deadline is None  # the origin owns the time while it streams
    out += conn.send_stream_data(b"[o worl]")
    conn.receive_data(b"dGET /next HTTP/1.1\r\nHost: x\r\n\r\n", 1.0)
    # The caller takes no event past the end of this request's content until the stream ends.
    assert [conn.next_event(), conn.next_event()] == [Data(b"d"), END_OF_MESSAGE]
    out += conn.send_stream_data(b"[d]") + conn.end_stream(2.0)
    assert client.read(out)[1] == b"[hell][o worl][d]"
    assert not conn.closed
    nxt = conn.next_event()
    assert isinstance(nxt, Request) and nxt.target == b"/next"


def test_ending_before_the_content_is_in_drops_the_rest() -> None:
    conn, _ = opened(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12")
    stream(conn, [b"early"])
    assert not conn.closed
    conn.receive_data(b"34567890GET /next HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    found = events(conn)
    assert isinstance(found[0], Request) and found[0].target == b"/next"
    assert found[1:] == [END_OF_MESSAGE]


def test_ending_before_100_continue_was_sent_closes() -> None:
    # RFC 9110 §10.1.1: the client may or may not send the content now; we cannot tell.
    raw = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    conn, _ = opened(raw)
    head = conn.send_stream_head(200, TYPE, None, 0.0, WALL)
    assert b"Connection: close" not in head  # decided only when the stream ends
    conn.end_stream(0.0)
    assert conn.closed


def test_a_draining_connection_closes_after_the_stream() -> None:
    conn, _ = opened(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.drain()
    response, body = Client().read(stream(conn, [b"last"]))
    assert body == b"last" and Client.field(response, b"connection") == b"close"
    assert conn.closed


def test_the_client_asking_to_close() -> None:
    conn, _ = opened(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    response, body = Client().read(stream(conn, [b"bye"]))
    assert body == b"bye" and Client.field(response, b"connection") == b"close"
    assert conn.closed


def test_an_error_ends_a_stream_whose_head_was_not_sent() -> None:
    conn, _ = opened(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = conn.send_error(502, 0.0, WALL)
    assert data.startswith(b"HTTP/1.1 502 ") and conn.closed and not conn.streaming


def test_misuse_is_our_bug() -> None:
    with pytest.raises(RuntimeError):
        new().send_stream_head(200, TYPE, None, 0.0, WALL)
    conn, _ = opened(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(RuntimeError):
        conn.end_stream(0.0)
    assert conn.send_stream_data(b"not yet") == b""
    conn.send_stream_head(200, TYPE, None, 0.0, WALL)
    with pytest.raises(RuntimeError):
        conn.send_stream_head(200, TYPE, None, 0.0, WALL)  # one head per request


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_the_first_body_bytes_go_out_with_the_head_framed_as_the_rest(version: bytes) -> None:
    conn, _ = opened(b"GET / HTTP/%b\r\nHost: x\r\n\r\n" % version)
    out = conn.send_stream_head(200, TYPE, None, 0.0, WALL, body=b"first")
    out += conn.send_stream_data(b"+rest") + conn.end_stream(1.0)
    response, body = Client().read(out, eof=version == b"1.0")
    assert response.status_code == 200 and body == b"first+rest"
    assert (Client.field(response, b"transfer-encoding") == b"chunked") == (version == b"1.1")


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_a_whole_body_goes_with_its_length_and_keeps_the_connection(version: bytes) -> None:
    raw = b"GET / HTTP/%b\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" % version
    conn, _ = opened(raw)
    out = conn.send_stream_head(200, TYPE, None, 0.0, WALL, body=b"all of it", whole=True)
    out += conn.end_stream(1.0)
    response, body = Client().read(out)  # no EOF: the length alone must end the body
    assert body == b"all of it" and Client.field(response, b"content-length") == b"9"
    assert Client.field(response, b"transfer-encoding") is None
    assert not conn.closed  # HTTP/1.0 too: keep-alive survives where a close ended the body


def test_a_whole_body_gives_no_length_where_no_body_goes() -> None:
    for request, status in ((b"HEAD", 200), (b"GET", 204), (b"GET", 304)):
        conn, _ = opened(b"%b / HTTP/1.1\r\nHost: x\r\n\r\n" % request)
        head = conn.send_stream_head(status, TYPE, None, 0.0, WALL, body=b"", whole=True)
        assert b"Content-Length" not in head and b"Transfer-Encoding" not in head, request
        assert conn.end_stream(0.0) == b"" and not conn.closed
    # The origin's own length is the one a whole body goes with.
    conn, _ = opened(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = conn.send_stream_head(200, TYPE, 9, 0.0, WALL, body=b"abc", whole=True)
    assert b"Content-Length: 9\r\n" in head
