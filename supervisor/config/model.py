"""Typed, frozen models of an lwsws config: global, vhost, mount and ws-protocol options.

Both the root and the workers import these; nothing here touches the network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class OriginKind(enum.Enum):
    """What a mount's origin does with a request (lwsws "mount protocols")."""

    FILE = "file"
    CGI = "cgi"
    CALLBACK = "callback"
    REDIRECT = "redirect"  # ">http://" and ">https://" (lwsws also documents "^")
    PROXY = "proxy"  # "http://" and "https://"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a value came from, for `FILE:LINE:COL: key.path: message` diagnostics."""

    file: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class MountConfig:
    mountpoint: str
    origin: str
    kind: OriginKind
    # file:// -> directory, cgi:// -> program, callback:// -> plugin name,
    # redirect/proxy -> the URL without the leading ">".
    target: str
    default: str = "index.html"
    pmo: tuple[tuple[str, str], ...] = ()
    cgi_env: tuple[tuple[str, str], ...] = ()
    cgi_timeout: float = 60.0
    cgi_chdir: str | None = None
    cache_max_age: int = 0
    cache_reuse: bool = False
    cache_revalidate: bool = False
    cache_intermediaries: bool = False
    cache_no: bool = False
    extra_mimetypes: tuple[tuple[str, str], ...] = ()
    basic_auth: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    exact_match: bool = False
    no_ws_upgrades: bool = False
    append_path: bool = False
    keepalive_timeout: float | None = None
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ProtocolConfig:
    """One entry of a vhost's `ws-protocols`: a plugin name and its pvo options.

    `options` keeps every pair in order, so repeated keys (`filespath`) survive.
    """

    name: str
    options: tuple[tuple[str, str], ...] = ()
    default: bool = False
    raw: bool = False

    def option(self, key: str, fallback: str | None = None) -> str | None:
        for k, v in self.options:
            if k == key:
                return v
        return fallback

    def options_all(self, key: str) -> tuple[str, ...]:
        return tuple(v for k, v in self.options if k == key)


@dataclass(frozen=True, slots=True)
class TLSConfig:
    cert: str
    key: str
    ca: str | None = None
    ciphers: str | None = None
    tls13_ciphers: str | None = None
    ecdh_curve: str | None = None
    option_set: int = 0
    option_clear: int = 0
    client_cert_required: bool = False


@dataclass(frozen=True, slots=True)
class ClientTLSConfig:
    """The vhost's client SSL context (`enable-client-ssl`), for https proxy origins."""

    ciphers: str | None = None
    tls13_ciphers: str | None = None
    option_set: int = 0
    option_clear: int = 0


@dataclass(frozen=True, slots=True)
class ListenAcceptConfig:
    """Raw and fallback vhosts: what a non-HTTP connection on the listener is bound to."""

    role: str | None = None
    protocol: str | None = None
    apply: bool = False
    fallback: bool = False
    allow_non_tls: bool = False
    redirect_http: bool = False
    allow_http_on_https: bool = False


@dataclass(frozen=True, slots=True)
class VhostConfig:
    name: str
    port: int
    interface: str | None = None
    unix_socket: bool = False
    unix_socket_perms: str | None = None
    noipv6: bool = False
    ipv6only: bool | None = None
    tls: TLSConfig | None = None
    client_tls: ClientTLSConfig | None = None
    listen_accept: ListenAcceptConfig | None = None
    keepalive_timeout: float = 60.0
    sts: bool = False
    access_log: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    error_document_404: str | None = None
    disable_no_protocol_ws_upgrades: bool = False
    mounts: tuple[MountConfig, ...] = ()
    ws_protocols: tuple[ProtocolConfig, ...] = ()
    location: Location | None = field(default=None, compare=False)

    @property
    def listen_key(self) -> str:
        """The listener this vhost shares with others, named by what it binds.

        `127.0.0.1:80`, `[::1]:80`, `*:80` (the wildcard, IPv4 and IPv6), `0.0.0.0:80` (`noipv6`
        or `ipv6only` off), `[::]:80` (`ipv6only` on), `lo:80` or `lo/ipv4:80` (an interface
        name), `unix:PATH`. Vhosts with one key share one socket; a reload that changes a key
        binds a new one. Options that contradict an address are the listener's error to report.
        """
        import ipaddress

        if self.unix_socket:
            return f"unix:{self.interface}"
        only = "ipv4" if self.noipv6 or self.ipv6only is False else "ipv6" if self.ipv6only else ""
        host = self.interface
        if host is None:
            host = {"": "*", "ipv4": "0.0.0.0", "ipv6": "[::]"}[only]
        else:
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:
                host = f"{host}/{only}" if only else host
            else:
                host = f"[{addr}]" if addr.version == 6 else str(addr)
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class GlobalConfig:
    username: str | None = None
    groupname: str | None = None
    count_threads: int = 1
    server_string: str | None = None
    ws_pingpong_secs: float = 0.0
    init_ssl: bool = False
    timeout_secs: float = 5.0
    deprecated_timeout_secs: float | None = None
    ready_timeout_secs: float = 30.0  # pyws: how long a new generation may take to boot
    reject_service_keywords: tuple[tuple[str, int, str], ...] = ()  # keyword, status, reason
    plugin_dirs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    """A whole validated config: what the root checked and every worker of a generation runs."""

    config_dir: str
    global_: GlobalConfig
    vhosts: tuple[VhostConfig, ...]
