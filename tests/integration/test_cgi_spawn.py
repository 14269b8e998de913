"""spawn.py, both ways: the C build (_spawn.c, vfork) and the os.posix_spawn fallback must
start a script the same way, with real scripts, pipes and processes."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pyws.worker.cgi import spawn as spawn_module
from pyws.worker.cgi.spawn import Spawn, posix_spawn_script

c_spawn: Spawn | None
try:
    from pyws.worker.cgi._spawn import spawn as c_spawn
except ImportError:  # a pure-Python run (tools/native.py clean)
    c_spawn = None

IMPLEMENTATIONS = [
    pytest.param(c_spawn, id="c", marks=pytest.mark.skipif(c_spawn is None, reason="not built")),
    pytest.param(posix_spawn_script, id="posix_spawn"),
]
ENV = {b"PATH": b"/usr/bin:/bin", b"ODD": b"a=b c\xff"}
# What a script sees of itself, as JSON after a CGI header (see the file).
PROBE = (Path(__file__).resolve().parents[1] / "data" / "cgi" / "inspect").read_text()


@pytest.fixture(params=IMPLEMENTATIONS)
def spawn(request: pytest.FixtureRequest) -> Spawn:
    implementation: Spawn = request.param
    return implementation


@pytest.fixture
def null() -> Iterator[int]:
    fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def script(tmp_path: Path, text: str, name: str = "script") -> bytes:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o755)
    return bytes(path)


def finish(pid: int, out: int, stdin: int = -1, data: bytes = b"") -> tuple[bytes, int]:
    """Feed `stdin` its data and EOF; all of stdout, and the exit status once reaped."""
    if stdin >= 0:
        os.write(stdin, data)
        os.close(stdin)
    chunks = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            chunk = os.read(out, 65536)
        except BlockingIOError:  # our end is non-blocking
            time.sleep(0.002)
            continue
        if not chunk:
            break
        chunks.append(chunk)
    os.close(out)
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks), os.waitstatus_to_exitcode(status)


def open_fds() -> set[str]:
    """This process's open fds, without the one listdir() used."""
    return {fd for fd in os.listdir("/proc/self/fd") if os.path.exists("/proc/self/fd/" + fd)}


def test_the_script_has_its_pipes_session_and_directory(
    spawn: Spawn, tmp_path: Path, null: int
) -> None:
    program = script(tmp_path, PROBE)
    before = open_fds()
    # pytest's own inheritable fds reach the script too; a worker has none (every fd that
    # Python opens is close-on-exec, and tests/system/test_cgi.py checks the worker's).
    inherited = {fd for fd in before if int(fd) > 2 and os.get_inheritable(int(fd))}
    pid, out, stdin = spawn(program, {**ENV, b"PROBE_STDIN": b"1"}, b"/", -1, null)
    assert stdin >= 0 and not os.get_blocking(out) and not os.get_blocking(stdin)
    assert os.get_inheritable(out) is False and os.get_inheritable(stdin) is False
    output, code = finish(pid, out, stdin, b"request body")
    assert code == 0
    me = json.loads(output.partition(b"\n\n")[2])
    assert set(me["fds"]) == {"0", "1", "2"} | inherited, me["fds"]
    assert me["fds"]["0"].startswith("pipe:[") and me["fds"]["1"].startswith("pipe:[")
    assert me["fds"]["2"] == os.devnull
    assert me["blocking"] == {"0": True, "1": True, "2": True}  # only our ends are not
    assert me["stdin"] == "request body"
    assert me["pid"] == pid == me["sid"] == me["pgid"]  # a session and group of its own
    assert me["cwd"] == "/"
    assert open_fds() == before  # the script's ends were closed here


def test_a_given_stdin_is_used_and_no_pipe_made(spawn: Spawn, tmp_path: Path, null: int) -> None:
    program = script(tmp_path, PROBE)
    pid, out, stdin = spawn(program, {**ENV, b"PROBE_STDIN": b"1"}, bytes(tmp_path), null, null)
    assert stdin == -1
    output, code = finish(pid, out)
    me = json.loads(output.partition(b"\n\n")[2])
    assert code == 0 and me["fds"]["0"] == os.devnull and me["stdin"] == ""
    assert me["cwd"] == str(tmp_path)


