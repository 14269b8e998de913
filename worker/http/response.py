"""Responses as the engine sends them: status lines, header blocks, errors and redirects."""

from __future__ import annotations

import functools
import http
import re
from collections.abc import Iterable
from dataclasses import dataclass

STATUS_LINES: dict[int, bytes] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("ascii") for s in http.HTTPStatus
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# RFC 9110 §5.1 (field-name is a token) and §5.5 (no CR, LF or NUL in a field value).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00\r\n]")


@dataclass(frozen=True, slots=True)
class FileSpan:
    """`count` bytes of the file at `path` from `offset`, to go out with sendfile.

    `identity` is (st_dev, st_ino, st_size, st_mtime_ns) as seen when the headers were made: the
    sender checks the file it opens against it, so the body always matches Content-Length.
    """

    path: str
    offset: int
    count: int
    identity: tuple[int, int, int, int]


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
