"""Conditional requests (RFC 9110 §13) and single byte ranges (RFC 9110 §14) on a representation."""

from __future__ import annotations

from pyws.worker.http.dates import parse_http_date
from pyws.worker.http.events import Request


class RangeNotSatisfiable(Exception):
    """Answer 416 with `Content-Range: bytes */size` (RFC 9110 §15.5.17)."""


def evaluate_preconditions(request: Request, etag: bytes, last_modified: int) -> int:
    """0 to carry on, else 412 or 304, in the evaluation order of RFC 9110 §13.2.2."""
    if_match = request.header(b"if-match")
    if if_match is not None:
        if not _etag_in(if_match, etag, weak=False):
            return 412
    else:
        since = _date(request, b"if-unmodified-since")
        if since is not None and last_modified > since:
            return 412
    if_none_match = request.header(b"if-none-match")
    if if_none_match is not None:
        # Static content only answers GET and HEAD, where a match means 304, not 412.
        if _etag_in(if_none_match, etag, weak=True):
            return 304
    elif request.method in (b"GET", b"HEAD"):
        since = _date(request, b"if-modified-since")
        if since is not None and last_modified <= since:
            return 304
    return 0


def select_range(
    request: Request, size: int, etag: bytes, last_modified: int
) -> tuple[int, int] | None:
    """The inclusive (first, last) byte range to send, or None for the whole representation.

    Only one range is honoured: a server may ignore a Range field (RFC 9110 §14.2), which is
    what we do with several ranges, with a syntax error, or with a stale If-Range (§13.1.5).
    """
    value = request.header(b"range")
    if value is None or request.method != b"GET":
        return None
    if_range = request.header(b"if-range")
    if if_range is not None and not _if_range_holds(if_range.strip(), etag, last_modified):
        return None
    unit, _, spec = value.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition(b"-")
    if not dash:
        return None
    return _resolve(first_text.strip(), last_text.strip(), size)


def _resolve(first_text: bytes, last_text: bytes, size: int) -> tuple[int, int] | None:
    if not first_text:
        if not last_text.isdigit():
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    if not first_text.isdigit() or (last_text and not last_text.isdigit()):
        return None
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # an invalid range-spec: ignore the field
    if first >= size:
        raise RangeNotSatisfiable
    last = int(last_text) if last_text else size - 1
    return first, min(last, size - 1)


def _if_range_holds(value: bytes, etag: bytes, last_modified: int) -> bool:
    if value.startswith((b'"', b"W/")):
        return value == etag  # a strong comparison: a weak tag never matches
    return parse_http_date(value) == last_modified


def _etag_in(field: bytes, etag: bytes, *, weak: bool) -> bool:
    field = field.strip()
    if field == b"*":
        return True
    for candidate in field.split(b","):
        tag = candidate.strip()
        if weak and tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _date(request: Request, name: bytes) -> int | None:
    value = request.header(name)
    return None if value is None else parse_http_date(value)
