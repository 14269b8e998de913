"""Reload under load: pyws and nginx back to back, client errors per reload.

    .venv/bin/python -m bench.reload [--reloads 20] [--interval 0.5] [--threads 8]

For each server, first keep-alive clients, then `Connection: close` clients, with
a SIGHUP every `interval` seconds. Prints errors per reload for both, and pyws's
time from SIGHUP to the new generation being active (p50/p99). 127.0.0.1 only;
bounded by the reload count; every process is stopped by process group.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import threading
import time
from dataclasses import dataclass, field

from bench.peers import NginxServer, PywsServer, Server, Workspace, free_listener_port


@dataclass
class Tally:
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(port: int, keepalive: bool, stop: threading.Event, tally: Tally) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {} if keepalive else {"Connection": "close"}
    while not stop.is_set():
        try:
            conn.request("GET", "/index.html", headers=headers)
            resp = conn.getresponse()
            resp.read()
            error = None if resp.status == 200 else f"status {resp.status}"
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
            conn.close()
        if not keepalive:
            conn.close()
        with tally.lock:
            if error:
                tally.errors.append(error)
            else:
                tally.ok += 1
    conn.close()


def hup_to_active(server: PywsServer, sent: float, timeout: float = 30.0) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = server.last_reload()
        if result and result.get("ok") and result.get("covers", 0) >= sent:
            return float(result["at"]) - sent
        time.sleep(0.002)
    return None


def run_mode(
    server: Server, keepalive: bool, reloads: int, interval: float, threads: int
) -> tuple[Tally, list[float]]:
    tally, stop = Tally(), threading.Event()
    pool = [
        threading.Thread(target=client, args=(server_port(server), keepalive, stop, tally))
        for _ in range(threads)
    ]
    for t in pool:
        t.start()
    latencies: list[float] = []
    try:
        time.sleep(interval)
        for _ in range(reloads):
            sent = time.time()
            server.reload()
            if isinstance(server, PywsServer):
                took = hup_to_active(server, sent)
                if took is not None:
                    latencies.append(took)
            time.sleep(max(0.0, interval - (time.time() - sent)))
        time.sleep(interval)
    finally:
        stop.set()
        for t in pool:
            t.join(30)
    return tally, latencies


def server_port(server: Server) -> int:
    assert isinstance(server, PywsServer | NginxServer)
    return server.port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    ws = Workspace()
    rows: list[tuple[str, str, int, int, float]] = []
    latencies: list[float] = []
    try:
        for cls in (NginxServer, PywsServer):
            with free_listener_port() as reserved:
                server = cls(ws, reserved.getsockname()[1])
                server.start()
                try:
                    for keepalive in (True, False):
                        tally, lat = run_mode(
                            server, keepalive, args.reloads, args.interval, args.threads
                        )
                        latencies += lat
                        mode = "keep-alive" if keepalive else "close"
                        rows.append(
                            (
                                cls.name,
                                mode,
                                tally.ok,
                                len(tally.errors),
                                len(tally.errors) / args.reloads,
                            )
                        )
                finally:
                    server.stop()
    finally:
        ws.cleanup()
    print(f"{args.reloads} reloads every {args.interval}s, {args.threads} client threads")
    print(f"{'server':<7} {'mode':<11} {'requests':>9} {'errors':>7} {'errors/reload':>14}")
    for name, mode, ok, errors, per in rows:
        print(f"{name:<7} {mode:<11} {ok:>9} {errors:>7} {per:>14.2f}")
    if latencies:
        print(
            f"pyws HUP->active: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms over {len(latencies)} reloads"
        )


if __name__ == "__main__":
    main()
