"""Mount options through the real root, with real clients (curl, http.client, raw sockets):
routing, redirect mounts, basic-auth, headers and sts, rejected user agents, traversal."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyws_harness import Pyws, Site, vhost

STS = "max-age=15768000 ; includeSubDomains"  # what lwsws sends, byte for byte
SECRET = b"TOP-SECRET"


@dataclass
class Answer:
    status: int
    fields: list[tuple[str, str]]  # (lowercased name, value), in order
    body: bytes

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.fields if n == name]

    def one(self, name: str) -> str:
        (value,) = self.all(name)
        return value


def parse_answer(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.append((name.lower(), value.strip()))
    return Answer(int(lines[0].split(" ", 2)[1]), fields, body)


def curl(url: str, *args: str) -> Answer:
    """One request with curl: `--path-as-is` sends the path exactly as written."""
    out = subprocess.run(
        ["curl", "-s", "-i", "--path-as-is", "--max-time", "10", *args, url],
        capture_output=True,
        timeout=20,
        check=True,
    )
    return parse_answer(out.stdout)


def exchange(port: int, request: bytes) -> bytes:
    """Send `request` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def raw_get(port: int, target: bytes, *fields: bytes) -> Answer:
    head = b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    return parse_answer(exchange(port, head + b"".join(f + b"\r\n" for f in fields) + b"\r\n"))


def file_mount(point: str, root: Path, **options: Any) -> dict[str, Any]:
    return {"mountpoint": point, "origin": f"file://{root}", **options}


def make_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_routing_options(pyws: Pyws, site: Site) -> None:
    www, base = site.docroot, site.base
    make_tree(www, {"foobar.txt": "root foobar\n", "app/x.txt": "root app\n", "foo/x.txt": "no\n"})
    make_tree(base / "foo", {"x.txt": "foo x\n", "index.html": "foo index\n", "deep/y.txt": "no\n"})
    make_tree(base / "deep", {"y.txt": "deep y\n"})
    make_tree(base / "feed", {"feed.xml": "<feed/>\n"})
    mounts = [
        site.mount(),
        file_mount("/foo", base / "foo"),
        file_mount("/foo/deep", base / "deep"),
        file_mount("/feed", base / "feed", **{"exact-match": "1", "default": "feed.xml"}),
        {"mountpoint": "/app", "origin": ">https://example.com/", "no-ws-upgrades": "1"},
    ]
    site.write_conf(vhosts=[vhost(mounts=mounts)])
    pyws.start()
    port = pyws.port()
    url = f"http://127.0.0.1:{port}"

    # The longest mountpoint wins; /foo covers /foo/... but not /foobar.
    assert curl(f"{url}/foo/x.txt").body == b"foo x\n"
    assert curl(f"{url}/foo/deep/y.txt").body == b"deep y\n"
    assert curl(f"{url}/foobar.txt").body == b"root foobar\n"
    assert curl(f"{url}/foo/").body == b"foo index\n"
    # A non-root file mount without its slash: 301 to the slash, the query kept.
    bare = curl(f"{url}/foo?a=1&b=%20")
    assert (bare.status, bare.one("location"), bare.body) == (301, "/foo/?a=1&b=%20", b"")
    assert curl(f"{url}/foo/deep").one("location") == "/foo/deep/"

    # exact-match: only /feed itself, served without a slash redirect.
    exact = curl(f"{url}/feed")
    assert (exact.status, exact.body) == (200, b"<feed/>\n")
    assert curl(f"{url}/feed/feed.xml").status == 404  # the root mount: no such file there
    assert curl(f"{url}/feed/").status == 404

    # no-ws-upgrades: plain requests are redirected, an upgrade request is routed past it.
    assert curl(f"{url}/app/x.txt").one("location") == "https://example.com/"
    upgrade = raw_get(port, b"/app/x.txt", b"Connection: Upgrade", b"Upgrade: websocket")
    assert (upgrade.status, upgrade.body) == (200, b"root app\n")
    assert upgrade.all("location") == []


