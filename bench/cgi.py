"""CGI: pyws and lighttpd's mod_cgi back to back on the seed's tiny script under ab.

    .venv/bin/python -m bench.cgi [--requests 2000] [--concurrency 20] [--rounds 5]
                                  [--workers CPUS]

Both servers run the same three-line shell script (lighttpd bug #2217, the seed of issue 4),
as `nobody` when started as root, and so does a third: the floor (bench/cgi_floor.py), the
least a uvloop CGI responder can do, as a yardstick for pyws's own cost. Each round runs
`ab -n N -c C` on each server in turn, lighttpd always in the middle, and reports
requests/s, failures, the longest request and CPU per request: the servers' own CPU plus
that of the scripts they reaped, shown apart (a forked script costs more than a vfork'ed
one), and what else the machine ran meanwhile. The ratios are the medians of each round's
own: its runs were seconds apart. Exit status 1 if a server did not answer correctly or ab
failed. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bench.peers import (
    REPO,
    LighttpdServer,
    PywsServer,
    Server,
    Session,
    Workspace,
    free_listener_port,
    wait_port,
)

SCRIPT = '#!/bin/sh\necho "Content-type: text/html"\necho ""\necho "Plain text cxx!"\n'
BODY = b"Plain text cxx!\n"
PATH = "/cgi-bin/test"
WARMUP_REQUESTS = 200
AB_TIMEOUT_SECS = 30  # ab -s: a lost response shows up as a failed run, not a hang
MAX_LATENCY_MS = 1000  # the goal's bound on the longest request
# A round is flagged when the rest of the machine took more than this share of what the
# server and its scripts did: its numbers say as much about the neighbours as the server.
DISTURBED = 0.1
_AB_FIELDS = {
    "rate": re.compile(rb"^Requests per second:\s+([\d.]+)", re.M),
    "complete": re.compile(rb"^Complete requests:\s+(\d+)", re.M),
    "failed": re.compile(rb"^Failed requests:\s+(\d+)", re.M),
    "non2xx": re.compile(rb"^Non-2xx responses:\s+(\d+)", re.M),
    "longest": re.compile(rb"^\s*100%\s+(\d+) \(longest request\)", re.M),
}


@dataclass(frozen=True)
class Sample:
    rate: float  # requests per second
    failures: int  # ab's failed and non-2xx responses, plus requests never completed
    longest_ms: int
    cpu_us: float  # server CPU, scripts included, per completed request
    scripts_us: float = 0.0  # the part of it the scripts took (reaped children)
    others_us: float = 0.0  # CPU of everything else but ab, and stolen time, per request
    error: str = ""  # ab itself failed: the numbers do not count


class PywsCGIServer(PywsServer):
    """pyws with one cgi:// mount on the script (`count-threads` workers)."""

    def __init__(self, ws: Workspace, port: int, workers: int, program: str) -> None:
        super().__init__(ws, port, workers)
        mount = {"mountpoint": PATH, "origin": f"cgi://{program}"}
        listener = {"name": "localhost", "port": str(port), "interface": "127.0.0.1"}
        conf = {
            "global": {"count-threads": str(workers)},
            "vhosts": [{**listener, "mounts": [mount]}],
        }
        (self.conf / "conf").write_text(json.dumps(conf))


class FloorServer(Server):
    """`python -m bench.cgi_floor PORT PROGRAM PROCESSES`: the floor, on a reserved port."""

    name = "floor"

    def __init__(self, ws: Workspace, port: int, processes: int, program: str) -> None:
        super().__init__()
        self.ws = ws
        self.port = port
        self.processes = processes
        self.program = program

    def start(self) -> None:
        argv = [sys.executable, "-m", "bench.cgi_floor", str(self.port), self.program]
        argv.append(str(self.processes))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self._spawn(argv, self.ws.base / "floor.log", env)
        wait_port(self.port)


def ab_command(requests: int, concurrency: int, url: str) -> list[str]:
    # -r: a receive error counts as a failed request instead of ending the run.
    timeout = str(AB_TIMEOUT_SECS)
    return ["ab", "-q", "-r", "-s", timeout, "-n", str(requests), "-c", str(concurrency), url]


