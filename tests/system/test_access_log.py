"""access-log through the real root: the lines, many writers, rotation and reloads."""

from __future__ import annotations

import base64
import http.client
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

from pyws_harness import Load, Pyws, Site, vhost, wait_until

FIELD = rb'(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\"|\\\\|\\x[0-9a-f]{2})*'
LINE = re.compile(
    rb"(?P<host>[0-9A-Fa-f.:]+) - (?P<user>-|[\x21-\x7e]+) "
    rb"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
    rb'"(?P<request>' + FIELD + rb')" (?P<status>\d{3}) (?P<size>-|[1-9]\d*) '
    rb'"(?P<referer>' + FIELD + rb')" "(?P<agent>' + FIELD + rb')"\n'
)
NOBODY = pwd.getpwnam("nobody")


def parse_all(path: Path) -> list[dict[str, bytes]]:
    """Every line of the log, each of which must be whole and well formed."""
    data = path.read_bytes() if path.exists() else b""
    assert b"\x00" not in data
    out = []
    for line in data.splitlines(keepends=True):
        match = LINE.fullmatch(line)
        assert match is not None, f"not a combined log line: {line[:300]!r}"
        out.append(match.groupdict())
    return out


def requests_in(path: Path) -> list[bytes]:
    return [fields["request"] for fields in parse_all(path)]


def wait_for_lines(path: Path, count: int) -> list[dict[str, bytes]]:
    found: list[dict[str, bytes]] = wait_until(
        lambda: len(lines := parse_all(path)) >= count and lines, 10, f"{count} lines in {path}"
    )
    return found


def get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def logdir(site: Site, worker_writable: bool = True) -> Path:
    path = site.base / "logs"
    path.mkdir()
    if worker_writable:  # so that a worker can create the file again after a rename
        os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    return path


def logged_site(site: Site, log: Path, global_: dict[str, Any] | None = None) -> None:
    site.write_conf(global_, [{**vhost(mounts=[site.mount()]), "access-log": str(log)}])


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_lines_for_get_head_404_and_a_bad_request(pyws: Pyws, site: Site) -> None:
    log = logdir(site, worker_writable=False) / "access.log"
    logged_site(site, log)
    pyws.start()
    port = pyws.port()
    assert get(port, "/", {"Referer": "http://ref/x", "User-Agent": "probe/1"}) == 200
    head = b"HEAD /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    assert raw_exchange(port, head).startswith(b"HTTP/1.1 200")
    assert get(port, "/missing?q=1") == 404
    assert raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    curl = ["curl", "-s", "-o", "/dev/null", "-A", 'evil"\tagent', f"http://127.0.0.1:{port}/%22"]
    subprocess.run(curl, check=True, timeout=10)
    lines = wait_for_lines(log, 5)
    size = str(len((site.docroot / "index.html").read_bytes())).encode()
    found = [(f["request"], f["status"], f["size"]) for f in lines]
    assert found == [
        (b"GET / HTTP/1.1", b"200", size),
        (b"HEAD /index.html HTTP/1.1", b"200", b"-"),
        (b"GET /missing?q=1 HTTP/1.1", b"404", found[2][2]),
        (b"-", b"400", found[3][2]),
        (b"GET /%22 HTTP/1.1", b"404", found[4][2]),
    ]
    assert (lines[0]["host"], lines[0]["referer"], lines[0]["agent"]) == (
        b"127.0.0.1",
        b"http://ref/x",
        b"probe/1",
    )
    assert lines[4]["agent"] == b'evil\\"\\x09agent'
    mode = log.stat()
    assert stat.S_IMODE(mode.st_mode) == 0o640
    if os.geteuid() == 0:  # created by root before the drop, given to the worker user
        assert (mode.st_uid, mode.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)


def test_a_request_that_stalls_is_logged_as_408(pyws: Pyws, site: Site) -> None:
    log = logdir(site, worker_writable=False) / "access.log"
    logged_site(site, log, {"timeout-secs": "1"})
    pyws.start()
    answer = raw_exchange(pyws.port(), b"GET /slow HTTP/1.1\r\nHost: local")  # and then nothing
    assert answer.startswith(b"HTTP/1.1 408")
    [line] = wait_for_lines(log, 1)
    assert (line["request"], line["status"]) == (b"-", b"408")


def test_a_dual_stack_listener_logs_ipv4_clients_as_ipv4(pyws: Pyws, site: Site) -> None:
    log = logdir(site, worker_writable=False) / "access.log"
    wildcard = {"name": "localhost", "port": "0", "mounts": [site.mount()], "access-log": str(log)}
    site.write_conf(vhosts=[wildcard])
    pyws.start()
    port = pyws.port()
    assert get(port, "/v4") == 404
    clients = [b"127.0.0.1"]
    if socket.has_ipv6 and os.path.exists("/proc/net/if_inet6"):
        with socket.create_connection(("::1", port), timeout=10) as sock:
            sock.sendall(b"GET /v6 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 404")
        clients.append(b"::1")
    lines = wait_for_lines(log, len(clients))
    assert [f["host"] for f in lines] == clients


def test_the_basic_auth_user_is_logged(pyws: Pyws, site: Site) -> None:
    log = logdir(site, worker_writable=False) / "access.log"
    secrets = site.base / "passwords"
    secrets.write_text("ann:opensesame\n")
    mount = {**site.mount(), "basic-auth": str(secrets)}
    site.write_conf(vhosts=[{**vhost(mounts=[mount]), "access-log": str(log)}])
    pyws.start()
    port = pyws.port()
    good = "Basic " + base64.b64encode(b"ann:opensesame").decode()
    bad = "Basic " + base64.b64encode(b"ann:wrong").decode()
    assert get(port, "/", {"Authorization": good}) == 200
    assert get(port, "/", {"Authorization": bad}) == 401
    lines = wait_for_lines(log, 2)
    assert [(f["user"], f["status"]) for f in lines] == [(b"ann", b"200"), (b"-", b"401")]


