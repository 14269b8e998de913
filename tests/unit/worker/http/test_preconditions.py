"""Conditional requests and byte ranges, decided from the request's fields alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyws.worker.http.events import Request
from pyws.worker.http.preconditions import (
    RangeNotSatisfiable,
    evaluate_preconditions,
    select_range,
)

ETAG = b'"abc-1"'
MTIME = 1_700_000_000  # Tue, 14 Nov 2023 22:13:20 GMT
BEFORE = b"Tue, 14 Nov 2023 22:13:19 GMT"
SAME = b"Tue, 14 Nov 2023 22:13:20 GMT"


def request(*fields: tuple[bytes, bytes], method: bytes = b"GET") -> Request:
    return Request(method, b"/", "1.1", fields, b"x", True, False, True)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ((), 0),
        (((b"if-none-match", ETAG),), 304),
        (((b"if-none-match", b'"other", ' + ETAG),), 304),
        (((b"if-none-match", b"W/" + ETAG),), 304),  # weak comparison (RFC 9110 section 13.1.2)
        (((b"if-none-match", b"*"),), 304),
        (((b"if-none-match", b'"other"'),), 0),
        (((b"if-modified-since", SAME),), 304),
        (((b"if-modified-since", BEFORE),), 0),
        (((b"if-modified-since", b"not a date"),), 0),
        # If-None-Match wins over If-Modified-Since.
        (((b"if-none-match", b'"other"'), (b"if-modified-since", SAME)), 0),
        (((b"if-match", ETAG),), 0),
        (((b"if-match", b"W/" + ETAG),), 412),  # strong comparison
        (((b"if-match", b'"other"'),), 412),
        (((b"if-unmodified-since", BEFORE),), 412),
        (((b"if-unmodified-since", SAME),), 0),
    ],
)
def test_preconditions(fields: tuple[tuple[bytes, bytes], ...], status: int) -> None:
    assert evaluate_preconditions(request(*fields), ETAG, MTIME) == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"bytes=0-9", (0, 9)),
        (b"bytes=10-", (10, 99)),
        (b"bytes=-10", (90, 99)),
        (b"bytes=-1000", (0, 99)),
        (b"bytes=90-1000", (90, 99)),
        (b"BYTES = 5-5", (5, 5)),
        (b"bytes=0-1,5-6", None),  # several ranges: ignored, the whole file is sent
        (b"bytes=9-1", None),
        (b"bytes=a-b", None),
        (b"items=0-1", None),
        (b"bytes=5", None),
    ],
)
def test_ranges(value: bytes, expected: tuple[int, int] | None) -> None:
    assert select_range(request((b"range", value)), 100, ETAG, MTIME) == expected


@pytest.mark.parametrize("value", [b"bytes=100-", b"bytes=200-300", b"bytes=-0"])
def test_unsatisfiable_ranges(value: bytes) -> None:
    with pytest.raises(RangeNotSatisfiable):
        select_range(request((b"range", value)), 100, ETAG, MTIME)


def test_if_range_and_method() -> None:
    fields = ((b"range", b"bytes=0-0"), (b"if-range", ETAG))
    assert select_range(request(*fields), 100, ETAG, MTIME) == (0, 0)
    stale = ((b"range", b"bytes=0-0"), (b"if-range", b'"old"'))
    assert select_range(request(*stale), 100, ETAG, MTIME) is None
    dated = ((b"range", b"bytes=0-0"), (b"if-range", SAME))
    assert select_range(request(*dated), 100, ETAG, MTIME) == (0, 0)
    assert select_range(request((b"range", b"bytes=0-0"), method=b"HEAD"), 100, ETAG, MTIME) is None


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=10_000))
def test_any_range_field_gives_a_range_inside_the_file(value: bytes, size: int) -> None:
    try:
        chosen = select_range(request((b"range", b"bytes=" + value)), size, ETAG, MTIME)
    except RangeNotSatisfiable:
        return
    if chosen is not None:
        first, last = chosen
        assert 0 <= first <= last < size