def _machine() -> tuple[float, float]:
    """(CPU seconds the machine has been busy, seconds stolen from it) since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


def _ab_cpu() -> float:
    """CPU seconds of this process's reaped children: ab's, once it has exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(server: Server, argv: list[str], requests: int) -> Sample:
    before, machine_before, ab_before = server.cpu_parts(), _machine(), _ab_cpu()
    try:
        done = subprocess.run(argv, capture_output=True, timeout=requests * 2 + 60)
    except subprocess.TimeoutExpired:
        return Sample(0.0, requests, 0, 0.0, error="ab did not finish")
    after, machine_after, ab_after = server.cpu_parts(), _machine(), _ab_cpu()
    spent, scripts = sum(after) - sum(before), after[1] - before[1]
    busy, stolen = (b - a for a, b in zip(machine_before, machine_after, strict=True))
    others = busy - spent - (ab_after - ab_before) + stolen
    values = {}
    for key, pattern in _AB_FIELDS.items():
        found = pattern.search(done.stdout)
        values[key] = float(found.group(1)) if found else 0.0
    complete = int(values["complete"])
    if done.returncode != 0 or not complete:
        why = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        failures = requests - complete
        return Sample(0.0, failures, 0, 0.0, error=f"ab exit {done.returncode}: {why[-1:]}")
    failures = int(values["failed"] + values["non2xx"]) + requests - complete
    per_request = 1e6 / complete
    return Sample(
        values["rate"],
        failures,
        int(values["longest"]),
        spent * per_request,
        scripts * per_request,
        max(others, 0.0) * per_request,
    )


def verify(name: str, server: Server) -> str:
    """The server must answer the script's exact output before it is measured."""
    try:
        with urllib.request.urlopen(url_of(server), timeout=10) as resp:
            if resp.status == 200 and resp.read() == BODY:
                return ""
            return f"{name}: GET {PATH} gave {resp.status}, not the script's output"
    except OSError as exc:
        return f"{name}: GET {PATH} failed: {exc!r}"


def url_of(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}{PATH}"


@contextlib.contextmanager
def running(ws: Workspace, workers: int) -> Iterator[dict[str, Server]]:
    """pyws and lighttpd on reserved ports; each stopped by its process group."""
    program = ws.docroot / PATH.lstrip("/")
    program.parent.mkdir(mode=0o755)
    program.write_text(SCRIPT)
    program.chmod(0o755)
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        pyws_port = stack.enter_context(free_listener_port()).getsockname()[1]
        lighttpd_sock = stack.enter_context(free_listener_port())
        floor_port = stack.enter_context(free_listener_port()).getsockname()[1]
        for server in (
            PywsCGIServer(ws, pyws_port, workers, str(program)),
            LighttpdServer(ws, lighttpd_sock),
            FloorServer(ws, floor_port, workers, str(program)),
        ):
            server.start_in(stack)
            servers[server.name] = server
        print(f"lighttpd config ({ws.base / 'lighttpd.conf'}):")
        print("    " + (ws.base / "lighttpd.conf").read_text().strip().replace("\n", "\n    "))
        yield servers


def run(args: argparse.Namespace, ws: Workspace) -> tuple[dict[str, list[Sample]], list[str]]:
    samples: dict[str, list[Sample]] = {}
    problems: list[str] = []
    with running(ws, args.workers) as servers:
        for name, server in servers.items():
            problem = verify(name, server)
            if problem:
                problems.append(problem)
                return samples, problems
            subprocess.run(
                ab_command(WARMUP_REQUESTS, args.concurrency, url_of(server)),
                check=False,
                capture_output=True,
                timeout=120,
            )
        for server in servers.values():
            print(f"$ {shlex.join(ab_command(args.requests, args.concurrency, url_of(server)))}")
        names = list(servers)
        for round_ in range(1, args.rounds + 1):
            # Every other round backwards: lighttpd stays in the middle, next to both.
            for name in names if round_ % 2 else names[::-1]:
                server = servers[name]
                argv = ab_command(args.requests, args.concurrency, url_of(server))
                sample = measure(server, argv, args.requests)
                samples.setdefault(name, []).append(sample)
                if sample.error:
                    problems.append(f"{name}, round {round_}: {sample.error}")
                print(
                    f"  round {round_} {name:<8} {sample.rate:>8,.0f} req/s"
                    f" {sample.failures:>5} failed  longest {sample.longest_ms:>5} ms"
                    f" {sample.cpu_us:>8.0f} us CPU/req ({sample.scripts_us:.0f} scripts)"
                    f"  others {sample.others_us:.0f}"
                    + ("  (disturbed)" if sample.others_us > DISTURBED * sample.cpu_us else "")
                )
    return samples, problems


