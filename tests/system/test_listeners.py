"""Listeners the root binds: addresses, interface names and unix sockets."""

from __future__ import annotations

import os
import pwd
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from pyws_harness import Pyws, Site, vhost, wait_until


def unix_get(path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_unix_socket_listener(pyws: Pyws, site: Site) -> None:
    path = site.base / "pyws.sock"
    unix = {"name": "local", "port": "0", "unix-socket": "1", "interface": str(path)}
    site.write_conf(
        vhosts=[
            vhost(mounts=[site.mount()]),
            {**unix, "unix-socket-perms": "nobody:nogroup", "mounts": [site.mount()]},
        ]
    )
    pyws.start()
    mode = path.stat()
    assert stat.S_ISSOCK(mode.st_mode) and stat.S_IMODE(mode.st_mode) == 0o600
    assert mode.st_uid == pwd.getpwnam("nobody").pw_uid
    assert unix_get(path).startswith(b"HTTP/1.1 200")
    curl = subprocess.run(
        ["curl", "-s", "--unix-socket", str(path), "http://localhost/"],
        capture_output=True,
        timeout=10,
    )
    assert b"hello from pyws" in curl.stdout
    gen = pyws.active_generation()
    assert gen is not None and f"unix:{path}" in gen["listeners"]
    with socket.socket(socket.AF_UNIX) as held:
        held.connect(str(path))
        wait_until(lambda: pyws.generations()[0]["connections"] == 1, 10, "the unix connection")
    # The root keeps the same socket across a reload.
    assert pyws.reload().returncode == 0
    assert path.stat().st_ino == mode.st_ino
    assert unix_get(path).startswith(b"HTTP/1.1 200")
    pyws.stop()
    assert not path.exists()


def test_stale_unix_socket_is_replaced_but_a_file_is_not(pyws: Pyws, site: Site) -> None:
    path = site.base / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, then closed: a socket nobody listens on
    unix = {"port": "0", "unix-socket": "1", "interface": str(path), "mounts": [site.mount()]}
    site.write_conf(vhosts=[unix])
    pyws.start()
    assert unix_get(path).startswith(b"HTTP/1.1 200")
    pyws.stop()
    path.write_text("not a socket")
    pyws.start(wait=False)
    assert pyws.proc is not None and pyws.proc.wait(20) == 1
    assert "exists and is not a socket" in pyws.log()
    assert path.read_text() == "not a socket"


def test_interface_by_name(pyws: Pyws, site: Site) -> None:
    site.write_conf(vhosts=[{**vhost(mounts=[site.mount()]), "interface": "lo"}])
    pyws.start()
    status, body = pyws.get("/")
    assert status == 200 and b"hello" in body


def test_unknown_interface_is_a_clear_error(pyws: Pyws, site: Site) -> None:
    site.write_conf(vhosts=[{**vhost(mounts=[site.mount()]), "interface": "nosuchif0"}])
    pyws.start(wait=False)
    assert pyws.proc is not None and pyws.proc.wait(20) == 1
    assert "no address or interface named 'nosuchif0'" in pyws.log()


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_ipv6_loopback(pyws: Pyws, site: Site) -> None:
    if not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("IPv6 is disabled on this machine")
    site.write_conf(vhosts=[{**vhost(mounts=[site.mount()]), "interface": "::1"}])
    pyws.start()
    gen = pyws.active_generation()
    assert gen is not None
    [addr] = gen["listeners"]
    port = int(addr.rsplit(":", 1)[1])
    with socket.create_connection(("::1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