def test_redirect_mounts(pyws: Pyws, site: Site) -> None:
    mounts = [
        site.mount(),
        {"mountpoint": "/old", "origin": ">http://example.com/new"},
        {"mountpoint": "/moved", "origin": ">https://example.org/base", "append-path": "1"},
        {"mountpoint": "/caret", "origin": "^https://example.net/", "append-path": "on"},
    ]
    site.write_conf(vhosts=[vhost(mounts=mounts)])
    pyws.start()
    url = f"http://127.0.0.1:{pyws.port()}"
    for path in ["/old", "/old/", "/old/a/b?c=d"]:
        answer = curl(url + path)
        assert (answer.status, answer.body) == (301, b"")
        assert answer.one("location") == "http://example.com/new"
        assert answer.one("content-length") == "0"
    moved = curl(f"{url}/moved/a/b.html?x=1&y=2")
    assert (moved.status, moved.one("location")) == (
        301,
        "https://example.org/base/a/b.html?x=1&y=2",
    )
    assert curl(f"{url}/moved").one("location") == "https://example.org/base"
    assert curl(f"{url}/caret/z").one("location") == "https://example.net/z"
    head = curl(f"{url}/moved/h", "-I")
    assert (head.status, head.one("location")) == (301, "https://example.org/base/h")
    post = curl(f"{url}/moved/p", "-d", "x=1")
    assert (post.status, post.one("location")) == (301, "https://example.org/base/p")
    # curl follows it like a browser would: the Location is a usable absolute URL.
    followed = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{redirect_url}", f"{url}/moved/q?r=s"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert followed.stdout == "https://example.org/base/q?r=s"


def htpasswd_line(user: str, password: str) -> str:
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    out = subprocess.run(
        [htpasswd, "-nbB", "-C", "11", user, password], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_basic_auth(pyws: Pyws, site: Site) -> None:
    www = site.docroot
    make_tree(www, {"private/index.html": "private page\n", "private/p.txt": "private p\n"})
    logins = site.base / "logins"  # root-only: the worker reads it before dropping to nobody
    logins.write_text("plain:pass:word\n" + htpasswd_line("hashed", "s3cret") + "\n")
    logins.chmod(0o600)
    mount = file_mount("/private", www / "private", **{"basic-auth": str(logins)})
    site.write_conf(vhosts=[vhost(mounts=[site.mount(), mount])])
    pyws.start()
    port = pyws.port()
    url = f"http://127.0.0.1:{port}"

    denied = curl(f"{url}/private/p.txt")
    assert denied.status == 401
    assert denied.one("www-authenticate").startswith('Basic realm="localhost"')
    assert b"private" not in denied.body
    assert curl(f"{url}/private/p.txt", "-u", "plain:pass:word").body == b"private p\n"
    assert curl(f"{url}/private/", "-u", "hashed:s3cret").body == b"private page\n"
    for wrong in ["plain:pass", "hashed:S3cret", "nobody:s3cret", "hashed:"]:
        assert curl(f"{url}/private/p.txt", "-u", wrong).status == 401, wrong
    for header in ["Basic !!!", "Basic", "Bearer abc", "Basic cGxhaW4=", "Digest x=y"]:
        assert curl(f"{url}/private/p.txt", "-H", f"Authorization: {header}").status == 401
    # The slash redirect of the mount is behind the gate too.
    assert curl(f"{url}/private").status == 401
    assert curl(f"{url}/private", "-u", "hashed:s3cret").one("location") == "/private/"
    assert curl(f"{url}/index.html").status == 200  # other mounts need nothing

    # A keep-alive client pays for bcrypt once, not on every request.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    auth = {"Authorization": "Basic aGFzaGVkOnMzY3JldA=="}  # hashed:s3cret
    conn.request("GET", "/private/p.txt", headers=auth)
    assert conn.getresponse().read() == b"private p\n"
    started = time.monotonic()
    for _ in range(20):
        conn.request("GET", "/private/p.txt", headers=auth)
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"private p\n")
    assert time.monotonic() - started < 1.0  # 20 cost-11 bcrypt checks take seconds
    conn.close()


