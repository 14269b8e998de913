"""Redirect mounts: 301, an empty body, and the Location with or without the rest of the path."""

from __future__ import annotations

import pytest

from pyws.supervisor.config.model import MountConfig, OriginKind, VhostConfig
from pyws.supervisor.config.vhosts import parse_origin
from pyws.worker.http.events import Request
from pyws.worker.http.response import Response
from pyws.worker.redirect import RedirectMount
from pyws.worker.routing import route


def redirect_mount(point: str, origin: str, append_path: bool = False) -> MountConfig:
    kind, target = parse_origin(origin)  # the loader's own split of the origin
    assert kind is OriginKind.REDIRECT
    return MountConfig(point, origin, kind, target, append_path=append_path)


def get(mount: MountConfig, target: bytes, extra: bytes = b"", method: bytes = b"GET") -> Response:
    vhost = VhostConfig(name="h", port=80, mounts=(mount,))
    found = route((vhost,), b"h", target)
    assert found.mount is mount and found.response is None
    request = Request(method, target, "1.1", (), b"h", True, False, False)
    return RedirectMount(mount, extra).handle(request, found)


def location(response: Response) -> bytes:
    assert response.status == 301
    assert response.body == b"" and response.file is None
    assert b"Content-Length: 0\r\n" in response.headers
    lines = [line for line in response.headers.split(b"\r\n") if line.startswith(b"Location: ")]
    assert len(lines) == 1
    return lines[0].removeprefix(b"Location: ")


@pytest.mark.parametrize("origin", [">https://example.com/new", "^https://example.com/new"])
def test_without_append_path_every_request_goes_to_the_target(origin: str) -> None:
    mount = redirect_mount("/old", origin)
    for target in [b"/old", b"/old/", b"/old/a/b.html?x=1"]:
        assert location(get(mount, target)) == b"https://example.com/new"
    assert location(get(mount, b"/old/x", method=b"POST")) == b"https://example.com/new"


@pytest.mark.parametrize(
    ("origin", "point", "target", "expected"),
    [
        (">https://example.com/new", "/old", b"/old/a/b.html", b"https://example.com/new/a/b.html"),
        (">https://example.com/new/", "/old", b"/old/a/", b"https://example.com/new/a/"),
        (">https://example.com/new", "/old", b"/old", b"https://example.com/new"),
        (">https://example.com/new", "/old", b"/old/", b"https://example.com/new"),
        (">http://example.com", "/", b"/x/y?q=1&r=2", b"http://example.com/x/y?q=1&r=2"),
        (">http://example.com/", "/", b"/", b"http://example.com/"),
        (">https://e.com/n?k=v", "/o", b"/o/p?q=1", b"https://e.com/n/p?k=v&q=1"),
        (">https://e.com/n#top", "/o", b"/o/p?q", b"https://e.com/n/p?q#top"),
        (">https://e.com/n", "/o", b"/o/a%20b/%C3%A9", b"https://e.com/n/a%20b/%C3%A9"),
        (
            ">https://e.com/n",
            "/o",
            b"/o/x?a%0d%0aSet-Cookie:1",
            b"https://e.com/n/x?a%0d%0aSet-Cookie:1",
        ),
        (">https://e.com/n", "/o", b"/o/./a/../b//c", b"https://e.com/n/b/c"),
    ],
)
def test_append_path_appends_the_remainder_and_the_query(
    origin: str, point: str, target: bytes, expected: bytes
) -> None:
    assert location(get(redirect_mount(point, origin, append_path=True), target)) == expected


def test_a_target_that_is_unsafe_in_a_field_is_encoded_once() -> None:
    mount = redirect_mount("/o", ">https://e.com/a b/caf\u00e9?x=%41")
    assert location(get(mount, b"/o/z")) == b"https://e.com/a%20b/caf%C3%A9?x=%41"


def test_every_answer_carries_the_mount_fields() -> None:
    extra = b"X-Frame-Options: DENY\r\n"
    for append in (False, True):
        answer = get(redirect_mount("/o", ">https://e.com/", append), b"/o/p", extra)
        assert answer.headers.endswith(extra)


def test_without_append_path_the_answer_is_built_once() -> None:
    mount = redirect_mount("/o", ">https://e.com/")
    assert get(mount, b"/o/a") is not get(mount, b"/o/b")  # two RedirectMounts
    origin = RedirectMount(mount)
    vhost = VhostConfig(name="h", port=80, mounts=(mount,))
    request = Request(b"GET", b"/o/a", "1.1", (), b"h", True, False, False)
    first = origin.handle(request, route((vhost,), b"h", b"/o/a"))
    assert origin.handle(request, route((vhost,), b"h", b"/o/b")) is first
