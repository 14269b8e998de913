"""noipv6 and ipv6only through the real root: which IP versions each listener takes."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from pyws_harness import Pyws, Site, reserve_port, wait_until


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _ipv6_loopback(), reason="IPv6 loopback is unavailable")


def answers(host: str, port: int) -> bool:
    """True if a server answers 200 at (host, port); False if the connection is refused."""
    try:
        sock = socket.create_connection((host, port), timeout=10)
    except ConnectionRefusedError:
        return False
    with sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.startswith(b"HTTP/1.1 200")


def wildcard(site: Site, options: dict[str, str], port: int = 0) -> dict[str, Any]:
    return {"name": "localhost", "port": str(port), "mounts": [site.mount()], **options}


def listener(pyws: Pyws) -> tuple[str, int]:
    gen = pyws.active_generation()
    assert gen is not None
    [addr] = gen["listeners"]
    host, port = addr.rsplit(":", 1)
    return host, int(port)


# options -> (the address the listener binds, IPv4 answers, IPv6 answers)
FAMILIES = [
    pytest.param({}, ("[::]", True, True), id="both"),
    pytest.param({"noipv6": "on"}, ("0.0.0.0", True, False), id="noipv6"),
    pytest.param({"ipv6only": "on"}, ("[::]", False, True), id="ipv6only-on"),
    pytest.param({"ipv6only": "off"}, ("0.0.0.0", True, False), id="ipv6only-off"),
]
Families = tuple[str, bool, bool]


def check_families(pyws: Pyws, expected: Families) -> None:
    host, port = listener(pyws)
    assert (host, answers("127.0.0.1", port), answers("::1", port)) == expected


@pytest.mark.parametrize(("options", "expected"), FAMILIES)
def test_wildcard_listener_families(
    pyws: Pyws, site: Site, options: dict[str, str], expected: Families
) -> None:
    site.write_conf(vhosts=[wildcard(site, options)])
    pyws.start()
    check_families(pyws, expected)


@pytest.mark.parametrize(("options", "expected"), FAMILIES)
def test_interface_name_listener_families(
    pyws: Pyws, site: Site, options: dict[str, str], expected: Families
) -> None:
    site.write_conf(vhosts=[wildcard(site, {"interface": "lo", **options})])
    pyws.start()
    check_families(pyws, expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"interface": "127.0.0.1", "ipv6only": "on"}, "ipv6only is on but 127.0.0.1 is an IPv4"),
        ({"interface": "::1", "noipv6": "on"}, "noipv6 or ipv6only off, but ::1 is an IPv6"),
        ({"interface": "::1", "ipv6only": "off"}, "noipv6 or ipv6only off, but ::1 is an IPv6"),
        ({"noipv6": "on", "ipv6only": "on"}, "noipv6 and ipv6only on contradict each other"),
    ],
)
def test_contradicting_options_stop_the_start(
    pyws: Pyws, site: Site, options: dict[str, str], message: str
) -> None:
    site.write_conf(vhosts=[wildcard(site, options)])
    pyws.start(wait=False)
    assert pyws.proc is not None and pyws.proc.wait(20) == 1
    assert "cannot listen on " in pyws.log() and message in pyws.log()


def test_ipv6_address_listener_with_ipv6only(pyws: Pyws, site: Site) -> None:
    site.write_conf(vhosts=[wildcard(site, {"interface": "::1", "ipv6only": "on"})])
    pyws.start()
    host, port = listener(pyws)
    assert host == "[::1]"
    assert answers("::1", port)
    assert not answers("127.0.0.1", port)


def test_vhosts_binding_the_same_address_share_one_listener(pyws: Pyws, site: Site) -> None:
    other = site.base / "other"
    other.mkdir()
    (other / "index.html").write_text("other vhost\n")
    second = {"mountpoint": "/", "origin": f"file://{other}"}
    site.write_conf(
        vhosts=[
            wildcard(site, {"noipv6": "on"}),
            {"name": "other", "port": "0", "interface": "0.0.0.0", "mounts": [second]},
        ]
    )
    pyws.start()
    host, port = listener(pyws)  # one listener: `noipv6` on the wildcard is 0.0.0.0
    assert host == "0.0.0.0"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"other vhost\n")


def test_reload_changing_the_families_binds_a_new_socket(pyws: Pyws, site: Site) -> None:
    with reserve_port() as reserved:
        port = reserved.getsockname()[1]
        site.write_conf(vhosts=[wildcard(site, {}, port)])
        pyws.start()
        assert listener(pyws) == ("[::]", port)
        assert answers("127.0.0.1", port) and answers("::1", port)

        site.write_conf(vhosts=[wildcard(site, {"noipv6": "on"}, port)])
        assert pyws.reload().returncode == 0
        assert listener(pyws) == ("0.0.0.0", port)
        wait_until(lambda: not answers("::1", port), 10, "the dual-stack socket closed")
        assert answers("127.0.0.1", port)

        site.write_conf(vhosts=[wildcard(site, {"ipv6only": "on"}, port)])
        assert pyws.reload().returncode == 0
        assert listener(pyws) == ("[::]", port)
        wait_until(lambda: not answers("127.0.0.1", port), 10, "the IPv4 socket closed")
        assert answers("::1", port)
