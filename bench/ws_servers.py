"""The servers of bench/ws.py: pyws on its mirror echo path, and the websockets and aiohttp
echo servers it is measured against.

    python -m bench.ws_servers websockets|aiohttp PORT    # a peer's own process, on uvloop
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import uvloop

from bench.peers import BIN, REPO, PywsServer, Server, Workspace, wait_port


class PywsWSServer(PywsServer):
    """pyws with `lws-mirror-protocol` as the default protocol of its one vhost."""

    def __init__(self, ws: Workspace, port: int) -> None:
        super().__init__(ws, port, workers=1)
        vhost = {
            "name": "localhost",
            "port": str(port),
            "interface": "127.0.0.1",
            "ws-protocols": [{"lws-mirror-protocol": {"default": "1"}}],
            "mounts": [{"mountpoint": "/", "origin": f"file://{ws.docroot}"}],
        }
        conf = {"global": {"count-threads": "1"}, "vhosts": [vhost]}
        (self.conf / "conf").write_text(json.dumps(conf))

    def path(self, client: int | None) -> str:
        # A group of its own per client makes the mirror an echo; idle ones share the default.
        return "/" if client is None else f"/?mirror=c{client}"

    def worker_pids(self) -> list[int]:
        ctl = [str(BIN / "pyws-ctl"), "--pidfile", str(self.pidfile), "status", "--json"]
        out = subprocess.run(ctl, capture_output=True, text=True, timeout=30, check=True)
        return [pid for gen in json.loads(out.stdout)["generations"] for pid in gen["pids"]]


class EchoPeer(Server):
    """`python -m bench.ws_servers KIND PORT`: a websockets or aiohttp echo server, on uvloop."""

    def __init__(self, kind: str, ws: Workspace, port: int) -> None:
        super().__init__()
        self.name = kind
        self.ws = ws
        self.port = port

    def start(self) -> None:
        argv = [sys.executable, "-m", "bench.ws_servers", self.name, str(self.port)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self._spawn(argv, self.ws.base / f"{self.name}.log", env)
        wait_port(self.port)

    def path(self, client: int | None) -> str:
        return "/"

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid]


WSServer = PywsWSServer | EchoPeer


async def serve_websockets(port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    # No keepalive pings: the bench's clients never answer them, and pyws sends none either.
    async with serve(
        echo, "127.0.0.1", port, reuse_port=True, ping_interval=None, compression=None
    ) as server:
        await server.serve_forever()


async def serve_aiohttp(port: int) -> None:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024).start()
    await asyncio.Event().wait()


def main(argv: list[str]) -> int:
    kind, port = argv
    uvloop.run(serve_websockets(int(port)) if kind == "websockets" else serve_aiohttp(int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
