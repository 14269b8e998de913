"""Nothing outside a mount's directory is ever served, however the path is spelled."""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.integration.conftest import FileMountFactory, Running, Serve

SECRET = b"TOP-SECRET"

TARGETS = [
    b"/../secret.txt",
    b"/../../secret.txt",
    b"/..%2fsecret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E%2Fsecret.txt",
    b"/.%2e/secret.txt",
    b"/sub/../../secret.txt",
    b"/sub/..%2f..%2fsecret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt",
    b"//../secret.txt",
    b"/./../secret.txt",
    b"/..\\secret.txt",
    b"/%5c..%5csecret.txt",
    b"/..%5csecret.txt",
    b"/%00/../secret.txt",
    b"/secret.txt%00.html",
    b"/%252e%252e/secret.txt",
    b"/%c0%ae%c0%ae/secret.txt",
    b"/%",
    b"/%zz",
    b"/link-out.txt",
    b"/link-dir/secret.txt",
    b"/sub/link-up/secret.txt",
    b"/m/../secret.txt",
    b"/m/..%2f..%2fsecret.txt",
    b"http://localhost/../secret.txt",
    b"secret.txt",
    b"*",
]


@pytest.fixture
def site(serve: Serve, file_mount: FileMountFactory, docroot: Path) -> Running:
    outside = docroot.parent  # holds secret.txt
    (docroot / "link-out.txt").symlink_to(outside / "secret.txt")
    (docroot / "link-dir").symlink_to(outside)
    (docroot / "sub" / "link-up").symlink_to("../..")
    (docroot / "link-in.txt").symlink_to(docroot / "one-k.txt")
    extra = {"extra_mimetypes": (("*", ""),)}  # even "serve any suffix" must not help
    return serve((file_mount("/", docroot, **extra), file_mount("/m", docroot / "sub")))


def raw_exchange(site: Running, target: bytes, extra: bytes = b"") -> bytes:
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
        sock.sendall(
            b"GET "
            + target
            + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            + extra
            + b"\r\n"
        )
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("target", TARGETS, ids=[t.decode("latin-1") for t in TARGETS])
def test_traversal_never_reaches_outside(site: Running, target: bytes) -> None:
    response = raw_exchange(site, target)
    assert SECRET not in response
    status = int(response.split(b" ", 2)[1])
    assert status in (301, 400, 403, 404), response[:200]
    if status == 301:
        # Only a slash redirect, and one that stays on this server.
        location = response.split(b"\r\nLocation: ", 1)[1].split(b"\r\n", 1)[0]
        assert location.startswith(b"/") and not location.startswith(b"//")


def test_symlinks_inside_the_root_still_work(site: Running) -> None:
    response = httpx.get(site.url("/link-in.txt"))
    assert (response.status_code, response.content) == (200, b"k" * 1024)
    assert httpx.get(site.url("/link-out.txt")).status_code == 404


CREDENTIAL_TARGETS = [
    b"/logins.txt",
    b"/%6cogins.txt",
    b"/sub/../logins.txt",
    b"//logins.txt",
    b"/alias-of-logins.txt",
    b"/hard-logins.txt",
    b"/private/../logins.txt",
    b"/private/up/logins.txt",
    b"/docs",
    b"/docs/",
    b"http://localhost/logins.txt",
]


@pytest.fixture
def guarded(serve: Serve, file_mount: FileMountFactory, docroot: Path) -> tuple[Running, str]:
    """The credentials file of a basic-auth mount sits in the document root, with a suffix
    that would be served: it must never be."""
    logins = docroot / "logins.txt"
    logins.write_text("user:TOP-SECRET-PASSWORD\n")
    logins.chmod(0o600)
    (docroot / "alias-of-logins.txt").symlink_to(logins)
    os.link(logins, docroot / "hard-logins.txt")
    (docroot / "sub" / "up").symlink_to("..")
    extra = {"extra_mimetypes": (("*", ""),)}
    site = serve(
        (
            file_mount("/", docroot, **extra),
            file_mount("/private", docroot / "sub", basic_auth=str(logins), **extra),
            file_mount("/docs", docroot, default="logins.txt", exact_match=True),
        )
    )
    return site, "Basic " + base64.b64encode(b"user:TOP-SECRET-PASSWORD").decode()


@pytest.mark.parametrize(
    "target", CREDENTIAL_TARGETS, ids=[t.decode("latin-1") for t in CREDENTIAL_TARGETS]
)
def test_credentials_file_is_never_served(guarded: tuple[Running, str], target: bytes) -> None:
    site, authorization = guarded
    for extra in (b"", b"Authorization: " + authorization.encode() + b"\r\n"):
        response = raw_exchange(site, target, extra)
        assert b"TOP-SECRET" not in response
        assert int(response.split(b" ", 2)[1]) in (301, 401, 403, 404), response[:200]


def test_the_guarded_mounts_still_serve(guarded: tuple[Running, str]) -> None:
    site, authorization = guarded
    assert httpx.get(site.url("/one-k.txt")).content == b"k" * 1024
    assert httpx.get(site.url("/private/")).status_code == 401
    inside = httpx.get(site.url("/private/"), headers={"Authorization": authorization})
    assert (inside.status_code, inside.text) == (200, "<h1>sub</h1>\n")
