"""Vhost access logs: Apache combined format lines, appended to files opened while still root.

Order of calls: `open_access_logs(config)` once, as root and before privileges drop (it
creates each file 0640 and gives it to the worker user, so the worker can reopen it later);
then `AccessLogs.record()` for every response a connection sends; `reopen()` on SIGUSR1;
`close()` on exit. Every file is opened O_APPEND: logrotate's copytruncate just works, and
the workers of every generation append to one file without a lock, because the kernel makes
each append of one write() atomic on a regular file. Lines are only ever written whole, in
one write() per batch, so they never interleave with another process's lines. A line waits
at most FLUSH_SECS for others to share its write(): per-request cost stays small.

The user (`%u`) comes from the request's Basic credentials, and only on a basic-auth mount
whose gate let the request through (any status but 401). A layer that authenticates in
another way passes the user it admitted: `record(..., user=...)` or `record_status(...)`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import select
import stat
import time
from collections.abc import Iterable
from typing import Any

from pyws.supervisor.config.model import Config, VhostConfig
from pyws.worker.auth import parse_basic
from pyws.worker.http.events import Request
from pyws.worker.http.response import Response
from pyws.worker.privileges import DEFAULT_USER, resolve_ids
from pyws.worker.routing import Route

log = logging.getLogger("pyws.worker")

FILE_MODE = 0o640
BATCH_BYTES = 65536  # one write() at most this big (or one line, if longer)
FLUSH_SECS = 0.1  # how long a line may wait for others to share its write()
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
_NO_BODY = frozenset({204, 304})
_VERSIONS = {"1.1": b"HTTP/1.1", "1.0": b"HTTP/1.0"}
_MONTHS = b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()

# What a client sends is logged as printable ASCII only, as Apache's ap_escape_logitem does:
# `"` and `\` get a backslash and every other byte outside 0x20-0x7e becomes `\xNN`, so no
# request can end a field early or forge a line of its own.
_UNSAFE = re.compile(rb"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_ESCAPES = [b"\\x%02x" % byte for byte in range(256)]
_ESCAPES[ord('"')] = b'\\"'
_ESCAPES[ord("\\")] = b"\\\\"


def escape_field(value: bytes) -> bytes:
    """`value` made safe to put between the quotes (or spaces) of a log line."""
    if _UNSAFE.search(value) is None:
        return value
    return _UNSAFE.sub(lambda match: _ESCAPES[match.group()[0]], value)


class LogClock:
    """`[22/Nov/2026:01:02:03 +0000]` in local time, formatted once per second."""

    __slots__ = ("_second", "_stamp")

    def __init__(self) -> None:
        self._second = -1
        self._stamp = b""

    def stamp(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            t = time.localtime(second)
            offset = t.tm_gmtoff // 60
            sign = b"+" if offset >= 0 else b"-"
            self._stamp = b"[%02d/%s/%04d:%02d:%02d:%02d %s%02d%02d]" % (
                t.tm_mday,
                _MONTHS[t.tm_mon - 1],
                t.tm_year,
                t.tm_hour,
                t.tm_min,
                t.tm_sec,
                sign,
                abs(offset) // 60,
                abs(offset) % 60,
            )
        return self._stamp


Fragments = tuple[bytes, bytes]  # the escaped `%r`, and ` "%{Referer}i" "%{User-agent}i"\n`
_NO_REQUEST: Fragments = (b"-", b' "-" "-"\n')
_CACHED_MAX = 1024  # bytes of request fields: longer ones are escaped every time


def serialize_line(
    host: bytes,
    stamp: bytes,
    request: Request | None,
    status: int,
    size: int,
    *,
    user: bytes | None = None,
) -> bytes:
    """`%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"` and a newline.

    `request` None: no request line could be read (a malformed request or a timeout).
    """
    fragments = _NO_REQUEST if request is None else serialize_request(request)
    return _join(host, stamp, fragments, status, size, user=user)


def serialize_request(request: Request) -> Fragments:
    """The parts of a line that depend on the request alone, escaped."""
    referer = request.header(b"referer")
    agent = request.header(b"user-agent")
    # httptools takes only the methods it knows (all tokens): the method needs no escape.
    line = b" ".join((request.method, escape_field(request.target), _version(request.http_version)))
    tail = b"".join(
        (
            b' "',
            escape_field(referer) if referer else b"-",
            b'" "',
            escape_field(agent) if agent else b"-",
            b'"\n',
        )
    )
    return line, tail


def _join(
    host: bytes, stamp: bytes, fragments: Fragments, status: int, size: int, *, user: bytes | None
) -> bytes:
    # An unquoted field: a space in it would shift every field after it.
    name = escape_field(user).replace(b" ", b"\\x20") if user else b"-"
    line, tail = fragments
    if size:
        return b'%s - %s %s "%s" %d %d%s' % (host, name, stamp, line, status, size, tail)
    return b'%s - %s %s "%s" %d -%s' % (host, name, stamp, line, status, tail)


class FragmentCache:
    """`serialize_request()` remembered: clients repeat the same targets and User-Agents, and
    escaping them is most of a line's cost. Bounded: long fields are not kept."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, bytes, str, bytes | None, bytes | None], Fragments] = {}

    def of(self, request: Request) -> Fragments:
        referer = request.header(b"referer")
        agent = request.header(b"user-agent")
        key = (request.method, request.target, request.http_version, referer, agent)
        found = self._cache.get(key)
        if found is None:
            found = serialize_request(request)
            if len(found[0]) + len(found[1]) <= _CACHED_MAX:
                if len(self._cache) >= 1024:
                    self._cache.clear()
                self._cache[key] = found
        return found


