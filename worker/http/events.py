"""The events an HTTPConnection emits, the peer's protocol error, and the head rules raising it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NamedTuple

# RFC 9110 §7.2 and RFC 3986 §3.2.2: uri-host [":" port], where userinfo has no place.
_HOST_SYNTAX: Final = re.compile(
    rb"(?:\[[0-9A-Za-z:.]+\]|[-0-9A-Za-z._~!$&'()*+,;=%]*)(?::[0-9]*)?"
)
_ABSOLUTE_FORM: Final = re.compile(rb"(?i)https?://([^/?#]*)")
_KNOWN_HOSTS_MAX: Final = 1024
known_hosts: Final[set[bytes]] = set()  # Host values that passed check_host(): clients repeat them


class Request(NamedTuple):
    """A request head: the request line and header fields (RFC 9112 §2.1), before any content.

    A NamedTuple rather than a frozen dataclass: as immutable, and built at C speed, where
    a frozen dataclass's __init__ cost 0.9 µs of a 4.7 µs request (one per request)."""

    method: bytes
    target: bytes  # origin-form, absolute-form (http or https), or `*` with OPTIONS
    http_version: str  # "1.1" (also for 1.2 and later minors) or "1.0": others got 505
    headers: tuple[tuple[bytes, bytes], ...]  # field names lowercased, in arrival order
    host: bytes | None  # None only in HTTP/1.0; syntax checked (RFC 9112 §3.2)
    keep_alive: bool  # what the client asked for (RFC 9112 §9.3)
    expect_continue: bool  # HTTP/1.1, `Expect: 100-continue` and content follows
    conditional: bool  # an If-* or Range field is present: lets the fast path skip them
    upgrade: bytes | None = None  # the Upgrade field when the parser saw a valid upgrade

    def header(self, name: bytes) -> bytes | None:
        """The first value of the field `name` (lowercase), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Data:
    """A piece of request content, already de-chunked."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The request content is complete (trailer fields, if any, are dropped)."""


END_OF_MESSAGE: Final = EndOfMessage()

Event = Request | Data | EndOfMessage


class ProtocolError(Exception):
    """The peer sent bytes we cannot serve: answer `status`, then close this connection only."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


# -- head rules the parser leaves to us: each returns or raises ProtocolError ---------------------


def check_version(version: str) -> str:
    """The version to serve a request of `version` ("major.minor") as, other than 1.0 and 1.1."""
    if version.startswith("1."):
        return "1.1"  # RFC 9110 §2.5: a higher minor version is served as the highest we know
    raise ProtocolError(505, f"HTTP/{version} is not supported")  # RFC 9110 §15.6.6


def check_host(value: bytes) -> None:
    """A Host field value must be uri-host [":" port] (RFC 9112 §3.2: 400 otherwise)."""
    if not _HOST_SYNTAX.fullmatch(value.strip()):
        raise ProtocolError(400, "invalid Host field")
    if len(known_hosts) >= _KNOWN_HOSTS_MAX:
        known_hosts.clear()  # bounded whatever clients send
    known_hosts.add(value)


def check_target(method: bytes, target: bytes) -> None:
    """A target not in origin-form: absolute-form is served (RFC 9112 §3.2.2), and `*` only
    with OPTIONS (§3.2.4). Authority-form is for proxies (CONNECT): 400, like anything else."""
    if target == b"*" and method == b"OPTIONS":
        return
    form = _ABSOLUTE_FORM.match(target)
    if form is None:
        raise ProtocolError(400, "request-target is not origin-form or absolute-form")
    authority = form.group(1)
    # RFC 9110 §4.2.1: an empty host is invalid; §4.2.4: so is userinfo.
    if not authority or not _HOST_SYNTAX.fullmatch(authority):
        raise ProtocolError(400, "invalid authority in the request-target")


def check_codings(value: bytes, version: str) -> None:
    """The (joined) Transfer-Encoding fields must be exactly `chunked` (RFC 9112 §6.1).

    400 when chunked is missing, not final, or twice, or in HTTP/1.0: the content's length
    cannot be known (RFC 9112 §6.3). 501 for a final chunked after codings we do not decode,
    gzip and friends (RFC 9112 §6.1): the framing is sound, the content is not readable.
    """
    if version == "1.0":
        raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
    # RFC 9110 §5.6.1: empty list elements are ignored; codings are case-insensitive (§10.1.4).
    codings = [c for c in (part.strip().lower() for part in value.split(b",")) if c]
    if not codings or codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
        raise ProtocolError(400, "chunked is not the final transfer coding, once")
    if len(codings) > 1:
        raise ProtocolError(501, "transfer coding not implemented")
