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
    "global.init-ssl": _TLS,
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
    "origin.proxy": Pending("the proxy origin"),
    "pvo.raw": _RAW,
}


def not_built(pattern: str) -> str | None:
    """The error message for a feature that is not built yet, or None when it is built."""
    pending = NOT_BUILT.get(pattern)
    return pending.message if pending else None
