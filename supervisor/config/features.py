"""Documented lwsws features this pyws does not serve yet: using one is a config error.

The loader still parses and type-checks these keys; it just refuses the config so nothing is
silently ignored. An issue that builds a feature deletes its entries here and nothing else.

Patterns: `global.KEY`, `vhost.KEY`, `mount.KEY` (canonical key names), `origin.KIND` (an
`OriginKind` value) and `pvo.KEY` (a ws-protocols option the server itself interprets).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pending:
    """A feature not built yet, and the issue that brings it (None: not scheduled)."""

    feature: str
    issue: int | None = None

    @property
    def message(self) -> str:
        if self.issue is None:
            return f"{self.feature} is not built yet in this pyws"
        return f"{self.feature} is not built yet in this pyws (issue {self.issue})"


_HTTP = 3  # vhost listener, static file and HTTP options
_CGI = 4
_WS = 5  # ws-protocols, plugins, callback:// mounts

_TLS = Pending("TLS")
_CLIENT_TLS = Pending("client TLS")
_RAW = Pending("listen-accept (raw and fallback vhosts)")

NOT_BUILT: dict[str, Pending] = {
    "global.ws-pingpong-secs": Pending("ws-pingpong-secs", _WS),
    "global.init-ssl": _TLS,
    "global.reject-service-keywords": Pending("reject-service-keywords", _HTTP),
    "vhost.noipv6": Pending("noipv6", _HTTP),
    "vhost.ipv6only": Pending("ipv6only", _HTTP),
    "vhost.sts": Pending("sts", _HTTP),
    "vhost.access-log": Pending("access-log", _HTTP),
    "vhost.headers": Pending("the vhost headers option", _HTTP),
    "vhost.error-document-404": Pending("error-document-404", _HTTP),
    "vhost.disable-no-protocol-ws-upgrades": Pending("disable-no-protocol-ws-upgrades", _WS),
    "vhost.ws-protocols": Pending("ws-protocols", _WS),
    "vhost.host-ssl-key": _TLS,
    "vhost.host-ssl-cert": _TLS,
    "vhost.host-ssl-ca": _TLS,
    "vhost.ciphers": _TLS,
    "vhost.tls13-ciphers": _TLS,
    "vhost.ecdh-curve": _TLS,
    "vhost.ssl-option-set": _TLS,
    "vhost.ssl-option-clear": _TLS,
    "vhost.client-cert-required": _TLS,
    "vhost.enable-client-ssl": _CLIENT_TLS,
    "vhost.client-ssl-ciphers": _CLIENT_TLS,
    "vhost.client-tls13-ciphers": _CLIENT_TLS,
    "vhost.ssl-client-option-set": _CLIENT_TLS,
    "vhost.ssl-client-option-clear": _CLIENT_TLS,
    "vhost.apply-listen-accept": _RAW,
    "vhost.listen-accept-role": _RAW,
    "vhost.listen-accept-protocol": _RAW,
    "vhost.fallback-listen-accept": _RAW,
    "vhost.allow-non-tls": _RAW,
    "vhost.redirect-http": _RAW,
    "vhost.allow-http-on-https": _RAW,
    "mount.pmo": Pending("pmo", _WS),
    "mount.cgi-env": Pending("cgi-env", _CGI),
    "mount.cgi-timeout": Pending("cgi-timeout", _CGI),
    "mount.cgi-chdir": Pending("cgi-chdir", _CGI),
    "mount.cache-max-age": Pending("cache-max-age", _HTTP),
    "mount.cache-reuse": Pending("cache-reuse", _HTTP),
    "mount.cache-revalidate": Pending("cache-revalidate", _HTTP),
    "mount.cache-intermediaries": Pending("cache-intermediaries", _HTTP),
    "mount.cache-no": Pending("cache-no", _HTTP),
    "mount.extra-mimetypes": Pending("extra-mimetypes", _HTTP),
    "mount.basic-auth": Pending("basic-auth", _HTTP),
    "mount.headers": Pending("the mount headers option", _HTTP),
    "mount.exact-match": Pending("exact-match", _HTTP),
    "mount.append-path": Pending("append-path", _HTTP),
    "mount.keepalive-timeout": Pending("keepalive-timeout on a mount", _HTTP),
    "mount.no-ws-upgrades": Pending("no-ws-upgrades", _WS),
    "origin.cgi": Pending("the cgi:// origin", _CGI),
    "origin.callback": Pending("the callback:// origin", _WS),
    "origin.redirect": Pending("the redirect origin", _HTTP),
    "origin.proxy": Pending("the proxy origin"),
    "pvo.raw": _RAW,
}


def not_built(pattern: str) -> str | None:
    """The error message for a feature that is not built yet, or None when it is built."""
    pending = NOT_BUILT.get(pattern)
    return pending.message if pending else None
