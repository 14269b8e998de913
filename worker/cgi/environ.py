"""The environment a CGI script sees (RFC 3875 §4.1), and nothing else of the worker's.

Names and values are bytes, as the kernel takes them: header fields arrive as bytes and go
out unchanged, and spawn.py has nothing left to encode. What a mount's scripts share is
built once per mount (`MountEnviron`); a request adds only its own variables.
"""

from __future__ import annotations

from typing import Final

from pyws.supervisor.config.model import MountConfig
from pyws.worker.http.events import Request

# A fixed PATH: the worker's own environment never leaks into a script.
CGI_PATH: Final = "/usr/local/bin:/usr/bin:/bin"

# The fields that do not become HTTP_*: two have variables of their own (a chunked body has
# no length to give: the script reads stdin to EOF), and `Proxy` must never become
# HTTP_PROXY (httpoxy, CVE-2016-5385: libraries read HTTP_PROXY as their outgoing proxy).
_NOT_HTTP_VARS: Final = {
    b"content-type": b"CONTENT_TYPE",
    b"content-length": b"CONTENT_LENGTH",
    b"proxy": b"",  # never set
}
# Field name -> variable name, as the requests of a worker brought them: clients send the
# same few fields again and again. Bounded, as a client may invent names.
_var_names: Final = dict(_NOT_HTTP_VARS)
_VAR_NAMES_MAX: Final = 512
_VAR_NAME_MAX_BYTES: Final = 64


class Peer:
    """Both ends of the client's connection, as the CGI variables name them. A plain class,
    as CGIHead is: one is built per connection that runs a script."""

    __slots__ = ("https", "remote_addr", "remote_port", "server_port")

    def __init__(
        self, remote_addr: str, remote_port: int, server_port: int, https: bool = False
    ) -> None:
        self.remote_addr: Final = remote_addr
        self.remote_port: Final = remote_port
        self.server_port: Final = server_port
        self.https: Final = https


class MountEnviron:
    """The variables every request to one cgi:// mount shares, and its `cgi-env`."""

    __slots__ = ("_base", "_extra")

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

    def build(
        self,
        request: Request,
        *,
        path_info: bytes,
        query: bytes,
        peer: Peer,
        server_name: bytes,
    ) -> dict[bytes, bytes]:
        env = {
            **self._base,
            b"SERVER_PROTOCOL": b"HTTP/" + request.http_version.encode(),
            b"SERVER_NAME": server_name,
            b"SERVER_PORT": b"%d" % peer.server_port,
            b"REQUEST_METHOD": request.method,
            b"QUERY_STRING": query,
            b"REQUEST_URI": request.target,
            b"PATH_INFO": path_info,
            b"REMOTE_ADDR": peer.remote_addr.encode(),
            b"REMOTE_PORT": b"%d" % peer.remote_port,
            b"HTTPS": b"on" if peer.https else b"off",
        }
        for name, value in request.headers:
            key = _var_names.get(name)
            if key is None:
                key = _var_name(name)
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


def _var_name(field: bytes) -> bytes:
    """HTTP_ and the lowercased field name in capitals, `-` as `_` (RFC 3875 §4.1.18)."""
    key = b"HTTP_" + field.upper().replace(b"-", b"_")
    if len(field) <= _VAR_NAME_MAX_BYTES:
        if len(_var_names) >= _VAR_NAMES_MAX:
            _var_names.clear()
            _var_names.update(_NOT_HTTP_VARS)
        _var_names[field] = key
    return key