def test_credentials_inside_a_document_root_are_never_served(pyws: Pyws, site: Site) -> None:
    www = site.docroot
    logins = www / "logins.txt"  # a served suffix, world-readable: only the shield stops it
    logins.write_text("user:TOP-SECRET\n")
    logins.chmod(0o644)
    (www / "alias.txt").symlink_to(logins)
    mounts = [
        file_mount("/", www, **{"extra-mimetypes": {"*": ""}}),
        file_mount("/private", www, **{"basic-auth": str(logins)}),
    ]
    site.write_conf(vhosts=[vhost(mounts=mounts)])
    pyws.start()
    url = f"http://127.0.0.1:{pyws.port()}"
    for path in [
        "/logins.txt",
        "/alias.txt",
        "/./logins.txt",
        "/%6cogins.txt",
        "/private/logins.txt",
    ]:
        for auth in ([], ["-u", "user:TOP-SECRET"]):
            answer = curl(url + path, *auth)
            assert answer.status in (401, 404), (path, auth)
            assert SECRET not in answer.body
    assert curl(f"{url}/private/", "-u", "user:TOP-SECRET").status == 200


def test_headers_and_sts_on_every_response(pyws: Pyws, site: Site) -> None:
    www = site.docroot
    make_tree(www, {"a.txt": "a\n", "big.txt": "b" * 100, "sec/s.txt": "s\n", "x.unknownext": "x"})
    vhost_headers = {"X-Frame-Options": "SAMEORIGIN", "X-Site": "vhost", "X-Only-Vhost": "1"}
    mount_headers = {"x-site": "mount", "X-Only-Mount": "2"}
    mounts = [
        site.mount(),
        file_mount("/sec", www / "sec", headers=[mount_headers]),
        {"mountpoint": "/go", "origin": ">https://example.com/", "headers": [mount_headers]},
    ]
    site.write_conf(vhosts=[vhost(mounts=mounts, headers=[vhost_headers], sts="1")])
    pyws.start()
    port = pyws.port()
    url = f"http://127.0.0.1:{port}"

    def check(answer: Answer, in_mount: bool) -> None:
        assert answer.all("strict-transport-security") == [STS], answer.status
        assert answer.all("x-frame-options") == ["SAMEORIGIN"]
        assert answer.all("x-only-vhost") == ["1"]
        assert answer.all("x-site") == ["mount" if in_mount else "vhost"]  # overridden, once
        assert answer.all("x-only-mount") == (["2"] if in_mount else [])

    ok = curl(f"{url}/a.txt")
    etag = ok.one("etag")
    answers = {
        200: ok,
        304: curl(f"{url}/a.txt", "-H", f"If-None-Match: {etag}"),
        206: curl(f"{url}/big.txt", "-r", "0-9"),
        416: curl(f"{url}/big.txt", "-r", "500-"),
        404: curl(f"{url}/missing.txt"),
        403: curl(f"{url}/a%00.txt"),
        405: curl(f"{url}/a.txt", "-X", "DELETE"),
        415: curl(f"{url}/x.unknownext"),
        301: curl(f"{url}/sec"),  # the slash redirect, decided by routing
    }
    for status, answer in answers.items():
        assert answer.status == status
        check(answer, in_mount=status == 301)
    for answer in [curl(f"{url}/sec/s.txt"), curl(f"{url}/sec/nope"), curl(f"{url}/go/x")]:
        check(answer, in_mount=True)
    assert curl(f"{url}/sec/s.txt").body == b"s\n"
    assert curl(f"{url}/go/x").status == 301
    # The same through a keep-alive connection, where cached answers are reused.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in ["/a.txt", "/a.txt", "/sec/s.txt", "/sec/s.txt", "/a.txt"]:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        assert response.msg.get_all("Strict-Transport-Security") == [STS]
        assert response.msg.get_all("X-Site") == ["mount" if path.startswith("/sec") else "vhost"]
    conn.close()


def test_reject_service_keywords(pyws: Pyws, site: Site) -> None:
    rejects = {"reject-service-keywords": [{"scumbot": "404 Not Found", "badbot": "403 Go away"}]}
    site.write_conf(global_=rejects, vhosts=[vhost(mounts=[site.mount()], sts="1")])
    pyws.start()
    port = pyws.port()
    url = f"http://127.0.0.1:{port}/"
    scum = curl(url, "-A", "Mozilla/5.0 (scumbot 1.0)")
    assert scum.status == 404 and b"Not Found" in scum.body and b"hello" not in scum.body
    bad = curl(url, "-A", "badbot")
    assert bad.status == 403 and b"Go away" in bad.body
    assert bad.all("strict-transport-security") == [STS]  # the vhost's fields still apply
    assert curl(url, "-A", "curl/8").status == 200
    assert curl(url, "-A", "ScumBot").status == 200  # a plain, case-sensitive substring test
    assert curl(url, "-H", "User-Agent:").status == 200


