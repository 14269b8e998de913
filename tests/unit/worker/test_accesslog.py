"""Access-log lines and files: the combined format, its escaping, the clock, appends and reopens."""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyws.supervisor.config.model import Config, GlobalConfig, MountConfig, OriginKind, VhostConfig
from pyws.worker.accesslog import (
    BATCH_BYTES,
    FLUSH_SECS,
    LogClock,
    basic_auth_user,
    escape_field,
    open_access_logs,
    open_log_file,
    peer_host,
    serialize_line,
)
from pyws.worker.http.events import Request
from pyws.worker.http.response import FileSpan, Response
from pyws.worker.routing import Route, route

# A field as the log writes it: printable ASCII, with `"` and `\` escaped, `\xNN` for the rest.
FIELD = rb'(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\"|\\\\|\\x[0-9a-f]{2})*'
LINE = re.compile(
    rb"(?P<host>[0-9A-Fa-f.:]+|-) - (?P<user>-|[\x21-\x7e]+) "
    rb"\[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    rb'"(?P<request>' + FIELD + rb')" (?P<status>\d{3}) (?P<size>-|[1-9]\d*) '
    rb'"(?P<referer>' + FIELD + rb')" "(?P<agent>' + FIELD + rb')"\n'
)
STAMP = b"[22/Nov/2026:01:02:03 +0000]"


def unescape(field: bytes) -> bytes:
    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        return bytes((int(code[1:], 16),)) if code.startswith(b"x") else code

    return re.sub(rb'\\(x[0-9a-f]{2}|"|\\)', one, field)


def parse(line: bytes) -> dict[str, bytes]:
    match = LINE.fullmatch(line)
    assert match is not None, line
    return match.groupdict()


def request(target: bytes = b"/", *fields: tuple[bytes, bytes], method: bytes = b"GET") -> Request:
    headers = ((b"host", b"h"), *fields)
    return Request(method, target, "1.1", headers, b"h", True, False, False)


def vhost(access_log: str | None, **mount_options: object) -> VhostConfig:
    mount = MountConfig("/", "file:///srv", OriginKind.FILE, "/srv", **mount_options)  # type: ignore[arg-type]
    return VhostConfig(name="h", port=80, mounts=(mount,), access_log=access_log)


def route_of(host: VhostConfig, target: bytes = b"/") -> Route:
    return route((host,), b"h", target)


# -- escaping -------------------------------------------------------------------------------------


def test_a_plain_field_is_kept_as_it_is() -> None:
    value = b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"
    assert escape_field(value) is value


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        (b'a"b', b'a\\"b'),
        (b"a\\b", b"a\\\\b"),
        (b"a\nb\rc\td", b"a\\x0ab\\x0dc\\x09d"),
        (b"\x00\x1b[31m\x7f", b"\\x00\\x1b[31m\\x7f"),
        ("é".encode(), b"\\xc3\\xa9"),
    ],
)
def test_quotes_backslashes_and_unprintable_bytes_are_escaped(raw: bytes, logged: bytes) -> None:
    assert escape_field(raw) == logged


@given(st.binary(max_size=200))
def test_any_bytes_escape_to_one_parseable_field_that_unescapes_back(raw: bytes) -> None:
    escaped = escape_field(raw)
    assert re.fullmatch(FIELD, escaped)
    assert unescape(escaped) == raw


def test_a_client_cannot_forge_a_line() -> None:
    forged = b'/x HTTP/1.1" 200 1 "-" "-"\n6.6.6.6 - admin ' + STAMP + b' "GET /secret HTTP/1.1'
    line = serialize_line(
        b"127.0.0.1",
        STAMP,
        request(forged, (b"user-agent", b'curl"\n"'), (b"referer", b"\r\nX")),
        404,
        9,
    )
    assert line.count(b"\n") == 1
    fields = parse(line)
    assert unescape(fields["request"]) == b"GET " + forged + b" HTTP/1.1"
    assert unescape(fields["agent"]) == b'curl"\n"'
    assert unescape(fields["referer"]) == b"\r\nX"
    assert (fields["status"], fields["size"]) == (b"404", b"9")


# -- lines ----------------------------------------------------------------------------------------


