"""HTTP dates (RFC 9110 §5.6.7): formatting, parsing, and the per-second cached Date field."""

from __future__ import annotations

import email.utils


def format_http_date(seconds: float) -> str:
    """IMF-fixdate, the only format a server generates: `Sun, 06 Nov 1994 08:49:37 GMT`."""
    return email.utils.formatdate(seconds, usegmt=True)


def parse_http_date(value: bytes) -> int | None:
    """Seconds since the epoch for any of the three formats a recipient must accept, or None."""
    try:
        parsed = email.utils.parsedate_tz(value.decode("latin-1"))
    except (ValueError, IndexError):
        return None
    if parsed is None:
        return None
    try:
        return email.utils.mktime_tz(parsed)
    except (OverflowError, ValueError):
        return None


class DateHeader:
    """The `Date:` field line, formatted once per second however many responses go out."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self, now: float) -> bytes:
        """`Date: ...\\r\\n` for wall-clock time `now` (RFC 9110 §6.6.1)."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._line = b"Date: " + format_http_date(second).encode("ascii") + b"\r\n"
        return self._line
