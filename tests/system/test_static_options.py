"""Every lwsws file:// mount option through the real root, with curl and httpx as clients."""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyws_harness import Pyws, Site, parse_byteranges, reserve_port, vhost

MIB = 1024 * 1024
DIGITS = b"0123456789" * 10  # 100 bytes: byte i is str(i % 10)
OLD = 1_600_000_000  # mtime of the files whose Last-Modified tests compare (Sep 2020)

# mountpoint -> the mount's cache options, and the Cache-Control lwsws gives them.
CACHE_MOUNTS: dict[str, tuple[dict[str, str], str]] = {
    "/": ({}, "no-store"),
    "/age-only": ({"cache-max-age": "60"}, "no-store"),
    "/reuse": ({"cache-max-age": "60", "cache-reuse": "1"}, "private, max-age=60"),
    "/public": (
        {"cache-max-age": "3600", "cache-reuse": "1", "cache-intermediaries": "1"},
        "public, max-age=3600",
    ),
    "/revalidate": (
        {"cache-max-age": "30", "cache-reuse": "1", "cache-revalidate": "1"},
        "must-revalidate, private, max-age=30",
    ),
    "/all": (
        {
            "cache-max-age": "86400",
            "cache-reuse": "1",
            "cache-revalidate": "1",
            "cache-intermediaries": "1",
        },
        "must-revalidate, public, max-age=86400",
    ),
    "/cache-no": ({"cache-max-age": "60", "cache-reuse": "1", "cache-no": "1"}, "no-store"),
}


@dataclass
class Reply:
    status: int
    fields: dict[str, list[str]]  # lowercased names
    body: bytes

    def one(self, name: str) -> str:
        values = self.fields.get(name, [])
        assert len(values) == 1, f"{name}: {values}"
        return values[0]


@dataclass
class Served:
    port: int
    docroot: Path
    one_mib: bytes
    twenty_mib: bytes

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def curl(self, path: str, *args: str, host: str = "localhost") -> Reply:
        """`curl -s -D -`: the head and the body, as curl received them."""
        dump = () if "-I" in args else ("-D", "-")  # -I writes the head to stdout already
        out = subprocess.run(
            ["curl", "-s", *dump, "-H", f"Host: {host}", *args, self.url(path)],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields.setdefault(name.strip().lower(), []).append(value.strip())
        return Reply(int(status_line.split()[1]), fields, body)


def write_docroot(root: Path) -> tuple[bytes, bytes]:
    (root / "page.html").write_text("page\n")
    (root / "UPPER.HTML").write_text("upper\n")
    (root / "style.css").write_text("body {}\n")
    (root / "app.js").write_text("let x;\n")
    (root / "digits.txt").write_bytes(DIGITS)
    (root / "notes.unknownext").write_text("NOT-FOR-YOUR-EYES\n")
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b tar")
    (root / "letter.doc").write_text("evil\n")
    (root / "bundle.zip").write_bytes(b"PK zip")
    (root / "404.html").write_text("<h1>no such thing here</h1>\n")
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "page.html").write_text("docs page\n")
    (root / "docs" / "sub" / "index.html").write_text("not the default of /docs\n")
    one_mib, twenty_mib = os.urandom(MIB), os.urandom(20 * MIB)
    (root / "one-mib.gz").write_bytes(one_mib)
    (root / "twenty-mib.gz").write_bytes(twenty_mib)
    for name in ("digits.txt", "page.html", "twenty-mib.gz"):
        os.utime(root / name, (OLD, OLD))  # a settled Last-Modified: a strong validator
    return one_mib, twenty_mib


@pytest.fixture
def served(pyws: Pyws, site: Site) -> Iterator[Served]:
    one_mib, twenty_mib = write_docroot(site.docroot)
    origin = f"file://{site.docroot}"
    mounts: list[dict[str, Any]] = [
        {"mountpoint": point, "origin": origin, **options}
        for point, (options, _) in CACHE_MOUNTS.items()
    ]
    mounts += [
        {
            "mountpoint": "/types",
            "origin": origin,
            "extra-mimetypes": {
                ".zip": "application/zip",
                ".doc": "text/evil",
                ".tar.gz": "application/x-tar",
            },
        },
        {"mountpoint": "/any", "origin": origin, "extra-mimetypes": {"*": ""}},
        {"mountpoint": "/docs", "origin": f"file://{site.docroot}/docs", "default": "page.html"},
    ]
    with reserve_port() as reserved:
        port = reserved.getsockname()[1]
        site.write_conf(
            vhosts=[
                vhost(port, mounts=mounts, **{"error-document-404": "/404.html"}),
                vhost(
                    port,
                    name="broken.test",
                    mounts=[site.mount()],
                    **{"error-document-404": "/absent.html"},
                ),
            ]
        )
        pyws.start()
    yield Served(port, site.docroot, one_mib, twenty_mib)


