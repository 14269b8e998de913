"""file:// mounts: map a routed path to a file of the mount (cached, stat-validated), send it."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyws.supervisor.config.model import MountConfig, VhostConfig
from pyws.worker.http.dates import format_http_date
from pyws.worker.http.events import Request
from pyws.worker.http.preconditions import (
    RangeNotSatisfiable,
    Span,
    evaluate_preconditions,
    select_ranges,
)
from pyws.worker.http.response import (
    MULTIPART_TYPE,
    FileSpan,
    Part,
    Response,
    error_response,
    redirect_response,
    serialize_byteranges,
    serialize_fields,
)
from pyws.worker.mimetypes import MimeTypes
from pyws.worker.routing import Route, location_for

SMALL_FILE = 64 * 1024  # bodies up to this size are read once and kept in memory
CACHE_ENTRIES = 4096  # per mount
CACHE_BODY_BYTES = 32 * 1024 * 1024  # per mount
SENDFILE_BUDGET = 4 * 1024 * 1024  # per turn of the loop: one big file must not starve the rest

_METHOD_NOT_ALLOWED = error_response(405, b"Allow: GET, HEAD\r\n")
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO swapped in must not block us


def cache_control(mount: MountConfig) -> str:
    """The Cache-Control value lwsws gives a mount's files (libwebsockets lws_serve_http_file).

    Uncacheable (`no-store`) unless the mount sets both `cache-max-age` (non-zero) and
    `cache-reuse`; then `[must-revalidate, ]private|public, max-age=N`, where
    `cache-revalidate` adds must-revalidate and `cache-intermediaries` makes it public.
    `cache-no` (a bit of lws's mount struct that lwsws never sets) forces `no-store`.
    """
    if mount.cache_no or not (mount.cache_max_age and mount.cache_reuse):
        return "no-store"
    scope = "public" if mount.cache_intermediaries else "private"
    if mount.cache_revalidate:
        return f"must-revalidate, {scope}, max-age={mount.cache_max_age}"
    return f"{scope}, max-age={mount.cache_max_age}"


def mount_fields(vhost: VhostConfig, mount: MountConfig) -> bytes:
    """The header lines every file of the mount carries: Cache-Control, then `headers`.

    A Cache-Control among the vhost's or mount's `headers` replaces ours rather than
    contradicting it (lws likewise leaves it out when an origin supplies one).
    """
    extra = (*vhost.headers, *mount.headers)
    if any(name.lower() == "cache-control" for name, _ in extra):
        return serialize_fields(extra)
    return serialize_fields((("Cache-Control", cache_control(mount)), *extra))


# How long a cached entry is trusted without a stat(): a stat() per request was a sixth of
# a small-file request's cost. A cached body is whole and consistent while stale, and a
# sendfile body re-checks the file's identity when it opens it (nginx's
# open_file_cache_valid and lighttpd's stat cache make the same trade).
REVALIDATE_SECS = 1.0


@dataclass(slots=True)
class _Entry:
    """What one path served last time, valid while a stat() of `fs_path` says the same file."""

    fs_path: str  # the path the request names: stat() follows its symlinks on every hit
    identity: tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns
    etag: bytes
    mtime: int
    content_type: bytes  # the serialised Content-Type line, or b""
    validators: bytes  # the fields a 200, a 206 and a 304 share
    ok: Response
    not_modified: Response
    body: bytes | None  # None: the file goes out with sendfile
    valid_until: float = 0.0  # monotonic time until which no stat() is needed


class FileMount:
    """A file:// mount: answers GET and HEAD (405 otherwise), never outside its directory.

    A directory (the mount root included) serves its `default` document (index.html unless
    set); there is no listing: without that document the answer is 404, as in lwsws, and with
    `default` set to "" or "/" it is 403. A file whose suffix no mimetype covers is 415.
    Every file answer carries a quoted ETag, Last-Modified and the mount's Cache-Control;
    conditional and Range requests are answered from the same cached entry.
    """

    def __init__(self, vhost: VhostConfig, mount: MountConfig) -> None:
        self._root = os.path.realpath(mount.target)
        self._prefix = self._root.rstrip("/") + "/"
        self._default = mount.default.strip("/")
        self._mimetypes = MimeTypes(mount.extra_mimetypes)
        self._fields = mount_fields(vhost, mount)  # once per mount, never per request
        self._entries: dict[str, _Entry] = {}
        self._cached_bytes = 0

    def handle(self, request: Request, route: Route) -> Response:
        """The response for `route.remainder`, the path below the mountpoint."""
        if request.method not in (b"GET", b"HEAD"):
            return _METHOD_NOT_ALLOWED
        entry = self._entries.get(route.remainder)
        if entry is not None:
            now = time.monotonic()
            if now < entry.valid_until:
                return self._conditional(entry, request) if request.conditional else entry.ok
            try:
                st = os.stat(entry.fs_path)
            except OSError:
                pass
            else:
                if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == entry.identity:
                    if entry.body is not None:
                        # A sendfile body is checked on every request: its headers must
                        # match the file it will open, and a stat() is cheap next to it.
                        entry.valid_until = now + REVALIDATE_SECS
                    return self._conditional(entry, request) if request.conditional else entry.ok
            self._forget(route.remainder)
        return self._load(request, route)

    def _load(self, request: Request, route: Route) -> Response:
        directory = route.remainder == "" or route.remainder.endswith("/")
        fs_path = os.path.join(self._root, route.remainder)
        if directory:
            if not self._default:
                return error_response(403)  # no directory listings
            fs_path = os.path.join(fs_path, self._default)
        real = os.path.realpath(fs_path)
        if real != self._root and not real.startswith(self._prefix):
            return error_response(404)  # a symlink out of the mount: as if it did not exist
        try:
            st = os.stat(real)
        except PermissionError:
            return error_response(403)
        except OSError:
            return error_response(404)  # missing, not a directory, a loop, too long...
        if stat.S_ISDIR(st.st_mode):
            if directory:
                return error_response(403)
            return redirect_response(location_for(route.path + "/", route.query))
        if not stat.S_ISREG(st.st_mode):
            return error_response(403)
        content_type = self._mimetypes.field(real)
        if content_type is None:
            return error_response(415)  # lwsws: an unknown suffix is never served
        try:
            entry = self._make_entry(fs_path, real, content_type)
        except PermissionError:
            return error_response(403)
        except OSError:
            return error_response(404)
        self._remember(route.remainder, entry)
        return self._conditional(entry, request) if request.conditional else entry.ok

    def _make_entry(self, fs_path: str, real: str, content_type: bytes) -> _Entry:
        fd = os.open(real, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise PermissionError(real)
            body = _read_all(fd, st.st_size) if st.st_size <= SMALL_FILE else None
        finally:
            os.close(fd)
        size = st.st_size if body is None else len(body)
        identity = (st.st_dev, st.st_ino, size, st.st_mtime_ns)
        etag = b'"%x-%x-%x"' % (st.st_ino, size, st.st_mtime_ns)
        mtime = int(st.st_mtime)
        validators = (
            b"ETag: " + etag + b"\r\nLast-Modified: " + format_http_date(mtime).encode() + b"\r\n"
        ) + self._fields
        headers = content_type + b"Content-Length: %d\r\nAccept-Ranges: bytes\r\n" % size
        if body is None:
            ok = Response(200, headers + validators, file=FileSpan(real, 0, size, identity))
        else:
            ok = Response(200, headers + validators, body)
        not_modified = Response(304, validators)
        return _Entry(
            fs_path,
            identity,
            etag,
            mtime,
            content_type,
            validators,
            ok,
            not_modified,
            body,
            0.0 if body is None else time.monotonic() + REVALIDATE_SECS,
        )

    def _conditional(self, entry: _Entry, request: Request) -> Response:
        """Preconditions, then a Range (RFC 9110 §13.2.2 and §14)."""
        status = evaluate_preconditions(request, entry.etag, entry.mtime)
        if status == 304:
            return entry.not_modified
        if status:
            return error_response(status)
        size = entry.identity[2]
        # §8.8.2.2: a Last-Modified of the second still running may hide a second change.
        settled = time.time_ns() - entry.identity[3] >= 1_000_000_000
        try:
            spans = select_ranges(request, size, entry.etag, entry.mtime, date_is_strong=settled)
        except RangeNotSatisfiable:
            return Response(416, b"Content-Range: bytes */%d\r\nContent-Length: 0\r\n" % size)
        if spans is None:
            return entry.ok
        if len(spans) == 1:
            return _single_part(entry, spans[0])
        return _multipart(entry, spans)

    def _remember(self, key: str, entry: _Entry) -> None:
        cost = 0 if entry.body is None else len(entry.body)
        while self._entries and (
            len(self._entries) >= CACHE_ENTRIES or self._cached_bytes + cost > CACHE_BODY_BYTES
        ):
            self._forget(next(iter(self._entries)))  # the oldest goes first
        self._entries[key] = entry
        self._cached_bytes += cost

    def _forget(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.body is not None:
            self._cached_bytes -= len(entry.body)


def _single_part(entry: _Entry, span: Span) -> Response:
    """206 with one Content-Range (RFC 9110 §14.4)."""
    first, last = span
    count = last - first + 1
    headers = (
        entry.content_type
        + b"Content-Length: %d\r\nContent-Range: bytes %d-%d/%d\r\n"
        % (count, first, last, entry.identity[2])
        + entry.validators
    )
    if entry.body is not None:
        return Response(206, headers, entry.body[first : last + 1])
    whole = entry.ok.file
    assert whole is not None  # an entry without a body always has a file span
    return Response(206, headers, file=FileSpan(whole.path, first, count, whole.identity))


def _multipart(entry: _Entry, spans: tuple[Span, ...]) -> Response:
    """206 multipart/byteranges (RFC 9110 §14.6); a large file's parts still go by sendfile."""
    parts, epilogue, length = serialize_byteranges(entry.content_type, spans, entry.identity[2])
    headers = MULTIPART_TYPE + b"Content-Length: %d\r\n" % length + entry.validators
    body = entry.body
    if body is not None:
        pieces = [piece for head, at, n in parts for piece in (head, body[at : at + n])]
        return Response(206, headers, b"".join((*pieces, epilogue)))
    whole = entry.ok.file
    assert whole is not None
    span = FileSpan(whole.path, 0, length, whole.identity, parts, epilogue)
    return Response(206, headers, file=span)


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break  # the file shrank under us: serve what is there, the next stat() will tell
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class FileSender:
    """One file body to one client: os.sendfile on a dup of the connection's socket.

    uvloop has no loop.sendfile and refuses add_writer on a transport's own fd; a dup is another
    fd on the same socket, so the loop can watch it, and what we send there follows what the
    transport sent once the transport's buffer is empty (we wait for that first).

    A multipart/byteranges body is the same, part by part: each part's few head bytes with
    send(), then its range with sendfile, so the file never passes through our memory.
    """

    __slots__ = (
        "_closed",
        "_epilogue",
        "_fd",
        "_head",
        "_left",
        "_loop",
        "_more",
        "_offset",
        "_on_writable",
        "_parts",
        "_sock",
        "_watching",
        "remaining",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock_fd: int,
        head: bytes,
        span: FileSpan,
        on_writable: Callable[[], None],
    ) -> None:
        fd = os.open(span.path, _OPEN_FLAGS)
        dup = -1
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != span.identity:
                raise OSError(errno.ESTALE, "file changed since its headers were made", span.path)
            dup = os.dup(sock_fd)
            sock = socket.socket(fileno=dup)
        except BaseException:
            os.close(fd)
            if dup >= 0:
                os.close(dup)
            raise
        sock.setblocking(False)
        tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        self._more = socket.MSG_MORE if tcp else 0  # a head rides in its range's first segment
        self._loop, self._sock, self._fd, self._on_writable = loop, sock, fd, on_writable
        segments = span.segments
        first_head, self._offset, self._left = segments[0]
        self._head = memoryview(head + first_head)
        self._parts: list[Part] = list(reversed(segments[1:]))  # popped from the end
        self._epilogue = span.epilogue
        self.remaining = len(head) + span.count  # bytes of this response still to go out
        self._watching = self._closed = False

    def pump(self) -> bool | None:
        """Send what the socket takes now: True when done, False if that failed, None: wait."""
        budget = SENDFILE_BUDGET
        try:
            while True:
                while len(self._head):
                    sent = self._sock.send(self._head, self._more if self._left else 0)
                    self._head = self._head[sent:]
                    self.remaining -= sent
                if self._left:
                    if budget <= 0:
                        self._watch()  # writable already: we come back on the next turn
                        return None
                    chunk = min(self._left, budget)
                    sent = os.sendfile(self._sock.fileno(), self._fd, self._offset, chunk)
                    if sent == 0:
                        return False  # the file shrank: the body can no longer match its length
                    self._offset += sent
                    self._left -= sent
                    self.remaining -= sent
                    budget -= sent
                elif not self._advance():
                    return True
        except BlockingIOError:
            self._watch()  # the socket buffer is full: this is where a slow reader waits
            return None
        except OSError:
            return False  # EPIPE, ECONNRESET: the client is gone

    def _advance(self) -> bool:
        """On to the next part, then the closing delimiter; False once nothing is left."""
        if self._parts:
            head, self._offset, self._left = self._parts.pop()
            self._head = memoryview(head)
            return True
        if self._epilogue:
            self._head = memoryview(self._epilogue)
            self._epilogue = b""
            return True
        return False

    def _watch(self) -> None:
        if not self._watching:
            self._loop.add_writer(self._sock.fileno(), self._on_writable)
            self._watching = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watching:
            self._loop.remove_writer(self._sock.fileno())
        self._sock.close()
        os.close(self._fd)
