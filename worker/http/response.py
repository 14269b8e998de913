"""Responses as the engine sends them: status lines, header blocks, errors and redirects."""

from __future__ import annotations

import functools
import http
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

STATUS_LINES: Final[dict[int, bytes]] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("ascii") for s in http.HTTPStatus
}
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
# multipart/byteranges (RFC 9110 §14.6): random per process, so a file cannot hold it by
# design (RFC 2046 §5.1.1 asks that the boundary not occur in the parts).
BOUNDARY: Final = secrets.token_hex(16).encode("ascii")
MULTIPART_TYPE: Final = b"Content-Type: multipart/byteranges; boundary=" + BOUNDARY + b"\r\n"

# RFC 9110 §5.1 (field-name is a token) and §5.5 (no CR, LF or NUL in a field value).
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(r"[\x00\r\n]")


Part = tuple[bytes, int, int]  # bytes that go first, then (offset, count) of the file


@dataclass(frozen=True, slots=True)
class FileSpan:
    """`count` bytes of the file at `path` from `offset`, to go out with sendfile.

    `identity` is (st_dev, st_ino, st_size, st_mtime_ns) as seen when the headers were made: the
    sender checks the file it opens against it, so the body always matches Content-Length.

    A multipart/byteranges body sets `parts` and `epilogue` instead: each part's head, then
    its bytes of the file, and the closing delimiter last; `count` is then the whole body.
    """

    path: str
    offset: int
    count: int
    identity: tuple[int, int, int, int]
    parts: tuple[Part, ...] = ()
    epilogue: bytes = b""

    @property
    def segments(self) -> tuple[Part, ...]:
        """The body as (bytes, offset, count) steps; the epilogue follows the last one."""
        return self.parts or ((b"", self.offset, self.count),)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response but for `Date`, `Server` and `Connection`, which the connection adds.

    `headers` is the serialised field block ("Name: value\\r\\n" lines), Content-Length included,
    so a cached Response costs nothing to send again. The body is `body`, or `file` when set.
    """

    status: int
    headers: bytes
    body: bytes = b""
    file: FileSpan | None = None
    close: bool = False  # end the connection after this response, whatever was asked


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d Unknown\r\n" % status
    return line


def serialize_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    """Header lines from (name, value) pairs; ValueError for a name or value unsafe to send."""
    out = []
    for name, value in fields:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header field name {name!r}")
        if _BAD_VALUE.search(value):
            raise ValueError(f"invalid value for header field {name!r}")
        out.append(f"{name}: {value.strip()}\r\n".encode("latin-1"))
    return b"".join(out)


@functools.lru_cache(maxsize=64)
def error_response(status: int, extra: bytes = b"") -> Response:
    """A small HTML page for `status`; `extra` is more serialised header lines (e.g. Allow)."""
    phrase = http.HTTPStatus(status).phrase if status in STATUS_LINES else "Error"
    body = (
        f"<!DOCTYPE html><html><head><title>{status} {phrase}</title></head>"
        f"<body><h1>{status} {phrase}</h1></body></html>\n"
    ).encode("ascii")
    headers = (
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: %d\r\n"
        b"Cache-Control: no-store\r\n" % len(body)
    ) + extra
    return Response(status, headers, body)


def redirect_response(location: str, status: int = 301) -> Response:
    """A redirect with an empty body; `location` must already be percent-encoded ASCII."""
    fields = serialize_fields([("Location", location)])
    return Response(status, fields + b"Content-Length: 0\r\n")


def serialize_byteranges(
    content_type: bytes, spans: Iterable[tuple[int, int]], size: int
) -> tuple[tuple[Part, ...], bytes, int]:
    """The framing of a multipart/byteranges body (RFC 9110 §14.6) around file `spans`.

    `content_type` is the representation's serialised Content-Type line (b"" for none). Returns
    the parts (head, offset, count), the closing delimiter, and the body's length, so that
    Content-Length is known before a byte of the file is read. Per RFC 2046 §5.1.1 the CRLF
    before each delimiter belongs to it; the body starts with the first delimiter.
    """
    parts = []
    length = 0
    lead = b"--"
    for first, last in spans:
        head = b"%s%s\r\n%sContent-Range: bytes %d-%d/%d\r\n\r\n" % (
            lead,
            BOUNDARY,
            content_type,
            first,
            last,
            size,
        )
        lead = b"\r\n--"
        count = last - first + 1
        parts.append((head, first, count))
        length += len(head) + count
    epilogue = b"\r\n--" + BOUNDARY + b"--\r\n"
    return tuple(parts), epilogue, length + len(epilogue)