def test_rejected_agents_are_disconnected(pyws: Pyws, site: Site) -> None:
    rejects = {"reject-service-keywords": [{"scumbot": "404 Not Found"}]}
    site.write_conf(global_=rejects)
    pyws.start()
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: scumbot\r\n\r\n"
    with socket.create_connection(("127.0.0.1", pyws.port()), timeout=3) as sock:
        # Keep-alive asked for, and a second request already sent: neither is honoured.
        sock.sendall(request + request)
        data, closed = b"", False
        try:
            while chunk := sock.recv(65536):
                data += chunk
            closed = True
        except TimeoutError:
            pass
    assert data.count(b"HTTP/1.1 404") == 1
    assert parse_answer(data).all("connection") == ["close"]
    assert closed


TRAVERSALS = [
    "/../secret.txt",
    "/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/.%2e/secret.txt",
    "/sub/../../secret.txt",
    "/sub/..%2f..%2fsecret.txt",
    "//../secret.txt",
    "/./../secret.txt",
    "/%00/../secret.txt",
    "/secret.txt%00.html",
    "/%252e%252e/secret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "/%c0%ae%c0%ae%c0%afsecret.txt",
    "/..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "/link-out.txt",
    "/link-dir/secret.txt",
    "/sub/link-up/secret.txt",
    "/m/../secret.txt",
    "/m/..%2f..%2fsecret.txt",
    "/m/link-up/secret.txt",
]


def test_traversal_never_reaches_the_secret_beside_the_root(pyws: Pyws, site: Site) -> None:
    www = site.docroot
    make_tree(www, {"sub/index.html": "sub\n", "in.txt": "inside\n"})
    secret = site.base / "secret.txt"  # world-readable: only path checks keep it out
    secret.write_text("TOP-SECRET-CONTENT\n")
    secret.chmod(0o644)
    (www / "link-out.txt").symlink_to(secret)
    (www / "link-dir").symlink_to(site.base)
    (www / "sub" / "link-up").symlink_to("../..")
    (www / "link-in.txt").symlink_to(www / "in.txt")
    anything = {"extra-mimetypes": {"*": ""}}  # even "serve any suffix" must not help
    mounts = [file_mount("/", www, **anything), file_mount("/m", www / "sub", **anything)]
    site.write_conf(vhosts=[vhost(mounts=mounts)])
    pyws.start()
    port = pyws.port()
    for path in TRAVERSALS:
        answer = curl(f"http://127.0.0.1:{port}{path}")
        assert SECRET not in answer.body, path
        assert answer.status in (400, 403, 404), (path, answer.status)
    # What curl will not send as written: backslashes and a raw NUL.
    for target in [b"/..\\secret.txt", b"/sub\\..\\..\\secret.txt", b"/\x00/../secret.txt"]:
        data = exchange(
            port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert SECRET not in data and data.startswith(b"HTTP/1.1 4"), target
    assert curl(f"http://127.0.0.1:{port}/link-in.txt").body == b"inside\n"
    assert os.access(secret, os.R_OK)  # still there, still readable: the server refused it


def test_a_missing_credentials_file_fails_the_boot_not_the_running_server(
    pyws: Pyws, site: Site
) -> None:
    missing = site.base / "no-such-logins"
    guarded = vhost(
        mounts=[site.mount(), file_mount("/p", site.docroot, **{"basic-auth": str(missing)})]
    )
    site.write_conf(vhosts=[guarded])
    pyws.start(wait=False)
    assert pyws.proc is not None and pyws.proc.wait(30) == 1
    assert f"basic-auth file {missing}: No such file or directory" in pyws.log()
    # A reload to such a config fails, and the running generation keeps serving.
    site.write_conf()
    pyws.start()
    site.write_conf(vhosts=[guarded])
    reload = pyws.reload()
    assert reload.returncode == 1 and "before it was ready" in reload.stdout + reload.stderr
    assert pyws.get("/") == (200, b"<h1>hello from pyws</h1>\n")
    assert [g["state"] for g in pyws.generations()] == ["active"]
