"""cgi:// mounts through the real root (issue 4): scripts written at test time, run by workers
as `nobody`, checked with ab, curl, h11 on raw sockets, psutil and the server log."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h11
import psutil
import pytest
from pyws_harness import Pyws, Site, vhost, wait_until

SH = "#!/bin/sh\n"
TEXT = "printf 'Content-Type: text/plain\\n\\n'\n"
# The seed's script, exactly (lighttpd bug #2217), under a shebang.
SEED = SH + 'echo "Content-type: text/html"\necho ""\necho "Plain text cxx!"\n'
# Says its pid on stderr (the log), then a grandchild that ignores SIGTERM and holds stdout:
# only a SIGKILL of the whole group ends it. "$0" puts the script's path in its command line.
STUBBORN = 'echo "pid $$" >&2\nsh -c \'trap "" TERM; sleep 1000; exit 0\' "$0" &\n'
# All a script can see of itself, as JSON (see the file).
INSPECT = (Path(__file__).resolve().parents[1] / "data" / "cgi" / "inspect").read_text()


def serve(
    pyws: Pyws, site: Site, scripts: dict[str, str], options: Any = None, env: Any = None
) -> int:
    """Write each script to BASE/cgi/NAME (0755) and mount it at /NAME with cgi-timeout 10 s
    plus `options[NAME]`; start the root (with `env` added to its environment); the port."""
    cgi = site.base / "cgi"
    cgi.mkdir(mode=0o755, exist_ok=True)
    mounts = [site.mount()]
    for name, text in scripts.items():
        (cgi / name).write_text(text)
        (cgi / name).chmod(0o755)
        mount = {"mountpoint": f"/{name}", "origin": f"cgi://{cgi / name}", "cgi-timeout": "10"}
        mounts.append(mount | (options or {}).get(name, {}))
    site.write_conf(vhosts=[vhost(mounts=mounts)])
    pyws.start(env=env)
    return pyws.port()


def script(site: Site, name: str) -> str:
    return str(site.base / "cgi" / name)


def processes_of(site: Site) -> list[psutil.Process]:
    """Live processes whose command line names a file of this test's cgi dir."""
    found = []
    for proc in psutil.process_iter():
        try:
            alive = proc.status() != psutil.STATUS_ZOMBIE
            if alive and str(site.base / "cgi") in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def unreaped_scripts(pyws: Pyws) -> list[psutil.Process]:
    """Zombie children of the root's processes: scripts that exited and were never reaped."""
    zombies = []
    for proc in psutil.Process(pyws.pid).children(recursive=True):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                zombies.append(proc)
        except psutil.NoSuchProcess:
            continue
    return zombies


def group_is_empty(pgid: int) -> bool:
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
                return False
        except ProcessLookupError:
            continue
    return True


def logged_pid(pyws: Pyws, path: str) -> int:
    """The pid a script wrote to its stderr, read back from the server log."""
    pattern = re.compile(rf"cgi {re.escape(path)} stderr: pid (\d+)")
    found = wait_until(lambda: pattern.search(pyws.log()), 10, f"the pid of {path} in the log")
    return int(found.group(1))


def worker_rss(pyws: Pyws) -> int:
    (pid,) = pyws.generations()[0]["pids"]
    return int(psutil.Process(pid).memory_info().rss)


class Client:
    """One raw connection, its responses read through h11: the oracle for framing."""

    def __init__(self, port: int, rcvbuf: int = 0) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(15)
        self.sock.connect(("127.0.0.1", port))
        self.conn = h11.Connection(h11.CLIENT)

    def send(self, method: str, target: str, body: bytes = b"", **options: Any) -> None:
        """`headers`: the request's fields (Host is added if missing); `length`: a
        Content-Length above len(body) leaves the rest of the content to `send_more()`."""
        fields = list(options.get("headers", []))
        if not any(name.lower() == "host" for name, _ in fields):
            fields.insert(0, ("Host", "localhost"))
        length = options.get("length")
        if body or length:
            fields.append(("Content-Length", str(length or len(body))))
        self.sock.sendall(
            self.conn.send(h11.Request(method=method, target=target, headers=fields)) or b""
        )
        self.send_more(body, end=length is None)

    def send_more(self, body: bytes, end: bool = True) -> None:
        events = ([h11.Data(data=body)] if body else []) + ([h11.EndOfMessage()] if end else [])
        self.sock.sendall(b"".join(self.conn.send(event) or b"" for event in events))

    def event(self, recv: int = 65536) -> Any:
        while (event := self.conn.next_event()) is h11.NEED_DATA:
            self.conn.receive_data(self.sock.recv(recv))
        return event

    def head(self) -> h11.Response:
        event = self.event()
        assert isinstance(event, h11.Response), event
        return event

    def body(self, until: Callable[[bytes], bool] = lambda _: False, recv: int = 65536) -> bytes:
        """The body up to the end of the response, or until `until(the data so far)`."""
        data = b""
        while not until(data):
            event = self.event(recv)
            if isinstance(event, h11.EndOfMessage):
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                break
            data += event.data
        return data

    def get(self, target: str) -> tuple[h11.Response, bytes]:
        self.send("GET", target)
        return self.head(), self.body()


