"""FileMount on a real directory: what it answers, what it caches, what it never serves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyws_harness import parse_byteranges

from pyws.supervisor.config.model import MountConfig, OriginKind, VhostConfig
from pyws.worker import static
from pyws.worker.http.events import Request
from pyws.worker.http.preconditions import MAX_RANGES
from pyws.worker.http.response import BOUNDARY, Response
from pyws.worker.routing import route
from pyws.worker.static import SMALL_FILE, FileMount, cache_control


def mount_at(root: Path, point: str = "/", **options: object) -> MountConfig:
    return MountConfig(point, f"file://{root}", OriginKind.FILE, str(root), **options)  # type: ignore[arg-type]


def get(
    files: FileMount,
    config: MountConfig,
    target: bytes,
    *fields: tuple[bytes, bytes],
    method: bytes = b"GET",
) -> Response:
    vhost = VhostConfig(name="h", port=80, mounts=(config,))
    request = Request(method, target, "1.1", fields, b"h", True, False, bool(fields))
    found = route((vhost,), b"h", target)
    return found.response or files.handle(request, found)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    www = tmp_path / "www"
    (www / "dir").mkdir(parents=True)
    (www / "index.html").write_text("home\n")
    (www / "dir" / "index.html").write_text("dir\n")
    (www / "page.html").write_text("page\n")
    (www / "odd.sfx").write_text("odd\n")
    (www / "big.gz").write_bytes(b"z" * (SMALL_FILE + 1))
    (tmp_path / "secret.txt").write_text("secret\n")
    return www


@pytest.fixture
def config(root: Path) -> MountConfig:
    return mount_at(root)


@pytest.fixture
def files(config: MountConfig) -> FileMount:
    return FileMount(VhostConfig(name="h", port=80, headers=(("X-Frame-Options", "DENY"),)), config)


def test_small_files_come_from_memory(files: FileMount, config: MountConfig) -> None:
    response = get(files, config, b"/page.html")
    assert (response.status, response.body, response.file) == (200, b"page\n", None)
    headers = response.headers
    assert headers.startswith(b"Content-Type: text/html\r\nContent-Length: 5\r\n")
    for field in (b'\r\nETag: "', b"\r\nLast-Modified: ", b"\r\nCache-Control: no-store\r\n"):
        assert field in headers
    assert b"\r\nX-Frame-Options: DENY\r\n" in headers  # the vhost's headers
    assert get(files, config, b"/page.html") is response  # cached: nothing rebuilt


def test_large_files_are_left_to_sendfile(
    files: FileMount, config: MountConfig, root: Path
) -> None:
    response = get(files, config, b"/big.gz")
    assert response.body == b""
    assert response.file is not None
    assert (response.file.path, response.file.offset) == (str(root / "big.gz"), 0)
    assert response.file.count == SMALL_FILE + 1
    assert b"Content-Length: %d\r\n" % (SMALL_FILE + 1) in response.headers


def test_directories_serve_their_default(files: FileMount, config: MountConfig) -> None:
    assert get(files, config, b"/").body == b"home\n"
    assert get(files, config, b"/dir/").body == b"dir\n"
    redirect = get(files, config, b"/dir?x=1")
    assert redirect.status == 301
    assert b"Location: /dir/?x=1\r\n" in redirect.headers


def test_no_default_no_listing(root: Path) -> None:
    config = mount_at(root, default="/")
    files = FileMount(VhostConfig(name="h", port=80), config)
    assert get(files, config, b"/dir/").status == 403
    (root / "dir" / "index.html").unlink()
    config = mount_at(root)
    files = FileMount(VhostConfig(name="h", port=80), config)
    assert get(files, config, b"/dir/").status == 404


def test_a_custom_default(root: Path) -> None:
    config = mount_at(root, "/m", default="page.html")
    files = FileMount(VhostConfig(name="h", port=80), config)
    assert get(files, config, b"/m/").body == b"page\n"
    assert get(files, config, b"/m").status == 301


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/missing.html", 404),
        (b"/page.html/", 404),
        (b"/odd.sfx", 415),
        (b"/../secret.txt", 403),
        (b"/escape.txt", 404),
        (b"/escape-dir/secret.txt", 404),
        (b"/fifo.txt", 403),
    ],
)
def test_refusals(
    files: FileMount, config: MountConfig, root: Path, target: bytes, status: int
) -> None:
    (root / "escape.txt").symlink_to(root.parent / "secret.txt")
    (root / "escape-dir").symlink_to(root.parent)
    os.mkfifo(root / "fifo.txt")
    response = get(files, config, target)
    assert response.status == status
    assert b"secret" not in response.body


def test_other_methods_get_405(files: FileMount, config: MountConfig) -> None:
    response = get(files, config, b"/page.html", method=b"POST")
    assert response.status == 405
    assert b"Allow: GET, HEAD\r\n" in response.headers
    assert get(files, config, b"/page.html", method=b"HEAD").status == 200


def test_changes_are_seen_once_revalidated(
    files: FileMount, config: MountConfig, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static, "REVALIDATE_SECS", 0.0)
    assert get(files, config, b"/page.html").body == b"page\n"
    (root / "page.html").write_text("changed, and longer\n")
    assert get(files, config, b"/page.html").body == b"changed, and longer\n"
    (root / "page.html").unlink()
    assert get(files, config, b"/page.html").status == 404
    (root / "page.html").write_text("back\n")
    assert get(files, config, b"/page.html").body == b"back\n"


def test_a_small_cached_file_is_trusted_for_revalidate_secs(
    files: FileMount, config: MountConfig, root: Path
) -> None:
    assert get(files, config, b"/page.html").body == b"page\n"
    (root / "page.html").write_text("changed\n")
    # Within the window the whole old body is served: stale, never torn.
    assert get(files, config, b"/page.html").body == b"page\n"


def test_conditional_and_range(files: FileMount, config: MountConfig) -> None:
    first = get(files, config, b"/page.html")
    etag = first.headers.split(b"ETag: ", 1)[1].split(b"\r\n", 1)[0]
    not_modified = get(files, config, b"/page.html", (b"if-none-match", etag))
    assert (not_modified.status, not_modified.body) == (304, b"")
    assert b"ETag: " + etag in not_modified.headers
    assert b"Content-Length" not in not_modified.headers
    part = get(files, config, b"/page.html", (b"range", b"bytes=1-2"))
    assert (part.status, part.body) == (206, b"ag")
    assert b"Content-Range: bytes 1-2/5\r\n" in part.headers
    big = get(files, config, b"/big.gz", (b"range", b"bytes=-10"))
    assert big.file is not None and (big.file.offset, big.file.count) == (SMALL_FILE - 9, 10)
    beyond = get(files, config, b"/page.html", (b"range", b"bytes=9-"))
    assert beyond.status == 416
    assert get(files, config, b"/page.html", (b"if-match", b'"nope"')).status == 412


def test_extra_mimetypes(root: Path) -> None:
    config = mount_at(root, extra_mimetypes=((".sfx", "text/x-odd"),))
    files = FileMount(VhostConfig(name="h", port=80), config)
    assert b"Content-Type: text/x-odd\r\n" in get(files, config, b"/odd.sfx").headers
    anything = mount_at(root, extra_mimetypes=(("*", ""),))
    files = FileMount(VhostConfig(name="h", port=80), anything)
    response = get(files, anything, b"/odd.sfx")
    assert response.status == 200 and b"Content-Type" not in response.headers


# (cache-max-age, cache-reuse, cache-revalidate, cache-intermediaries, cache-no) -> the value
# lws writes: "no-store" unless max-age and reuse, else "[must-revalidate, ]private|public,
# max-age=N" (libwebsockets lws_serve_http_file).
CACHE_TABLE = [
    ((0, False, False, False, False), "no-store"),
    ((60, False, False, False, False), "no-store"),
    ((60, False, True, True, False), "no-store"),
    ((0, True, False, False, False), "no-store"),
    ((0, True, True, True, False), "no-store"),
    ((60, True, False, False, False), "private, max-age=60"),
    ((60, True, False, True, False), "public, max-age=60"),
    ((60, True, True, False, False), "must-revalidate, private, max-age=60"),
    ((86400, True, True, True, False), "must-revalidate, public, max-age=86400"),
    ((1, True, False, False, False), "private, max-age=1"),
    ((60, True, False, False, True), "no-store"),
    ((60, True, True, True, True), "no-store"),
]


@pytest.mark.parametrize(("options", "expected"), CACHE_TABLE)
def test_cache_control_table(
    root: Path, options: tuple[int, bool, bool, bool, bool], expected: str
) -> None:
    max_age, reuse, revalidate, intermediaries, no = options
    config = mount_at(
        root,
        cache_max_age=max_age,
        cache_reuse=reuse,
        cache_revalidate=revalidate,
        cache_intermediaries=intermediaries,
        cache_no=no,
    )
    assert cache_control(config) == expected
    files = FileMount(VhostConfig(name="h", port=80), config)
    line = b"\r\nCache-Control: " + expected.encode() + b"\r\n"
    ok = get(files, config, b"/page.html")
    assert line in ok.headers and ok.headers.count(b"Cache-Control") == 1
    etag = ok.headers.split(b"ETag: ", 1)[1].split(b"\r\n", 1)[0]
    # A 304 carries the Cache-Control a 200 would have had (RFC 9110 section 15.4.5).
    assert line in get(files, config, b"/page.html", (b"if-none-match", etag)).headers
    assert line in get(files, config, b"/big.gz").headers


def test_a_cache_control_in_headers_replaces_ours(root: Path) -> None:
    config = mount_at(
        root, cache_max_age=60, cache_reuse=True, headers=(("cache-control", "no-cache"),)
    )
    files = FileMount(VhostConfig(name="h", port=80), config)
    headers = get(files, config, b"/page.html").headers
    assert b"\r\ncache-control: no-cache\r\n" in headers
    assert b"max-age" not in headers


def parse_multipart(response: Response) -> list[tuple[str, str | None, bytes]]:
    """(Content-Range, Content-Type, bytes) of each part, read by the stdlib MIME parser."""
    content_type = response.headers.split(b"Content-Type: ", 1)[1].split(b"\r\n", 1)[0]
    return parse_byteranges(content_type.decode(), response.body, boundary=BOUNDARY.decode())


def test_several_ranges_of_a_small_file(files: FileMount, config: MountConfig, root: Path) -> None:
    (root / "digits.txt").write_bytes(b"0123456789" * 10)
    response = get(files, config, b"/digits.txt", (b"range", b"bytes=20-29,0-4,-3"))
    assert response.status == 206
    assert b"Content-Length: %d\r\n" % len(response.body) in response.headers
    assert b"Content-Range" not in response.headers  # only in the parts (RFC 9110 section 14.6)
    assert parse_multipart(response) == [
        ("bytes 0-4/100", "text/plain", b"01234"),
        ("bytes 20-29/100", "text/plain", b"0123456789"),
        ("bytes 97-99/100", "text/plain", b"789"),
    ]
    assert response.body.endswith(b"\r\n--" + BOUNDARY + b"--\r\n")
    overlapping = get(files, config, b"/digits.txt", (b"range", b"bytes=0-9,5-14"))
    assert overlapping.body == b"0123456789" * 1 + b"01234"  # one part: merged
    assert b"Content-Range: bytes 0-14/100\r\n" in overlapping.headers


def test_several_ranges_of_a_large_file_stay_on_disk(files: FileMount, config: MountConfig) -> None:
    response = get(files, config, b"/big.gz", (b"range", b"bytes=0-9,100-199"))
    assert (response.status, response.body) == (206, b"")
    span = response.file
    assert span is not None and len(span.parts) == 2
    assert [(offset, count) for _, offset, count in span.parts] == [(0, 10), (100, 100)]
    heads = [head for head, _, _ in span.parts]
    assert heads[0].startswith(b"--" + BOUNDARY + b"\r\nContent-Type: application/gzip\r\n")
    assert b"Content-Range: bytes 100-199/%d\r\n\r\n" % (SMALL_FILE + 1) in heads[1]
    assert heads[1].startswith(b"\r\n--" + BOUNDARY)
    length = sum(len(head) + count for head, _, count in span.parts) + len(span.epilogue)
    assert span.count == length
    assert b"Content-Length: %d\r\n" % length in response.headers


def test_ranges_without_a_content_type(root: Path) -> None:
    config = mount_at(root, extra_mimetypes=(("*", ""),))
    files = FileMount(VhostConfig(name="h", port=80), config)
    response = get(files, config, b"/odd.sfx", (b"range", b"bytes=0-0,2-2"))
    assert parse_multipart(response) == [("bytes 0-0/4", None, b"o"), ("bytes 2-2/4", None, b"d")]


def test_range_refusals(files: FileMount, config: MountConfig) -> None:
    beyond = get(files, config, b"/page.html", (b"range", b"bytes=9-,20-30"))
    assert (beyond.status, beyond.body) == (416, b"")
    assert b"Content-Range: bytes */5\r\n" in beyond.headers
    many = b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(0, 2 * MAX_RANGES + 2, 2))
    assert get(files, config, b"/big.gz", (b"range", many)).status == 200
    head = get(files, config, b"/page.html", (b"range", b"bytes=0-0"), method=b"HEAD")
    assert head.status == 200 and b"Content-Length: 5\r\n" in head.headers
    first = get(files, config, b"/page.html")
    etag = first.headers.split(b"ETag: ", 1)[1].split(b"\r\n", 1)[0]
    fresh = get(files, config, b"/page.html", (b"range", b"bytes=0-0"), (b"if-range", etag))
    assert fresh.status == 206
    stale = get(files, config, b"/page.html", (b"range", b"bytes=0-0"), (b"if-range", b'"old"'))
    assert (stale.status, stale.body) == (200, b"page\n")
