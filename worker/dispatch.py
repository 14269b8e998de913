"""Which origin answers a routed request, and the vhost-wide rules around it.

`Site` is what the connections of one listener share. `build_origins` makes, once at boot
and while still root, what answers for each mount: its origin, its basic-auth gate and the
serialised header fields (vhost and mount `headers`, `sts`) that every response carries.
"""

from __future__ import annotations

import dataclasses
import html
import http
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from pyws.supervisor.config.model import MountConfig, OriginKind, VhostConfig
from pyws.worker.auth import AuthGate, Credentials, CredentialShield, credential_files_under
from pyws.worker.cgi.origin import CGIMount
from pyws.worker.exchange import StreamOrigin
from pyws.worker.http.events import Request
from pyws.worker.http.response import STATUS_LINES, Response, error_response, serialize_fields
from pyws.worker.redirect import RedirectMount
from pyws.worker.routing import Route, Router
from pyws.worker.static import FileMount

if TYPE_CHECKING:
    from pyws.worker.plugins import PluginSet

log: Final = logging.getLogger("pyws.worker")

# What lwsws sends for `"sts": "1"`, byte for byte. Browsers heed it over TLS only
# (RFC 6797 §8.1); lwsws sends it on every response all the same, and so do we.
STS_FIELD: Final = ("Strict-Transport-Security", "max-age=15768000 ; includeSubDomains")


class Origin(Protocol):
    """What serves the requests routed to one mount."""

    def handle(self, request: Request, route: Route) -> Response: ...


@dataclass(frozen=True, slots=True)
class ServedMount:
    """One mount as this worker serves it."""

    origin: Origin
    gate: AuthGate | None  # basic-auth: checked before anything else of the mount answers
    extra: bytes  # header lines every response of the mount carries (may be b"")
    stream: StreamOrigin | None = None  # answers as the request head arrives (cgi://)


def header_fields(vhost: VhostConfig, mount: MountConfig | None = None) -> list[tuple[str, str]]:
    """The vhost's `headers`, those of the mount replacing same-named ones, then STS."""
    own = mount.headers if mount is not None else ()
    names = {name.lower() for name, _ in own}
    fields = [(n, v) for n, v in vhost.headers if n.lower() not in names] + list(own)
    if vhost.sts and all(n.lower() != STS_FIELD[0].lower() for n, _ in fields):
        fields.append(STS_FIELD)
    return fields


def with_extra(response: Response, extra: bytes) -> Response:
    """`response` carrying the `extra` header lines too (unless it already does)."""
    headers = response.headers
    if not extra or headers.endswith(extra) or extra in headers:
        return response
    return dataclasses.replace(response, headers=headers + extra)


def reject_response(status: int, reason: str) -> Response:
    """lwsws `reject-service-keywords`: the status, with the configured text as the page."""
    phrase = http.HTTPStatus(status).phrase if status in STATUS_LINES else "Rejected"
    text = html.escape(reason or phrase)
    body = (
        f"<!DOCTYPE html><html><head><title>{status} {text}</title></head>"
        f"<body><h1>{status} {text}</h1></body></html>\n"
    ).encode()
    headers = (
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: %d\r\n"
        b"Cache-Control: no-store\r\n" % len(body)
    )
    # lws closes the connection after a rejection: no second request from that agent.
    return Response(status, headers, body, close=True)


