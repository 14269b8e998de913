"""WSConnection: whole messages, UTF-8 across fragments, limits and pings, with time passed in.

websockets' client-side sans-I/O protocol makes the frames we feed and reads what we answer.
"""

from __future__ import annotations

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import OPEN, Protocol, Side

from pyws.worker.ws.connection import Closed, WSConnection, WSLimits


def client() -> Protocol:
    return Protocol(Side.CLIENT, state=OPEN)


def frames_from(conn: WSConnection) -> list[Frame]:
    oracle = client()
    for data in conn.data_to_send():
        if data:
            oracle.receive_data(data)
    return [e for e in oracle.events_received() if isinstance(e, Frame)]


def masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


def test_whole_messages_of_their_kind() -> None:
    conn = WSConnection(WSLimits(), 0.0)
    data = masked(Opcode.TEXT, "é".encode()) + masked(Opcode.BINARY, b"\xff")
    assert conn.receive_data(data, 1.0) == ["é", b"\xff"]
    parts = masked(Opcode.TEXT, b"a\xc3", fin=False) + masked(Opcode.CONT, b"\xa9b")
    assert conn.receive_data(parts, 2.0) == ["aéb"]  # a character split between frames
    binary = masked(Opcode.BINARY, b"1", fin=False) + masked(Opcode.CONT, b"2", fin=False)
    assert conn.receive_data(binary, 3.0) == []
    assert conn.receive_data(masked(Opcode.CONT, b"3"), 3.0) == [b"123"]


def test_send_kinds_and_close_handshake() -> None:
    conn = WSConnection(WSLimits(), 0.0)
    assert conn.send("text") and conn.send(b"bin")
    sent = frames_from(conn)
    assert [(f.opcode, f.data) for f in sent] == [(Opcode.TEXT, b"text"), (Opcode.BINARY, b"bin")]
    events = conn.receive_data(masked(Opcode.CLOSE, Close(1000, "bye").serialize()), 1.0)
    assert events == [Closed(1000, "bye")]
    assert not conn.open and not conn.send("late")  # nothing after the close
    writes = conn.data_to_send()
    assert writes[-1] == b""  # the server half-closes once the close is answered
    assert conn.close_code == 1000


def test_invalid_utf8_fails_1007_even_mid_message() -> None:
    conn = WSConnection(WSLimits(), 0.0)
    assert conn.receive_data(masked(Opcode.TEXT, b"\xed\xa0\x80", fin=False), 0.0) == []
    (close,) = frames_from(conn)
    assert Close.parse(close.data).code == 1007 and conn.close_code == 1007


def test_message_limit_counts_fragments() -> None:
    conn = WSConnection(WSLimits(max_message=10), 0.0)
    assert conn.receive_data(masked(Opcode.BINARY, b"123456", fin=False), 0.0) == []
    assert conn.receive_data(masked(Opcode.CONT, b"123456"), 0.0) == []
    (close,) = frames_from(conn)
    assert Close.parse(close.data).code == 1009


def test_protocol_error_1002() -> None:
    conn = WSConnection(WSLimits(), 0.0)
    conn.receive_data(Frame(Opcode.TEXT, b"x").serialize(mask=False), 0.0)
    (close,) = frames_from(conn)
    assert Close.parse(close.data).code == 1002


def test_ping_when_silent_then_give_up() -> None:
    conn = WSConnection(WSLimits(ping_interval=10.0), 100.0)
    assert conn.deadline == 110.0
    assert not conn.handle_timeout(105.0) and conn.data_to_send() == []  # not due yet
    assert not conn.handle_timeout(110.0)
    (ping,) = frames_from(conn)
    assert ping.opcode is Opcode.PING
    assert conn.deadline == 120.0
    assert conn.handle_timeout(120.0)  # no answer: gone
    (close,) = frames_from(conn)
    assert Close.parse(close.data).code == 1011


def test_any_data_counts_as_alive() -> None:
    conn = WSConnection(WSLimits(ping_interval=10.0), 0.0)
    conn.handle_timeout(10.0)
    conn.data_to_send()
    pong = Frame(Opcode.PONG, b"").serialize(mask=True)
    assert conn.receive_data(pong, 12.0) == []
    assert conn.deadline == 22.0 and not conn.handle_timeout(21.0)


def test_no_pings_without_an_interval() -> None:
    conn = WSConnection(WSLimits(), 0.0)
    assert conn.deadline is None and not conn.handle_timeout(1e9)
