"""The keys lwsws documents at each level of a config (global, vhost, mount), with their kinds."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyws.supervisor.config.model import OriginKind
from pyws.supervisor.config.values import Kind


@dataclass(frozen=True, slots=True)
class Level:
    """One kind of JSON object in a config and the keys it may hold."""

    name: str  # the prefix of its patterns in features.NOT_BUILT
    keys: Mapping[str, Kind]
    aliases: Mapping[str, str] = field(default_factory=dict)  # other spelling -> key
    repeatable: frozenset[str] = frozenset()  # keys whose repeats add up instead of overriding

    def canonical(self, key: str) -> str | None:
        if key in self.keys:
            return key
        return self.aliases.get(key)

    def suggest(self, key: str) -> str | None:
        return closest(key, [*self.keys, *self.aliases])


def closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return matches[0] if matches else None


def unknown_key_message(key: str, suggestion: str | None) -> str:
    hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
    return f"unknown key '{key}'{hint}"


TOP_KEYS = ("global", "vhosts")

_KEEPALIVE = {"keeplive-timeout": "keepalive-timeout", "keepalive_timeout": "keepalive-timeout"}

GLOBAL = Level(
    "global",
    {
        "username": Kind.TEXT,
        "groupname": Kind.TEXT,
        "count-threads": Kind.THREADS,
        "server-string": Kind.TEXT,
        "ws-pingpong-secs": Kind.SECONDS,
        "init-ssl": Kind.BOOL,
        "reject-service-keywords": Kind.REJECTS,
        "timeout-secs": Kind.SECONDS,
        "plugin-dir": Kind.TEXT,
        # pyws: bounds how long a deprecated generation may drain.
        "deprecated-timeout-secs": Kind.SECONDS,
        # pyws: how long a new generation may take to boot before the reload fails.
        "ready-timeout-secs": Kind.SECONDS,
    },
    repeatable=frozenset({"plugin-dir"}),
)

VHOST = Level(
    "vhost",
    {
        "name": Kind.TEXT,
        "port": Kind.PORT,
        "interface": Kind.TEXT,
        "host-ssl-key": Kind.TEXT,
        "host-ssl-cert": Kind.TEXT,
        "host-ssl-ca": Kind.TEXT,
        "mounts": Kind.LIST,
        "ws-protocols": Kind.LIST,
        "keepalive-timeout": Kind.SECONDS,
        "unix-socket": Kind.BOOL,
        "unix-socket-perms": Kind.TEXT,
        "sts": Kind.BOOL,
        "access-log": Kind.TEXT,
        "enable-client-ssl": Kind.BOOL,
        "ciphers": Kind.TEXT,
        "client-ssl-ciphers": Kind.TEXT,
        "tls13-ciphers": Kind.TEXT,
        "client-tls13-ciphers": Kind.TEXT,
        "ecdh-curve": Kind.TEXT,
        "noipv6": Kind.BOOL,
        "ipv6only": Kind.BOOL,
        "ssl-option-set": Kind.FLAGS,
        "ssl-option-clear": Kind.FLAGS,
        "ssl-client-option-set": Kind.FLAGS,
        "ssl-client-option-clear": Kind.FLAGS,
        "headers": Kind.HEADERS,
        "apply-listen-accept": Kind.BOOL,
        "listen-accept-role": Kind.TEXT,
        "listen-accept-protocol": Kind.TEXT,
        "fallback-listen-accept": Kind.BOOL,
        "allow-non-tls": Kind.BOOL,
        "redirect-http": Kind.BOOL,
        "allow-http-on-https": Kind.BOOL,
        "client-cert-required": Kind.BOOL,
        "error-document-404": Kind.TEXT,
        "disable-no-protocol-ws-upgrades": Kind.BOOL,
    },
    aliases=_KEEPALIVE,
    # lwsws ORs the option bits of every occurrence together.
    repeatable=frozenset(
        {"ssl-option-set", "ssl-option-clear", "ssl-client-option-set", "ssl-client-option-clear"}
    ),
)

MOUNT = Level(
    "mount",
    {
        "mountpoint": Kind.TEXT,
        "origin": Kind.TEXT,
        "default": Kind.TEXT,
        "pmo": Kind.PAIRS,
        "cgi-env": Kind.PAIRS,
        "cgi-timeout": Kind.SECONDS,
        "cgi-chdir": Kind.TEXT,
        "cache-max-age": Kind.COUNT,
        "cache-reuse": Kind.BOOL,
        "cache-revalidate": Kind.BOOL,
        "cache-intermediaries": Kind.BOOL,
        "cache-no": Kind.BOOL,
        "extra-mimetypes": Kind.MAP,
        "basic-auth": Kind.TEXT,
        "headers": Kind.HEADERS,
        "exact-match": Kind.BOOL,
        "no-ws-upgrades": Kind.BOOL,
        "append-path": Kind.BOOL,
        "keepalive-timeout": Kind.SECONDS,
    },
    aliases=_KEEPALIVE,
)

# Options inside a ws-protocols entry the server reads itself; every other pvo is the plugin's.
PVO_FLAGS = ("default", "raw")

ORIGIN_PREFIXES: tuple[tuple[str, OriginKind], ...] = (
    ("file://", OriginKind.FILE),
    ("cgi://", OriginKind.CGI),
    ("callback://", OriginKind.CALLBACK),
    (">http://", OriginKind.REDIRECT),
    (">https://", OriginKind.REDIRECT),
    # lwsws documents "^" for redirects; pyws accepts it as a synonym of ">".
    ("^http://", OriginKind.REDIRECT),
    ("^https://", OriginKind.REDIRECT),
    ("http://", OriginKind.PROXY),
    ("https://", OriginKind.PROXY),
)
