"""The events an HTTPConnection emits for each request it parses, and the peer's protocol error."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Request:
    """A request head: the request line and header fields (RFC 9112 §2.1), before any content."""

    method: bytes
    target: bytes
    http_version: str  # "1.1" or "1.0": anything else was refused with 505
    headers: tuple[tuple[bytes, bytes], ...]  # field names lowercased, in arrival order
    host: bytes | None
    keep_alive: bool  # what the client asked for (RFC 9112 §9.3)
    expect_continue: bool  # HTTP/1.1, `Expect: 100-continue` and content follows
    conditional: bool  # an If-* or Range field is present: lets the fast path skip them
    upgrade: bytes | None = None  # the Upgrade field when the parser saw a valid upgrade

    def header(self, name: bytes) -> bytes | None:
        """The first value of the field `name` (lowercase), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Data:
    """A piece of request content, already de-chunked."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The request content is complete (trailer fields, if any, are dropped)."""


END_OF_MESSAGE = EndOfMessage()

Event = Request | Data | EndOfMessage


class ProtocolError(Exception):
    """The peer sent bytes we cannot serve: answer `status`, then close this connection only."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"