def report(samples: dict[str, list[Sample]], rounds: int) -> None:
    noisy = " (one round: a smoke run, not a measurement)" if rounds == 1 else ""
    print(f"\n== results: median (min-max) over {rounds} round(s){noisy} ==")
    print(
        f"  {'server':<9} {'req/s':>8}  {'min-max':<13} {'failed':>6}  longest  CPU us/req"
        "  (own  scripts)  others"
    )
    for name, runs in samples.items():
        rates = [s.rate for s in runs]
        span = f"{min(rates):,.0f}-{max(rates):,.0f}"
        failed = sum(s.failures for s in runs)
        longest = max(s.longest_ms for s in runs)
        cpu = statistics.median(s.cpu_us for s in runs)
        scripts = statistics.median(s.scripts_us for s in runs)
        own = statistics.median(s.cpu_us - s.scripts_us for s in runs)  # per round, then median
        others = statistics.median(s.others_us for s in runs)
        rate = statistics.median(rates)
        print(
            f"  {name:<9} {rate:>8,.0f}  {span:<13} {failed:>6} {longest:>5} ms {cpu:>10.0f}"
            f"  ({own:>4.0f} {scripts:>8.0f}) {others:>7.0f}"
        )
    mine, theirs, floor = samples.get("pyws"), samples.get("lighttpd"), samples.get("floor")
    if floor and theirs and mine:
        print(f"  floor/lighttpd: {_ratio(floor, theirs)}   pyws/floor: {_ratio(mine, floor)}")
    if mine and theirs:
        goal(mine, theirs)


def paired(a: list[Sample], b: list[Sample], rate: bool = True) -> list[float]:
    """a/b in each round: requests per second, or (rate=False) b's CPU per request over a's."""
    if rate:
        return [x.rate / y.rate for x, y in zip(a, b, strict=True) if y.rate]
    return [y.cpu_us / x.cpu_us for x, y in zip(a, b, strict=True) if x.cpu_us]


def _ratio(a: list[Sample], b: list[Sample]) -> str:
    ratios = paired(a, b)
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def goal(mine: list[Sample], theirs: list[Sample]) -> None:
    ratios, by_cpu = paired(mine, theirs), paired(mine, theirs, rate=False)
    ratio = statistics.median(ratios) if ratios else 0.0
    cpu = statistics.median(by_cpu) if by_cpu else 0.0
    of_medians = statistics.median(s.rate for s in mine) / statistics.median(s.rate for s in theirs)
    print(
        f"  pyws/lighttpd: {_ratio(mine, theirs)}, of medians {of_medians:.2f},"
        f" by CPU per request {cpu:.2f}"
    )
    failed = sum(s.failures for s in mine)
    longest = max(s.longest_ms for s in mine)
    met = ratio >= 1.0 and failed == 0 and longest < MAX_LATENCY_MS
    print("\n== goal (issue 4) ==")
    print(
        f"{'PASS' if met else 'MISS'}  pyws >= 1.0x lighttpd req/s with 0 failures and longest"
        f" request < {MAX_LATENCY_MS} ms: ratio {ratio:.2f}, {failed} failed, longest {longest} ms"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="ab -n, per run")
    parser.add_argument("--concurrency", type=int, default=20, help="ab -c")
    parser.add_argument("--rounds", type=int, default=5, help="runs per server, taking turns")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="pyws count-threads, and the floor's processes (default: one per CPU)",
    )
    args = parser.parse_args(argv)
    if min(args.requests, args.concurrency, args.rounds, args.workers) < 1:
        parser.error("every option must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"{args.rounds} round(s) of ab -n {args.requests} -c {args.concurrency} per server")
    session = Session()
    try:
        samples, problems = run(args, session.ws)
    finally:
        session.ws.cleanup()
    report(samples, args.rounds)
    return session.end(problems)


if __name__ == "__main__":
    sys.exit(main())
