"""Graceful reload: zero loss, merged HUPs, failed reloads keep the old generation."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time

import psutil
import pytest
from pyws_harness import Load, Pyws, Site, reserve_port, vhost, wait_until

from pyws.supervisor.statefile import read_state


def one_active_and_drained(pyws: Pyws) -> bool:
    gens = pyws.generations()
    return len(gens) == 1 and gens[0]["state"] == "active"


@pytest.mark.parametrize("threads", [1, 2])
def test_zero_loss_across_20_reloads(pyws: Pyws, site: Site, threads: int) -> None:
    site.write_conf(global_={"count-threads": str(threads)})
    pyws.start()
    port = pyws.port()
    with Load(port, threads=4) as load:
        wait_until(lambda: load.ok > 100, 10, "the load to start")
        for i in range(20):
            out = pyws.reload()
            assert out.returncode == 0, out.stdout + out.stderr
            assert f"generation {i + 2} is active" in out.stdout
            load.wait_for_more(20)
    assert load.errors == [], load.errors[:10]
    assert load.ok > 1000
    wait_until(lambda: one_active_and_drained(pyws), 30, "old generations to drain")
    assert pyws.generations()[0]["generation"] == 21


def test_reload_that_changes_a_port(pyws: Pyws, site: Site) -> None:
    with reserve_port() as a, reserve_port() as b:
        old_port, new_port = a.getsockname()[1], b.getsockname()[1]
        steady = vhost(mounts=[site.mount()])
        site.write_conf(vhosts=[steady, vhost(old_port, name="moving", mounts=[site.mount()])])
        pyws.start()
        stable_port = next(
            int(addr.rsplit(":", 1)[1])
            for addr in pyws.active_generation()["listeners"]  # type: ignore[index]
            if not addr.endswith(f":{old_port}")
        )
        assert pyws.get("/", old_port)[0] == 200
        with Load(stable_port, threads=4) as load:
            wait_until(lambda: load.ok > 100, 10, "the load to start")
            site.write_conf(vhosts=[steady, vhost(new_port, name="moving", mounts=[site.mount()])])
            out = pyws.reload()
            assert out.returncode == 0, out.stderr
            load.wait_for_more(50)
        assert load.errors == [], load.errors[:10]
        assert pyws.get("/", new_port)[0] == 200
        # The removed address is closed: refused, not left hanging in a dead backlog.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", old_port), timeout=2).close()


def test_bad_config_on_reload_keeps_the_old_generation(pyws: Pyws, site: Site) -> None:
    pyws.start()
    before = pyws.generations()
    conf = site.conf_dir / "conf"
    conf.write_text(
        '{\n  "vhosts": [{"name": "x", "port": "80",\n    "mounts": [{"origin": 1}]}]\n}\n'
    )
    out = pyws.reload()
    assert out.returncode != 0
    assert f"{conf}:3:" in out.stderr  # FILE:LINE:COL names the place
    # The same through a bare SIGHUP: the root logs it and keeps serving.
    os.kill(pyws.pid, signal.SIGHUP)
    wait_until(lambda: "reload failed" in pyws.log(), 10, "the root to reject the config")
    assert [(g["generation"], g["pids"]) for g in pyws.generations()] == [
        (g["generation"], g["pids"]) for g in before
    ]
    assert pyws.get("/")[0] == 200


def test_generation_that_never_gets_ready_is_killed(pyws: Pyws, site: Site) -> None:
    pyws.start()
    [old] = pyws.generations()
    plugins = site.base / "plugins"
    plugins.mkdir()
    (plugins / "hang.py").write_text("import time\ntime.sleep(3600)\n")
    site.write_conf(global_={"plugin-dir": str(plugins), "ready-timeout-secs": "2"})
    started = time.monotonic()
    out = pyws.reload()
    assert out.returncode == 1
    assert "not ready in time" in out.stderr
    assert time.monotonic() - started < 15
    wait_until(lambda: pyws.generations() == [old] or None, 10, "the hung generation to go")
    assert pyws.get("/")[0] == 200


def test_a_plugin_that_fails_to_import_fails_the_reload(pyws: Pyws, site: Site) -> None:
    pyws.start()
    [old] = pyws.generations()
    plugins = site.base / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise RuntimeError('plugin is broken')\n")
    site.write_conf(global_={"plugin-dir": str(plugins)})
    out = pyws.reload()
    assert out.returncode == 1 and "before it was ready" in out.stderr
    assert "plugin is broken" in pyws.log()
    assert [g["pids"] for g in pyws.generations()] == [old["pids"]]


def test_fifty_hups_in_a_second_end_with_one_generation(pyws: Pyws, site: Site) -> None:
    site.write_conf(global_={"count-threads": "2"})
    pyws.start()
    root = psutil.Process(pyws.pid)
    fds_before = root.num_fds()
    for _ in range(50):
        last_hup = time.time()
        os.kill(pyws.pid, signal.SIGHUP)
        time.sleep(0.02)

    def settled() -> bool:
        # The root has answered the last HUP, and everything older has drained.
        result = (read_state(pyws.pidfile) or {}).get("reload") or {}
        return result.get("covers", 0) >= last_hup and one_active_and_drained(pyws)

    wait_until(settled, 60, "one generation left")
    # Merged: far fewer generations than HUPs, and none left behind.
    [gen] = pyws.generations()
    assert 2 <= gen["generation"] < 50
    assert len(gen["pids"]) == 2
    assert {p.pid for p in root.children()} == set(gen["pids"])
    assert root.num_fds() == fds_before
    assert pyws.get("/")[0] == 200


def test_slow_request_finishes_on_the_old_generation(pyws: Pyws, site: Site) -> None:
    blob = os.urandom(8 << 20)
    (site.docroot / "big.txt").write_bytes(blob)
    pyws.start()
    [old] = pyws.generations()
    sock = socket.create_connection(("127.0.0.1", pyws.port()))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.sendall(b"GET /big.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    received = bytearray(sock.recv(65536))
    assert pyws.reload().returncode == 0
    gens = {g["generation"]: g for g in pyws.generations()}
    assert gens[1]["state"] == "deprecated" and gens[2]["state"] == "active"
    sock.settimeout(30)
    while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < len(blob):
        chunk = sock.recv(65536)
        assert chunk, "the old generation closed the response early"
        received += chunk
    sock.close()
    header, _, body = bytes(received).partition(b"\r\n\r\n")
    assert header.startswith(b"HTTP/1.1 200")
    assert hashlib.sha256(body).digest() == hashlib.sha256(blob).digest()
    wait_until(lambda: not any(psutil.pid_exists(p) for p in old["pids"]), 70, "gen 1 to exit")


def test_draining_worker_closes_keepalive_with_connection_close(pyws: Pyws) -> None:
    pyws.start()
    sock = socket.create_connection(("127.0.0.1", pyws.port()))
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200") and b"connection: close" not in first.lower()
    assert pyws.reload().returncode == 0
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    second = sock.recv(65536)
    assert second.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in second.lower()
    sock.settimeout(10)
    assert sock.recv(65536) == b""
    sock.close()
    wait_until(lambda: one_active_and_drained(pyws), 20, "generation 1 to exit")