def fetch(port: int, target: str) -> tuple[h11.Response, bytes]:
    client = Client(port)
    try:
        return client.get(target)
    finally:
        client.sock.close()


def field(response: h11.Response, name: bytes) -> bytes | None:
    values = [v for n, v in response.headers if n == name]
    assert len(values) <= 1
    return values[0] if values else None


def curl(url: str, *args: str) -> tuple[int, bytes]:
    argv = ["curl", "-s", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", *args, url]
    out = subprocess.run(argv, capture_output=True, timeout=30, check=True)
    body, _, status = out.stdout.rpartition(b"\n")
    return int(status), body


# -- the seed, and completion decided by EOF -----------------------------------------------------


def test_the_seed_script_under_ab_loses_no_response(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site, {"seed": SEED})
    argv = ["ab", "-n", "1000", "-c", "20", "-s", "30", f"http://127.0.0.1:{port}/seed"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr

    def number(label: str) -> int:
        found = re.search(rf"^\s*{label}:?\s+(\d+)", out.stdout, re.M)
        return int(found.group(1)) if found else 0

    counts = [number(n) for n in ("Complete requests", "Failed requests", "Non-2xx responses")]
    assert counts == [1000, 0, 0], out.stdout
    assert number("Document Length") == len(b"Plain text cxx!\n"), out.stdout
    # A lost response would take ab's timeout or cgi-timeout (10 s): far above this.
    assert 0 < number("100%") < 3000, out.stdout
    # Each script was reaped, at its stdout's EOF or on its pidfd: none is left a zombie.
    wait_until(lambda: not unreaped_scripts(pyws), 5, "every script to be reaped")


def test_a_script_that_exits_right_after_writing(pyws: Pyws, site: Site) -> None:
    quick = SH + "printf 'Content-Type: text/plain\\n\\nquick %s\\n' $$\nexit 0\n"
    port = serve(pyws, site, {"quick": quick})
    client = Client(port)
    bodies = set()
    for _ in range(100):  # one keep-alive connection: every response must end cleanly
        response, body = client.get("/quick")
        assert response.status_code == 200 and body.startswith(b"quick ")
        # Chunked, or with a length when the whole output was in before the head went out:
        # either way h11 found where it ends, and the connection goes on.
        length = field(response, b"content-length")
        chunked = field(response, b"transfer-encoding") == b"chunked"
        assert chunked != (length is not None) and (chunked or int(length or 0) == len(body))
        bodies.add(body)
    assert len(bodies) == 100  # a new script each time
    client.sock.close()


def test_a_script_that_closes_stdout_and_sleeps(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site, {"linger": SH + TEXT + "echo done\nexec 1>&-\nsleep 3\n"})
    started = time.monotonic()
    assert fetch(port, "/linger")[1] == b"done\n"
    assert time.monotonic() - started < 2.5  # EOF ended it, not the exit 3 s later
    assert processes_of(site), "the script was still running when its response was whole"
    wait_until(lambda: not processes_of(site), 10, "the script to exit")
    # It outlived its stdout, so its exit was watched on a pidfd: it is reaped, not a zombie.
    wait_until(lambda: not unreaped_scripts(pyws), 5, "the script to be reaped")


# -- streaming both ways -------------------------------------------------------------------------


def test_ten_mib_of_output_is_streamed_intact(pyws: Pyws, site: Site) -> None:
    data = os.urandom(10 * 1024 * 1024)
    blob = site.base / "cgi" / "blob.bin"
    blob.parent.mkdir(mode=0o755)
    blob.write_bytes(data)
    blob.chmod(0o644)
    port = serve(pyws, site, {"big": SH + TEXT + f"exec cat {blob}\n"})
    digest = hashlib.sha256(data).hexdigest()
    response, body = fetch(port, "/big")  # a fast reader first
    assert response.status_code == 200 and hashlib.sha256(body).hexdigest() == digest
    wait_until(lambda: not processes_of(site), 10, "the first cat to exit")
    base = worker_rss(pyws)
    # A slow reader with a small window: the script must be held back, not buffered.
    client = Client(port, rcvbuf=8192)
    client.send("GET", "/big")
    assert client.head().status_code == 200
    got = b""
    for _ in range(20):
        got += client.body(lambda d: len(d) >= 32768, recv=8192)
        time.sleep(0.05)  # pacing the reader, not synchronisation
        assert processes_of(site), "cat finished: its output went somewhere other than us"
        assert worker_rss(pyws) - base < 4 * 1024 * 1024
    got += client.body()
    client.sock.close()
    assert len(got) == len(data) and hashlib.sha256(got).hexdigest() == digest


def test_request_content_streams_to_stdin(pyws: Pyws, site: Site, tmp_path: Path) -> None:
    scripts = {"echo": SH + TEXT + "exec cat\n", "ignore": SH + TEXT + "echo ignored\n"}
    port = serve(pyws, site, scripts)
    url = f"http://127.0.0.1:{port}"
    assert curl(f"{url}/echo", "--data-binary", "hello, stdin") == (200, b"hello, stdin")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1024 * 1024 + 1))  # far more than a pipe holds
    for chunked in ([], ["-H", "Transfer-Encoding: chunked"]):
        assert curl(f"{url}/echo", "--data-binary", f"@{big}", *chunked) == (200, big.read_bytes())
    # A script that never reads stdin: the content is dropped and the connection goes on.
    client = Client(port)
    client.send("POST", "/ignore", big.read_bytes())
    assert (client.head().status_code, client.body()) == (200, b"ignored\n")
    assert client.get("/echo")[1] == b""
    client.sock.close()


