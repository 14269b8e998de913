"""Pure request routing: Host to vhost, request-target to a normalised path, path to mount."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from pyws.supervisor.config.model import MountConfig, OriginKind, VhostConfig
from pyws.worker.http.response import Response, error_response, redirect_response

_ABSOLUTE_FORM: Final = re.compile(rb"(?i)https?://([^/?#]*)(.*)", re.DOTALL)
_HEXDIGITS: Final = frozenset(b"0123456789abcdefABCDEF")
# RFC 3986 pchar minus the percent sign, which quote() must encode.
_PATH_SAFE: Final = "/:@!$&'()*+,;=~"
_CACHED_TARGET_MAX: Final = 1024  # longer targets are routed every time: memory stays bounded


class PathError(Exception):
    """A request-target refused before any lookup: answer `status` (400 or 403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: its vhost, its mount, and the path below that mount."""

    vhost: VhostConfig
    mount: MountConfig | None
    path: str  # normalised, absolute; keeps a trailing slash
    remainder: str  # the path below the mountpoint, without a leading "/"
    query: bytes
    keepalive_timeout: float
    response: Response | None = None  # already decided: bad path, no mount, slash redirect


def split_target(target: bytes) -> tuple[bytes | None, bytes, bytes]:
    """(authority, path, query) of an origin-form or absolute-form target (RFC 9112 §3.2)."""
    authority = None
    if not target.startswith(b"/"):
        match = _ABSOLUTE_FORM.fullmatch(target)
        if match is None:
            raise PathError(400, "request-target is neither origin-form nor absolute-form")
        authority, target = match.group(1), match.group(2)
        if not target.startswith(b"/"):
            target = b"/" + target
    path, _, query = target.partition(b"?")
    return authority, path.partition(b"#")[0], query.partition(b"#")[0]


def normalize_path(raw: bytes) -> str:
    """Percent-decode `raw`, then remove dot segments and empty segments (RFC 3986 §5.2.4).

    Decoding comes first, so an encoded slash or dot (`..%2f`, `%2e%2e`) is resolved like a
    plain one. A bad escape, a NUL or a backslash is refused (403), and so is any `..` that
    would climb above the root. A trailing slash is kept: it asks for a directory.
    """
    if not raw.startswith(b"/"):
        raise PathError(400, "path is not absolute")
    decoded = _percent_decode(raw) if b"%" in raw else raw
    if b"\x00" in decoded or b"\\" in decoded:
        raise PathError(403, "NUL or backslash in path")
    text = decoded.decode("utf-8", "surrogateescape")  # any byte maps back to the file name
    segments: list[str] = []
    parts = text.split("/")
    for segment in parts:
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise PathError(403, "path climbs above the root")
            segments.pop()
            continue
        segments.append(segment)
    if not segments:
        return "/"
    trailing = "/" if parts[-1] in ("", ".", "..") else ""
    return "/" + "/".join(segments) + trailing


def _percent_decode(raw: bytes) -> bytes:
    pieces = raw.split(b"%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        if len(piece) < 2 or piece[0] not in _HEXDIGITS or piece[1] not in _HEXDIGITS:
            raise PathError(403, "bad percent-encoding in path")
        out.append(bytes((int(piece[:2], 16),)))
        out.append(piece[2:])
    return b"".join(out)


def parse_host(value: bytes | None) -> str:
    """The host name of a Host field or authority: lowercased, without port or final dot."""
    if not value:
        return ""
    host = value.strip().lower()
    # An IPv6 literal keeps its colons.
    host = host[: host.find(b"]") + 1] if host.startswith(b"[") else host.partition(b":")[0]
    return host.rstrip(b".").decode("latin-1")


def select_vhost(vhosts: Sequence[VhostConfig], host: str) -> VhostConfig:
    """The vhost named `host`, else one `host` is a subdomain of, else the listener's first."""
    for vhost in vhosts:
        if vhost.name.lower() == host:
            return vhost
    for vhost in vhosts:
        if host.endswith("." + vhost.name.lower()):
            return vhost
    return vhosts[0]


def mountpoint(mount: MountConfig) -> str:
    """The mountpoint without a trailing slash ("/" stays "/")."""
    return mount.mountpoint.rstrip("/") or "/"


def select_mount(
    mounts: Sequence[MountConfig], path: str, upgrade: bool = False
) -> MountConfig | None:
    """The longest mountpoint covering `path` wins: `/foo` covers `/foo/x` but not `/foox`.

    An `exact-match` mount covers only its mountpoint as written, and beats a plain mount of
    the same length. For an upgrade request, `no-ws-upgrades` mounts are passed over, as lws
    does, so the request goes to the mount that would answer if they were not there.
    """
    best: MountConfig | None = None
    best_rank = (-1, False)
    for mount in mounts:
        if upgrade and mount.no_ws_upgrades:
            continue
        point = mountpoint(mount)
        if mount.exact_match:
            covers = path == mount.mountpoint
        else:
            covers = point in ("/", path) or path.startswith(point + "/")
        rank = (len(point), mount.exact_match)
        if covers and rank > best_rank:
            best, best_rank = mount, rank
    return best


OPTIONS_ANY: Final = Response(200, b"Content-Length: 0\r\n")


def route(
    vhosts: Sequence[VhostConfig], host: bytes | None, target: bytes, upgrade: bool = False
) -> Route:
    """Route one request on a listener serving `vhosts` (in config order, at least one).

    `upgrade`: the request asks for a protocol upgrade (RFC 9110 §7.8), which
    `no-ws-upgrades` mounts do not take.
    """
    if target == b"*":
        # OPTIONS * asks about the server itself (RFC 9110 §9.3.7); the connection lets
        # `*` through with OPTIONS only.
        vhost = select_vhost(vhosts, parse_host(host))
        return Route(vhost, None, "*", "", b"", vhost.keepalive_timeout, OPTIONS_ANY)
    try:
        authority, raw_path, query = split_target(target)
    except PathError as exc:
        vhost = select_vhost(vhosts, parse_host(host))
        return Route(vhost, None, "", "", b"", vhost.keepalive_timeout, error_response(exc.status))
    # RFC 9112 §3.2.2: with an absolute-form target the Host field is ignored.
    vhost = select_vhost(vhosts, parse_host(authority if authority is not None else host))
    try:
        path = normalize_path(raw_path)
    except PathError as exc:
        return Route(
            vhost, None, "", "", query, vhost.keepalive_timeout, error_response(exc.status)
        )
    mount = select_mount(vhost.mounts, path, upgrade)
    if mount is None:
        return Route(vhost, None, path, "", query, vhost.keepalive_timeout, error_response(404))
    keepalive = vhost.keepalive_timeout
    if mount.keepalive_timeout is not None:
        keepalive = mount.keepalive_timeout
    point = mountpoint(mount)
    if point == "/":
        return Route(vhost, mount, path, path[1:], query, keepalive)
    if path != point:
        return Route(vhost, mount, path, path[len(point) + 1 :], query, keepalive)
    response = None
    if mount.kind is OriginKind.FILE and not mount.exact_match:
        # Relative links in the mount's pages resolve against `/foo/`, not `/`: redirect.
        # (`/foo/` would not reach an exact-match mount: it serves its default here.)
        response = redirect_response(location_for(path + "/", query))
    return Route(vhost, mount, path, "", query, keepalive, response)


def quote_path(path: str) -> str:
    """A normalised path percent-encoded for a Location field (RFC 3986 §3.3)."""
    return quote(path.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)


def quote_query(query: bytes) -> str:
    """The query as it came, but never with a byte that is unsafe in a field value."""
    return quote(query, safe=_PATH_SAFE + "?%")


def location_for(path: str, query: bytes) -> str:
    """A percent-encoded Location value for a normalised path and the request's query."""
    location = quote_path(path)
    if query:
        location += "?" + quote_query(query)
    return location


class Router:
    """`route()` memoised for one listener: the same (Host, target) pairs come again and again."""

    __slots__ = ("_cache", "_size", "_vhosts", "splits_upgrades")

    def __init__(self, vhosts: Sequence[VhostConfig], cache_size: int = 4096) -> None:
        if not vhosts:
            raise ValueError("a listener needs at least one vhost")
        self._vhosts = tuple(vhosts)
        self._cache: dict[tuple[bytes | None, bytes], Route] = {}
        self._size = cache_size
        # Does an upgrade request ever route differently from a plain one here?
        self.splits_upgrades = any(m.no_ws_upgrades for v in self._vhosts for m in v.mounts)

    def route(self, host: bytes | None, target: bytes, upgrade: bool = False) -> Route:
        if upgrade and self.splits_upgrades:
            return route(self._vhosts, host, target, upgrade=True)  # rare: never cached
        key = (host, target)
        found = self._cache.get(key)
        if found is not None:
            return found
        found = route(self._vhosts, host, target)
        if len(target) <= _CACHED_TARGET_MAX and (host is None or len(host) <= 256):
            if len(self._cache) >= self._size:
                self._cache.clear()
            self._cache[key] = found
        return found
