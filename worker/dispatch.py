"""Which origin answers a routed request, and the vhost-wide rules around it.

`Site` is what the connections of one listener share; origins plug in here, one
per mount, keyed by the mount they serve.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from pyws.supervisor.config.model import OriginKind, VhostConfig
from pyws.worker.http.events import Request
from pyws.worker.http.response import Response, error_response
from pyws.worker.routing import Route, Router
from pyws.worker.static import FileMount

log = logging.getLogger("pyws.worker")


class Origin(Protocol):
    """What serves the requests routed to one mount."""

    def handle(self, request: Request, route: Route) -> Response: ...


class Site:
    """What the connections of one listener share: its router and the origins of its mounts."""

    __slots__ = ("_origins", "_rejects", "router")

    def __init__(
        self,
        vhosts: tuple[VhostConfig, ...],
        origins: Mapping[int, Origin],
        rejects: tuple[tuple[str, int, str], ...],
    ) -> None:
        self.router = Router(vhosts)
        self._origins = origins  # by id() of the MountConfig: hashing a config is not free
        self._rejects = tuple((keyword.encode("latin-1"), status) for keyword, status, _ in rejects)

    def respond(self, request: Request, route: Route) -> Response:
        if self._rejects:
            agent = request.header(b"user-agent") or b""
            for keyword, status in self._rejects:
                if keyword in agent:
                    return error_response(status)  # lwsws `reject-service-keywords`
        response = route.response or self._dispatch(request, route)
        if response.status == 404 and route.vhost.error_document_404:
            response = self._error_document(request, route.vhost.error_document_404, response)
        return response

    def _dispatch(self, request: Request, route: Route) -> Response:
        origin = self._origins.get(id(route.mount))
        if origin is None:
            return error_response(501)  # an origin kind this worker cannot serve yet
        if route.mount is not None and route.mount.basic_auth:
            return error_response(403)  # basic-auth is not implemented: fail closed
        return origin.handle(request, route)

    def _error_document(self, request: Request, path: str, fallback: Response) -> Response:
        plain = dataclasses.replace(request, conditional=False)
        document_route = self.router.route(request.host, path.encode("utf-8"))
        document = document_route.response or self._dispatch(plain, document_route)
        if document.status != 200:
            return fallback
        return Response(404, document.headers, document.body, document.file)


def build_origins(vhosts: Iterable[VhostConfig]) -> dict[int, Origin]:
    """One origin per mount this worker can serve, keyed by id() of the MountConfig."""
    origins: dict[int, Origin] = {}
    for vhost in vhosts:
        for mount in vhost.mounts:
            if mount.kind is OriginKind.FILE:
                origins[id(mount)] = FileMount(vhost, mount)
            if mount.basic_auth:
                log.warning(
                    "%s%s: basic-auth is not supported, refusing all", vhost.name, mount.mountpoint
                )
    return origins
