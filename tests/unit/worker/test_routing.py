"""Routing as pure functions: path normalisation, Host to vhost, path to mount."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyws.supervisor.config.model import MountConfig, OriginKind, VhostConfig
from pyws.worker.routing import (
    PathError,
    Router,
    location_for,
    normalize_path,
    parse_host,
    quote_path,
    quote_query,
    route,
    select_mount,
    select_vhost,
    split_target,
)


def mount(
    point: str, kind: OriginKind = OriginKind.FILE, keepalive_timeout: float | None = None
) -> MountConfig:
    return MountConfig(
        point, f"file:///srv{point}", kind, f"/srv{point}", keepalive_timeout=keepalive_timeout
    )


def vhost(name: str, *mounts: MountConfig, keepalive: float = 60.0) -> VhostConfig:
    return VhostConfig(name=name, port=80, mounts=mounts, keepalive_timeout=keepalive)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/", "/"),
        (b"/a/b.html", "/a/b.html"),
        (b"//a///b", "/a/b"),
        (b"/a/./b/.", "/a/b/"),
        (b"/a/../b", "/b"),
        (b"/a/b/..", "/a/"),
        (b"/a/", "/a/"),
        (b"/a/%2e%2e/b", "/b"),
        (b"/a/%2E%2e%2fb", "/b"),
        (b"/a%2fb", "/a/b"),
        (b"/%7euser/x%20y", "/~user/x y"),
        (b"/caf%C3%A9", "/caf\u00e9"),
        (b"/%ff", "/\udcff"),  # not UTF-8: the byte still names the same file
        (b"/%252e%252e/x", "/%2e%2e/x"),  # decoded once only
    ],
)
def test_normalize_path(raw: bytes, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"/..",
        b"/../etc/passwd",
        b"/a/../../b",
        b"/%2e%2e/x",
        b"/..%2fx",
        b"/a/..%2f..%2fx",
        b"/.%2e/x",
        b"/%00",
        b"/a%00.html",
        b"/a\\b",
        b"/..%5cx",
        b"/%5c",
        b"/%",
        b"/%4",
        b"/%zz",
        b"/%4g",
    ],
)
def test_normalize_path_refuses(raw: bytes) -> None:
    with pytest.raises(PathError) as caught:
        normalize_path(raw)
    assert caught.value.status == 403


def test_normalize_path_wants_an_absolute_path() -> None:
    with pytest.raises(PathError) as caught:
        normalize_path(b"a/b")
    assert caught.value.status == 400


@given(st.binary(max_size=60))
def test_normalized_paths_have_no_dot_or_empty_segments(tail: bytes) -> None:
    try:
        path = normalize_path(b"/" + tail)
    except PathError as exc:
        assert exc.status == 403
        return
    assert path.startswith("/")
    segments = path.strip("/").split("/")
    assert path == "/" or all(s not in ("", ".", "..") for s in segments)
    assert "\x00" not in path and "\\" not in path


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "%2e", "%2f", "%2E%2E"]), max_size=12))
def test_normalisation_never_climbs_above_the_root(parts: list[str]) -> None:
    raw = ("/" + "/".join(parts)).encode()
    depth = 0
    for part in raw.decode().replace("%2f", "/").replace("%2e", ".").replace("%2E", ".").split("/"):
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        if depth < 0:
            with pytest.raises(PathError):
                normalize_path(raw)
            return
    assert normalize_path(raw).startswith("/")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a?b=1", (None, b"/a", b"b=1")),
        (b"/a", (None, b"/a", b"")),
        (b"/a#frag", (None, b"/a", b"")),
        (b"http://Example.com:8080/x?y", (b"Example.com:8080", b"/x", b"y")),
        (b"https://h", (b"h", b"/", b"")),
        (b"http://h?q", (b"h", b"/", b"q")),
    ],
)
def test_split_target(target: bytes, expected: tuple[bytes | None, bytes, bytes]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize("target", [b"*", b"a/b", b"ftp://h/x", b"example.com:443"])
def test_split_target_refuses(target: bytes) -> None:
    with pytest.raises(PathError):
        split_target(target)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (b"", ""),
        (b"Example.COM", "example.com"),
        (b"example.com:8080", "example.com"),
        (b"example.com.", "example.com"),
        (b"[::1]:8080", "[::1]"),
        (b" spaced ", "spaced"),
    ],
)
def test_parse_host(value: bytes | None, expected: str) -> None:
    assert parse_host(value) == expected


def test_select_vhost() -> None:
    first, other, wild = vhost("first.org"), vhost("Other.org"), vhost("example.com")
    vhosts = (first, other, wild)
    assert select_vhost(vhosts, "other.org") is other
    assert select_vhost(vhosts, "www.example.com") is wild  # a `.name` suffix
    assert select_vhost(vhosts, "notexample.com") is first  # no dot: not a subdomain
    assert select_vhost(vhosts, "unknown") is first
    assert select_vhost(vhosts, "") is first
    exact = vhost("www.example.com")
    assert select_vhost((wild, exact), "www.example.com") is exact  # exact names come first


def test_select_mount_longest_wins() -> None:
    root, foo, foobar, deep = mount("/"), mount("/foo"), mount("/foobar/"), mount("/foo/deep")
    mounts = (root, foo, foobar, deep)
    assert select_mount(mounts, "/") is root
    assert select_mount(mounts, "/foo") is foo
    assert select_mount(mounts, "/foo/") is foo
    assert select_mount(mounts, "/foo/x") is foo
    assert select_mount(mounts, "/foox") is root
    assert select_mount(mounts, "/foobar/x") is foobar
    assert select_mount(mounts, "/foo/deep/x") is deep
    assert select_mount((foo,), "/bar") is None


def test_route_remainders_and_slash_redirects() -> None:
    root, foo, cgi = mount("/"), mount("/foo", keepalive_timeout=5.0), mount("/cgi", OriginKind.CGI)
    vhosts = (vhost("h", root, foo, cgi, keepalive=30.0),)
    at_root = route(vhosts, b"h", b"/a/b.html?x")
    assert (at_root.mount, at_root.remainder, at_root.query) == (root, "a/b.html", b"x")
    assert at_root.keepalive_timeout == 30.0 and at_root.response is None
    below = route(vhosts, b"h", b"/foo/x/")
    assert (below.mount, below.remainder, below.keepalive_timeout) == (foo, "x/", 5.0)
    assert route(vhosts, b"h", b"/foo/").remainder == ""
    bare = route(vhosts, b"h", b"/foo?q=1")
    assert bare.response is not None and bare.response.status == 301
    assert b"Location: /foo/?q=1\r\n" in bare.response.headers
    assert route(vhosts, b"h", b"/cgi").response is None  # only file mounts redirect
    spaced = route(vhosts, b"h", b"/fo%6f")
    assert spaced.response is not None and b"Location: /foo/\r\n" in spaced.response.headers


def test_route_errors() -> None:
    vhosts = (vhost("h", mount("/foo")),)
    for target, status in [(b"/../x", 403), (b"*", 200), (b"/bar", 404)]:
        answer = route(vhosts, b"h", target).response
        assert answer is not None and answer.status == status


def test_absolute_form_overrides_host() -> None:
    a, b = vhost("a", mount("/")), vhost("b", mount("/"))
    assert route((a, b), b"a", b"http://b/x").vhost is b


def test_router_memoises() -> None:
    router = Router((vhost("h", mount("/")),), cache_size=2)
    first = router.route(b"h", b"/x")
    assert router.route(b"h", b"/x") is first
    router.route(b"h", b"/y")
    router.route(b"h", b"/z")  # full: the cache starts over
    assert router.route(b"h", b"/x") == first
    with pytest.raises(ValueError):
        Router(())


def test_exact_match_covers_only_its_mountpoint() -> None:
    root = mount("/")
    exact = MountConfig("/feed", "file:///srv/feed", OriginKind.FILE, "/srv/feed", exact_match=True)
    slashed = MountConfig("/d/", "file:///srv/d", OriginKind.FILE, "/srv/d", exact_match=True)
    mounts = (root, exact, slashed)
    assert select_mount(mounts, "/feed") is exact
    assert select_mount(mounts, "/feed/") is root
    assert select_mount(mounts, "/feed/x") is root
    assert select_mount(mounts, "/feedx") is root
    assert select_mount(mounts, "/d/") is slashed
    assert select_mount(mounts, "/d") is root
    assert select_mount(mounts, "/d/x") is root
    # An exact mount outranks a plain one of the same length.
    plain = mount("/feed/")
    assert select_mount((plain, exact), "/feed") is exact
    assert select_mount((exact, plain), "/feed") is exact
    assert select_mount((exact, plain), "/feed/x") is plain


def test_exact_match_file_mount_is_not_redirected_to_the_slash() -> None:
    exact = MountConfig("/feed", "file:///srv/feed", OriginKind.FILE, "/srv/feed", exact_match=True)
    found = route((vhost("h", mount("/"), exact),), b"h", b"/feed?x=1")
    assert (found.mount, found.remainder, found.response) == (exact, "", None)


def test_no_ws_upgrades_mounts_pass_upgrade_requests_on() -> None:
    root = mount("/")
    away = MountConfig(
        "/app",
        ">https://example.com/",
        OriginKind.REDIRECT,
        "https://example.com/",
        no_ws_upgrades=True,
    )
    mounts = (root, away)
    assert select_mount(mounts, "/app/x") is away
    assert select_mount(mounts, "/app/x", upgrade=True) is root
    assert select_mount((away,), "/app", upgrade=True) is None
    vhosts = (vhost("h", root, away),)
    assert route(vhosts, b"h", b"/app/x").mount is away
    upgraded = route(vhosts, b"h", b"/app/x", upgrade=True)
    assert (upgraded.mount, upgraded.remainder) == (root, "app/x")
    router = Router(vhosts)
    assert router.splits_upgrades
    assert router.route(b"h", b"/app/x").mount is away
    assert router.route(b"h", b"/app/x", upgrade=True).mount is root
    assert router.route(b"h", b"/app/x").mount is away  # the plain route stays cached
    plain = Router((vhost("h", root, mount("/app")),))
    assert not plain.splits_upgrades
    assert plain.route(b"h", b"/app/x", upgrade=True) is plain.route(b"h", b"/app/x")


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/a b/c\u00e9", b"", "/a%20b/c%C3%A9"),
        ("/x", b"q=1&r=a b", "/x?q=1&r=a%20b"),
        ("/\udcff", b"", "/%FF"),
        ("/x", b"a\r\nSet-Cookie: y", "/x?a%0D%0ASet-Cookie:%20y"),
        ("/x", b"%41", "/x?%41"),
    ],
)
def test_location_for_is_safe_in_a_field(path: str, query: bytes, expected: str) -> None:
    assert location_for(path, query) == expected
    assert quote_path(path) + ("?" + quote_query(query) if query else "") == expected
