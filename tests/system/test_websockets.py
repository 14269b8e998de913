"""WebSockets through the real root: plugins, the shared world of a generation, reloads."""

from __future__ import annotations

import base64
import socket
import time
from typing import Any

import psutil
import pytest
from pyws_harness import Pyws, Site, vhost, wait_until
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

# Several clients stay open across a test body here; each is closed in a finally.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager")

PROTOCOLS = [
    {
        "dumb-increment-protocol": {"default": "1"},
        "lws-mirror-protocol": {},
        "lws-server-status": {"update-ms": "300"},
    }
]


def serve(pyws: Pyws, site: Site, **global_: Any) -> int:
    site.write_conf(
        global_={k.replace("_", "-"): str(v) for k, v in global_.items()},
        vhosts=[{**vhost(mounts=[site.mount()]), "ws-protocols": PROTOCOLS}],
    )
    pyws.start()
    return pyws.port()


def mirror(port: int, group: str) -> ClientConnection:
    return connect(
        f"ws://127.0.0.1:{port}/?mirror={group}",
        subprotocols=["lws-mirror-protocol"],  # type: ignore[list-item]
        open_timeout=10,
    )


def test_dumb_increment_counts_resets_and_closes(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site)
    # No subprotocol: the `default` protocol takes it.
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as ws:
        first = [int(str(ws.recv(timeout=5))) for _ in range(3)]
        assert first == [first[0], first[0] + 1, first[0] + 2]
        ws.send("reset\n")
        wait_until(lambda: int(str(ws.recv(timeout=5))) == 0, 5, "the counter to reset")
        ws.send("closeme\n")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_unknown_subprotocol_is_refused(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site)
    with pytest.raises(InvalidStatus):
        connect(
            f"ws://127.0.0.1:{port}/",
            subprotocols=["no-such-protocol"],  # type: ignore[list-item]
            open_timeout=10,
        )
    assert pyws.get("/")[0] == 200  # and plain HTTP goes on


def test_protocol_error_closes_1002(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site)
    with connect(
        f"ws://127.0.0.1:{port}/",
        subprotocols=["lws-mirror-protocol"],  # type: ignore[list-item]
        open_timeout=10,
    ) as ws:
        raw: socket.socket = ws.socket
        raw.sendall(b"\x8f\x80\x00\x00\x00\x00")  # an unknown opcode, masked, empty
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002


def test_mirror_is_shared_by_the_workers_of_a_generation(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site, count_threads=2)
    clients = [mirror(port, "shared") for _ in range(16)]
    try:
        workers = pyws.generations()[0]["pids"]
        ports = {c.socket.getsockname()[1] for c in clients}
        on = {
            pid: {
                conn.raddr[1]
                for conn in psutil.Process(pid).net_connections(kind="tcp")
                if conn.raddr and conn.raddr[1] in ports
            }
            for pid in workers
        }
        assert all(on.values()), f"every worker holds some clients: {on}"
        time.sleep(0.3)  # let every join reach the sibling worker
        clients[0].send("across workers")
        for client in clients:
            assert client.recv(timeout=5) == "across workers"
    finally:
        for client in clients:
            client.close()


def test_generations_keep_separate_worlds(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site)
    old_a, old_b = mirror(port, "room"), mirror(port, "room")
    try:
        assert pyws.reload().returncode == 0
        new = mirror(port, "room")
        try:
            old_a.send("from the old world")
            assert old_b.recv(timeout=5) == "from the old world"
            assert old_a.recv(timeout=5) == "from the old world"
            with pytest.raises(TimeoutError):
                new.recv(timeout=1)
            new.send("from the new world")
            assert new.recv(timeout=5) == "from the new world"
            with pytest.raises(TimeoutError):
                old_a.recv(timeout=1)
        finally:
            new.close()
        # The deprecated generation keeps its WebSockets: it is still there.
        assert [g["state"] for g in pyws.generations()] == ["deprecated", "active"]
    finally:
        old_a.close()
        old_b.close()
    wait_until(lambda: len(pyws.generations()) == 1, 20, "generation 1 to drain and exit")


def test_deprecated_timeout_closes_websockets_with_1001(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site, deprecated_timeout_secs=2)
    ws = mirror(port, "bye")
    try:
        assert pyws.reload().returncode == 0
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert 1.5 < time.monotonic() - started < 8
    finally:
        ws.close()
    wait_until(lambda: len(pyws.generations()) == 1, 20, "generation 1 to exit")


def test_server_status_reports_the_live_generations(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site)
    with connect(
        f"ws://127.0.0.1:{port}/",
        subprotocols=["lws-server-status"],  # type: ignore[list-item]
        open_timeout=10,
    ) as ws:
        assert '"generation":1' in str(ws.recv(timeout=5))
        assert pyws.reload().returncode == 0
        # This connection lives on generation 1, which now reports itself deprecated.
        wait_until(lambda: '"state":"deprecated"' in str(ws.recv(timeout=5)), 10, "new status")


def test_mount_basic_auth_guards_the_upgrade(pyws: Pyws, site: Site) -> None:
    """A WebSocket routed to a basic-auth mount needs that mount's credentials, as a plain
    request does (nginx's auth_basic behaves so; lwsws checks only the pvo's)."""
    logins = site.base / "logins"  # root-only: the worker reads it before dropping privileges
    logins.write_text("ws-user:ws-pass\n")
    logins.chmod(0o600)
    mount = {**site.mount(), "basic-auth": str(logins)}
    site.write_conf(vhosts=[{**vhost(mounts=[mount]), "ws-protocols": PROTOCOLS}])
    pyws.start()
    url = f"ws://127.0.0.1:{pyws.port()}/?mirror=auth"
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"ws-user:wrong").decode()}):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, subprotocols=["lws-mirror-protocol"], additional_headers=headers)  # type: ignore[list-item]
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic realm=")
    good = {"Authorization": "Basic " + base64.b64encode(b"ws-user:ws-pass").decode()}
    with connect(
        url,
        subprotocols=["lws-mirror-protocol"],  # type: ignore[list-item]
        additional_headers=good,
        open_timeout=10,
    ) as ws:
        ws.send("through the gate")
        assert ws.recv(timeout=5) == "through the gate"
