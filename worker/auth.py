"""basic-auth on mounts: credentials files, timing-safe checks, and the files they must never serve.

Credentials are read once, when the worker boots and is still root (the file is typically
readable by root alone), never again: a changed file takes effect with the next generation.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import logging
import os
import re
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bcrypt

from pyws.worker.http.events import Request
from pyws.worker.http.response import Response, error_response, serialize_fields
from pyws.worker.routing import Route

if TYPE_CHECKING:
    from pyws.worker.dispatch import Origin

log = logging.getLogger("pyws.worker")

CACHE_ENTRIES = 256  # verified Authorization values remembered per credentials file
MAX_FILE_BYTES = 16 * 1024 * 1024
BCRYPT_MAX_PASSWORD = 72  # bcrypt reads no further; htpasswd hashed only these bytes
_BCRYPT = re.compile(rb"\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}")
# Hash schemes htpasswd can write that we do not check: such a line must not work as a plain
# `user:password` line whose password is the hash itself.
_UNSUPPORTED = (b"$apr1$", b"{SHA}", b"$1$", b"$5$", b"$6$", b"$argon2", b"$y$")
_NO_FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not block the boot


@dataclass(frozen=True, slots=True)
class _User:
    plain: bytes | None  # a plain password; in Credentials, its keyed digest (fixed length)
    hashed: bytes | None  # a bcrypt hash, `$2y$` rewritten as `$2b$`


class Credentials:
    """The users of one credentials file.

    Order of calls: `load()` (or `parse()` in tests) once, then `check()` per request.
    """

    def __init__(self, users: dict[bytes, _User], source: str) -> None:
        self.source = source
        self._key = os.urandom(32)  # per worker: digests and the cache mean nothing elsewhere
        # Plain passwords are kept as keyed digests, never in the clear.
        self._users = {
            name: _User(None if u.plain is None else self._digest(u.plain), u.hashed)
            for name, u in users.items()
        }
        # An unknown user pays for a check of the same kind as a wrong password does.
        hashed = [u.hashed for u in users.values() if u.hashed is not None]
        self._decoy_hash = hashed[0] if hashed else None
        self._decoy_digest = self._digest(os.urandom(16))
        self._verified: dict[bytes, None] = {}

    @classmethod
    def load(cls, path: str) -> Credentials:
        """Read `path`; OSError (which fails the worker's boot) if it cannot be read."""
        try:
            fd = os.open(path, _NO_FILE_FLAGS)
        except OSError as exc:
            raise OSError(exc.errno, f"basic-auth file {path}: {exc.strerror}") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, f"basic-auth file {path}: not a regular file")
            chunks = []
            size = 0
            while size <= MAX_FILE_BYTES and (chunk := os.read(fd, 65536)):
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > MAX_FILE_BYTES:
            raise OSError(errno.EFBIG, f"basic-auth file {path}: larger than {MAX_FILE_BYTES}")
        return cls.parse(data, path)

    @classmethod
    def parse(cls, data: bytes, source: str) -> Credentials:
        """lwsws `user:password` lines and htpasswd bcrypt `user:$2y$...` lines.

        A password may hold colons (the user name ends at the first). Empty lines and `#`
        comments are skipped; so are lines we cannot use, with a warning.
        """
        users: dict[bytes, _User] = {}
        for number, raw in enumerate(data.split(b"\n"), 1):
            line = raw.removesuffix(b"\r")
            if not line.strip() or line.startswith(b"#"):
                continue
            user, sep, secret = line.partition(b":")
            problem = _line_problem(user, sep, secret, users)
            if problem:
                log.warning("%s:%d: %s: line skipped", source, number, problem)
                continue
            if _BCRYPT.fullmatch(secret):
                # pyca/bcrypt speaks `$2b$`; `$2y$` (PHP, htpasswd) is the same algorithm.
                hashed = b"$2b$" + secret[4:] if secret.startswith(b"$2y$") else secret
                users[user] = _User(None, hashed)
            else:
                users[user] = _User(secret, None)
        if not users:
            log.warning("%s: no usable users: every request will be refused", source)
        return cls(users, source)

    def check(self, authorization: bytes | None) -> bool:
        """Does this Authorization field value (RFC 7617 §2) name a user with its password?"""
        if authorization is None:
            return False
        # A keep-alive client sends the same value again and again: a bcrypt check costs
        # ~100 ms, so successes are remembered, as a keyed hash, never as the password.
        key = hashlib.blake2b(authorization, key=self._key, digest_size=16).digest()
        if key in self._verified:
            return True
        credentials = parse_basic(authorization)
        if credentials is None or not self.verify(*credentials):
            return False
        if len(self._verified) >= CACHE_ENTRIES:
            del self._verified[next(iter(self._verified))]  # the oldest goes first
        self._verified[key] = None
        return True

    def verify(self, user: bytes, password: bytes) -> bool:
        """Timing-safe: compares fixed-length digests or runs bcrypt, even for unknown users."""
        entry = self._users.get(user)
        if entry is None:
            if self._decoy_hash is not None:
                _bcrypt_check(password, self._decoy_hash)
            else:
                hmac.compare_digest(self._digest(password), self._decoy_digest)
            return False
        if entry.hashed is not None:
            return _bcrypt_check(password, entry.hashed)
        assert entry.plain is not None  # a user has a plain password or a hash
        return hmac.compare_digest(self._digest(password), entry.plain)

    def _digest(self, password: bytes) -> bytes:
        return hmac.digest(self._key, password, "sha256")