def test_keep_alive_survives_chunked_responses(pyws: Pyws, site: Site) -> None:
    # The script holds the rest of its output back until the test, having read the head,
    # opens the gate: its output cannot be whole when the head goes out.
    gate = site.base / "cgi" / "gate"
    held = SH + TEXT + f'echo "$REMOTE_PORT"\nuntil [ -e {gate} ]; do sleep 0.01; done\necho end\n'
    port = serve(pyws, site, {"held": held})
    client = Client(port)
    ports = set()
    for _ in range(2):
        client.send("GET", "/held")
        response = client.head()
        first = client.body(lambda data: data.endswith(b"\n"))
        gate.touch()
        assert client.body() == b"end\n"
        gate.unlink()
        assert field(response, b"transfer-encoding") == b"chunked"
        assert field(response, b"connection") is None
        ports.add(first)
    assert len(ports) == 1  # the same connection answered both
    client.sock.close()
    # HTTP/1.0 has no chunked coding: the close ends the body (RFC 9112 §6.3).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /held HTTP/1.0\r\n\r\n")
        data = sock.recv(65536)
        while not data.endswith(b"\n"):
            data += sock.recv(65536)
        gate.touch()
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding" not in head
    assert b"Content-Length" not in head and b"\r\nConnection: close" in head
    assert body.endswith(b"\nend\n")


def test_a_whole_output_keeps_an_http10_connection_alive(pyws: Pyws, site: Site) -> None:
    """A script's output that is all in when the head goes out goes with its length: then
    an HTTP/1.0 client that asked for keep-alive keeps its connection, as with lighttpd.
    Whether it is all in depends on timing (one in 3-12 of these, when the worker is idle):
    the test asks until three were."""
    port = serve(pyws, site, {"quick": SH + "printf 'Content-Type: text/plain\\n\\nquick'\n"})
    kept = tries = 0
    while kept < 3 and tries < 400:
        tries += 1
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /quick HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            data = b""
            while b"quick" not in data:
                data += sock.recv(65536)
            head = data.partition(b"\r\n\r\n")[0]
            if b"\r\nContent-Length: 5\r\n" in head:
                assert b"\r\nConnection: keep-alive" in head
                sock.sendall(b"GET /quick HTTP/1.0\r\n\r\n")  # the same connection
                assert sock.recv(65536).endswith(b"\r\n\r\nquick")
                kept += 1
            else:
                assert b"\r\nConnection: close" in head and sock.recv(65536) == b""
    assert kept == 3, f"{tries} requests, {kept} of them with a length"


