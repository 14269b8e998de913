"""The suffix table: lwsws's canned types, a mount's extra ones first, "*" last."""

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
