"""basic-auth credentials: file formats, timing-safe checks, the cache, and the shield."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import bcrypt
import pytest

from pyws.supervisor.config.model import MountConfig, OriginKind, VhostConfig
from pyws.worker.auth import (
    CACHE_ENTRIES,
    AuthGate,
    Credentials,
    CredentialShield,
    basic_auth_challenge,
    credential_files_under,
)
from pyws.worker.http.events import Request
from pyws.worker.routing import route
from pyws.worker.static import FileMount

HTPASSWD = shutil.which("htpasswd")


def basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


def htpasswd_line(user: str, password: str, cost: int = 4) -> bytes:
    """A bcrypt line as Apache's htpasswd writes it (`$2y$`): an oracle independent of us."""
    if HTPASSWD is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    out = subprocess.run(
        [HTPASSWD, "-nbB", "-C", str(cost), user, password],
        capture_output=True,
        check=True,
        timeout=30,
    )
    line = out.stdout.strip()
    assert line.startswith(user.encode() + b":$2y$")
    return line


def test_plain_lines_as_lwsws_writes_them() -> None:
    creds = Credentials.parse(b"testuser:testpass\r\nmyuser:his:pass\n\n# a comment\n", "f")
    assert creds.verify(b"testuser", b"testpass")
    assert creds.verify(b"myuser", b"his:pass")  # the user name ends at the first colon
    assert not creds.verify(b"testuser", b"testpas")
    assert not creds.verify(b"testuser", b"testpass ")
    assert not creds.verify(b"testuser", b"")
    assert not creds.verify(b"nobody", b"testpass")
    assert not creds.verify(b"# a comment", b"")
    assert creds.check(basic(b"testuser", b"testpass"))
    assert not creds.check(basic(b"testuser", b"wrong"))


def test_htpasswd_bcrypt_lines() -> None:
    data = htpasswd_line("alice", "s3cret") + b"\n" + htpasswd_line("bob", "pa:ss") + b"\n"
    creds = Credentials.parse(data, "htpasswd")
    assert creds.verify(b"alice", b"s3cret")
    assert creds.verify(b"bob", b"pa:ss")
    assert not creds.verify(b"alice", b"s3cre")
    assert not creds.verify(b"alice", b"pa:ss")
    assert not creds.verify(b"carol", b"s3cret")


@pytest.mark.parametrize("prefix", [b"$2a$", b"$2b$", b"$2y$"])
def test_every_bcrypt_prefix(prefix: bytes) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4))
    creds = Credentials.parse(b"u:" + prefix + hashed[4:] + b"\n", "f")
    assert creds.verify(b"u", b"pw")
    assert not creds.verify(b"u", b"pw2")


def test_long_passwords_check_like_htpasswd_hashed_them() -> None:
    # bcrypt reads 72 bytes; htpasswd hashed no more, so the same 72 bytes must match.
    long = "x" * 80
    creds = Credentials.parse(htpasswd_line("u", long) + b"\n", "f")
    assert creds.verify(b"u", long.encode())
    assert not creds.verify(b"u", b"x" * 71)


def test_unusable_lines_are_skipped_not_taken_as_plain(caplog: pytest.LogCaptureFixture) -> None:
    data = (
        b"md5:$apr1$abc$0123456789abcdefghijkl\n"
        b"sha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
        b"bad:$2y$05$short\n"
        b"nocolon\n"
        b":emptyuser\n"
        b"dup:first\n"
        b"dup:second\n"
    )
    with caplog.at_level(logging.WARNING, "pyws.worker"):
        creds = Credentials.parse(data, "/etc/logins")
    # A hash that we cannot check must not work as a password either.
    assert not creds.verify(b"md5", b"$apr1$abc$0123456789abcdefghijkl")
    assert not creds.verify(b"sha", b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")
    assert not creds.verify(b"bad", b"$2y$05$short")
    assert not creds.verify(b"", b"emptyuser")
    assert creds.verify(b"dup", b"first")
    assert not creds.verify(b"dup", b"second")
    lines = sorted(r.getMessage().split(":")[1] for r in caplog.records)
    assert lines == ["1", "2", "3", "4", "5", "7"]
    assert all(r.getMessage().startswith("/etc/logins:") for r in caplog.records)


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"Basic",
        b"Basic ",
        b"Basic !!!!",
        b"Basic dGVzdHVzZXI6dGVzdHBhc3M",  # no padding: not RFC 4648 base64
        b"Bearer " + base64.b64encode(b"testuser:testpass"),
        b"Basic " + base64.b64encode(b"testuser-testpass"),  # no colon
        b"Basic " + base64.b64encode(b"testuser:testpass") + b"x",
        b"Basic \xff\xfe",
    ],
)
def test_malformed_authorization_is_refused(value: bytes | None) -> None:
    creds = Credentials.parse(b"testuser:testpass\n", "f")
    assert not creds.check(value)


def test_scheme_is_case_insensitive() -> None:
    creds = Credentials.parse(b"u:p\n", "f")
    assert creds.check(b"basic " + base64.b64encode(b"u:p"))
    assert creds.check(b"  BASIC   " + base64.b64encode(b"u:p") + b"  ")


