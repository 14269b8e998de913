"""Static files: pyws, nginx and uvicorn back to back under wrk and ab, with ratios and goals.

    .venv/bin/python -m bench.static [--duration 5] [--rounds 3] [--connections 100]
                                     [--threads 1] [--big-threads 2] [--workers 1,2]
                                     [--churn-requests 20000]
                                     [--only 1k|1m|churn]

Cases: a 1 KB file with keep-alive (wrk) at each worker count; a 1 MiB file with keep-alive
(wrk, MB/s, pyws and nginx only) and connection churn without keep-alive (ab -c 50), both at the
first worker count. Each case runs `rounds` times, the servers taking turns (ABCABC...), and
reports the median and min-max. Exit status 1 if any server returned an error. See README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers import (
    BIG_FILE,
    SMALL_FILE,
    NginxServer,
    PywsServer,
    Server,
    Session,
    UvicornServer,
    Workspace,
    free_listener_port,
)

KINDS = ("1k", "1m", "churn")
CHURN_CONCURRENCY = 50
CHURN_CAP_SECS = 20  # ab -t: a slow server ends its churn run early rather than late
WARMUP_SECS = 1  # per server and worker count: first requests fill caches, page in code
START_SECS = 4.0  # a rough cost of starting and stopping the three servers, for the estimate
# Goals of issue 3, as ratios of medians from the same run: (case kind, peer, pyws/peer >=).
GOALS = (
    ("1k", "uvicorn", 2.0),
    ("1k", "nginx", 0.7),
    ("1m", "nginx", 1.0),
    ("churn", "nginx", 0.6),
)
# wrk's own summary is for people; done() runs once at the end and gives us exact counters.
REPORT_LUA = """done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format("pyws-bench %d %d %d %d %d %d %d %d\\n", s.requests, s.bytes,
    s.duration, e.connect, e.read, e.write, e.status, e.timeout))