# -- what the script sees ------------------------------------------------------------------------


def test_the_environment_is_rfc_3875_and_nothing_else(pyws: Pyws, site: Site) -> None:
    cgi_env = {"cgi-env": [{"CGI_ONE": "1"}, {"CGI_TWO": "two words"}]}
    port = serve(pyws, site, {"env": INSPECT}, {"env": cgi_env}, env={"PYWS_SECRET": "x"})
    client = Client(port)
    headers: list[tuple[str, str | bytes]] = [("Host", f"localhost:{port}")]
    headers += [("Content-Type", "text/plain"), ("Proxy", "http://evil.example/")]
    headers += [("X-Custom", "a"), ("X-Custom", "b")]
    headers += [("X-Name", b"caf\xe9")]  # obs-text (RFC 9110 §5.5): opaque bytes
    client.send("POST", "/env/extra/path?x=1&y=%20", b"hello", headers=headers)
    assert client.head().status_code == 200
    env = json.loads(client.body())["env"]
    local_port = client.sock.getsockname()[1]
    client.sock.close()
    path = script(site, "env")
    expected = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": str(port),
        "REQUEST_METHOD": "POST",
        "QUERY_STRING": "x=1&y=%20",
        "REQUEST_URI": "/env/extra/path?x=1&y=%20",
        "SCRIPT_NAME": "/env",
        "PATH_INFO": "/extra/path",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": str(local_port),
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "5",
        "HTTPS": "off",
        "HTTP_HOST": f"localhost:{port}",
        "HTTP_X_CUSTOM": "a, b",  # RFC 3875 §4.1.18: repeated fields, joined
        "HTTP_X_NAME": "caf\xe9",  # the one byte 0xe9, as sent: not re-encoded as UTF-8
        "SCRIPT_PATH": path,
        "SCRIPT_FILENAME": path,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "CGI_ONE": "1",
        "CGI_TWO": "two words",
    }
    assert env.pop("SERVER_SOFTWARE").startswith("pyws/")
    # Exactly these: no HTTP_PROXY, no PYWS_SECRET, nothing else of the server's environment.
    assert env == expected
    # A GET has no content: no CONTENT_LENGTH or CONTENT_TYPE (RFC 3875 §4.1.2, §4.1.3).
    env = json.loads(fetch(port, "/env")[1])["env"]
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["REQUEST_METHOD"]) == ("", "", "GET")


def test_fds_identity_group_and_working_directory(pyws: Pyws, site: Site) -> None:
    options = {"elsewhere": {"cgi-chdir": str(site.docroot)}}
    port = serve(pyws, site, {"inspect": INSPECT, "elsewhere": INSPECT}, options)
    worker = psutil.Process(pyws.generations()[0]["pids"][0])
    me = json.loads(fetch(port, "/inspect")[1])
    # Only 0, 1 and 2, nothing of the worker: a request without content gets /dev/null for
    # stdin (RFC 3875 §4.2: nothing to read), and stdout and stderr are our pipes.
    assert sorted(me["fds"]) == ["0", "1", "2"], me["fds"]
    assert me["fds"]["0"] == os.devnull, me["fds"]
    assert all(me["fds"][fd].startswith("pipe:[") for fd in "12"), me["fds"]
    # With content, stdin is a pipe too (the script does not read it: the worker copes).
    client = Client(port)
    client.send("POST", "/inspect", b"x" * 100)
    assert client.head().status_code == 200
    posted = json.loads(client.body())
    client.sock.close()
    assert sorted(posted["fds"]) == ["0", "1", "2"], posted["fds"]
    assert all(target.startswith("pipe:[") for target in posted["fds"].values()), posted["fds"]
    ids = (worker.uids().real, worker.uids().effective, worker.gids().real)
    assert (me["uid"], me["euid"], me["gid"]) == ids
    if os.geteuid() == 0:
        assert me["uid"] == pwd.getpwnam("nobody").pw_uid and me["groups"] == []
    assert me["pgid"] == me["pid"] == me["sid"]  # its own session and process group
    assert me["cwd"] == str(site.base / "cgi")  # default: the script's directory
    assert json.loads(fetch(port, "/elsewhere")[1])["cwd"] == str(site.docroot)