@pytest.mark.parametrize("mountpoint", sorted(CACHE_MOUNTS))
def test_cache_options_give_lwsws_cache_control(served: Served, mountpoint: str) -> None:
    expected = CACHE_MOUNTS[mountpoint][1]
    path = mountpoint.rstrip("/") + "/page.html"
    ok = served.curl(path)
    assert (ok.status, ok.body) == (200, b"page\n")
    assert ok.one("cache-control") == expected
    assert served.curl(mountpoint.rstrip("/") + "/one-mib.gz", "-I").one("cache-control") == (
        expected
    )
    not_modified = served.curl(path, "-H", f"If-None-Match: {ok.one('etag')}")
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert not_modified.one("cache-control") == expected


def test_mimetypes(served: Served) -> None:
    for path, expected in [
        ("/page.html", "text/html"),
        ("/UPPER.HTML", "text/html"),  # suffixes match without regard to case
        ("/style.css", "text/css"),
        ("/app.js", "text/javascript"),
        ("/digits.txt", "text/plain"),
        ("/archive.tar.gz", "application/gzip"),
        ("/types/archive.tar.gz", "application/x-tar"),  # the longer extra suffix wins
        ("/types/letter.doc", "text/evil"),
        ("/types/bundle.zip", "application/zip"),
        ("/types/page.html", "text/html"),  # the canned table still applies
        ("/any/page.html", "text/html"),
    ]:
        reply = served.curl(path)
        assert reply.status == 200, path
        assert reply.one("content-type") == expected, path
    for path in ("/notes.unknownext", "/types/notes.unknownext", "/bundle.zip", "/letter.doc"):
        refused = served.curl(path)
        assert refused.status == 415, path
        assert b"NOT-FOR-YOUR-EYES" not in refused.body
    anything = served.curl("/any/notes.unknownext")
    assert (anything.status, anything.body) == (200, b"NOT-FOR-YOUR-EYES\n")
    assert "content-type" not in anything.fields  # `"*": ""`: served without a type


def test_default_documents(served: Served) -> None:
    assert served.curl("/").body == b"<h1>hello from pyws</h1>\n"
    assert served.curl("/docs/").body == b"docs page\n"  # `default`, not index.html
    redirect = served.curl("/docs")
    assert redirect.status == 301 and redirect.one("location") == "/docs/"
    assert redirect.body == b""
    # A directory without its default document: no listing, a 404.
    listing = served.curl("/docs/sub/")
    assert listing.status == 404 and b"index.html" not in listing.body
    assert served.curl("/docs/sub").one("location") == "/docs/sub/"


def test_validators_with_curl(served: Served, tmp_path: Path) -> None:
    ok = served.curl("/digits.txt")
    etag, last_modified = ok.one("etag"), ok.one("last-modified")
    assert re.fullmatch(r'"[0-9a-f-]+"', etag)
    assert email.utils.parsedate_to_datetime(last_modified).timestamp() == OLD
    saved = tmp_path / "etag"
    served.curl("/digits.txt", "--etag-save", str(saved))
    assert saved.read_text().strip() == etag
    compared = served.curl("/digits.txt", "--etag-compare", str(saved))
    assert (compared.status, compared.body, compared.one("etag")) == (304, b"", etag)
    assert "content-length" not in compared.fields
    for field in (f"If-None-Match: W/{etag}", "If-None-Match: *", f'If-None-Match: "x", {etag}'):
        assert served.curl("/digits.txt", "-H", field).status == 304, field
    assert served.curl("/digits.txt", "-H", 'If-None-Match: "other"').status == 200
    since = served.curl("/digits.txt", "-z", last_modified)  # If-Modified-Since
    assert (since.status, since.body) == (304, b"")
    earlier = email.utils.formatdate(OLD - 60, usegmt=True)
    assert served.curl("/digits.txt", "-z", earlier).body == DIGITS
    unmodified = served.curl("/digits.txt", "-z", f"-{earlier}")  # If-Unmodified-Since
    assert unmodified.status == 412
    assert served.curl("/digits.txt", "-z", f"-{last_modified}").status == 200
    assert served.curl("/digits.txt", "-H", 'If-Match: "nope"').status == 412
    assert served.curl("/digits.txt", "-H", f"If-Match: {etag}").body == DIGITS