def timed(fn: object, *args: bytes) -> float:
    assert callable(fn)
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def test_unknown_users_cost_a_bcrypt_check_too() -> None:
    creds = Credentials.parse(htpasswd_line("alice", "s3cret", cost=10) + b"\n", "f")
    wrong = min(timed(creds.verify, b"alice", b"guess") for _ in range(3))
    unknown = min(timed(creds.verify, b"mallory", b"guess") for _ in range(3))
    assert wrong > 0.005  # a cost-10 bcrypt check: milliseconds
    assert unknown > wrong / 4, (unknown, wrong)


def test_successes_are_cached_and_failures_are_not() -> None:
    creds = Credentials.parse(htpasswd_line("alice", "s3cret", cost=10) + b"\n", "f")
    good, bad = basic(b"alice", b"s3cret"), basic(b"alice", b"nope")
    first = timed(creds.check, good)
    again = min(timed(creds.check, good) for _ in range(3))
    assert creds.check(good) and again < first / 20, (again, first)
    assert not creds.check(bad)
    assert min(timed(creds.check, bad) for _ in range(2)) > first / 4  # still a real check


def test_the_cache_is_bounded() -> None:
    creds = Credentials.parse(b"u:p\n", "f")
    good = basic(b"u", b"p")
    assert creds.check(good)
    for n in range(CACHE_ENTRIES + 10):  # other spellings of the same credentials
        assert creds.check(b"Basic " + base64.b64encode(b"u:p") + b" " * (n + 1))
    assert len(creds._verified) == CACHE_ENTRIES
    assert good not in creds._verified  # keyed hashes, never the value itself
    assert creds.check(good)


def test_load_reads_a_root_only_file(tmp_path: Path) -> None:
    path = tmp_path / "logins"
    path.write_bytes(b"u:p\n")
    path.chmod(0o600)
    assert Credentials.load(str(path)).verify(b"u", b"p")


def test_load_failures_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(OSError, match=f"basic-auth file {missing}: No such file"):
        Credentials.load(str(missing))
    with pytest.raises(OSError, match="not a regular file"):
        Credentials.load(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        Credentials.load(str(fifo))  # and it did not block waiting for a writer


def test_no_users_refuses_everyone(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "pyws.worker"):
        creds = Credentials.parse(b"\n# nothing\n", "empty")
    assert "no usable users" in caplog.text
    assert not creds.verify(b"", b"")
    assert not creds.check(basic(b"a", b"b"))


def test_challenge() -> None:
    response = basic_auth_challenge('my "site"\\', b"X-A: 1\r\n")
    assert response.status == 401
    assert b'WWW-Authenticate: Basic realm="my \\"site\\"\\\\", charset="UTF-8"\r\n' in (
        response.headers
    )
    assert response.headers.endswith(b"X-A: 1\r\n")
    assert b"Content-Length: %d\r\n" % len(response.body) in response.headers


def request(target: bytes, *fields: tuple[bytes, bytes]) -> Request:
    return Request(b"GET", target, "1.1", fields, b"h", True, False, False)


def test_gate() -> None:
    gate = AuthGate(Credentials.parse(b"u:p\n", "f"), "site.example")
    assert gate.admits(request(b"/", (b"authorization", basic(b"u", b"p"))))
    assert not gate.admits(request(b"/", (b"authorization", basic(b"u", b"x"))))
    assert not gate.admits(request(b"/"))
    assert b'realm="site.example"' in gate.denied.headers


def test_credential_files_under() -> None:
    files = ["/srv/www/logins", "/srv/wwwx/logins", "/etc/logins", "/srv/www/a/b"]
    assert credential_files_under("/srv/www", files) == ["/srv/www/logins", "/srv/www/a/b"]
    assert credential_files_under("/", files) == files


def test_shield_never_serves_the_credentials_file(tmp_path: Path) -> None:
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    secret = root / "logins.txt"  # a served suffix: only the shield stops it
    secret.write_text("u:TOP-SECRET\n")
    (root / "page.txt").write_text("page\n")
    (root / "alias.txt").symlink_to(secret)
    os.link(secret, root / "hard.txt")
    (root / "sub" / "up").symlink_to("..")
    mount = MountConfig("/", f"file://{root}", OriginKind.FILE, str(root), default="logins.txt")
    vhost = VhostConfig(name="h", port=80, mounts=(mount,))
    shield = CredentialShield(FileMount(vhost, mount), str(root), mount.default, [str(secret)])
    for target in [b"/logins.txt", b"/alias.txt", b"/hard.txt", b"/sub/up/logins.txt", b"/"]:
        found = route((vhost,), b"h", target)
        answer = shield.handle(request(target), found)
        assert answer.status == 404, target
        assert b"TOP-SECRET" not in answer.body
    page = shield.handle(request(b"/page.txt"), route((vhost,), b"h", b"/page.txt"))
    assert (page.status, page.body) == (200, b"page\n")
    missing = shield.handle(request(b"/nope.txt"), route((vhost,), b"h", b"/nope.txt"))
    assert missing.status == 404
