"""One WebSocket after its handshake, sans I/O: bytes in, whole messages out (RFC 6455).

Framing, masking, control frames and the closing handshake are the `websockets` library's
sans-I/O `Protocol`; this class adds what a server needs around it: whole messages (text
as `str`, binary as `bytes`) with UTF-8 checked across fragments, and liveness by ping. Time
is passed in, as everywhere in the protocol modules.

Order of calls: `receive_data()` / `receive_eof()` as bytes arrive, then `data_to_send()`;
`send()` and `close()` at any time, then `data_to_send()`; `handle_timeout()` at `deadline`.
An empty bytes object from `data_to_send()` means: our side is done, half-close the socket.
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import OPEN, Protocol, Side, State

# The library logs each closed connection at INFO and every frame at DEBUG: quiet by default,
# `logging.getLogger("pyws.ws.frames").setLevel(logging.DEBUG)` shows the frames.
FRAMES_LOG = logging.getLogger("pyws.ws.frames")
FRAMES_LOG.setLevel(logging.WARNING)

_TEXT, _BINARY, _CONT, _CLOSE = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.CLOSE
_DATA = frozenset((_TEXT, _BINARY, _CONT))
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")

MAX_MESSAGE = 1 << 20  # 1 MiB: lws's test plugins take far less; a browser chat fits easily
MAX_QUEUE = 2 << 20  # bytes the peer has not read yet, at most (a whole message still fits)

GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007  # RFC 6455 §8.1: a text message that is not UTF-8
POLICY_VIOLATION = 1008  # used for a peer that does not read what it is sent
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
ABNORMAL_CLOSURE = 1006  # never sent: what `close_code` says when no close frame came


@dataclass(frozen=True, slots=True)
class WSLimits:
    """What one WebSocket may cost, and how long its peer may stay silent."""

    max_message: int = MAX_MESSAGE
    max_queue: int = MAX_QUEUE
    ping_interval: float | None = None  # `ws-pingpong-secs`; None: never ping
    close_timeout: float = 5.0  # how long a closing handshake may take before we abort


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer's close frame arrived (our answer is already queued)."""

    code: int
    reason: str


Event = str | bytes | Closed


class WSConnection:
    """The server side of one WebSocket connection, in the OPEN state from the start."""

    __slots__ = ("_chunks", "_decoder", "_frames", "_limits", "_ping_sent", "_texts", "last_rx")

    def __init__(self, limits: WSLimits, now: float) -> None:
        self._limits = limits
        # max_size bounds a whole message, fragments added up (the library counts them).
        self._frames = Protocol(
            Side.SERVER, state=OPEN, max_size=limits.max_message, logger=FRAMES_LOG
        )
        # A fragmented message so far: text pieces (and their decoder), or binary ones.
        self._texts: list[str] | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._chunks: list[bytes] | None = None
        self._ping_sent: float | None = None
        self.last_rx = now

    # -- bytes in --------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """The whole messages (and a close) that `data` completes, in order."""
        frames = self._frames
        frames.receive_data(data)
        self.last_rx = now
        self._ping_sent = None  # anything from the peer shows it is alive
        events: list[Event] = []
        # In the OPEN state the library yields frames only (no handshake events).
        received: list[Frame] = frames.events_received()  # type: ignore[assignment]
        for frame in received:
            op = frame.opcode
            if op is _TEXT and frame.fin:
                try:
                    events.append(str(frame.data, "utf-8"))
                except UnicodeDecodeError:
                    self.fail(INVALID_DATA, "invalid UTF-8 in a text message")
                    break
            elif op is _BINARY and frame.fin:
                events.append(bytes(frame.data))  # the very object when it is bytes
            elif op is _CLOSE:
                close = frames.close_rcvd
                if close is not None:
                    events.append(Closed(close.code, close.reason))
            elif (op is _TEXT or op is _BINARY or op is _CONT) and not self._fragment(
                frame, events
            ):
                break
        return events

    def _fragment(self, frame: Frame, events: list[Event]) -> bool:
        """Add one frame of a fragmented message; False if the connection failed on it."""
        if frame.opcode is _TEXT:
            self._texts, self._decoder = [], _Utf8Decoder()
        elif frame.opcode is _BINARY:
            self._chunks = []
        texts, chunks = self._texts, self._chunks
        if texts is not None:
            assert self._decoder is not None
            try:
                # Checked as it comes (RFC 6455 §8.1): a bad sequence fails now, not at the end.
                texts.append(self._decoder.decode(frame.data, frame.fin))
            except UnicodeDecodeError:
                self.fail(INVALID_DATA, "invalid UTF-8 in a text message")
                return False
            if frame.fin:
                events.append("".join(texts))
                self._texts = self._decoder = None
        else:
            assert chunks is not None  # the library refuses a continuation without a start
            chunks.append(bytes(frame.data))
            if frame.fin:
                events.append(b"".join(chunks))
                self._chunks = None
        return True

    def receive_eof(self) -> None:
        """The peer closed its side of the TCP connection."""
        self._frames.receive_eof()

    # -- bytes out -------------------------------------------------------------------------------

    def send(self, message: str | bytes) -> bool:
        """Queue one whole message: text for `str`, binary for `bytes`. False once closing."""
        frames = self._frames
        if frames.state is not OPEN:
            return False
        if isinstance(message, str):
            frames.send_text(message.encode())
        else:
            frames.send_binary(message)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 §7.1.2); no-op once closing."""
        if self._frames.state is OPEN:
            self._frames.send_close(code, reason)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (RFC 6455 §7.1.7): a close frame, then our half-close."""
        if self._frames.state is OPEN:
            self._frames.fail(code, reason)

    def data_to_send(self) -> list[bytes]:
        return self._frames.data_to_send()

    # -- state -----------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        return self._frames.state is OPEN

    @property
    def state(self) -> State:
        return self._frames.state

    @property
    def close_code(self) -> int:
        """The code of the peer's close frame, else of ours, else 1006."""
        frames = self._frames
        close: Close | None = frames.close_rcvd or frames.close_sent
        return close.code if close is not None else ABNORMAL_CLOSURE

    # -- time ------------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When `handle_timeout()` is due for liveness; None without `ws-pingpong-secs`."""
        interval = self._limits.ping_interval
        if not interval or self._frames.state is not OPEN:
            return None
        if self._ping_sent is not None:
            return self._ping_sent + interval
        return self.last_rx + interval

    def handle_timeout(self, now: float) -> bool:
        """Ping a silent peer; True when it did not answer the last ping in time (it is gone)."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return False
        if self._ping_sent is not None:
            self.fail(INTERNAL_ERROR, "no answer to ping")
            return True
        self._frames.send_ping(b"")
        self._ping_sent = now
        return False
