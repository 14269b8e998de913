"""Build `VhostConfig`s from parsed vhost objects: listener, TLS, mounts and ws-protocols."""

from __future__ import annotations

from typing import TypeVar

from pyws.supervisor.config.diagnostics import DiagnosticLog
from pyws.supervisor.config.features import not_built
from pyws.supervisor.config.model import (
    ClientTLSConfig,
    ListenAcceptConfig,
    Location,
    MountConfig,
    OriginKind,
    ProtocolConfig,
    TLSConfig,
    VhostConfig,
)
from pyws.supervisor.config.schema import MOUNT, ORIGIN_PREFIXES, PVO_FLAGS, VHOST
from pyws.supervisor.config.section import Section, read_section, require
from pyws.supervisor.config.source import Key, Node, ObjectNode, describe
from pyws.supervisor.config.values import ValueProblem, parse_bool, parse_text

T = TypeVar("T")

# lws names a vhost "default" when the config gives no name.
DEFAULT_VHOST_NAME = "default"
# The model owns the defaults; these instances let the builders read them.
_VHOST_DEFAULTS = VhostConfig(name=DEFAULT_VHOST_NAME, port=0)
_MOUNT_DEFAULTS = MountConfig(mountpoint="/", origin="", kind=OriginKind.FILE, target="")


def build_vhost(node: Node, path: str, log: DiagnosticLog) -> VhostConfig | None:
    if not isinstance(node, ObjectNode):
        log.error(node.location, path, f"expected a vhost object, found {describe(node)}")
        return None
    section = read_section(VHOST, node.members, path, node.location, log)
    require(section, "port", log)
    unix_socket = section.flag("unix-socket")
    interface = section.get("interface", str)
    if unix_socket and interface is None:
        message = "unix-socket needs 'interface' to give the socket's path"
        log.error(section.keys["unix-socket"].location, section.key_path("unix-socket"), message)
    return VhostConfig(
        name=section.get("name", str) or DEFAULT_VHOST_NAME,
        port=section.get("port", int) or 0,
        interface=interface,
        unix_socket=unix_socket,
        unix_socket_perms=section.get("unix-socket-perms", str),
        noipv6=section.flag("noipv6"),
        ipv6only=section.get("ipv6only", bool),
        tls=build_tls(section, log),
        client_tls=_build_client_tls(section),
        listen_accept=_build_listen_accept(section),
        keepalive_timeout=_pick(
            section.get("keepalive-timeout", float), _VHOST_DEFAULTS.keepalive_timeout
        ),
        sts=section.flag("sts"),
        access_log=section.get("access-log", str),
        headers=section.get("headers", tuple) or (),
        error_document_404=section.get("error-document-404", str),
        disable_no_protocol_ws_upgrades=section.flag("disable-no-protocol-ws-upgrades"),
        mounts=build_mounts(section, log),
        ws_protocols=build_protocols(section, log),
        location=node.location,
    )


def _build_client_tls(section: Section) -> ClientTLSConfig | None:
    if not section.flag("enable-client-ssl"):
        return None
    return ClientTLSConfig(
        ciphers=section.get("client-ssl-ciphers", str),
        tls13_ciphers=section.get("client-tls13-ciphers", str),
        option_set=_bits(section, "ssl-client-option-set"),
        option_clear=_bits(section, "ssl-client-option-clear"),
    )


_LISTEN_ACCEPT_KEYS = (
    "listen-accept-role",
    "listen-accept-protocol",
    "apply-listen-accept",
    "fallback-listen-accept",
    "allow-non-tls",
    "redirect-http",
    "allow-http-on-https",
)


def _build_listen_accept(section: Section) -> ListenAcceptConfig | None:
    if not any(section.has(key) for key in _LISTEN_ACCEPT_KEYS):
        return None
    return ListenAcceptConfig(
        role=section.get("listen-accept-role", str),
        protocol=section.get("listen-accept-protocol", str),
        apply=section.flag("apply-listen-accept"),
        fallback=section.flag("fallback-listen-accept"),
        allow_non_tls=section.flag("allow-non-tls"),
        redirect_http=section.flag("redirect-http"),
        allow_http_on_https=section.flag("allow-http-on-https"),
    )