class Site:
    """What the connections of one listener share: its router and the mounts of its vhosts."""

    __slots__ = (
        "_mounts",
        "_rejects",
        "_splits_upgrades",
        "_vhost_extra",
        "port",
        "router",
        "streams",
    )

    def __init__(
        self,
        vhosts: tuple[VhostConfig, ...],
        origins: Mapping[int, ServedMount],
        rejects: tuple[tuple[str, int, str], ...],
        port: int = 0,
    ) -> None:
        self.port = port  # the listener's (CGI's SERVER_PORT), whatever address it bound
        self.router = Router(vhosts)
        self._mounts = origins  # by id() of the MountConfig: hashing a config is not free
        self._splits_upgrades = self.router.splits_upgrades
        # No streaming origin on this listener: callers can skip streamer() altogether.
        self.streams = any(
            origins[id(m)].stream is not None for v in vhosts for m in v.mounts if id(m) in origins
        )
        self._vhost_extra = {id(v): serialize_fields(header_fields(v)) for v in vhosts}
        self._rejects = tuple(
            (keyword.encode("utf-8"), reject_response(status, reason))
            for keyword, status, reason in rejects
        )

    def respond(self, request: Request, route: Route) -> Response:
        if self._rejects:
            rejected = self._rejected(request, route)
            if rejected is not None:
                return rejected
        if self._splits_upgrades and request.upgrade is not None:
            # `no-ws-upgrades` mounts do not take upgrade requests: route it again.
            route = self.router.route(request.host, request.target, upgrade=True)
        response = self._serve(request, route)
        if response.status == 404 and route.vhost.error_document_404:
            response = self._error_document(request, route.vhost.error_document_404, response)
        return response

    def streamer(self, request: Request, route: Route) -> tuple[StreamOrigin, bytes] | None:
        """The streaming origin that answers this request as soon as its head is in, or None
        when the request is answered whole (a rejection, a failed gate, a decided route and
        every non-streaming origin included)."""
        if not self.streams:
            return None
        served = self._mounts.get(id(route.mount))
        if served is None or served.stream is None or route.response:
            return None
        if self._rejects and self._rejected(request, route) is not None:
            return None
        if served.gate is not None and not served.gate.admits(request):
            return None
        return served.stream, served.extra

    def denial(self, request: Request, route: Route) -> Response | None:
        """The 401 of the routed mount's basic-auth when the request does not pass it."""
        served = self._mounts.get(id(route.mount))
        if served is None or served.gate is None or served.gate.admits(request):
            return None
        return served.gate.denied

    def _serve(self, request: Request, route: Route) -> Response:
        served = self._mounts.get(id(route.mount))
        if served is None:
            # No mount: routing already answered (404, 403, 400).
            decided = route.response or error_response(501)
            return with_extra(decided, self._vhost_extra.get(id(route.vhost), b""))
        gate = served.gate
        if gate is not None and not gate.admits(request):
            return gate.denied
        # route.response: a slash redirect, answered only past the gate.
        if served.stream is not None:
            # Reached only when streamer() said no: nothing else is left to say.
            return with_extra(route.response or error_response(500), served.extra)
        response = route.response or served.origin.handle(request, route)
        extra = served.extra
        # with_extra(), inlined: this is every request's path. Cached file answers carry the
        # fields already, last, so endswith() settles it without a copy.
        if extra and not response.headers.endswith(extra) and extra not in response.headers:
            response = dataclasses.replace(response, headers=response.headers + extra)
        return response

    def _rejected(self, request: Request, route: Route) -> Response | None:
        """The configured answer if the User-Agent holds a rejected keyword (as lwsws: a
        plain substring test), with the vhost's fields: no mount is consulted."""
        agent = request.header(b"user-agent")
        if agent:
            for keyword, response in self._rejects:
                if keyword in agent:
                    return with_extra(response, self._vhost_extra.get(id(route.vhost), b""))
        return None

    def _error_document(self, request: Request, path: str, fallback: Response) -> Response:
        plain = request._replace(conditional=False)
        document = self._serve(plain, self.router.route(request.host, path.encode("utf-8")))
        if document.status != 200:
            return fallback
        return Response(404, document.headers, document.body, document.file)


def build_origins(
    vhosts: Iterable[VhostConfig], plugins: PluginSet | None = None
) -> dict[int, ServedMount]:
    """What answers for every mount of `vhosts`, keyed by id() of the MountConfig.

    Call while still root: basic-auth files are read here (OSError if one cannot be).
    """
    vhosts = tuple(vhosts)
    credentials = _load_credentials(vhosts)
    files = sorted({os.path.realpath(path) for path in credentials})
    served: dict[int, ServedMount] = {}
    for vhost in vhosts:
        for mount in vhost.mounts:
            fields = header_fields(vhost, mount)
            extra = serialize_fields(fields)
            origin = _make_origin(vhost, mount, fields, extra)
            if mount.kind is OriginKind.FILE:
                root = os.path.realpath(mount.target)
                inside = credential_files_under(root, files)
                if inside:
                    log.info("%s%s: never serving %s", vhost.name, mount.mountpoint, inside)
                    origin = CredentialShield(origin, root, mount.default, inside)
            gate = None
            if mount.basic_auth:
                gate = AuthGate(credentials[mount.basic_auth], vhost.name, extra)
            stream: StreamOrigin | None = None
            if mount.kind is OriginKind.CGI:
                stream = CGIMount(vhost, mount)
            elif mount.kind is OriginKind.CALLBACK and plugins is not None:
                stream = plugins.callback_origin(vhost, mount)
            served[id(mount)] = ServedMount(origin, gate, extra, stream)
    return served


class Unserved:
    """The origin of a mount whose kind this worker cannot serve yet."""

    def handle(self, request: Request, route: Route) -> Response:
        return error_response(501)


def _make_origin(
    vhost: VhostConfig, mount: MountConfig, fields: list[tuple[str, str]], extra: bytes
) -> Origin:
    if mount.kind is OriginKind.FILE:
        # FileMount bakes the mount's fields into the answers it caches: hand it the merged
        # list, so its cached answers already carry `extra` and cost nothing more to send.
        return FileMount(
            dataclasses.replace(vhost, headers=()),
            dataclasses.replace(mount, headers=tuple(fields)),
        )
    if mount.kind is OriginKind.REDIRECT:
        return RedirectMount(mount, extra)
    return Unserved()


def _load_credentials(vhosts: tuple[VhostConfig, ...]) -> dict[str, Credentials]:
    loaded: dict[str, Credentials] = {}
    for vhost in vhosts:
        for mount in vhost.mounts:
            path = mount.basic_auth
            if path and path not in loaded:
                loaded[path] = Credentials.load(path)
                log.info("%s%s: basic-auth users from %s", vhost.name, mount.mountpoint, path)
    return loaded
