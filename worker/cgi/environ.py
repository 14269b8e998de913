"""The environment a CGI script sees (RFC 3875 §4.1), and nothing else of the worker's.

Names and values are bytes, as the kernel takes them: header fields arrive as bytes and go
out unchanged, and posix_spawn has nothing left to encode. What a mount's scripts share is
built once per mount (`MountEnviron`); a request adds only its own variables.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyws.supervisor.config.model import MountConfig
from pyws.worker.http.events import Request

# A fixed PATH: the worker's own environment never leaks into a script.
CGI_PATH = "/usr/local/bin:/usr/bin:/bin"

# Carried by CONTENT_TYPE/CONTENT_LENGTH, and `Proxy` must never become HTTP_PROXY
# (httpoxy, CVE-2016-5385: libraries read HTTP_PROXY as their outgoing proxy).
_NOT_HTTP_VARS = frozenset({b"content-type", b"content-length", b"proxy"})

_PROTOCOLS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}


@dataclass(frozen=True, slots=True)
class Peer:
    """Both ends of the client's connection, as the CGI variables name them."""

    remote_addr: str
    remote_port: int
    server_port: int
    https: bool = False


class MountEnviron:
    """The variables every request to one cgi:// mount shares, and its `cgi-env`."""

    __slots__ = ("_base", "_extra", "_http_names")

    def __init__(self, mount: MountConfig, server_software: str) -> None:
        self._base = {
            b"GATEWAY_INTERFACE": b"CGI/1.1",
            b"SERVER_SOFTWARE": server_software.encode(),
            b"SCRIPT_NAME": mount.mountpoint.rstrip("/").encode(),
            b"SCRIPT_PATH": mount.target.encode(),  # lwsws's name for the program being run
            b"SCRIPT_FILENAME": mount.target.encode(),
            b"PATH": CGI_PATH.encode(),
        }
        # The mount's own `cgi-env` comes last: it may override any variable.
        self._extra = {name.encode(): value.encode() for name, value in mount.cgi_env}
        self._http_names: dict[bytes, bytes] = {}  # field name -> HTTP_* name, as they come

    def build(
        self,
        request: Request,
        *,
        path_info: bytes,
        query: bytes,
        peer: Peer,
        server_name: bytes,
    ) -> dict[bytes, bytes]:
        env = self._base.copy()
        env[b"SERVER_PROTOCOL"] = _PROTOCOLS.get(request.http_version, b"HTTP/1.1")
        env[b"SERVER_NAME"] = server_name
        env[b"SERVER_PORT"] = b"%d" % peer.server_port
        env[b"REQUEST_METHOD"] = request.method
        env[b"QUERY_STRING"] = query
        env[b"REQUEST_URI"] = request.target
        env[b"PATH_INFO"] = path_info
        env[b"REMOTE_ADDR"] = peer.remote_addr.encode()
        env[b"REMOTE_PORT"] = b"%d" % peer.remote_port
        env[b"HTTPS"] = b"on" if peer.https else b"off"
        names = self._http_names
        for name, value in request.headers:
            key = names.get(name)
            if key is None:
                key = names[name] = _variable(name)
                if len(names) > 256:  # a client inventing names must not grow the cache
                    names.clear()
            if not key:
                continue
            if key in env:
                # RFC 3875 §4.1.18: repeated fields are joined as one list.
                env[key] = b"%b, %b" % (env[key], value)
            else:
                env[key] = value
        if self._extra:
            env.update(self._extra)
        return env


def _variable(name: bytes) -> bytes:
    """The variable a header field becomes: CONTENT_TYPE, CONTENT_LENGTH or HTTP_*."""
    if name == b"content-type":
        return b"CONTENT_TYPE"
    if name == b"content-length":
        # A chunked body has no length to give: the script reads stdin to EOF.
        return b"CONTENT_LENGTH"
    if name in _NOT_HTTP_VARS:
        return b""  # never set: see _NOT_HTTP_VARS
    return b"HTTP_" + name.upper().replace(b"-", b"_")
