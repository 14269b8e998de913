"""WebSockets: pyws's echo path against websockets and aiohttp echo servers, back to back.

    .venv/bin/python -m bench.ws [--clients 50] [--round-trips 2000] [--rounds 3] [--idle 10000]

Speed: C clients each send R masked 32-byte text messages, one at a time, and wait for each
echo; messages/s is C*R over the time from the first send to the last echo. Memory: the PSS
of the worker with N idle (upgraded, silent) connections, less its PSS before, per
connection. pyws echoes through `lws-mirror-protocol` with one `?mirror=` group per client
(`count-threads` 1); the peers run on uvloop. Exit status 1 if any echo was wrong or missing.
See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import os
import resource
import statistics
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

import psutil
import uvloop

from bench.peers import Session, Workspace, free_listener_port
from bench.ws_servers import EchoPeer, PywsWSServer, WSServer

PAYLOAD = b"pyws bench: thirty-two bytes ..."  # 32 bytes: the message size
ECHO = b"\x81" + bytes([len(PAYLOAD)]) + PAYLOAD  # the unmasked text frame every server sends
BATCH = 250  # connections opened at once: below every server's listen backlog
RUN_TIMEOUT_SECS = 120  # one speed or idle run; a stuck server fails the run, not the bench
SETTLE_SECS = 1.0  # after the last upgrade, before reading the PSS
GOAL_RATIO = 1.0  # pyws msg/s over aiohttp's
GOAL_IDLE_BYTES = 8 * 1024


T = TypeVar("T")


class BenchError(Exception):
    """A server answered wrongly: the run's numbers do not count."""


# -- the client ----------------------------------------------------------------------------------


class BenchClient(asyncio.Protocol):
    """One raw WebSocket client: the upgrade, then `round_trips` echoes, one at a time.

    Frames are built once (a fixed mask per client), so the client costs little per message.
    """

    transport: asyncio.Transport

    def __init__(self, request: bytes) -> None:
        self.loop = asyncio.get_running_loop()
        self.request = request
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(PAYLOAD))
        self.frame = b"\x81" + bytes([0x80 | len(PAYLOAD)]) + mask + masked  # RFC 6455 §5.2
        self.buffer = b""
        self.upgraded: asyncio.Future[None] = self.loop.create_future()
        self.finished: asyncio.Future[None] | None = None  # from start() on
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.error: str | None = None
        self.closing = False
        self.remaining = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def start(self, round_trips: int) -> asyncio.Future[None]:
        self.finished = self.loop.create_future()
        self.remaining = round_trips
        self.transport.write(self.frame)
        return self.finished

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self._read_head(data)
            return
        buffer = self.buffer + data if self.buffer else data
        while len(buffer) >= len(ECHO):
            if buffer[: len(ECHO)] != ECHO or self.finished is None or self.remaining <= 0:
                self._fail(f"unexpected bytes {buffer[:40]!r}")
                return
            buffer = buffer[len(ECHO) :]
            self.remaining -= 1
            if self.remaining:
                self.transport.write(self.frame)
            else:
                self.finished.set_result(None)
        self.buffer = buffer

    def _read_head(self, data: bytes) -> None:
        self.buffer += data
        head, found, rest = self.buffer.partition(b"\r\n\r\n")
        if not found:
            return
        if not head.startswith(b"HTTP/1.1 101 "):
            self._fail(f"upgrade refused: {head[:80]!r}")
            return
        self.buffer = rest
        self.upgraded.set_result(None)

    def close(self) -> None:
        self.closing = True
        self.transport.close()

    def _fail(self, reason: str) -> None:
        self.error = self.error or reason
        for future in (self.upgraded, self.finished):
            if future is not None and not future.done():
                future.set_exception(BenchError(reason))
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self._fail(f"connection lost ({exc or 'closed by the server'})")
        self.lost.set_result(None)


