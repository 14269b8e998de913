"""The root's listeners: bound once, kept while the config keeps their address.

Every generation inherits the same open socket. Closing a per-generation socket
on reload resets whatever sits in its accept queue; a shared one loses nothing.
Never call shutdown() on one: it would stop the socket for every process.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import ipaddress
import logging
import os
import pwd
import socket
import stat
from collections.abc import Iterable

from pyws.supervisor.config.model import VhostConfig

log = logging.getLogger("pyws.root")

BACKLOG = 4096


class ListenerError(Exception):
    pass


def bind_listener(vhost: VhostConfig) -> socket.socket:
    """Bind and listen for one vhost's address; raises ListenerError naming it."""
    host = vhost.interface
    try:
        if vhost.unix_socket and host is not None:
            return _bind_unix(host, vhost.unix_socket_perms)
        if host is None:
            return _bind_any(vhost.port)
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return _bind_device(host, vhost.port)
        family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
        return _bind(family, (host, vhost.port))
    except OSError as exc:
        raise ListenerError(f"cannot listen on {vhost.listen_key}: {exc.strerror}") from exc


def _bind(family: socket.AddressFamily, addr: tuple[str, int], v6only: int = 1) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_any(port: int) -> socket.socket:
    if socket.has_ipv6:
        try:
            return _bind(socket.AF_INET6, ("::", port), v6only=0)
        except OSError as exc:
            log.debug("no IPv6 wildcard (%s); falling back to 0.0.0.0", exc)
    return _bind(socket.AF_INET, ("0.0.0.0", port))


def _bind_device(name: str, port: int) -> socket.socket:
    """lwsws's `interface` may name a network interface rather than an address."""
    try:
        socket.if_nametoindex(name)
    except OSError as exc:
        raise OSError(exc.errno, f"no address or interface named {name!r}") from exc
    sock = _bind(socket.AF_INET, ("0.0.0.0", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, name.encode())
    return sock


def _bind_unix(path: str, perms: str | None) -> socket.socket:
    """A unix listener, mode 0600 as lwsws makes it; `perms` ("user:group") picks its owner."""
    uid, gid = _owner(perms)
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        with socket.socket(socket.AF_UNIX) as probe:
            if probe.connect_ex(path) == 0:
                raise OSError(errno.EADDRINUSE, f"another server listens on {path}")
        os.unlink(path)  # left behind by a server that died
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window in which the socket is more open than 0600
    try:
        sock.bind(path)
        os.chown(path, uid, gid)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    return sock


def _owner(perms: str | None) -> tuple[int, int]:
    if not perms:
        return -1, -1
    user, _, group = perms.partition(":")
    try:
        uid = pwd.getpwnam(user).pw_uid if user else -1
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError as exc:
        raise OSError(errno.EINVAL, f"unix-socket-perms {perms!r}: no such user or group") from exc
    return uid, gid


def listener_address(sock: socket.socket) -> str:
    """What the socket really listens on (port 0 in a config becomes the kernel's pick)."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListenerSet:
    """The root's open listeners, keyed by `VhostConfig.listen_key`."""

    def __init__(self) -> None:
        self.sockets: dict[str, socket.socket] = {}

    def ensure(self, vhosts: Iterable[VhostConfig]) -> None:
        """Bind what is missing; on failure close only what this call bound."""
        added: list[str] = []
        try:
            for vhost in vhosts:
                if vhost.listen_key not in self.sockets:
                    self.sockets[vhost.listen_key] = bind_listener(vhost)
                    added.append(vhost.listen_key)
                    log.info("listening on %s", listener_address(self.sockets[vhost.listen_key]))
        except ListenerError:
            for key in added:
                self.sockets.pop(key).close()
            raise

    def keep_only(self, keys: set[str]) -> None:
        for key in [k for k in self.sockets if k not in keys]:
            log.info("closing listener %s", key)
            sock = self.sockets.pop(key)
            if sock.family == socket.AF_UNIX:
                # Workers hold no path, only the fd: the name goes with the root's listener.
                with contextlib.suppress(OSError):
                    os.unlink(sock.getsockname())
            sock.close()

    def close(self) -> None:
        self.keep_only(set())