def test_a_working_directory_replaced_by_a_deploy_is_entered_anew(pyws: Pyws, site: Site) -> None:
    """`cgi-chdir` names a path: a directory swapped in under that name by a rename (a
    common deploy) is where the next script runs, not the one the worker saw last."""
    data = site.base / "data"

    def release(marker: str) -> None:
        fresh = site.base / f"data.{marker}"
        fresh.mkdir()
        (fresh / "marker").write_text(marker)
        fresh.chmod(0o755)  # scripts run as nobody
        fresh.rename(data)

    release("one")
    port = serve(pyws, site, {"pwd": SH + TEXT + "cat marker\n"}, {"pwd": {"cgi-chdir": str(data)}})
    assert fetch(port, "/pwd")[1] == b"one"
    data.rename(site.base / "data.old")  # the worker's own cwd may still be this one
    release("two")
    assert fetch(port, "/pwd")[1] == b"two"


def test_signals_reach_the_script_at_their_defaults(pyws: Pyws, site: Site) -> None:
    """Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored through exec:
    a script must not inherit that. It would see EPIPE where a shell pipeline expects to die
    (`yes | head -1`), as subprocess's restore_signals knows."""
    # exec: grep reads its own status, as the script started. A shell that forks grep
    # instead may still have every signal blocked around its vfork when grep reads.
    status = SH + TEXT + "exec grep -E '^Sig(Ign|Blk):' /proc/$$/status\n"
    port = serve(pyws, site, {"status": status})
    response, body = fetch(port, "/status")
    assert response.status_code == 200
    masks = {
        name: int(mask, 16)
        for name, mask in (line.split(":\t") for line in body.decode().splitlines())
    }
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):  # bit n-1 of the mask is signal n
        assert not masks["SigIgn"] & 1 << (signum - 1), (signum, hex(masks["SigIgn"]))
    assert masks["SigIgn"] & (1 << 31) - 1 == 0, hex(masks["SigIgn"])  # none of 1-31
    assert masks["SigBlk"] == 0, hex(masks["SigBlk"])  # nothing blocked


# -- what the script says ------------------------------------------------------------------------


def test_status_location_and_stderr(pyws: Pyws, site: Site) -> None:
    scripts = {
        "missing": SH + "printf 'Status: 404 Not Here\\nContent-Type: text/plain\\n\\nnope\\n'\n",
        "moved": SH + "printf 'Location: http://example.com/there\\n\\n'\n",
        "noisy": SH + "echo 'noisy-one on stderr' >&2\n" + TEXT + "echo fine\necho two >&2\n",
        # Last words without a newline, then nothing more from any script of the mount.
        "terse": SH + TEXT + "echo ok\nprintf 'no newline' >&2\n",
    }
    port = serve(pyws, site, scripts)
    response, body = fetch(port, "/missing")
    assert (response.status_code, body, field(response, b"status")) == (404, b"nope\n", None)
    response, body = fetch(port, "/moved")
    assert response.status_code == 302  # RFC 3875 §6.2.3
    assert field(response, b"location") == b"http://example.com/there"
    response, body = fetch(port, "/noisy")
    assert (response.status_code, body) == (200, b"fine\n")
    assert b"noisy-one" not in b"".join(v for _, v in response.headers)
    noisy = script(site, "noisy")
    wait_until(lambda: f"cgi {noisy} stderr: two" in pyws.log(), 10, "stderr in the log")
    assert f"cgi {noisy} stderr: noisy-one on stderr" in pyws.log()
    assert fetch(port, "/terse")[1] == b"ok\n"
    terse = script(site, "terse")
    wait_until(lambda: f"cgi {terse} stderr: no newline" in pyws.log(), 10, "unended stderr")


def test_a_timeout_kills_the_whole_group(pyws: Pyws, site: Site) -> None:
    scripts = {
        "silent": SH + STUBBORN + "sleep 1000\n",
        "talks": SH + TEXT + STUBBORN + "sleep 1000\n",
        # Exits at once, unseen: its grandchild keeps stdout open until the timeout's kill.
        "leaves": SH + TEXT + STUBBORN + "exit 0\n",
    }
    port = serve(pyws, site, scripts, {name: {"cgi-timeout": "1"} for name in scripts})
    started = time.monotonic()
    assert fetch(port, "/silent")[0].status_code == 504  # no header was sent yet
    assert 0.9 < time.monotonic() - started < 5
    for name in ("talks", "leaves"):
        client = Client(port)  # headers sent: all the client can be told is a close
        client.send("GET", f"/{name}")
        assert client.head().status_code == 200
        with pytest.raises(h11.RemoteProtocolError):
            client.body()
        client.sock.close()
    for name in scripts:
        # SIGTERM, then SIGKILL for the grandchild that ignores it: nothing of the group is left.
        pid = logged_pid(pyws, script(site, name))
        wait_until(functools.partial(group_is_empty, pid), 10, f"no process in group {pid}")
    assert not processes_of(site)
    assert "cgi-timeout reached" in pyws.log()
    # "leaves" exited with 0 once, and was reaped once: no second, made-up exit is logged.
    assert f"{script(site, 'leaves')} exited" not in pyws.log()
    wait_until(lambda: not unreaped_scripts(pyws), 5, "every script to be reaped")