end
"""
_WRK_LINE = re.compile(rb"^pyws-bench (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", re.M)
_AB_FIELDS = {
    "rate": re.compile(rb"^Requests per second:\s+([\d.]+)", re.M),
    "complete": re.compile(rb"^Complete requests:\s+(\d+)", re.M),
    "failed": re.compile(rb"^Failed requests:\s+(\d+)", re.M),
    "non2xx": re.compile(rb"^Non-2xx responses:\s+(\d+)", re.M),
}


@dataclass(frozen=True)
class Case:
    kind: str  # one of KINDS
    workers: int

    @property
    def title(self) -> str:
        what = {"1k": "1 KB keep-alive", "1m": "1 MiB keep-alive", "churn": "1 KB no keep-alive"}
        return f"{what[self.kind]}, {self.workers} worker{'s' if self.workers > 1 else ''}"

    @property
    def path(self) -> str:
        return "/" + (BIG_FILE if self.kind == "1m" else SMALL_FILE)

    @property
    def servers(self) -> tuple[str, ...]:
        return ("pyws", "nginx") if self.kind == "1m" else ("pyws", "nginx", "uvicorn")

    @property
    def unit(self) -> str:
        return "MB/s" if self.kind == "1m" else "req/s"


@dataclass(frozen=True)
class Sample:
    rate: float  # in the case's unit
    errors: int
    detail: str = ""  # what the errors were
    requests: int = 0
    cpu_us: float = 0.0  # the server's CPU time (user + system) per request, in microseconds


@dataclass
class Results:
    samples: dict[tuple[Case, str], list[Sample]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, case: Case, server: str, sample: Sample, round_: int) -> None:
        self.samples.setdefault((case, server), []).append(sample)
        if sample.errors:
            self.problems.append(f"{server}, {case.title}, round {round_}: {sample.detail}")

    def median(self, case: Case, server: str, cpu: bool = False) -> float | None:
        samples = self.samples.get((case, server))
        if not samples:
            return None
        return statistics.median(s.cpu_us if cpu else s.rate for s in samples)


# -- load generators ------------------------------------------------------------------------


def wrk_command(
    args: argparse.Namespace, lua: Path, url: str, secs: int, threads: int | None = None
) -> list[str]:
    conns, threads = f"-c{args.connections}", threads or args.threads
    return ["wrk", f"-t{threads}", conns, f"-d{secs}s", "-s", str(lua), url]


def ab_command(args: argparse.Namespace, url: str) -> list[str]:
    # -t before -n: -t alone implies -n 50000, and -n after it sets the count back; -r counts
    # receive errors as failed requests instead of aborting the run.
    cap, count = str(CHURN_CAP_SECS), str(args.churn_requests)
    return ["ab", "-q", "-r", "-t", cap, "-n", count, "-c", str(CHURN_CONCURRENCY), url]


def run_tool(argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return -1, exc.stdout or b"", b"timed out after %ds" % timeout
    return done.returncode, done.stdout, done.stderr


def parse_wrk(rc: int, out: bytes, err: bytes, case: Case) -> Sample:
    found = _WRK_LINE.search(out)
    if rc != 0 or found is None:
        return Sample(0.0, 1, f"wrk failed (exit {rc}): {err.decode(errors='replace').strip()}")
    requests, size, micros, connect, read, write, status, timeout = map(int, found.groups())
    secs = max(micros, 1) / 1e6
    rate = size / secs / 1e6 if case.unit == "MB/s" else requests / secs
    errors = connect + read + write + status + timeout
    detail = (
        f"{status} responses >= 400, socket errors: connect {connect}, read {read}, "
        f"write {write}, timeout {timeout}"
    )
    if requests and size < requests * (1024 if case.kind == "1k" else 1 << 20):
        errors += 1  # wrk counts 3xx as fine: short responses mean something else answered
        detail += f"; {size} bytes for {requests} responses is less than the file"
    return Sample(rate, errors, detail if errors else "", requests)


def parse_ab(rc: int, out: bytes, err: bytes) -> Sample:
    values = {}
    for key, pattern in _AB_FIELDS.items():
        found = pattern.search(out)
        values[key] = float(found.group(1)) if found else 0.0
    if rc != 0 or not values["complete"]:
        return Sample(0.0, 1, f"ab failed (exit {rc}): {err.decode(errors='replace').strip()}")
    errors = int(values["failed"] + values["non2xx"])
    detail = f"{values['failed']:.0f} failed, {values['non2xx']:.0f} non-2xx responses"
    return Sample(values["rate"], errors, detail if errors else "", int(values["complete"]))


def load_command(args: argparse.Namespace, lua: Path, case: Case, url: str) -> list[str]:
    if case.kind == "churn":
        return ab_command(args, url)
    # One wrk thread reads 1 MiB bodies at about 3 GB/s here, at 100% of its core: with it,
    # both servers run at the client's rate and the case compares nothing.
    threads = args.big_threads if case.kind == "1m" else args.threads
    return wrk_command(args, lua, url, args.duration, threads)


def measure(args: argparse.Namespace, lua: Path, case: Case, server: Server) -> Sample:
    argv = load_command(args, lua, case, url_of(server, case.path))
    before = server.cpu_seconds()
    if case.kind == "churn":
        sample = parse_ab(*run_tool(argv, CHURN_CAP_SECS + 30))
    else:
        sample = parse_wrk(*run_tool(argv, args.duration + 30), case)
    spent = server.cpu_seconds() - before
    if not sample.requests:
        return sample
    return dataclasses.replace(sample, cpu_us=spent / sample.requests * 1e6)


# -- servers --------------------------------------------------------------------------------


def url_of(server: Server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


@contextlib.contextmanager
def running(ws: Workspace, workers: int, names: Sequence[str]) -> Iterator[dict[str, Server]]:
    """Start the named servers with `workers` workers each; stop each by its process group."""
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for name in names:
            server: Server
            if name == "uvicorn":
                server = UvicornServer(ws, workers)
            else:
                cls = PywsServer if name == "pyws" else NginxServer
                server = cls(
                    ws, stack.enter_context(free_listener_port()).getsockname()[1], workers
                )
            server.start_in(stack)
            servers[name] = server
        yield servers


def verify(ws: Workspace, name: str, server: Server) -> list[str]:
    """Every server must answer 200 with the file's exact bytes before it is measured."""
    problems = []
    for path in (SMALL_FILE, BIG_FILE):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", "/" + path)
            resp = conn.getresponse()
            same = resp.status == 200 and resp.read() == (ws.docroot / path).read_bytes()
            if not same:
                problems.append(f"{name}: GET /{path} did not return the file ({resp.status})")
        except (OSError, http.client.HTTPException) as exc:
            problems.append(f"{name}: GET /{path} failed: {exc!r}")
        finally:
            conn.close()
    return problems


def run_phase(
    args: argparse.Namespace, ws: Workspace, lua: Path, cases: list[Case], results: Results
) -> None:
    """All cases of one worker count, on one set of servers (idle ones cost no CPU)."""
    names = [n for n in ("pyws", "nginx", "uvicorn") if any(n in c.servers for c in cases)]
    with running(ws, cases[0].workers, names) as servers:
        for name, server in servers.items():
            results.problems += verify(ws, name, server)
            run_tool(wrk_command(args, lua, url_of(server, "/" + SMALL_FILE), WARMUP_SECS), 30)
        for case in cases:
            run_case(args, lua, case, servers, results)


