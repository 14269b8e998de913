"""The root's life: start, status, titles, crashes, root death and stop."""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from pyws_harness import Pyws, Site, vhost, wait_until


def titles(pids: list[int]) -> list[str]:
    # setproctitle pads the title with spaces to the length of the original argv.
    return [" ".join(psutil.Process(pid).cmdline()).strip() for pid in pids]


def test_serves_and_reports_status(pyws: Pyws, site: Site) -> None:
    site.write_conf(global_={"count-threads": "2"})
    pyws.start()
    status, body = pyws.get("/")
    assert status == 200 and b"hello from pyws" in body
    data = pyws.status()
    root = data["supervisor"]
    assert root["pid"] == pyws.pid
    assert root["config_dir"] == str(site.conf_dir)
    assert root["uptime_s"] > 0
    [gen] = data["generations"]
    assert gen["generation"] == 1 and gen["state"] == "active"
    assert len(gen["pids"]) == 2
    assert gen["rss_bytes"] > 1_000_000
    assert gen["listeners"] == [f"127.0.0.1:{pyws.port()}"]
    datetime.fromisoformat(gen["started_at"])
    assert titles([pyws.pid]) == [f"pyws: supervisor -c {site.conf_dir}"]
    assert set(titles(gen["pids"])) == {"pyws: worker gen=1 active"}
    table = pyws.ctl("status")
    assert table.returncode == 0
    assert "active" in table.stdout and str(gen["pids"][0]) in table.stdout


def test_status_counts_open_connections(pyws: Pyws) -> None:
    pyws.start()
    port = pyws.port()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        wait_until(lambda: pyws.generations()[0]["connections"] == 3, 10, "3 connections")
    finally:
        for s in socks:
            s.close()


def test_sigterm_stops_everything_with_exit_zero(pyws: Pyws) -> None:
    pyws.start()
    workers = pyws.generations()[0]["pids"]
    assert pyws.proc is not None
    pyws.proc.send_signal(signal.SIGTERM)
    assert pyws.proc.wait(20) == 0
    wait_until(lambda: not any(psutil.pid_exists(p) for p in workers), 10, "workers gone")
    assert not Path(pyws.pidfile).exists()


def test_ctl_stop(pyws: Pyws) -> None:
    pyws.start()
    out = pyws.ctl("stop", "--timeout", "20")
    assert out.returncode == 0, out.stderr
    assert pyws.proc is not None and pyws.proc.wait(5) == 0
    assert pyws.ctl("status").returncode == 1


def test_killed_worker_is_replaced(pyws: Pyws) -> None:
    pyws.start()
    [old] = pyws.generations()[0]["pids"]
    os.kill(old, signal.SIGKILL)

    def replaced() -> bool:
        gens = pyws.generations()
        return len(gens) == 1 and gens[0]["pids"] != [old] and gens[0]["state"] == "active"

    wait_until(replaced, 15, "a replacement worker")
    assert pyws.get("/")[0] == 200
    assert "replaced by" in pyws.log()


def test_killed_root_takes_workers_down(pyws: Pyws, site: Site) -> None:
    site.write_conf(global_={"count-threads": "2"})
    pyws.start()
    workers = pyws.generations()[0]["pids"]
    os.kill(pyws.pid, signal.SIGKILL)
    wait_until(lambda: not any(psutil.pid_exists(p) for p in workers), 5, "workers to die")


def test_a_fatal_signal_in_a_worker_leaves_a_traceback(pyws: Pyws) -> None:
    pyws.start()
    [pid] = pyws.generations()[0]["pids"]
    os.kill(pid, signal.SIGSEGV)
    wait_until(lambda: "Fatal Python error" in pyws.log(), 10, "faulthandler output")
    wait_until(pyws.active_generation, 15, "a replacement")


def test_bad_config_at_start_exits_78(pyws: Pyws, site: Site) -> None:
    site.write_conf(raw='{"global": {}, "vhosts": [{"name": "x", "mounts": []}]}')
    pyws.start(wait=False)
    assert pyws.proc is not None and pyws.proc.wait(20) == 78
    assert "port" in pyws.log()


def test_worker_that_cannot_boot_fails_start(pyws: Pyws, site: Site) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: an unknown username only fails when dropping privileges")
    site.write_conf(global_={"username": "no-such-user-pyws"})
    pyws.start(wait=False)
    assert pyws.proc is not None and pyws.proc.wait(20) == 1
    assert "no such user" in pyws.log()


def test_port_in_use_is_a_clear_start_failure(pyws: Pyws, site: Site) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        site.write_conf(vhosts=[vhost(port, mounts=[site.mount()])])
        pyws.start(wait=False)
        assert pyws.proc is not None and pyws.proc.wait(20) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in pyws.log()


def test_sd_notify_protocol(pyws: Pyws, tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(20)
        pyws.start(env={"NOTIFY_SOCKET": path})
        assert sock.recv(4096) == b"READY=1"
        # Only the root speaks to systemd: workers must not see NOTIFY_SOCKET.
        [worker] = pyws.generations()[0]["pids"]
        assert b"NOTIFY_SOCKET" not in Path(f"/proc/{worker}/environ").read_bytes()
        assert pyws.reload().returncode == 0
        reloading = sock.recv(4096).decode()
        assert reloading.startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert int(reloading.rsplit("=", 1)[1]) > 0
        assert sock.recv(4096) == b"READY=1"
        assert pyws.proc is not None
        pyws.proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert pyws.proc.wait(20) == 0


def test_stop_closes_idle_keepalive_connections_of_every_generation(pyws: Pyws) -> None:
    pyws.start()
    idle = socket.create_connection(("127.0.0.1", pyws.port()))
    idle.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    assert pyws.reload().returncode == 0
    # Generation 1 drains, holding the idle connection until its keep-alive timeout...
    assert [g["state"] for g in pyws.generations()] == ["deprecated", "active"]
    assert pyws.proc is not None
    started = time.monotonic()
    pyws.proc.send_signal(signal.SIGTERM)
    # ...but a stop closes idle connections now rather than after 60 s.
    assert pyws.proc.wait(20) == 0
    assert time.monotonic() - started < 5
    idle.settimeout(5)
    assert idle.recv(65536) == b""
    idle.close()


def test_connections_are_spread_over_the_workers(pyws: Pyws, site: Site) -> None:
    """One SO_REUSEPORT socket per worker slot: the kernel balances a burst of connections
    (a single shared socket lets the first worker to wake take them all)."""
    site.write_conf(global_={"count-threads": "2"})
    pyws.start()
    port = pyws.port()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        per_worker = {
            pid: sum(
                1
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED
            )
            for pid in pyws.generations()[0]["pids"]
        }
        assert sum(per_worker.values()) == 40
        assert min(per_worker.values()) >= 5, per_worker
        # The balance survives a reload: the sockets are the root's, kept per slot.
        assert pyws.reload().returncode == 0
    finally:
        for sock in socks:
            sock.close()
