"""The CGI environment: RFC 3875 variables, lwsws extras, and nothing leaked."""

from __future__ import annotations

from pyws.supervisor.config.model import MountConfig, OriginKind
from pyws.worker.cgi.environ import CGI_PATH, MountEnviron, Peer
from pyws.worker.http.events import Request

MOUNT = MountConfig(
    mountpoint="/cgi",
    origin="cgi:///srv/cgi/app",
    kind=OriginKind.CGI,
    target="/srv/cgi/app",
    cgi_env=(("APP_MODE", "test"),),
)


def request(*headers: tuple[bytes, bytes], method: bytes = b"GET") -> Request:
    return Request(
        method=method,
        target=b"/cgi/a/b?x=1&y=%20",
        http_version="1.1",
        headers=headers,
        host=b"example.com",
        keep_alive=True,
        expect_continue=False,
        conditional=False,
    )


def environ(req: Request) -> dict[str, str]:
    """The environment as text, as the script reads it."""
    peer = Peer("127.0.0.1", 40000, 8080)
    env = MountEnviron(MOUNT, "pyws/0.1.0").build(
        req,
        path_info=b"/a/b",
        query=b"x=1&y=%20",
        peer=peer,
        server_name=b"example.com",
    )
    return {name.decode(): value.decode("latin-1") for name, value in env.items()}


def test_meta_variables() -> None:
    env = environ(
        request(
            (b"host", b"example.com"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"5"),
            (b"x-thing", b"1"),
            (b"x-thing", b"2"),
        )
    )
    assert env == {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "pyws/0.1.0",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "8080",
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": "x=1&y=%20",
        "REQUEST_URI": "/cgi/a/b?x=1&y=%20",
        "SCRIPT_NAME": "/cgi",
        "PATH_INFO": "/a/b",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTPS": "off",
        "SCRIPT_PATH": "/srv/cgi/app",
        "SCRIPT_FILENAME": "/srv/cgi/app",
        "PATH": CGI_PATH,
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "5",
        "HTTP_HOST": "example.com",
        "HTTP_X_THING": "1, 2",
        "APP_MODE": "test",
    }


def test_httpoxy_proxy_header_never_becomes_http_proxy() -> None:
    env = environ(request((b"proxy", b"http://evil.example:8080/")))
    assert "HTTP_PROXY" not in env
    assert not any("evil" in value for value in env.values())


def test_chunked_request_has_no_content_length() -> None:
    env = environ(request((b"transfer-encoding", b"chunked"), method=b"POST"))
    assert "CONTENT_LENGTH" not in env
    assert env["HTTP_TRANSFER_ENCODING"] == "chunked"


def test_cgi_env_overrides_and_repeated_requests_share_nothing() -> None:
    """The per-mount base is copied for each request: one request's headers never reach
    the next, and the mount's `cgi-env` wins over a variable of the same name."""
    mount = MountConfig(
        mountpoint="/cgi",
        origin="cgi:///srv/cgi/app",
        kind=OriginKind.CGI,
        target="/srv/cgi/app",
        cgi_env=(("PATH", "/opt/bin"), ("HTTP_X_FIXED", "mount")),
    )
    environ = MountEnviron(mount, "pyws/0.1.0")
    peer = Peer("::1", 1, 80, https=True)

    def build(*headers: tuple[bytes, bytes]) -> dict[bytes, bytes]:
        return environ.build(
            request(*headers), path_info=b"", query=b"", peer=peer, server_name=b"h"
        )

    first = build((b"x-fixed", b"client"), (b"x-only-first", b"1"))
    second = build()
    assert first[b"HTTP_X_FIXED"] == b"mount"
    assert first[b"HTTP_X_ONLY_FIRST"] == b"1"
    assert b"HTTP_X_ONLY_FIRST" not in second
    assert second[b"PATH"] == b"/opt/bin"
    assert second[b"HTTPS"] == b"on"
    assert second[b"REMOTE_ADDR"] == b"::1"


def test_proxy_stays_out_when_the_field_name_memo_starts_over() -> None:
    """The memo of variable names is bounded: filling it past its size clears it, and the
    fields that are not HTTP_* (Proxy above all) keep their meaning afterwards."""
    invented = [(b"x-invented-%d" % i, b"1") for i in range(600)]
    env = environ(request(*invented, (b"proxy", b"http://evil.example:8080")))
    assert "HTTP_X_INVENTED_599" in env
    assert "HTTP_PROXY" not in env and "PROXY" not in env
    env = environ(request((b"proxy", b"http://evil.example:8080"), (b"content-type", b"a/b")))
    assert "HTTP_PROXY" not in env and env["CONTENT_TYPE"] == "a/b"
