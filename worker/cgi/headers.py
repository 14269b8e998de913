"""Parsing a CGI script's response header section (RFC 3875 §6.2, §6.3)."""

from __future__ import annotations

from typing import Final

MAX_HEADER_BYTES: Final = 65536

# Hop-by-hop and framing fields are the server's business, not the script's (RFC 9110 §7.6.1).
_DROPPED: Final = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te"})
# Bytes looked for as ints: `b" " in x` first tries the needle as an int, and on 3.11 the
# TypeError it raises and clears costs more than the search.
_SP: Final = 0x20
_CR: Final = 0x0D
_NUL: Final = 0x00


class CGIHeaderError(Exception):
    """The script's output is not a valid CGI response: the client gets 502."""


class CGIHead:
    """A parsed header section. A plain class, not a NamedTuple: compiled (tools/native.py),
    one is built in 50 ns against a NamedTuple's 300."""

    __slots__ = ("content_length", "fields", "headers", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        content_length: int | None,
        fields: bytes,
    ) -> None:
        self.status: Final = status
        self.reason: Final = reason
        self.headers: Final = headers  # as the script sent them, minus Status
        self.content_length: Final = content_length
        # `headers` as response header lines, but for Content-Length, which the connection
        # writes itself: serialised once, where the fields were parsed.
        self.fields: Final = fields


def head_fields(headers: tuple[tuple[bytes, bytes], ...]) -> bytes:
    """The header lines of `headers`, Content-Length left out (the connection frames)."""
    return b"".join(
        b"%b: %b\r\n" % (name, value)
        for name, value in headers
        if name.lower() != b"content-length"
    )


def find_header_end(buffer: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """(end of the header section, start of the body): the first blank line, whether the
    script ends its lines with LF or CRLF (RFC 3875 §6 allows either). `start`: where to
    look from, when the bytes before were searched already."""
    lf = buffer.find(b"\n\n", start)
    crlf = buffer.find(b"\n\r\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 3
    return None if lf < 0 else (lf, lf + 2)


# Most scripts send the same header section every time: each worker keeps what it parsed
# from short ones (a CGIHead is read-only), as the Router keeps routes.
_PARSED_MAX_BYTES: Final = 1024
_PARSED_MAX: Final = 256
_parsed: Final[dict[bytes, CGIHead]] = {}


def parse_cgi_head(section: bytes) -> CGIHead:
    """The head of a script's response from its header section (the blank line excluded);
    CGIHeaderError if the script broke the rules."""
    head = _parsed.get(section)
    if head is None:
        head = _parse(section)
        if len(section) <= _PARSED_MAX_BYTES:
            if len(_parsed) >= _PARSED_MAX:
                _parsed.clear()
            _parsed[section] = head
    return head


def _parse(section: bytes) -> CGIHead:
    status, reason = 0, b""
    headers: list[tuple[bytes, bytes]] = []
    fields: list[bytes] = []
    content_length: int | None = None
    has_type = has_location = False
    for raw in section.split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or _SP in name:
            raise CGIHeaderError(f"malformed header line {line[:80]!r}")
        value = value.strip()
        if _CR in line or _NUL in line:
            # A CR inside a line would let the script split our response (RFC 9110 §5.5).
            raise CGIHeaderError(f"control character in header line {line[:80]!r}")
        key = name.lower()
        if key == b"status":
            status, reason = _parse_status(value)
            continue
        if key in _DROPPED:
            continue
        if key == b"content-length":
            if not value.isdigit():
                raise CGIHeaderError(f"bad Content-Length {value[:40]!r}")
            content_length = int(value)
        else:
            fields.append(b"%b: %b\r\n" % (name, value))
            has_type |= key == b"content-type"
            has_location |= key == b"location"
        headers.append((name, value))
    if not status:
        # RFC 3875 §6.2.3: a redirect response without Status is a 302.
        status, reason = (302, b"Found") if has_location else (200, b"OK")
    if not has_type and not has_location:
        raise CGIHeaderError("the script sent no Content-Type")
    return CGIHead(status, reason, tuple(headers), content_length, b"".join(fields))


def _parse_status(value: bytes) -> tuple[int, bytes]:
    code, _, reason = value.partition(b" ")
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599:
        raise CGIHeaderError(f"bad Status {value[:40]!r}")
    return int(code), reason.strip()
