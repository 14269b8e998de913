"""The environment a CGI script sees (RFC 3875 §4.1), and nothing else of the worker's."""

from __future__ import annotations

from dataclasses import dataclass

from pyws.supervisor.config.model import MountConfig
from pyws.worker.http.events import Request

# A fixed PATH: the worker's own environment never leaks into a script.
CGI_PATH = "/usr/local/bin:/usr/bin:/bin"

# Carried by CONTENT_TYPE/CONTENT_LENGTH, and `Proxy` must never become HTTP_PROXY
# (httpoxy, CVE-2016-5385: libraries read HTTP_PROXY as their outgoing proxy).
_NOT_HTTP_VARS = frozenset({b"content-type", b"content-length", b"proxy"})


@dataclass(frozen=True, slots=True)
class Peer:
    """Both ends of the client's connection, as the CGI variables name them."""

    remote_addr: str
    remote_port: int
    server_port: int
    https: bool = False


def build_environ(
    request: Request,
    mount: MountConfig,
    *,
    path_info: str,
    query: bytes,
    peer: Peer,
    server_software: str,
    server_name: str,
) -> dict[str, str]:
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
        "SERVER_SOFTWARE": server_software,
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(peer.server_port),
        "REQUEST_METHOD": _text(request.method),
        "QUERY_STRING": _text(query),
        "REQUEST_URI": _text(request.target),
        "SCRIPT_NAME": mount.mountpoint.rstrip("/"),
        "PATH_INFO": path_info,
        "REMOTE_ADDR": peer.remote_addr,
        "REMOTE_PORT": str(peer.remote_port),
        "HTTPS": "on" if peer.https else "off",
        "SCRIPT_PATH": mount.target,  # lwsws's name for the program being run
        "SCRIPT_FILENAME": mount.target,
        "PATH": CGI_PATH,
    }
    content_type = request.header(b"content-type")
    if content_type is not None:
        env["CONTENT_TYPE"] = _text(content_type)
    content_length = request.header(b"content-length")
    if content_length is not None:
        # A chunked body has no length to give: the script reads stdin to EOF.
        env["CONTENT_LENGTH"] = _text(content_length)
    for name, value in request.headers:
        if name in _NOT_HTTP_VARS:
            continue
        key = "HTTP_" + _text(name).upper().replace("-", "_")
        # RFC 3875 §4.1.18: repeated fields are joined as one list.
        env[key] = f"{env[key]}, {_text(value)}" if key in env else _text(value)
    env.update(mount.cgi_env)
    return env


def _text(raw: bytes) -> str:
    # Header bytes are opaque octets (RFC 9110 §5.5); latin-1 maps each to one character.
    return raw.decode("latin-1")
