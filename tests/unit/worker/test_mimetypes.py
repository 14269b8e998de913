"""The suffix table: a mount's extra types first, then lwsws's canned ones, "*" last."""

from __future__ import annotations

import pytest

from pyws.worker.mimetypes import BUILTIN, MimeTypes


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html"),
        ("INDEX.HTM", "text/html"),
        ("a/b/app.js", "text/javascript"),
        ("x.css", "text/css"),
        ("x.json", "application/json"),
        ("x.png", "image/png"),
        ("x.JPG", "image/jpeg"),
        ("x.jpeg", "image/jpeg"),
        ("x.gif", "image/gif"),
        ("favicon.ico", "image/x-icon"),
        ("x.svg", "image/svg+xml"),
        ("x.txt", "text/plain"),
        ("x.xml", "application/xml"),
        ("x.ttf", "application/x-font-ttf"),
        ("x.woff", "application/font-woff"),
        ("x.woff2", "application/font-woff2"),
        ("x.tar.gz", "application/gzip"),
        ("passwd", None),
        ("x.php", None),
        ("x.html.bak", None),
        (".html", None),  # a name that is only a suffix
    ],
)
def test_builtin_table(name: str, expected: str | None) -> None:
    assert MimeTypes().lookup(name) == expected


def test_extra_mimetypes_come_first_and_star_last() -> None:
    types = MimeTypes(((".zip", "application/zip"), (".HTML", "text/evil"), ("*", "")))
    assert types.lookup("a.ZIP") == "application/zip"
    assert types.lookup("a.html") == "text/evil"
    assert types.lookup("a.css") == "text/css"
    assert types.lookup("anything") == ""  # served, without a Content-Type
    fallback = MimeTypes((("*", "application/octet-stream"),))
    assert fallback.lookup("blob") == "application/octet-stream"


def test_the_table_is_lwsws_one() -> None:
    suffixes = [suffix for suffix, _ in BUILTIN]
    assert len(suffixes) == len(set(suffixes)) == 18


def test_the_longer_extra_suffix_wins_whatever_the_order() -> None:
    for extra in (
        ((".gz", "application/gzip"), (".tar.gz", "application/x-tar")),
        ((".tar.gz", "application/x-tar"), (".gz", "application/gzip")),
    ):
        types = MimeTypes(extra)
        assert types.lookup("/srv/x.tar.gz") == "application/x-tar"
        assert types.lookup("/srv/x.gz") == "application/gzip"
    # An extra suffix overrides a canned one that it ends with.
    assert MimeTypes(((".tar.gz", "application/x-tar"),)).lookup("a.TAR.GZ") == "application/x-tar"
    assert MimeTypes(((".tar.gz", "application/x-tar"),)).lookup("a.gz") == "application/gzip"


def test_suffixes_match_as_written() -> None:
    types = MimeTypes((("zip", "application/zip"), (".md", "text/markdown")))
    assert types.lookup("a.zip") == "application/zip"
    assert types.lookup("azip") == "application/zip"  # lws compares the bare suffix too
    assert types.lookup("a.MD") == "text/markdown"
    assert types.lookup("a.mdx") is None
    assert types.lookup("/www/.md") == "text/markdown"  # the whole path is longer than ".md"


def test_the_last_star_counts_and_an_empty_type_means_none() -> None:
    types = MimeTypes((("*", "application/octet-stream"), ("*.any", ""), (".raw", "")))
    assert types.lookup("blob") == ""
    assert types.lookup("x.raw") == ""
    assert types.field("x.raw") == b""
    assert types.field("x.html") == b"Content-Type: text/html\r\n"
    assert MimeTypes().field("blob") is None


def test_a_value_unsafe_in_a_field_fails_at_set_up() -> None:
    with pytest.raises(ValueError, match="Content-Type"):
        MimeTypes(((".x", "text/plain\r\nSet-Cookie: a=b"),))