def test_the_combined_format() -> None:
    req = request(b"/a?b=1", (b"referer", b"http://r/"), (b"user-agent", b"curl/8.5.0"))
    line = serialize_line(b"10.1.2.3", STAMP, req, 200, 1234)
    assert line == (
        b'10.1.2.3 - - [22/Nov/2026:01:02:03 +0000] "GET /a?b=1 HTTP/1.1" 200 1234 '
        b'"http://r/" "curl/8.5.0"\n'
    )


def test_no_request_line_no_body_and_a_user() -> None:
    line = serialize_line(b"::1", STAMP, None, 400, 0, user=b"ann bob\n")
    assert line == b'::1 - ann\\x20bob\\x0a [22/Nov/2026:01:02:03 +0000] "-" 400 - "-" "-"\n'
    assert parse(line)["user"] == b"ann\\x20bob\\x0a"


def test_the_http_version_is_the_requests() -> None:
    req = Request(b"GET", b"/", "1.0", (), None, False, False, False)
    assert b'"GET / HTTP/1.0"' in serialize_line(b"-", STAMP, req, 200, 1)


def test_peer_host() -> None:
    assert peer_host(("127.0.0.1", 4242)) == b"127.0.0.1"
    assert peer_host(("::1", 4242, 0, 0)) == b"::1"
    assert peer_host(("::ffff:192.0.2.7", 4242, 0, 0)) == b"192.0.2.7"  # dual-stack listener
    assert peer_host("") == b"-"  # a unix socket
    assert peer_host(None) == b"-"


@pytest.mark.parametrize(
    ("value", "user"),
    [
        (b"Basic " + base64.b64encode(b"ann:pw:with:colons"), b"ann"),
        (b"basic   " + base64.b64encode(b"bob:"), b"bob"),
        (b"Bearer " + base64.b64encode(b"ann:pw"), None),
        (b"Basic !!notbase64", None),
        (b"Basic " + base64.b64encode(b"no-colon"), None),
    ],
)
def test_basic_auth_user(value: bytes, user: bytes | None) -> None:
    assert basic_auth_user(request(b"/", (b"authorization", value))) == user
    assert basic_auth_user(request(b"/")) is None


# -- the clock ------------------------------------------------------------------------------------


@pytest.fixture
def zone() -> Iterator[None]:
    saved = os.environ.get("TZ")
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.parametrize(
    ("tz", "offset"), [("UTC0", "+0000"), ("IST-5:30", "+0530"), ("XYZ+3", "-0300")]
)
def test_the_clock_is_local_time_with_its_offset(zone: None, tz: str, offset: str) -> None:
    os.environ["TZ"] = tz
    time.tzset()
    when = 1_795_309_323.75  # 2026-11-22T01:02:03.75Z
    expected = datetime.datetime.fromtimestamp(when).astimezone().strftime("%d/%b/%Y:%H:%M:%S %z")
    stamp = LogClock().stamp(when)
    assert stamp == f"[{expected}]".encode()
    assert stamp.endswith(f" {offset}]".encode())


def test_the_clock_formats_once_per_second() -> None:
    clock = LogClock()
    first = clock.stamp(1_795_309_323.0)
    assert clock.stamp(1_795_309_323.99) is first
    assert clock.stamp(1_795_309_324.0) != first


# -- recording ------------------------------------------------------------------------------------


def config_for(*vhosts: VhostConfig) -> Config:
    return Config(config_dir="/etc/pyws", global_=GlobalConfig(), vhosts=vhosts)


def lines(path: Path) -> list[dict[str, bytes]]:
    return [parse(line) for line in path.read_bytes().splitlines(keepends=True)]