def _pick(value: T | None, default: T) -> T:
    # `value or default` would turn an explicit 0 or "" into the default.
    return default if value is None else value


def _bits(section: Section, name: str) -> int:
    bits = 0
    for value in section.get_all(name, int):
        bits |= value
    return bits


def build_tls(section: Section, log: DiagnosticLog) -> TLSConfig | None:
    """TLS is on when both `host-ssl-cert` and `host-ssl-key` are given (the CA is optional)."""
    has_cert, has_key = section.has("host-ssl-cert"), section.has("host-ssl-key")
    if has_cert != has_key:
        given, missing = (
            ("host-ssl-cert", "host-ssl-key") if has_cert else ("host-ssl-key", "host-ssl-cert")
        )
        message = f"{given} needs {missing} too"
        log.error(section.keys[given].location, section.key_path(given), message)
    cert, key = section.get("host-ssl-cert", str), section.get("host-ssl-key", str)
    if cert is None or key is None:
        return None
    return TLSConfig(
        cert=cert,
        key=key,
        ca=section.get("host-ssl-ca", str),
        ciphers=section.get("ciphers", str),
        tls13_ciphers=section.get("tls13-ciphers", str),
        ecdh_curve=section.get("ecdh-curve", str),
        option_set=_bits(section, "ssl-option-set"),
        option_clear=_bits(section, "ssl-option-clear"),
        client_cert_required=section.flag("client-cert-required"),
    )


def build_mounts(vhost: Section, log: DiagnosticLog) -> tuple[MountConfig, ...]:
    mounts: list[MountConfig] = []
    first_seen: dict[str, Location] = {}
    for index, item in enumerate(vhost.get("mounts", tuple) or ()):
        path = f"{vhost.key_path('mounts')}[{index}]"
        mount = build_mount(item, path, first_seen, log)
        if mount is not None:
            mounts.append(mount)
    return tuple(mounts)


def build_mount(
    node: Node, path: str, first_seen: dict[str, Location], log: DiagnosticLog
) -> MountConfig | None:
    """A mount, or None when it lacks what every mount needs (reported to the log).

    `first_seen` maps the vhost's mountpoints so far to their places: a mountpoint given twice
    would silently shadow one of the mounts.
    """
    if not isinstance(node, ObjectNode):
        log.error(node.location, path, f"expected a mount object, found {describe(node)}")
        return None
    section = read_section(MOUNT, node.members, path, node.location, log)
    # `&`, not `and`: report both missing keys at once.
    has_required = require(section, "mountpoint", log) & require(section, "origin", log)
    mountpoint, origin = section.get("mountpoint", str), section.get("origin", str)
    if not has_required or mountpoint is None or origin is None:
        return None
    _check_mountpoint(section, mountpoint, first_seen, log)
    try:
        kind, target = parse_origin(origin)
    except ValueError as exc:
        _error_at(section, "origin", str(exc), log)
        return None
    pending = not_built(f"origin.{kind.value}")
    if pending is not None:
        _error_at(section, "origin", pending, log)
    return _mount_config(section, mountpoint, origin, kind, target)


def _check_mountpoint(
    section: Section, mountpoint: str, first_seen: dict[str, Location], log: DiagnosticLog
) -> None:
    if not mountpoint.startswith("/"):
        message = f"mountpoint must start with '/', found {mountpoint!r}"
        _error_at(section, "mountpoint", message, log)
    first = first_seen.get(mountpoint)
    if first is None:
        first_seen[mountpoint] = section.nodes["mountpoint"].location
    else:
        message = f"duplicate mountpoint {mountpoint!r} (first at {first.line}:{first.col})"
        _error_at(section, "mountpoint", message, log)