def test_two_workers_under_load_never_interleave_lines(pyws: Pyws, site: Site) -> None:
    log = logdir(site) / "access.log"
    logged_site(site, log, {"count-threads": "2"})
    pyws.start()
    port = pyws.port()
    agent = "load/" + "x" * 3000  # long lines: a torn write would show
    threads, each = 8, 150
    failures: list[str] = []

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for n in range(each):
            headers = {"User-Agent": agent} | ({"Connection": "close"} if n % 3 == 0 else {})
            conn.request("GET", f"/?c={index}&n={n}", headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures.append(f"{index}/{n}: {resp.status}")
            if n % 3 == 0:
                conn.close()
        conn.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(120)
    assert not failures
    wrk = subprocess.run(
        ["wrk", "-t2", "-c32", "-d2s", "-H", f"User-Agent: {agent}", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"(\d+) requests in", wrk.stdout)
    assert match is not None, wrk.stdout + wrk.stderr
    served = int(match.group(1))
    pyws.stop()  # a graceful stop: every line is out
    lines = parse_all(log)
    assert len(lines) >= threads * each + served
    assert all(f["agent"] == agent.encode() for f in lines)
    ours = {f["request"] for f in lines if f["request"].startswith(b"GET /?c=")}
    assert len(ours) == threads * each  # each exactly once: none lost, none torn


def test_copytruncate_continues_at_the_start_of_the_file(pyws: Pyws, site: Site) -> None:
    log = logdir(site) / "access.log"
    logged_site(site, log)
    pyws.start()
    port = pyws.port()
    with Load(port, threads=2) as load:
        load.wait_for_more(200)
        shutil.copyfile(log, site.base / "logs" / "access.log.1")  # what logrotate does...
        os.truncate(log, 0)  # ...and then this, while the server writes on
        load.wait_for_more(200)
    assert not load.errors
    pyws.stop()  # a graceful stop: every line is out
    data = log.read_bytes()
    assert data.startswith(b"127.0.0.1 - - [")  # O_APPEND: no hole where the old lines were
    assert len(parse_all(log)) >= 100
    parse_all(site.base / "logs" / "access.log.1")


def test_reopen_logs_after_a_rename(pyws: Pyws, site: Site) -> None:
    log = logdir(site) / "access.log"
    logged_site(site, log, {"count-threads": "2"})
    pyws.start()
    port = pyws.port()
    assert get(port, "/one") == 404
    wait_for_lines(log, 1)
    rotated = log.with_name("access.log.1")
    log.rename(rotated)
    assert get(port, "/two") == 404  # still to the renamed file
    wait_for_lines(rotated, 2)
    assert not log.exists()
    out = pyws.ctl("reopen-logs")
    assert out.returncode == 0, out.stderr
    assert "asked 2 worker(s)" in out.stdout
    wait_until(lambda: pyws.log().count(f"access-log {log}: reopened") == 2, 10, "both reopened")
    for n in range(6):  # whichever worker answers
        assert get(port, f"/three{n}") == 404
    lines = wait_for_lines(log, 6)
    assert {f["request"] for f in lines} == {b"GET /three%d HTTP/1.1" % n for n in range(6)}
    assert requests_in(rotated) == [b"GET /one HTTP/1.1", b"GET /two HTTP/1.1"]


def test_a_failed_reopen_keeps_writing_to_the_old_file(pyws: Pyws, site: Site) -> None:
    log = logdir(site, worker_writable=False) / "access.log"
    logged_site(site, log)
    pyws.start()
    port = pyws.port()
    rotated = log.with_name("access.log.1")
    log.rename(rotated)
    assert pyws.ctl("reopen-logs").returncode == 0
    wait_until(lambda: "cannot reopen, keeping the old file" in pyws.log(), 10, "the error")
    assert get(port, "/after") == 404
    assert [f["request"] for f in wait_for_lines(rotated, 1)] == [b"GET /after HTTP/1.1"]
    assert not log.exists()


def test_a_new_generation_appends_to_the_same_file(pyws: Pyws, site: Site) -> None:
    log = logdir(site) / "access.log"
    logged_site(site, log)
    pyws.start()
    assert get(pyws.port(), "/gen1") == 404
    wait_for_lines(log, 1)
    inode = log.stat().st_ino
    assert pyws.reload().returncode == 0
    assert get(pyws.port(), "/gen2") == 404
    wait_for_lines(log, 2)
    pyws.stop()
    assert requests_in(log) == [b"GET /gen1 HTTP/1.1", b"GET /gen2 HTTP/1.1"]
    assert log.stat().st_ino == inode


def test_a_log_that_cannot_be_opened_fails_the_start_or_the_reload(pyws: Pyws, site: Site) -> None:
    log = site.base / "no-such-dir" / "access.log"
    logged_site(site, log)
    pyws.start(wait=False)
    assert pyws.proc is not None and pyws.proc.wait(30) == 1
    assert f"access-log {log}: No such file or directory" in pyws.log()
    site.write_conf()
    pyws.start()
    logged_site(site, log)
    assert pyws.reload().returncode == 1  # the old generation serves on
    assert pyws.get("/")[0] == 200