def test_record_sizes_and_statuses(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    host = vhost(str(path))
    logs = open_access_logs(config_for(host))
    assert logs is not None
    page = Response(200, b"", b"12345")
    span = Response(206, b"", file=FileSpan("/srv/f", 10, 4096, (1, 2, 3, 4)))
    logs.record(b"127.0.0.1", request(b"/page"), route_of(host), page)
    logs.record(b"127.0.0.1", request(b"/page", method=b"HEAD"), route_of(host), page)
    logs.record(b"127.0.0.1", request(b"/f"), route_of(host), span)
    logs.record(b"127.0.0.1", request(b"/page"), route_of(host), Response(304, b""))
    logs.record(b"127.0.0.1", None, route_of(host), Response(400, b"", b"bad"))
    logs.record_status(b"::1", request(b"/ws"), route_of(host), 101, 0)
    logs.close()
    found = [(f["request"], f["status"], f["size"]) for f in lines(path)]
    assert found == [
        (b"GET /page HTTP/1.1", b"200", b"5"),
        (b"HEAD /page HTTP/1.1", b"200", b"-"),
        (b"GET /f HTTP/1.1", b"206", b"4096"),
        (b"GET /page HTTP/1.1", b"304", b"-"),
        (b"-", b"400", b"3"),
        (b"GET /ws HTTP/1.1", b"101", b"-"),
    ]


def test_the_user_is_logged_only_where_basic_auth_let_the_request_in(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    guarded, open_ = vhost(str(path), basic_auth="/etc/pw"), vhost(str(path))
    logs = open_access_logs(config_for(guarded, open_))
    assert logs is not None
    creds = (b"authorization", b"Basic " + base64.b64encode(b"ann:secret"))
    logs.record(b"-", request(b"/", creds), route_of(guarded), Response(200, b""))
    logs.record(b"-", request(b"/", creds), route_of(guarded), Response(401, b""))
    logs.record(b"-", request(b"/", creds), route_of(open_), Response(200, b""))
    # A layer that knows whom it admitted says so.
    logs.record(b"-", request(b"/"), route_of(open_), Response(200, b""), user=b"carol")
    logs.close()
    assert [f["user"] for f in lines(path)] == [b"ann", b"-", b"-", b"carol"]


def test_vhosts_without_an_access_log_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logged, silent = vhost(str(path)), vhost(None)
    assert open_access_logs(config_for(silent)) is None
    logs = open_access_logs(config_for(logged, silent))
    assert logs is not None
    logs.record(b"-", request(b"/quiet"), route_of(silent), Response(200, b""))
    logs.record(b"-", request(b"/loud"), route_of(logged), Response(200, b""))
    logs.close()
    assert [f["request"] for f in lines(path)] == [b"GET /loud HTTP/1.1"]


def test_lines_wait_a_moment_to_go_out_in_one_write(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    host = vhost(str(path))
    logs = open_access_logs(config_for(host))
    assert logs is not None

    async def serve() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(3):
            logs.record(b"-", request(b"/%d" % n), route_of(host), Response(200, b""))
        before = len(path.read_bytes())
        while len(path.read_bytes()) == 0 and loop.time() < start + 10:
            await asyncio.sleep(0.01)
        return before, loop.time() - start

    before, waited = asyncio.run(serve())
    assert before == 0
    assert len(lines(path)) == 3
    assert FLUSH_SECS <= waited < FLUSH_SECS + 5
    logs.close()


def test_a_full_batch_goes_out_at_once(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    host = vhost(str(path))
    logs = open_access_logs(config_for(host))
    assert logs is not None
    agent = (b"user-agent", b"a" * 1000)

    async def serve() -> int:
        n = 0
        while len(path.read_bytes()) == 0:
            logs.record(b"-", request(b"/%d" % n, agent), route_of(host), Response(200, b""))
            n += 1
        return n

    count = asyncio.run(serve())
    assert BATCH_BYTES // 1100 <= count <= BATCH_BYTES // 1000 + 1
    assert 0 < path.stat().st_size <= BATCH_BYTES
    logs.close()
    assert len(lines(path)) == count


# -- files ----------------------------------------------------------------------------------------


def test_the_file_is_created_0640_and_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"old line\n")
    fd = open_log_file(str(path), None)
    os.lseek(fd, 0, os.SEEK_SET)  # O_APPEND: every write still lands at the end
    os.write(fd, b"new line\n")
    os.close(fd)
    assert path.read_bytes() == b"old line\nnew line\n"
    old_umask = os.umask(0o022)
    try:
        os.close(open_log_file(str(tmp_path / "fresh.log"), None))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "fresh.log").stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_the_file_is_given_to_the_worker_user(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    os.close(open_log_file(str(path), (65534, 65534)))
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


def test_root_is_not_steered_to_another_file(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep\n")
    link = tmp_path / "symlinked.log"
    link.symlink_to(target)
    with pytest.raises(OSError, match="symlink to a file"):
        open_log_file(str(link), None)
    dangling = tmp_path / "dangling.log"
    dangling.symlink_to(tmp_path / "created-through-a-link")
    with pytest.raises(OSError, match=r"dangling\.log"):
        open_log_file(str(dangling), None)
    assert not (tmp_path / "created-through-a-link").exists()
    hard = tmp_path / "hardlinked.log"
    os.link(target, hard)
    with pytest.raises(OSError, match="2 hard links"):
        open_log_file(str(hard), None)
    assert target.read_bytes() == b"keep\n"


def test_a_symlink_to_a_device_is_followed(tmp_path: Path) -> None:
    link = tmp_path / "stdout.log"
    link.symlink_to("/dev/null")
    os.close(open_log_file(str(link), None))


def test_a_missing_directory_names_the_log(tmp_path: Path) -> None:
    host = vhost(str(tmp_path / "nodir" / "access.log"))
    with pytest.raises(OSError, match=r"access-log .*nodir/access.log: No such file"):
        open_access_logs(config_for(host))


def test_reopen_after_a_rename_writes_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    host = vhost(str(path))
    logs = open_access_logs(config_for(host))
    assert logs is not None
    logs.record(b"-", request(b"/before"), route_of(host), Response(200, b""))
    path.rename(tmp_path / "access.log.1")
    logs.record(b"-", request(b"/between"), route_of(host), Response(200, b""))
    logs.reopen()
    logs.record(b"-", request(b"/after"), route_of(host), Response(200, b""))
    logs.close()
    rotated = [f["request"] for f in lines(tmp_path / "access.log.1")]
    assert rotated == [b"GET /before HTTP/1.1", b"GET /between HTTP/1.1"]
    assert [f["request"] for f in lines(path)] == [b"GET /after HTTP/1.1"]


def test_a_failed_reopen_keeps_the_old_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    host = vhost(str(logdir / "access.log"))
    logs = open_access_logs(config_for(host))
    assert logs is not None
    logdir.rename(tmp_path / "moved")  # the path now leads nowhere
    with caplog.at_level(logging.ERROR, logger="pyws.worker"):
        logs.reopen()
    assert "cannot reopen, keeping the old file" in caplog.text
    logs.record(b"-", request(b"/still"), route_of(host), Response(200, b""))
    logs.close()
    assert [f["request"] for f in lines(tmp_path / "moved" / "access.log")] == [
        b"GET /still HTTP/1.1"
    ]


def test_remembered_fragments_follow_every_field_of_the_request(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    host = vhost(str(path))
    logs = open_access_logs(config_for(host))
    assert logs is not None
    variants = [
        request(b"/same", (b"user-agent", b"one")),
        request(b"/same", (b"user-agent", b"two")),
        request(b"/same", (b"user-agent", b"two"), (b"referer", b"http://r/")),
        request(b"/same", (b"user-agent", b"two"), method=b"HEAD"),
        Request(b"GET", b"/same", "1.0", ((b"user-agent", b"two"),), None, False, False, False),
        request(b"/same", (b"user-agent", b"one")),
    ]
    for req in variants:
        logs.record(b"-", req, route_of(host), Response(200, b"", b"x"))
    logs.close()
    found = [(f["request"], f["referer"], f["agent"]) for f in lines(path)]
    assert found == [
        (b"GET /same HTTP/1.1", b"-", b"one"),
        (b"GET /same HTTP/1.1", b"-", b"two"),
        (b"GET /same HTTP/1.1", b"http://r/", b"two"),
        (b"HEAD /same HTTP/1.1", b"-", b"two"),
        (b"GET /same HTTP/1.0", b"-", b"two"),
        (b"GET /same HTTP/1.1", b"-", b"one"),
    ]


def test_a_fifo_without_a_reader_fails_at_once_and_with_one_gets_lines(tmp_path: Path) -> None:
    fifo = tmp_path / "access.fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="No such device or address"):
        open_log_file(str(fifo), None)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        host = vhost(str(fifo))
        logs = open_access_logs(config_for(host))
        assert logs is not None
        logs.record(b"-", request(b"/piped"), route_of(host), Response(200, b""))
        logs.close()
        assert parse(os.read(reader, 65536))["request"] == b"GET /piped HTTP/1.1"
    finally:
        os.close(reader)