def upgrade_request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def open_clients(server: WSServer, count: int, idle: bool) -> list[BenchClient]:
    """`count` upgraded connections, opened `BATCH` at a time."""
    loop = asyncio.get_running_loop()
    clients: list[BenchClient] = []
    for first in range(0, count, BATCH):
        batch = []
        for n in range(first, min(first + BATCH, count)):
            request = upgrade_request(server.port, server.path(None if idle else n))
            batch.append(
                loop.create_connection(partial(BenchClient, request), "127.0.0.1", server.port)
            )
        opened = [client for _, client in await asyncio.gather(*batch)]
        clients += opened
        await asyncio.gather(*(c.upgraded for c in opened))
    return clients


async def close_clients(clients: list[BenchClient]) -> None:
    for client in clients:
        client.close()
    await asyncio.gather(*(c.lost for c in clients))


# -- the measurements --------------------------------------------------------------------------


@dataclass(frozen=True)
class Speed:
    rate: float  # messages echoed per second
    cpu_us: float  # the server's CPU per message
    client_cpu: float  # this process's CPU over the wall time: near 1.0, the client was the limit


@dataclass(frozen=True)
class Idle:
    before: int  # PSS of the server's worker(s), bytes
    after: int
    connections: int

    @property
    def per_connection(self) -> float:
        return (self.after - self.before) / self.connections


async def measure_speed(server: WSServer, clients: int, round_trips: int) -> Speed:
    async with asyncio.timeout(RUN_TIMEOUT_SECS):
        conns = await open_clients(server, clients, idle=False)
        try:
            cpu, own, started = server.cpu_seconds(), time.process_time(), time.perf_counter()
            await asyncio.gather(*(c.start(round_trips) for c in conns))
            elapsed = time.perf_counter() - started
            cpu, own = server.cpu_seconds() - cpu, time.process_time() - own
        finally:
            await close_clients(conns)
    messages = clients * round_trips
    return Speed(messages / elapsed, cpu * 1e6 / messages, own / elapsed)


async def measure_idle(server: WSServer, count: int) -> Idle:
    pids = server.worker_pids()
    before = pss(pids)
    async with asyncio.timeout(RUN_TIMEOUT_SECS):
        conns = await open_clients(server, count, idle=True)
        try:
            await asyncio.sleep(SETTLE_SECS)  # let the server finish what the upgrades began
            after = pss(pids)
            lost = [c.error for c in conns if c.error]
            if lost:
                raise BenchError(f"{len(lost)} idle connections failed: {lost[0]}")
        finally:
            await close_clients(conns)
    return Idle(before, after, count)


@dataclass
class Results:
    speeds: dict[str, list[Speed]]
    idle: dict[str, Idle]
    problems: list[str]


def pss(pids: list[int]) -> int:
    """Proportional set size: shared pages count once over the processes sharing them."""
    return sum(psutil.Process(pid).memory_full_info().pss for pid in pids)


async def run_all(servers: list[WSServer], args: argparse.Namespace) -> Results:
    results = Results({s.name: [] for s in servers}, {}, [])
    for server in servers:  # warm-up, not counted: first-use imports, caches, allocations
        await attempt(results, f"{server.name} warm-up", measure_speed(server, args.clients, 200))
    for number in range(1, args.rounds + 1):
        for server in servers:
            label = f"{server.name} round {number}"
            speed = await attempt(results, label, measure_speed(server, *args.load))
            if speed is not None:
                results.speeds[server.name].append(speed)
                print(
                    f"  {label:<20} {speed.rate:>10,.0f} msg/s {speed.cpu_us:>7.2f} us CPU/msg"
                    f"   client CPU {speed.client_cpu:.0%}",
                    flush=True,
                )
    for server in servers if args.idle else ():
        idle = await attempt(results, f"{server.name} idle", measure_idle(server, args.idle))
        if idle is not None:
            results.idle[server.name] = idle
    return results


async def attempt(results: Results, label: str, run: Coroutine[Any, Any, T]) -> T | None:
    try:
        return await run
    except (BenchError, TimeoutError, OSError) as exc:
        results.problems.append(f"{label}: {type(exc).__name__}: {exc}")
        print(f"  {label}: FAILED: {exc}", flush=True)
        return None


# -- the report ------------------------------------------------------------------------------------


def median(runs: list[Speed], field: str) -> float:
    return float(statistics.median(getattr(run, field) for run in runs))