def test_sigterm_comes_first(pyws: Pyws, site: Site) -> None:
    """SIGTERM first, and the script may clean up (even a shell that reports its killed child
    on stderr): SIGKILL is for what ignores it."""
    flags = site.base / "flags"
    flags.mkdir()
    flags.chmod(0o777)  # the script runs as nobody
    trap = SH + f"trap 'touch {flags}/term; exit 0' TERM\nwhile :; do sleep 0.05; done\n"
    port = serve(pyws, site, {"trap": trap}, {"trap": {"cgi-timeout": "1"}})
    assert fetch(port, "/trap")[0].status_code == 504
    wait_until((flags / "term").exists, 10, "the TERM trap to run")
    wait_until(lambda: not processes_of(site), 10, "the script to exit")


def test_failures_before_headers_are_502_with_a_reason(pyws: Pyws, site: Site) -> None:
    cases = {  # the script, and what the log must say about it
        "segv": (SH + "kill -SEGV $$\n", "exited with signal SIGSEGV"),
        "exit1": (SH + "exit 1\n", "exited with code 1"),
        "untyped": (SH + "printf 'X-A: 1\\n\\nbody'\n", "the script sent no Content-Type"),
        "noexec": (SH + TEXT, "cannot execute: Permission denied"),
        "nodir": (SH + TEXT, f"cannot enter {site.base / 'gone'}: No such file or directory"),
    }
    options = {"nodir": {"cgi-chdir": str(site.base / "gone")}}
    port = serve(pyws, site, {name: text for name, (text, _) in cases.items()}, options)
    os.chmod(script(site, "noexec"), 0o644)
    for name, (_, reason) in cases.items():
        assert fetch(port, f"/{name}")[0].status_code == 502, name

        def said(path: str = script(site, name), reason: str = reason) -> bool:
            return any(path in line and reason in line for line in pyws.log().splitlines())

        wait_until(said, 10, f"{name}: {reason} in the log")


def test_a_client_that_leaves_early_kills_the_script(pyws: Pyws, site: Site) -> None:
    scripts = {
        "silent": SH + 'echo "pid $$" >&2\nsleep 1000\n',
        "ticks": SH + TEXT + 'echo "pid $$" >&2\nwhile :; do echo tick; sleep 0.05; done\n',
    }
    port = serve(pyws, site, scripts)
    # A reset before any output...
    client = Client(port)
    client.send("GET", "/silent")
    pid = logged_pid(pyws, script(site, "silent"))
    assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    client.sock.close()
    wait_until(lambda: not psutil.pid_exists(pid), 5, "the script killed and reaped")
    # ... and a plain close while the script writes.
    client = Client(port)
    client.send("GET", "/ticks")
    assert client.head().status_code == 200 and client.body(lambda d: b"tick" in d)
    pid = logged_pid(pyws, script(site, "ticks"))
    client.sock.close()
    wait_until(lambda: not psutil.pid_exists(pid), 5, "the script killed and reaped")
    assert not processes_of(site)


def test_a_draining_generation_finishes_its_cgi_request(pyws: Pyws, site: Site) -> None:
    port = serve(pyws, site, {"echo": SH + TEXT + "echo first\nexec cat\n"})
    (old,) = pyws.generations()[0]["pids"]
    client = Client(port)
    client.send("POST", "/echo", b"hello", length=10)
    assert client.head().status_code == 200
    got = client.body(lambda d: d.endswith(b"hello"))
    assert pyws.reload().returncode == 0
    assert sorted(g["state"] for g in pyws.generations()) == ["active", "deprecated"]
    client.send_more(b"world")
    assert got + client.body() == b"first\nhelloworld"
    client.sock.close()
    wait_until(lambda: not psutil.pid_exists(old), 15, "the old generation to exit")
    assert [g["state"] for g in pyws.generations()] == ["active"]
    assert fetch(port, "/echo")[0].status_code == 200
