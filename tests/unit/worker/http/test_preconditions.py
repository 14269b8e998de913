"""Conditional requests and byte ranges, decided from the request's fields alone."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyws.worker.http.events import Request
from pyws.worker.http.preconditions import (
    MAX_RANGES,
    RangeNotSatisfiable,
    evaluate_preconditions,
    select_ranges,
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
        (((b"if-match", b"*"),), 0),
        (((b"if-match", b'"a", "abc-1"'),), 0),
        # If-Match decides alone: If-Unmodified-Since is not even looked at (section 13.2.2).
        (((b"if-match", ETAG), (b"if-unmodified-since", BEFORE)), 0),
        # An opaque-tag may hold a comma: the list is read tag by tag.
        (((b"if-none-match", b'"x,y", "abc-1"'),), 304),
        (((b"if-none-match", b'"abc-1,x"'),), 0),
        (((b"if-none-match", b'"abc-1'),), 0),  # malformed: no match
        (((b"if-none-match", b'junk, "abc-1"'),), 0),
        (((b"if-none-match", b""),), 0),
        # A list field may come in several lines (RFC 9110 section 5.3).
        (((b"if-none-match", b'"a"'), (b"if-none-match", ETAG)), 304),
        # Preconditions come before If-None-Match: a failed If-Match wins over a 304.
        (((b"if-match", b'"a"'), (b"if-none-match", ETAG)), 412),
        (((b"if-unmodified-since", BEFORE), (b"if-modified-since", SAME)), 412),
    ],
)
def test_preconditions(fields: tuple[tuple[bytes, bytes], ...], status: int) -> None:
    assert evaluate_preconditions(request(*fields), ETAG, MTIME) == status


def test_if_none_match_on_other_methods_is_412() -> None:
    assert (
        evaluate_preconditions(request((b"if-none-match", b"*"), method=b"PUT"), ETAG, MTIME) == 412
    )
    # If-Modified-Since is only for GET and HEAD (RFC 9110 section 13.1.3).
    since = request((b"if-modified-since", SAME), method=b"POST")
    assert evaluate_preconditions(since, ETAG, MTIME) == 0
    head = request((b"if-modified-since", SAME), method=b"HEAD")
    assert evaluate_preconditions(head, ETAG, MTIME) == 304


def ranges(value: bytes, size: int = 100) -> tuple[tuple[int, int], ...] | None:
    return select_ranges(request((b"range", value)), size, ETAG, MTIME)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"bytes=0-9", ((0, 9),)),
        (b"bytes=10-", ((10, 99),)),
        (b"bytes=-10", ((90, 99),)),
        (b"bytes=-1000", ((0, 99),)),
        (b"bytes=90-1000", ((90, 99),)),
        (b"BYTES = 5-5", ((5, 5),)),
        (b"bytes=0-9,20-29", ((0, 9), (20, 29))),
        (b"bytes=0-9, 20-29 ,-5", ((0, 9), (20, 29), (95, 99))),
        (b"bytes=,0-0,,2-2,", ((0, 0), (2, 2))),  # empty list elements are allowed
        # Unsorted ranges come out in file order, overlapping and adjacent ones merged.
        (b"bytes=20-29,0-9", ((0, 9), (20, 29))),
        (b"bytes=0-10,5-15", ((0, 15),)),
        (b"bytes=0-9,10-19", ((0, 19),)),
        (b"bytes=0-,5-0,5-1,5-2", None),  # an invalid spec: the whole field is ignored
        (b"bytes=50-,0-,-10", ((0, 99),)),
        # An unsatisfiable spec among satisfiable ones is dropped (RFC 9110 section 14.1.2).
        (b"bytes=0-0,200-300", ((0, 0),)),
        (b"bytes=-0,1-1", ((1, 1),)),
        (b"bytes=0-99999999999999999999999999999", ((0, 99),)),
        (b"bytes=9-1", None),
        (b"bytes=a-b", None),
        (b"bytes=0-1,a", None),
        (b"items=0-1", None),
        (b"bytes=5", None),
        (b"bytes=-", None),
        (b"bytes=", None),
        (b"bytes 0-1", None),
        (b"bytes=1 2-3", None),
    ],
)
def test_ranges(value: bytes, expected: tuple[tuple[int, int], ...] | None) -> None:
    assert ranges(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        b"bytes=100-",
        b"bytes=200-300",
        b"bytes=-0",
        b"bytes=100-,150-160,-0",
        b"bytes=" + b"9" * 30 + b"-",
    ],
)
def test_unsatisfiable_ranges(value: bytes) -> None:
    with pytest.raises(RangeNotSatisfiable):
        ranges(value)


def test_an_empty_representation() -> None:
    with pytest.raises(RangeNotSatisfiable):
        ranges(b"bytes=0-", 0)
    assert ranges(b"bytes=-5", 0) is None  # satisfiable, yet nothing to send: the whole (empty)


def test_too_many_ranges_are_ignored() -> None:
    many = b"bytes=" + b",".join(b"%d-%d" % (i * 2, i * 2) for i in range(MAX_RANGES))
    assert ranges(many) is not None and len(ranges(many) or ()) == MAX_RANGES
    assert ranges(many + b",90-90") is None


def test_if_range_and_method() -> None:
    fields = ((b"range", b"bytes=0-0"), (b"if-range", ETAG))
    assert select_ranges(request(*fields), 100, ETAG, MTIME) == ((0, 0),)
    for stale in (b'"old"', b"W/" + ETAG, BEFORE, b"not a date"):
        changed = ((b"range", b"bytes=0-0"), (b"if-range", stale))
        assert select_ranges(request(*changed), 100, ETAG, MTIME) is None
    dated = ((b"range", b"bytes=0-0"), (b"if-range", SAME))
    assert select_ranges(request(*dated), 100, ETAG, MTIME) == ((0, 0),)
    # A Last-Modified that is not a strong validator never satisfies If-Range (section 13.1.5).
    assert select_ranges(request(*dated), 100, ETAG, MTIME, date_is_strong=False) is None
    # Range is defined for GET only: HEAD and others ignore it (section 14.2).
    for method in (b"HEAD", b"POST"):
        assert (
            select_ranges(request((b"range", b"bytes=0-0"), method=method), 100, ETAG, MTIME)
            is None
        )


@given(st.binary(max_size=60), st.integers(min_value=0, max_value=10_000))
def test_any_range_field_gives_sorted_disjoint_ranges_inside_the_file(
    value: bytes, size: int
) -> None:
    try:
        chosen = select_ranges(request((b"range", b"bytes=" + value)), size, ETAG, MTIME)
    except RangeNotSatisfiable:
        return
    if chosen is not None:
        assert 1 <= len(chosen) <= MAX_RANGES
        previous = -2
        for first, last in chosen:
            assert previous + 1 < first <= last < size
            previous = last


@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 300)).map(sorted), min_size=1, max_size=16
    ),
    st.integers(1, 200),
)
def test_ranges_cover_exactly_the_bytes_asked_for(pairs: list[list[int]], size: int) -> None:
    value = b"bytes=" + b",".join(b"%d-%d" % (first, last) for first, last in pairs)
    wanted = {i for first, last in pairs for i in range(first, min(last, size - 1) + 1)}
    try:
        chosen = ranges(value, size)
    except RangeNotSatisfiable:
        assert not wanted
        return
    assert chosen is not None
    assert {i for first, last in chosen for i in range(first, last + 1)} == wanted