def test_the_environment_is_exactly_the_one_given(spawn: Spawn, null: int) -> None:
    pid, out, _ = spawn(b"/usr/bin/env", ENV, b"/", null, null)
    output, code = finish(pid, out)
    assert code == 0
    assert sorted(output.splitlines()) == sorted(k + b"=" + v for k, v in ENV.items())


def test_every_signal_starts_at_its_default_and_unblocked(
    spawn: Spawn, tmp_path: Path, null: int
) -> None:
    """Python ignores SIGPIPE and SIGXFSZ; the caller here also ignores SIGUSR2 and blocks
    SIGUSR1. The script gets none of it."""
    # exec: grep reads its own status, as the script started. A shell that forks grep
    # instead may still have every signal blocked around its vfork when grep reads.
    program = script(tmp_path, "#!/bin/sh\nexec grep -E '^Sig(Ign|Blk):' /proc/$$/status\n")
    old_usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        pid, out, _ = spawn(program, ENV, b"/", null, null)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        signal.signal(signal.SIGUSR2, old_usr2)
    output, code = finish(pid, out)
    assert code == 0
    masks = {k: int(v, 16) for k, v in (line.split(":\t") for line in output.decode().splitlines())}
    standard = (1 << 31) - 1  # signals 1-31 are bits 0-30
    assert masks["SigIgn"] & standard == 0, hex(masks["SigIgn"])
    assert masks["SigBlk"] == 0, hex(masks["SigBlk"])


@pytest.mark.parametrize("target", [0, 2])
def test_a_stderr_among_the_first_three_fds_still_reaches_the_script(
    spawn: Spawn, tmp_path: Path, target: int
) -> None:
    """The mount's stderr pipe as fd 2 itself, close-on-exec (kept, and no longer closed at
    exec); or as fd 0, which the script's stdin takes before its stderr is wired."""
    program = script(tmp_path, "#!/bin/sh\necho to-stderr >&2\n")
    saved = os.dup(target)
    err_r, err_w = os.pipe()
    try:
        os.dup2(err_w, target, inheritable=False)
        os.close(err_w)
        pid, out, stdin = spawn(program, ENV, b"/", -1, target)
    finally:
        os.dup2(saved, target)
        os.close(saved)
    output, code = finish(pid, out, stdin)
    assert (output, code) == (b"", 0)
    assert os.read(err_r, 100) == b"to-stderr\n"
    os.close(err_r)


def children() -> list[psutil.Process]:
    return psutil.Process().children()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", errno.ENOENT),
        ("not executable", errno.EACCES),
        ("no such directory", errno.ENOENT),
    ],
)
def test_a_script_that_cannot_start_is_an_oserror_that_leaves_nothing(
    spawn: Spawn, tmp_path: Path, null: int, case: str, expected: int
) -> None:
    program, cwd = script(tmp_path, "#!/bin/sh\n"), b"/"
    if case == "missing":
        program = bytes(tmp_path / "missing")
    elif case == "not executable":
        os.chmod(program, 0o644)
    else:
        cwd = bytes(tmp_path / "gone")
    fds, kids = open_fds(), children()
    with pytest.raises(OSError) as raised:
        spawn(program, ENV, cwd, -1, null)
    assert raised.value.errno == expected
    assert raised.value.filename == (cwd if case == "no such directory" else program)
    assert open_fds() == fds  # no pipe end left open
    assert children() == kids  # and no child left, not even a zombie


@pytest.mark.parametrize(
    "env",
    [{b"A=B": b"x"}, {b"": b"x"}, {b"A": b"x\0y"}, {b"A\0": b"x"}],
    ids=["equals in name", "empty name", "null in value", "null in name"],
)
def test_an_environment_execve_cannot_carry_is_a_valueerror(
    spawn: Spawn, null: int, env: dict[bytes, bytes]
) -> None:
    fds, kids = open_fds(), children()
    with pytest.raises(ValueError):
        spawn(b"/bin/true", env, b"/", -1, null)
    assert open_fds() == fds and children() == kids


def test_the_worker_uses_the_c_build_when_there_is_one() -> None:
    expected = c_spawn if c_spawn is not None else posix_spawn_script
    assert spawn_module.spawn is expected
