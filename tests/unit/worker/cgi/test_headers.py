"""CGI response header sections (RFC 3875 §6)."""

from __future__ import annotations

import pytest

from pyws.worker.cgi.headers import CGIHeaderError, find_header_end, parse_cgi_head


def test_status_is_taken_and_not_passed_on() -> None:
    head = parse_cgi_head(b"Status: 404 Not Here\r\nContent-Type: text/plain\r\nX-A: 1")
    assert (head.status, head.reason) == (404, b"Not Here")
    assert head.headers == ((b"Content-Type", b"text/plain"), (b"X-A", b"1"))


def test_location_without_status_is_302() -> None:
    head = parse_cgi_head(b"Location: http://example.com/")
    assert head.status == 302


def test_location_with_status_keeps_it() -> None:
    assert parse_cgi_head(b"Status: 301 Moved\nLocation: /x").status == 301


def test_default_is_200_and_content_length_is_read() -> None:
    head = parse_cgi_head(b"Content-Type: a/b\nContent-Length: 12")
    assert (head.status, head.content_length) == (200, 12)


def test_framing_headers_belong_to_the_server() -> None:
    head = parse_cgi_head(b"Content-Type: a/b\nTransfer-Encoding: chunked\nConnection: close")
    assert head.headers == ((b"Content-Type", b"a/b"),)


@pytest.mark.parametrize(
    "section",
    [
        b"X-A: 1",  # no Content-Type
        b"Content-Type a/b",  # no colon
        b"Status: 99 x\nContent-Type: a/b",
        b"Status: abc\nContent-Type: a/b",
        b"Content-Type: a/b\nContent-Length: -1",
        b"Bad Name: x\nContent-Type: a/b",
    ],
)
def test_bad_sections(section: bytes) -> None:
    with pytest.raises(CGIHeaderError):
        parse_cgi_head(section)


@pytest.mark.parametrize(
    ("buffer", "bounds"),
    [
        (b"A: b\n\nbody", (4, 6)),
        (b"A: b\r\n\r\nbody", (5, 8)),
        (b"A: b\r\n", None),
        (b"A: b\n\r\n\r\n", (4, 7)),
    ],
)
def test_find_header_end(buffer: bytes, bounds: tuple[int, int] | None) -> None:
    assert find_header_end(buffer) == bounds


def test_a_header_section_seen_before_gives_the_same_head_and_errors_are_not_kept() -> None:
    section = b"Content-Type: text/plain\r\nX-Seen: twice"
    assert parse_cgi_head(section) is parse_cgi_head(bytes(section))
    for _ in range(2):
        with pytest.raises(CGIHeaderError):
            parse_cgi_head(b"X-No-Type: 1")
    for i in range(600):  # more than the worker keeps: it starts over, and still parses
        assert parse_cgi_head(b"Content-Type: a/b\nX-N: %d" % i).headers[1] == (b"X-N", b"%d" % i)
