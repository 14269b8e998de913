"""negotiate(): the opening handshake decided from a request head and a vhost's offer."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pyws.supervisor.config.model import ProtocolConfig, VhostConfig
from pyws.worker.auth import Credentials, basic_auth_challenge
from pyws.worker.http.events import Request
from pyws.worker.plugin_api import Plugin, PluginContext, WorkerInfo
from pyws.worker.world import World
from pyws.worker.ws.handshake import (
    Accept,
    OfferedProtocol,
    Refuse,
    VhostOffer,
    gate_for,
    negotiate,
    serialize_accept,
    wants_websocket,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example


def request(*fields: tuple[bytes, bytes], method: bytes = b"GET", version: str = "1.1") -> Request:
    base = [
        (b"host", b"localhost"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
    ]
    names = {name for name, _ in fields}
    headers = tuple((n, v) for n, v in base if n not in names) + fields
    headers = tuple((n, v) for n, v in headers if v)  # an empty value drops the field
    return Request(method, b"/", version, headers, b"localhost", True, False, False, b"websocket")


def offer(*protocols: ProtocolConfig, disable_no_protocol: bool = False) -> VhostOffer:
    vhost = VhostConfig(
        name="localhost",
        port=80,
        ws_protocols=protocols,
        disable_no_protocol_ws_upgrades=disable_no_protocol,
    )
    world = World(1, 1)
    offered = []
    for p in protocols:
        context = PluginContext(vhost, p, world, WorkerInfo(1, 1))
        offered.append(OfferedProtocol(p, Plugin(context)))
    return VhostOffer(vhost, offered)


def test_accept_key_is_rfc_6455s_example() -> None:
    head = serialize_accept(KEY, None)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    assert b"Sec-WebSocket-Protocol" not in head
    assert head.endswith(b"\r\n\r\n")


def test_first_offered_subprotocol_in_the_clients_order() -> None:
    decision = negotiate(
        request((b"sec-websocket-protocol", b"nope, b"), (b"sec-websocket-protocol", b"a")),
        offer(ProtocolConfig("a"), ProtocolConfig("b")),
    )
    assert isinstance(decision, Accept)
    assert decision.subprotocol == "b" and decision.protocol.name == "b"
    assert b"Sec-WebSocket-Protocol: b\r\n" in decision.head


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (((b"sec-websocket-protocol", b"unknown"),), 400),
        (((b"sec-websocket-key", b"short"),), 400),
        (((b"sec-websocket-key", b""),), 400),
        (((b"sec-websocket-version", b"8"),), 426),
    ],
)
def test_refusals(fields: tuple[tuple[bytes, bytes], ...], status: int) -> None:
    decision = negotiate(request(*fields), offer(ProtocolConfig("a", default=True)))
    assert isinstance(decision, Refuse) and decision.response.status == status


def test_426_names_the_version_we_speak() -> None:
    decision = negotiate(request((b"sec-websocket-version", b"7")), offer(ProtocolConfig("a")))
    assert isinstance(decision, Refuse)
    assert b"Sec-WebSocket-Version: 13\r\n" in decision.response.headers


def test_only_get_in_http_1_1() -> None:
    for bad in (request(method=b"POST"), request(version="1.0")):
        assert isinstance(negotiate(bad, offer(ProtocolConfig("a", default=True))), Refuse)


def test_no_subprotocol_default_and_disable() -> None:
    a, b = ProtocolConfig("a"), ProtocolConfig("b", default=True)
    decision = negotiate(request(), offer(a, b))
    assert isinstance(decision, Accept) and decision.protocol.name == "b"
    assert decision.subprotocol is None
    assert isinstance(negotiate(request(), offer(a)), Refuse)  # no default
    refused = offer(a, b, disable_no_protocol=True)
    assert isinstance(negotiate(request(), refused), Refuse)
    named = negotiate(request((b"sec-websocket-protocol", b"a")), refused)
    assert isinstance(named, Accept)


def test_basic_auth_pvo(tmp_path: Path) -> None:
    logins = tmp_path / "logins"
    logins.write_text("user:pass\n")
    config = ProtocolConfig("a", (("basic-auth", str(logins)),), default=True)
    vhost = VhostConfig(name="localhost", port=80, ws_protocols=(config,))
    credentials, challenge = gate_for(config, vhost, {})
    assert isinstance(credentials, Credentials) and challenge == basic_auth_challenge("localhost")
    base = offer(config)
    protocol = OfferedProtocol(config, base.by_name["a"].plugin, credentials, challenge)
    gated = VhostOffer(vhost, [protocol])
    denied = negotiate(request(), gated)
    assert isinstance(denied, Refuse) and denied.response.status == 401
    good = b"Basic " + base64.b64encode(b"user:pass")
    assert isinstance(negotiate(request((b"authorization", good)), gated), Accept)


def test_wants_websocket_only_for_websocket_upgrades() -> None:
    assert wants_websocket(request())
    h2c = Request(b"GET", b"/", "1.1", (), b"x", True, False, False, b"h2c")
    plain = Request(b"GET", b"/", "1.1", (), b"x", True, False, False, None)
    assert not wants_websocket(h2c) and not wants_websocket(plain)