def _version(version: str) -> bytes:
    return _VERSIONS.get(version) or b"HTTP/" + escape_field(version.encode("latin-1"))


def peer_host(peername: Any) -> bytes:
    """`%h` from a transport's `peername`: the IP address; `-` for a unix socket."""
    if not isinstance(peername, tuple):
        return b"-"
    host = str(peername[0])
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]  # an IPv4 client of a dual-stack listener: log it as IPv4
    return host.encode("ascii")


def basic_auth_user(request: Request) -> bytes | None:
    """The user name of a `Basic` Authorization field (RFC 7617 §2), or None."""
    value = request.header(b"authorization")
    credentials = parse_basic(value) if value is not None else None
    return credentials[0] if credentials is not None else None


class AccessLogFile:
    """One access-log file: an O_APPEND fd, and lines that wait for one write() together until
    FLUSH_SECS passed or BATCH_BYTES gathered (a FIFO: PIPE_BUF, the most it keeps whole)."""

    __slots__ = ("_failing", "_fd", "_limit", "_pending", "_scheduled", "_size", "path")

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._limit = select.PIPE_BUF if stat.S_ISFIFO(os.fstat(fd).st_mode) else BATCH_BYTES
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False
        self._failing = False

    def add(self, line: bytes) -> None:
        if self._size + len(line) > self._limit and self._pending:
            self.flush()
        self._pending.append(line)
        self._size += len(line)
        if not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()  # no loop: nothing would ever flush a batch
                return
            self._scheduled = True
            loop.call_later(FLUSH_SECS, self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write the pending lines now."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        try:
            written = os.write(self._fd, data)
            if written < len(data):  # a full disk, a signal: the rest follows in a new write
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self._fd, view) :]
        except OSError as exc:
            if not self._failing:
                log.error("access-log %s: lines lost: %s", self.path, exc)
            self._failing = True
            return
        if self._failing:
            log.warning("access-log %s: writing again", self.path)
            self._failing = False

    def reopen(self) -> None:
        """Flush to the old file, then write to whatever file now has the path (after a
        rotation that renamed the old one). If that fails, keep the old file: lines go on."""
        self.flush()
        try:
            fd = open_log_file(self.path, None)
        except OSError as exc:
            log.error("access-log %s: cannot reopen, keeping the old file: %s", self.path, exc)
            return
        os.close(self._fd)
        self._fd = fd
        self._limit = select.PIPE_BUF if stat.S_ISFIFO(os.fstat(fd).st_mode) else BATCH_BYTES
        log.info("access-log %s: reopened", self.path)

    def close(self) -> None:
        if self._fd < 0:
            return
        self.flush()
        os.close(self._fd)
        self._fd = -1


