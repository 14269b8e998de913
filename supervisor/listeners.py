"""The root's listeners: bound once, kept while the config keeps their address.

Every generation inherits the same open socket. Closing a per-generation socket
on reload resets whatever sits in its accept queue; a shared one loses nothing.
Never call shutdown() on one: it would stop the socket for every process.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import grp
import ipaddress
import logging
import os
import pwd
import socket
import stat
from collections.abc import Iterable
from typing import TypeAlias

from pyws.supervisor.config.model import VhostConfig

log = logging.getLogger("pyws.root")

BACKLOG = 4096

_IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


class ListenerError(Exception):
    pass


def bind_listener(vhost: VhostConfig) -> socket.socket:
    """Bind and listen for one vhost's address; raises ListenerError naming it."""
    host = vhost.interface
    try:
        if vhost.unix_socket and host is not None:
            return _bind_unix(host, vhost.unix_socket_perms)
        families = _families(vhost)
        if host is None:
            return _bind_any(vhost.port, families)
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return _bind_device(host, vhost.port, families)
        return _bind_address(addr, vhost.port, families)
    except OSError as exc:
        raise ListenerError(f"cannot listen on {vhost.listen_key}: {exc.strerror}") from exc


class _Families(enum.Enum):
    """Which IP versions a vhost listens on (lwsws `noipv6` and `ipv6only`)."""

    BOTH = "both"
    IPV4 = "ipv4"  # `noipv6`, or `ipv6only` off
    IPV6 = "ipv6"  # `ipv6only` on


def _families(vhost: VhostConfig) -> _Families:
    if vhost.noipv6:
        if vhost.ipv6only:
            raise OSError(errno.EINVAL, "noipv6 and ipv6only on contradict each other")
        return _Families.IPV4
    if vhost.ipv6only is None:
        return _Families.BOTH
    return _Families.IPV6 if vhost.ipv6only else _Families.IPV4


def _bind(
    family: socket.AddressFamily,
    addr: tuple[str, int],
    v6only: int = 1,
    device: str | None = None,
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        if device is not None:
            # Before bind(): the kernel's bind conflict check then sees the device, so the same
            # port on another device is a different address, not a clash.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_any(port: int, families: _Families, device: str | None = None) -> socket.socket:
    """The wildcard address: `::` with IPV6_V6ONLY off takes both versions on one socket."""
    if families is _Families.IPV4:
        return _bind(socket.AF_INET, ("0.0.0.0", port), device=device)
    if families is _Families.IPV6:
        return _bind(socket.AF_INET6, ("::", port), v6only=1, device=device)
    if socket.has_ipv6:
        try:
            return _bind(socket.AF_INET6, ("::", port), v6only=0, device=device)
        except OSError as exc:
            log.debug("no IPv6 wildcard (%s); falling back to 0.0.0.0", exc)
    return _bind(socket.AF_INET, ("0.0.0.0", port), device=device)


def _bind_address(addr: _IPAddress, port: int, families: _Families) -> socket.socket:
    if addr.version == 4:
        if families is _Families.IPV6:
            raise OSError(errno.EINVAL, f"ipv6only is on but {addr} is an IPv4 address")
        return _bind(socket.AF_INET, (str(addr), port))
    if families is _Families.IPV4:
        raise OSError(errno.EINVAL, f"noipv6 or ipv6only off, but {addr} is an IPv6 address")
    return _bind(socket.AF_INET6, (str(addr), port))


def _bind_device(name: str, port: int, families: _Families) -> socket.socket:
    """lwsws's `interface` may name a network interface: the wildcard, on that device only."""
    try:
        socket.if_nametoindex(name)
    except OSError as exc:
        raise OSError(exc.errno, f"no address or interface named {name!r}") from exc
    return _bind_any(port, families, device=name)


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


def _clone(sock: socket.socket) -> socket.socket:
    """Another SO_REUSEPORT socket on exactly the address of `sock` (its port too, when the
    config said 0): the kernel spreads new connections over the group by their addresses."""
    clone = socket.socket(sock.family, socket.SOCK_STREAM)
    try:
        clone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        clone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if sock.family == socket.AF_INET6:
            v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            clone.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        device = sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).rstrip(b"\0")
        if device:
            clone.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device)
        clone.bind(sock.getsockname())
        clone.listen(BACKLOG)
    except OSError:
        clone.close()
        raise
    return clone


class ListenerSet:
    """The root's open listeners, keyed by `VhostConfig.listen_key`.

    A TCP address gets one SO_REUSEPORT socket per worker slot, so the kernel balances
    connections over the workers (one shared socket lets whichever worker wakes first take
    a whole burst). Worker slot i of a generation of N takes sockets i, i+N, ...: every
    socket always has a worker, and the set only grows while the address stays, because
    closing a socket resets the connections queued on it. A unix socket has one path, so
    it stays one socket that every worker shares.
    """

    def __init__(self) -> None:
        self.sockets: dict[str, list[socket.socket]] = {}

    def ensure(self, vhosts: Iterable[VhostConfig], count: int = 1) -> None:
        """Bind what is missing, `count` sockets per TCP address at least; on failure close
        only what this call bound."""
        added: list[tuple[str, socket.socket]] = []
        try:
            for vhost in vhosts:
                key = vhost.listen_key
                if key not in self.sockets:
                    sock = bind_listener(vhost)
                    self.sockets[key] = [sock]
                    added.append((key, sock))
                    log.info("listening on %s", listener_address(sock))
                group = self.sockets[key]
                while len(group) < count and group[0].family != socket.AF_UNIX:
                    try:
                        group.append(_clone(group[0]))
                    except OSError as exc:
                        raise ListenerError(f"cannot listen on {key}: {exc.strerror}") from exc
                    added.append((key, group[-1]))
        except ListenerError:
            for key, sock in reversed(added):
                self.sockets[key].remove(sock)
                if not self.sockets[key]:
                    del self.sockets[key]
                sock.close()
            raise

    def for_slot(
        self, keys: Iterable[str], slot: int, count: int
    ) -> dict[str, list[socket.socket]]:
        """The sockets worker `slot` of a generation of `count` workers accepts on."""
        slots: dict[str, list[socket.socket]] = {}
        for key in keys:
            group = self.sockets[key]
            shared = len(group) == 1  # a unix socket, or a single worker
            slots[key] = [s for j, s in enumerate(group) if shared or j % count == slot]
        return slots

    def keep_only(self, keys: set[str]) -> None:
        for key in [k for k in self.sockets if k not in keys]:
            log.info("closing listener %s", key)
            for sock in self.sockets.pop(key):
                if sock.family == socket.AF_UNIX:
                    # Workers hold no path, only the fd: the name goes with the root's listener.
                    with contextlib.suppress(OSError):
                        os.unlink(sock.getsockname())
                sock.close()

    def close(self) -> None:
        self.keep_only(set())