def _line_problem(user: bytes, sep: bytes, secret: bytes, users: dict[bytes, _User]) -> str:
    if not sep or not user:
        return "not a user:password line"
    if user in users:
        return f"user {user!r} given again (the first line counts)"
    if secret.startswith(_UNSUPPORTED):
        return "unsupported password hash (use bcrypt: htpasswd -B)"
    if secret.startswith((b"$2y$", b"$2b$", b"$2a$")) and not _BCRYPT.fullmatch(secret):
        return "malformed bcrypt hash"
    return ""


def parse_basic(value: bytes) -> tuple[bytes, bytes] | None:
    """(user, password) from `Basic <base64>`, or None for anything else (answered 401)."""
    scheme, _, token = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def _bcrypt_check(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:
        return False


def basic_auth_challenge(realm: str, extra: bytes = b"") -> Response:
    """The 401 that asks for credentials (RFC 9110 §11.6.1, RFC 7617 §2)."""
    quoted = realm.replace("\\", "\\\\").replace('"', '\\"')
    field = serialize_fields([("WWW-Authenticate", f'Basic realm="{quoted}", charset="UTF-8"')])
    return error_response(401, field + extra)


class AuthGate:
    """What a basic-auth mount checks before its origin (or a slash redirect) answers."""

    __slots__ = ("credentials", "denied")

    def __init__(self, credentials: Credentials, realm: str, extra: bytes = b"") -> None:
        self.credentials = credentials
        self.denied = basic_auth_challenge(realm, extra)

    def admits(self, request: Request) -> bool:
        return self.credentials.check(request.header(b"authorization"))


class CredentialShield:
    """A file origin whose directory holds a credentials file: that file is never served.

    Whatever names it (a symlink, a hard link, the default document), the request is
    answered as if it did not exist. Only such mounts pay for the extra lookups.
    """

    def __init__(self, inner: Origin, root: str, default: str, paths: list[str]) -> None:
        self._inner = inner
        self._root = root
        self._default = default.strip("/")
        self._paths = frozenset(paths)
        identities = set()
        for path in paths:
            st = os.stat(path)
            identities.add((st.st_dev, st.st_ino))
        self._identities = frozenset(identities)

    def handle(self, request: Request, route: Route) -> Response:
        if self._names_credentials(route.remainder):
            return error_response(404)
        return self._inner.handle(request, route)

    def _names_credentials(self, remainder: str) -> bool:
        if remainder == "" or remainder.endswith("/"):
            remainder += self._default
        real = os.path.realpath(os.path.join(self._root, remainder))
        if real in self._paths:
            return True
        try:
            st = os.stat(real)
        except OSError:
            return False  # nothing there: the origin answers 404
        return (st.st_dev, st.st_ino) in self._identities


def credential_files_under(root: str, files: list[str]) -> list[str]:
    """Which of the (resolved) credentials `files` lie inside the directory `root`."""
    prefix = root.rstrip("/") + "/"
    return [path for path in files if path.startswith(prefix)]
