"""FileMount on a real directory: what it answers, what it caches, what it never serves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyws.supervisor.config.model import MountConfig, OriginKind, VhostConfig
from pyws.worker.http.events import Request
from pyws.worker.http.response import Response
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


def test_changes_are_seen_at_once(files: FileMount, config: MountConfig, root: Path) -> None:
    assert get(files, config, b"/page.html").body == b"page\n"
    (root / "page.html").write_text("changed, and longer\n")
    assert get(files, config, b"/page.html").body == b"changed, and longer\n"
    (root / "page.html").unlink()
    assert get(files, config, b"/page.html").status == 404
    (root / "page.html").write_text("back\n")
    assert get(files, config, b"/page.html").body == b"back\n"


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


def test_cache_control_policy(root: Path) -> None:
    assert cache_control(mount_at(root)) == "no-store"
    assert cache_control(mount_at(root, cache_max_age=60)) == "no-store"
    reuse = mount_at(root, cache_max_age=60, cache_reuse=True)
    assert cache_control(reuse) == "private, max-age=60"
    public = mount_at(root, cache_max_age=60, cache_reuse=True, cache_intermediaries=True)
    assert cache_control(public) == "public, max-age=60"
    revalidate = mount_at(root, cache_max_age=9, cache_reuse=True, cache_revalidate=True)
    assert cache_control(revalidate) == "must-revalidate, private, max-age=9"
    assert cache_control(mount_at(root, cache_max_age=9, cache_reuse=True, cache_no=True)) == (
        "no-store"
    )
