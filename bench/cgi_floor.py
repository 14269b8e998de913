"""The floor of bench/cgi.py: the least a CGI server on uvloop can do per request.

    python -m bench.cgi_floor PORT PROGRAM [PROCESSES]

Not a server to use: it is a yardstick for what pyws's own Python costs. It parses the
request with httptools and posix_spawns PROGRAM with a minimal environment, stdin on
/dev/null, stdout on a pipe and stderr on its own. Its only header handling is to split
the script's header block from the body, and it answers HTTP/1.0 with `Connection: close`.
It reaps the script with one waitpid at stdout's EOF, or on a pidfd if it is still
running. No timeouts, no logging, no keep-alive, no request bodies: everything pyws does
beyond this is what pyws's extra CPU per request pays for.

PROCESSES (default 1) processes each bind PORT with SO_REUSEPORT, as pyws's workers do.
Started as root, each runs as `nobody`, like pyws workers and lighttpd in the bench.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import sys
from typing import cast

import httptools
import uvloop

RESPONSE_HEAD = b"HTTP/1.0 200 OK\r\nConnection: close\r\n"


class FloorProtocol(asyncio.Protocol):
    def __init__(self, program: str, null: int) -> None:
        self.program = program
        self.null = null
        self.parser = httptools.HttpRequestParser(self)
        self.target = b""
        self.transport: asyncio.Transport | None = None
        self.out = -1
        self.pid = 0
        self.output = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_message_complete(self) -> None:
        env = {
            b"GATEWAY_INTERFACE": b"CGI/1.1",
            b"REQUEST_METHOD": self.parser.get_method(),
            b"REQUEST_URI": self.target,
            b"PATH": b"/usr/bin:/bin",
        }
        out_r, out_w = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, self.null, 0), (os.POSIX_SPAWN_DUP2, out_w, 1)]
        try:
            self.pid = os.posix_spawn(self.program, [self.program], env, file_actions=actions)
        finally:
            os.close(out_w)
        self.out = out_r
        asyncio.get_running_loop().add_reader(out_r, self.readable)

    def readable(self) -> None:
        data = os.read(self.out, 65536)
        if data:
            self.output += data
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.out)
        os.close(self.out)
        head, _, body = bytes(self.output).partition(b"\n\n")
        assert self.transport is not None
        self.transport.write(RESPONSE_HEAD + head.replace(b"\n", b"\r\n") + b"\r\n\r\n" + body)
        self.transport.close()
        if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            pidfd = os.pidfd_open(self.pid)
            loop.add_reader(pidfd, self.exited, pidfd)

    def exited(self, pidfd: int) -> None:
        asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        os.waitpid(self.pid, 0)


async def serve(sock: socket.socket, program: str) -> None:
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: FloorProtocol(program, null), sock=sock, backlog=socket.SOMAXCONN
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    port, program = int(argv[0]), argv[1]
    processes = int(argv[2]) if len(argv) > 2 else 1
    for n in range(processes):
        if n + 1 < processes and os.fork() != 0:
            continue  # the parent goes on to bind and serve too
        break
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    uvloop.run(serve(sock, program))


if __name__ == "__main__":
    main(sys.argv[1:])
