"""The CGI environment: RFC 3875 variables, lwsws extras, and nothing leaked."""

from __future__ import annotations

from pyws.supervisor.config.model import MountConfig, OriginKind
from pyws.worker.cgi.environ import CGI_PATH, Peer, build_environ
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
    peer = Peer("127.0.0.1", 40000, 8080)
    return build_environ(
        req,
        MOUNT,
        path_info="/a/b",
        query=b"x=1&y=%20",
        peer=peer,
        server_software="pyws/0.1.0",
        server_name="example.com",
    )


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
