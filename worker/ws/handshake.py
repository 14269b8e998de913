"""The opening handshake: which protocol of a vhost an upgrade request gets, or why not.

`negotiate()` is pure: it reads the request head and the vhost's `VhostOffer` (built once at
boot) and decides. The HTTP layer sends `Accept.head` (101) and hands the connection over to
a WSProtocol, or sends `Refuse.response` like any other response.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyws.supervisor.config.model import ProtocolConfig, VhostConfig
from pyws.worker.auth import Credentials, basic_auth_challenge
from pyws.worker.http.events import Request
from pyws.worker.http.response import Response, error_response, serialize_fields

if TYPE_CHECKING:
    from pyws.worker.plugin_api import Plugin

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_VERSION_13 = serialize_fields([("Sec-WebSocket-Version", "13")])


@dataclass(frozen=True, slots=True)
class OfferedProtocol:
    """One `ws-protocols` entry of a vhost, with its plugin instance and upgrade gate."""

    config: ProtocolConfig
    plugin: Plugin
    credentials: Credentials | None = None  # the pvo `basic-auth` file, read at boot
    challenge: Response | None = None  # the 401 sent without valid credentials

    @property
    def name(self) -> str:
        return self.config.name


class VhostOffer:
    """What one vhost offers to upgrade requests: only its `ws-protocols` (issue 5)."""

    __slots__ = ("by_name", "default", "no_protocol_refused")

    def __init__(self, vhost: VhostConfig, protocols: list[OfferedProtocol]) -> None:
        self.by_name = {p.name: p for p in protocols}
        # lws: the protocol with the pvo `default` takes upgrades that name no subprotocol.
        self.default = next((p for p in protocols if p.config.default), None)
        self.no_protocol_refused = vhost.disable_no_protocol_ws_upgrades


@dataclass(frozen=True, slots=True)
class Accept:
    protocol: OfferedProtocol
    subprotocol: str | None  # echoed in Sec-WebSocket-Protocol; None when none was asked
    head: bytes  # the whole 101 response head, blank line included


@dataclass(frozen=True, slots=True)
class Refuse:
    response: Response  # the connection closes after it (the request asked to upgrade)
    reason: str


UpgradeDecision = Accept | Refuse


def wants_websocket(request: Request) -> bool:
    """Does the request ask to upgrade to WebSocket (not h2c or anything else)?"""
    upgrade = request.upgrade
    if upgrade is None:
        return False
    return any(token.strip().lower() == b"websocket" for token in upgrade.split(b","))


def negotiate(request: Request, offer: VhostOffer) -> UpgradeDecision:
    """Accept or refuse a WebSocket upgrade request (RFC 6455 §4.2.1, §4.2.2)."""
    key = _client_key(request)
    if request.method != b"GET" or request.http_version != "1.1" or key is None:
        return Refuse(error_response(400), "not a valid WebSocket handshake")
    if _field(request, b"sec-websocket-version") != b"13":
        # RFC 6455 §4.4: say which version we speak.
        return Refuse(error_response(426, _VERSION_13), "unsupported WebSocket version")
    asked = _subprotocols(request)
    if asked:
        protocol = next((offer.by_name[n] for n in asked if n in offer.by_name), None)
        if protocol is None:
            return Refuse(error_response(400), f"no offered subprotocol in {asked}")
        subprotocol: str | None = protocol.name
    else:
        if offer.no_protocol_refused:
            return Refuse(error_response(400), "upgrade without a subprotocol refused")
        protocol = offer.default
        if protocol is None:
            return Refuse(error_response(400), "no subprotocol asked and no default protocol")
        subprotocol = None
    if protocol.credentials is not None and not protocol.credentials.check(
        request.header(b"authorization")
    ):
        assert protocol.challenge is not None
        return Refuse(protocol.challenge, "basic-auth required")
    return Accept(protocol, subprotocol, serialize_accept(key, subprotocol))


def serialize_accept(key: bytes, subprotocol: str | None) -> bytes:
    """The 101 response head for a client's Sec-WebSocket-Key (RFC 6455 §4.2.2 step 5)."""
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    head = [
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n"
    ]
    if subprotocol is not None:
        head.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("ascii") + b"\r\n")
    head.append(b"\r\n")
    return b"".join(head)


def gate_for(
    config: ProtocolConfig, vhost: VhostConfig, loaded: dict[str, Credentials]
) -> tuple[Credentials | None, Response | None]:
    """The pvo `basic-auth` of a protocol: its credentials (read now, as root) and its 401."""
    path = config.option("basic-auth")
    if not path:
        return None, None
    if path not in loaded:
        loaded[path] = Credentials.load(path)
    return loaded[path], basic_auth_challenge(vhost.name)


def _client_key(request: Request) -> bytes | None:
    """Sec-WebSocket-Key, when it is the base64 of 16 bytes (RFC 6455 §4.1 step 7)."""
    key = _field(request, b"sec-websocket-key")
    if key is None:
        return None
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(raw) == 16 else None


def _field(request: Request, name: bytes) -> bytes | None:
    value = request.header(name)
    return None if value is None else value.strip()


def _subprotocols(request: Request) -> list[str]:
    """Every Sec-WebSocket-Protocol token, in the client's order of preference; the field may
    come more than once (RFC 6455 §11.3.4), each a comma-separated list."""
    names: list[str] = []
    for name, value in request.headers:
        if name == b"sec-websocket-protocol":
            names.extend(t.strip().decode("latin-1") for t in value.split(b",") if t.strip())
    return names