def _error_at(section: Section, name: str, message: str, log: DiagnosticLog) -> None:
    log.error(section.nodes[name].location, section.key_path(name), message)


def _mount_config(
    section: Section, mountpoint: str, origin: str, kind: OriginKind, target: str
) -> MountConfig:
    base = _MOUNT_DEFAULTS
    return MountConfig(
        mountpoint=mountpoint,
        origin=origin,
        kind=kind,
        target=target,
        default=_pick(section.get("default", str), base.default),
        pmo=section.get("pmo", tuple) or (),
        cgi_env=section.get("cgi-env", tuple) or (),
        cgi_timeout=_pick(section.get("cgi-timeout", float), base.cgi_timeout),
        cgi_chdir=section.get("cgi-chdir", str),
        cache_max_age=section.get("cache-max-age", int) or 0,
        cache_reuse=section.flag("cache-reuse"),
        cache_revalidate=section.flag("cache-revalidate"),
        cache_intermediaries=section.flag("cache-intermediaries"),
        cache_no=section.flag("cache-no"),
        extra_mimetypes=section.get("extra-mimetypes", tuple) or (),
        basic_auth=section.get("basic-auth", str),
        headers=section.get("headers", tuple) or (),
        exact_match=section.flag("exact-match"),
        no_ws_upgrades=section.flag("no-ws-upgrades"),
        append_path=section.flag("append-path"),
        keepalive_timeout=section.get("keepalive-timeout", float),
        location=section.nodes["mountpoint"].location,
    )


def parse_origin(origin: str) -> tuple[OriginKind, str]:
    """Split an origin into its kind and target; ValueError names the accepted schemes."""
    for prefix, kind in ORIGIN_PREFIXES:
        if not origin.startswith(prefix):
            continue
        rest = origin[len(prefix) :]
        if kind is OriginKind.FILE and not rest.startswith("/"):
            raise ValueError(f"file:// origin needs an absolute directory, found {origin!r}")
        if not rest:
            raise ValueError(f"{prefix} origin needs a target after the scheme")
        if kind is OriginKind.REDIRECT:
            return kind, origin[1:]
        if kind is OriginKind.PROXY:
            return kind, origin
        return kind, rest
    accepted = ", ".join(prefix for prefix, _ in ORIGIN_PREFIXES)
    raise ValueError(f"unknown origin scheme in {origin!r}: use one of {accepted}")


def build_protocols(vhost: Section, log: DiagnosticLog) -> tuple[ProtocolConfig, ...]:
    """`[{"plugin-a": {pvo...}, "plugin-b": {...}}, ...]`: every named plugin, in order."""
    protocols: list[ProtocolConfig] = []
    for index, item in enumerate(vhost.get("ws-protocols", tuple) or ()):
        path = f"{vhost.key_path('ws-protocols')}[{index}]"
        if not isinstance(item, ObjectNode):
            log.error(
                item.location, path, f"expected an object of protocols, found {describe(item)}"
            )
            continue
        protocols.extend(
            build_protocol(key, pvo, f"{path}.{key.name}", log) for key, pvo in item.members
        )
    return tuple(protocols)


def build_protocol(key: Key, pvo: Node, path: str, log: DiagnosticLog) -> ProtocolConfig:
    if not isinstance(pvo, ObjectNode):
        log.error(
            pvo.location, path, f"expected an object of protocol options, found {describe(pvo)}"
        )
        return ProtocolConfig(key.name)
    options: list[tuple[str, str]] = []
    flags = dict.fromkeys(PVO_FLAGS, False)
    for option, value in pvo.members:
        option_path = f"{path}.{option.name}"
        try:
            options.append((option.name, parse_text(value)))
            if option.name in flags:
                flags[option.name] = parse_bool(value)
        except ValueProblem as exc:
            log.error(exc.location, option_path, exc.message)
        message = not_built(f"pvo.{option.name}")
        if message is not None:
            log.error(option.location, option_path, message)
    return ProtocolConfig(key.name, tuple(options), default=flags["default"], raw=flags["raw"])