def report(results: Results, args: argparse.Namespace) -> None:
    noisy = " (one round: a smoke run, not a measurement)" if args.rounds == 1 else ""
    print(f"\n== messages/s: median (min-max) over {args.rounds} round(s){noisy} ==")
    print(f"  {'server':<11} {'msg/s':>9}  {'min-max':<17} {'CPU us/msg':>10}  client CPU")
    for name, runs in results.speeds.items():
        if runs:
            span = f"{min(r.rate for r in runs):,.0f}-{max(r.rate for r in runs):,.0f}"
            print(
                f"  {name:<11} {median(runs, 'rate'):>9,.0f}  {span:<17}"
                f" {median(runs, 'cpu_us'):>10.2f}  {median(runs, 'client_cpu'):.0%}"
            )
    print(f"\n== {args.idle:,} idle connections: PSS of the worker ==")
    for name, idle in results.idle.items():
        print(
            f"  {name:<11} {idle.before / 2**20:>6.1f} MiB before, {idle.after / 2**20:>6.1f} MiB"
            f" after: {idle.per_connection / 1024:>6.2f} KiB per connection"
        )
    mine = results.speeds.get("pyws")
    print("\n== goals (issue 5) ==")
    for peer, runs in results.speeds.items():
        if mine and runs and peer != "pyws":
            ratio = median(mine, "rate") / median(runs, "rate")
            by_cpu = median(runs, "cpu_us") / median(mine, "cpu_us")
            verdict = ("PASS" if ratio >= GOAL_RATIO else "MISS") if peer == "aiohttp" else "    "
            print(f"{verdict}  pyws/{peer} msg/s {ratio:.2f} (by CPU per message {by_cpu:.2f})")
    if "pyws" in results.idle:
        per = results.idle["pyws"].per_connection
        verdict = "PASS" if per <= GOAL_IDLE_BYTES else "MISS"
        print(f"{verdict}  pyws per idle connection {per / 1024:.2f} KiB (goal: at most 8 KiB)")


# -- the command ---------------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    """Every idle connection is a descriptor here and one in the server (which inherits this
    limit); as root the hard limit may be raised too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = max(hard, needed) if os.geteuid() == 0 else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(needed, hard)), hard))
    if hard < needed:
        raise SystemExit(f"RLIMIT_NOFILE is {hard}, {needed} needed: lower --idle or raise it")


def run(args: argparse.Namespace, ws: Workspace) -> Results:
    reserved = [free_listener_port() for _ in args.servers]  # held until the servers bind
    servers: list[WSServer] = []
    try:
        for name, sock in zip(args.servers, reserved, strict=True):
            port = sock.getsockname()[1]
            server = PywsWSServer(ws, port) if name == "pyws" else EchoPeer(name, ws, port)
            servers.append(server)
            server.start()
            print(f"  {server.name}: {' '.join(server.argv)}")
        return uvloop.run(run_all(servers, args))
    finally:
        for sock in reserved:
            sock.close()
        for server in servers:
            server.stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent echo clients")
    parser.add_argument("--round-trips", type=int, default=2000, help="per client and run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server, taking turns")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections; 0: skip")
    parser.add_argument("--servers", default="pyws,websockets,aiohttp", help="which, in order")
    args = parser.parse_args(argv)
    args.servers = args.servers.split(",")
    if set(args.servers) - {"pyws", "websockets", "aiohttp"}:
        parser.error("--servers: pyws, websockets and aiohttp only")
    if min(args.clients, args.round_trips, args.rounds) < 1 or args.idle < 0:
        parser.error("counts must be at least 1 (--idle at least 0)")
    args.load = (args.clients, args.round_trips)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if "aiohttp" in args.servers and importlib.util.find_spec("aiohttp") is None:
        raise SystemExit("aiohttp is not installed: run `make bench-tools`")
    raise_fd_limit(args.idle + 1024)
    print(
        f"{args.rounds} round(s) of {args.clients} clients x {args.round_trips} round trips of"
        f" {len(PAYLOAD)} bytes; then {args.idle:,} idle connections per server"
    )
    session = Session()
    try:
        results = run(args, session.ws)
    finally:
        session.ws.cleanup()
    report(results, args)
    return session.end(results.problems)


if __name__ == "__main__":
    sys.exit(main())