class AccessLogs:
    """The access logs of one worker, by vhost: what `record()` appends to."""

    __slots__ = ("_by_vhost", "_clock", "_fragments", "files")

    def __init__(self, files: dict[str, AccessLogFile], vhosts: Iterable[VhostConfig]) -> None:
        self.files = files
        self._by_vhost = {id(v): files[v.access_log] for v in vhosts if v.access_log}
        self._clock = LogClock()
        self._fragments = FragmentCache()

    def record(
        self,
        peer: bytes,
        request: Request | None,
        route: Route,
        response: Response,
        *,
        user: bytes | None = None,
    ) -> None:
        """One line for `response`, sent to `request` (None: no request could be read).

        `user`: who the dispatch layer admitted, if it knows; else the Basic credentials of
        a request that passed a basic-auth mount's gate."""
        file = self._by_vhost.get(id(route.vhost))
        if file is None:
            return
        status = response.status
        size = 0
        if request is None or (request.method != b"HEAD" and status not in _NO_BODY):
            size = response.file.count if response.file is not None else len(response.body)
        mount = route.mount
        if user is None and request is not None and mount is not None and mount.basic_auth:
            user = basic_auth_user(request) if status != 401 else None
        fragments = _NO_REQUEST if request is None else self._fragments.of(request)
        stamp = self._clock.stamp(time.time())
        file.add(_join(peer, stamp, fragments, status, size, user=user))

    def record_status(
        self,
        peer: bytes,
        request: Request | None,
        route: Route,
        status: int,
        size: int,
        *,
        user: bytes | None = None,
    ) -> None:
        """One line for an answer that is not a Response (a 101 upgrade, a streamed body)."""
        file = self._by_vhost.get(id(route.vhost))
        if file is not None:
            fragments = _NO_REQUEST if request is None else self._fragments.of(request)
            stamp = self._clock.stamp(time.time())
            file.add(_join(peer, stamp, fragments, status, size, user=user))

    def reopen(self) -> None:
        for file in self.files.values():
            file.reopen()

    def close(self) -> None:
        for file in self.files.values():
            file.close()


def open_access_logs(config: Config) -> AccessLogs | None:
    """Open every vhost's `access-log` (one fd per path); None if no vhost logs.

    Call as root, before the privilege drop: files are created and given to the worker user.
    """
    paths = sorted({v.access_log for v in config.vhosts if v.access_log})
    if not paths:
        return None
    owner = None
    if os.geteuid() == 0:
        glob = config.global_
        owner = resolve_ids(glob.username or DEFAULT_USER, glob.groupname)
    files: dict[str, AccessLogFile] = {}
    try:
        for path in paths:
            files[path] = AccessLogFile(path, open_log_file(path, owner))
    except OSError:
        for file in files.values():
            file.close()
        raise
    return AccessLogs(files, config.vhosts)


def open_log_file(path: str, owner: tuple[int, int] | None) -> int:
    """An O_APPEND fd for `path`, created 0640; a regular file is given to `owner` (uid, gid).

    Root must not be steered by whoever can write in the log's directory (the worker user,
    when rotation reopens): a symlink as the last component is followed only to a device,
    FIFO or socket (`/dev/stdout`), never created through, and a file with other names
    (hard links) is refused, so root never appends to or chowns a file someone else chose.
    """
    try:
        # O_NONBLOCK: a FIFO nobody reads fails now (ENXIO) instead of hanging the boot.
        fd = os.open(path, _OPEN_FLAGS | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, FILE_MODE)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise OSError(exc.errno, f"access-log {path}: {exc.strerror}") from exc
        fd = _open_symlinked(path)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            if st.st_nlink != 1:
                raise OSError(
                    errno.EMLINK, f"access-log {path}: the file has {st.st_nlink} hard links"
                )
            if owner is not None and (st.st_uid, st.st_gid) != owner:
                os.fchown(fd, *owner)
        os.set_blocking(fd, True)
    except OSError:
        os.close(fd)
        raise
    return fd


def _open_symlinked(path: str) -> int:
    try:
        fd = os.open(path, _OPEN_FLAGS | os.O_NONBLOCK)
    except OSError as exc:
        raise OSError(exc.errno, f"access-log {path}: {exc.strerror}") from exc
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.ELOOP, f"access-log {path} is a symlink to a file: name the file")
    return fd