def test_ranges_with_curl(served: Served) -> None:
    one = served.curl("/digits.txt", "-r", "10-19")
    assert (one.status, one.body) == (206, DIGITS[10:20])
    assert one.one("content-range") == "bytes 10-19/100"
    assert one.one("content-length") == "10"
    several = served.curl("/digits.txt", "-r", "0-9,20-29")
    assert several.status == 206
    content_type = several.one("content-type")
    assert content_type.startswith("multipart/byteranges; boundary=")
    assert int(several.one("content-length")) == len(several.body)
    assert "content-range" not in several.fields
    assert parse_byteranges(content_type, several.body) == [
        ("bytes 0-9/100", "text/plain", DIGITS[0:10]),
        ("bytes 20-29/100", "text/plain", DIGITS[20:30]),
    ]
    # The boundary is random per process, never one the file could be made to contain.
    boundary = content_type.split("boundary=", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{32}", boundary)
    merged = served.curl("/digits.txt", "-r", "50-59,0-9,5-14")  # unsorted and overlapping
    assert [part[0] for part in parse_byteranges(merged.one("content-type"), merged.body)] == [
        "bytes 0-14/100",
        "bytes 50-59/100",
    ]
    beyond = served.curl("/digits.txt", "-r", "100-200")
    assert (beyond.status, beyond.one("content-range")) == (416, "bytes */100")
    many = ",".join(f"{i}-{i}" for i in range(0, 40, 2))  # 20 ranges: more than we take
    assert served.curl("/digits.txt", "-r", many).body == DIGITS
    head = served.curl("/digits.txt", "-I", "-r", "0-9")  # HEAD ignores Range
    assert (head.status, head.one("content-length"), head.body) == (200, "100", b"")
    assert served.curl("/any/notes.unknownext", "-r", "0-0,2-2").body.count(b"Content-Type") == 0


def test_if_range(served: Served) -> None:
    ok = served.curl("/digits.txt")
    etag, last_modified = ok.one("etag"), ok.one("last-modified")
    for validator in (etag, last_modified):
        fresh = served.curl("/digits.txt", "-r", "0-4", "-H", f"If-Range: {validator}")
        assert (fresh.status, fresh.body) == (206, b"01234"), validator
    earlier = email.utils.formatdate(OLD - 60, usegmt=True)
    for stale in ('"old"', f"W/{etag}", earlier):
        whole = served.curl("/digits.txt", "-r", "0-4", "-H", f"If-Range: {stale}")
        assert (whole.status, whole.body) == (200, DIGITS), stale


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_large_files_arrive_intact(served: Served) -> None:
    for path, content in (("/one-mib.gz", served.one_mib), ("/twenty-mib.gz", served.twenty_mib)):
        reply = served.curl(path)
        assert reply.status == 200
        assert reply.one("content-length") == str(len(content))
        assert sha256(reply.body) == sha256(content)
        with httpx.Client() as client:
            assert sha256(client.get(served.url(path)).content) == sha256(content)


def test_several_ranges_of_a_large_file(served: Served) -> None:
    content, size = served.twenty_mib, len(served.twenty_mib)
    reply = served.curl("/twenty-mib.gz", "-r", "0-99,10000000-14999999,-65536")
    assert reply.status == 206
    assert int(reply.one("content-length")) == len(reply.body)
    assert parse_byteranges(reply.one("content-type"), reply.body) == [
        (f"bytes 0-99/{size}", "application/gzip", content[:100]),
        (f"bytes 10000000-14999999/{size}", "application/gzip", content[10000000:15000000]),
        (f"bytes {size - 65536}-{size - 1}/{size}", "application/gzip", content[-65536:]),
    ]
    one = served.curl("/twenty-mib.gz", "-r", "19000000-")
    assert sha256(one.body) == sha256(content[19000000:])


def test_error_document_404(served: Served) -> None:
    missing = served.curl("/no/such/page.html")
    assert missing.status == 404
    assert missing.one("content-type") == "text/html"
    assert missing.body == b"<h1>no such thing here</h1>\n"
    assert missing.one("content-length") == str(len(missing.body))
    head = served.curl("/nothing.css", "-I")
    assert (head.status, head.body) == (404, b"")
    # A vhost whose error document is missing falls back to the plain 404.
    plain = served.curl("/no/such/page.html", host="broken.test")
    assert plain.status == 404
    assert plain.one("content-type") == "text/html; charset=utf-8"
    assert b"404 Not Found" in plain.body
