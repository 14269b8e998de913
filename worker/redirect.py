"""Redirect mounts (`>http://...`, `>https://...`): 301 to the target, with the rest of the path
when `append-path` is set."""

from __future__ import annotations

from urllib.parse import quote

from pyws.supervisor.config.model import MountConfig
from pyws.worker.http.events import Request
from pyws.worker.http.response import Response, redirect_response
from pyws.worker.routing import Route, quote_path, quote_query

# What may stay as written in a configured URL: RFC 3986 reserved characters and escapes.
# Anything else (a space, a non-ASCII letter) is percent-encoded once, here.
_URL_SAFE = ":/?#[]@!$&'()*+,;=~%"


class RedirectMount:
    """Answers every request below its mountpoint with 301 and an empty body (lwsws does
    the same for any method). Without `append-path` the answer never changes, so it is
    built once."""

    __slots__ = ("_append", "_base", "_extra", "_fixed", "_fragment", "_query")

    def __init__(self, mount: MountConfig, extra: bytes = b"") -> None:
        target = quote(mount.target, safe=_URL_SAFE)
        # The remainder goes after the target's path: before its query and fragment.
        rest, hash_, self._fragment = target.partition("#")
        self._base, _, self._query = rest.partition("?")
        self._fragment = hash_ + self._fragment
        self._append = mount.append_path
        self._extra = extra  # serialised fields every response of the mount carries
        self._fixed = _moved(target, extra)

    def handle(self, request: Request, route: Route) -> Response:
        if not self._append:
            return self._fixed
        return _moved(self.location(route.remainder, route.query), self._extra)

    def location(self, remainder: str, query: bytes) -> str:
        """The target, plus the path below the mountpoint, plus the request's query."""
        location = self._base
        if remainder:
            if not location.endswith("/"):
                location += "/"
            location += quote_path(remainder)
        queries = [q for q in (self._query, quote_query(query)) if q]
        if queries:
            location += "?" + "&".join(queries)
        return location + self._fragment


def _moved(location: str, extra: bytes) -> Response:
    plain = redirect_response(location)
    return Response(301, plain.headers + extra)