def run_case(
    args: argparse.Namespace,
    lua: Path,
    case: Case,
    servers: dict[str, Server],
    results: Results,
) -> None:
    """`rounds` runs of `case` on each of its servers, the servers taking turns."""
    print(f"\n{case.title}:")
    for name in case.servers:
        print("$ " + shlex.join(load_command(args, lua, case, url_of(servers[name], case.path))))
    for round_ in range(1, args.rounds + 1):
        for name in case.servers:
            sample = measure(args, lua, case, servers[name])
            results.add(case, name, sample, round_)
            flag = f"  ERRORS: {sample.detail}" if sample.errors else ""
            rate = f"{sample.rate:>12,.0f} {case.unit}"
            print(f"  round {round_} {name:<8} {rate} {sample.cpu_us:7.1f} us CPU/req{flag}")


# -- the report -----------------------------------------------------------------------------


def cpu_ratio(results: Results, case: Case, peer: str) -> float | None:
    """How many times the CPU pyws spends per request the peer spends: >1 is pyws ahead."""
    mine, theirs = results.median(case, "pyws", cpu=True), results.median(case, peer, cpu=True)
    return theirs / mine if mine and theirs else None


def print_results(cases: list[Case], results: Results, rounds: int) -> None:
    noisy = " (one round: a smoke run, not a measurement)" if rounds == 1 else ""
    print(f"\n== results: median (min-max) over {rounds} round(s){noisy} ==")
    for case in cases:
        print(f"{case.title}\n  {'server':<8} {case.unit:>10}  {'min-max':<17} {'CPU us/req':>10}")
        for name in case.servers:
            samples = results.samples.get((case, name), [])
            if samples:
                rates = [s.rate for s in samples]
                span = f"{min(rates):,.0f}-{max(rates):,.0f}"
                cpu = statistics.median(s.cpu_us for s in samples)
                print(f"  {name:<8} {statistics.median(rates):>10,.0f}  {span:<17} {cpu:>10.1f}")
        pyws = results.median(case, "pyws")
        for peer in case.servers[1:]:
            other, by_cpu = results.median(case, peer), cpu_ratio(results, case, peer)
            if pyws is not None and other and by_cpu:
                print(f"  pyws/{peer}: {pyws / other:.2f}, by CPU per request {by_cpu:.2f}")


def print_goals(cases: list[Case], results: Results) -> None:
    print("\n== goals (issue 3): ratios of medians from this run ==")
    for kind, peer, target in GOALS:
        for case in (c for c in cases if c.kind == kind):
            pyws, other = results.median(case, "pyws"), results.median(case, peer)
            if pyws is None or not other:
                continue
            ratio, by_cpu = pyws / other, cpu_ratio(results, case, peer) or 0.0
            verdict = "PASS" if ratio >= target else "MISS"
            print(
                f"{verdict}  {case.title}: pyws/{peer} {ratio:.2f} (goal >= {target}; "
                f"by CPU per request {by_cpu:.2f})"
            )


def plan(args: argparse.Namespace) -> list[Case]:
    kinds = [args.only] if args.only else list(KINDS)
    cases = []
    for workers in args.workers:
        cases += [Case(k, workers) for k in kinds if k == "1k" or workers == args.workers[0]]
    return cases


def estimate(args: argparse.Namespace, cases: list[Case]) -> tuple[float, float]:
    """(a likely duration, an upper bound from the tools' own time limits) in seconds."""
    phases = len({c.workers for c in cases})
    likely = bound = phases * (START_SECS + 3 * (WARMUP_SECS + 0.5))
    for case in cases:
        runs = args.rounds * len(case.servers)
        if case.kind == "churn":
            likely += runs * (args.churn_requests / 10_000 + 0.5)
            bound += runs * (CHURN_CAP_SECS + 1)
        else:
            likely += runs * (args.duration + 0.5)
            bound += runs * (args.duration + 1)
    return likely, bound + phases * 3 * 30  # plus a slow start and stop per server


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and case")
    parser.add_argument("--connections", type=int, default=100, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--big-threads", type=int, default=2, help="wrk threads for the 1 MiB case")
    parser.add_argument("--churn-requests", type=int, default=20_000, help="ab -n")
    parser.add_argument("--only", choices=KINDS, help="run one case kind only")
    parser.add_argument(
        "--workers",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1, 2],
        help="worker counts for the 1 KB case, e.g. 1,2 (1m and churn use the first)",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.rounds < 1 or any(w < 1 for w in args.workers):
        parser.error("--duration, --rounds and --workers must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = plan(args)
    likely, bound = estimate(args, cases)
    print(
        f"{len(cases)} case(s), {args.rounds} round(s): about {likely:.0f} s, at most {bound:.0f} s"
    )
    session = Session()
    ws = session.ws
    results = Results()
    try:
        lua = ws.base / "report.lua"
        lua.write_text(REPORT_LUA)
        for workers in dict.fromkeys(c.workers for c in cases):
            print(f"\n-- servers with {workers} worker(s) --")
            run_phase(args, ws, lua, [c for c in cases if c.workers == workers], results)
    finally:
        ws.cleanup()
    print_results(cases, results, args.rounds)
    print_goals(cases, results)
    return session.end(results.problems)


if __name__ == "__main__":
    sys.exit(main())
