"""Workers run unprivileged: configured ids, no groups, no capabilities, NoNewPrivs."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest
from pyws_harness import Pyws, Site

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


def proc_status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines())}


def assert_unprivileged(pid: int, uid: int, gid: int) -> None:
    status = proc_status(pid)
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Gid"].split() == [str(gid)] * 4
    assert status["Groups"] == ""
    for field in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        assert int(status[field], 16) == 0, (field, status[field])
    assert status["NoNewPrivs"] == "1"


@pytest.mark.parametrize(
    ("username", "groupname"), [(None, None), ("nobody", "nogroup"), ("daemon", "nogroup")]
)
def test_workers_drop_to_the_configured_user(
    pyws: Pyws, site: Site, username: str | None, groupname: str | None
) -> None:
    global_ = {"count-threads": "2"}
    if username:
        global_ |= {"username": username, "groupname": groupname or ""}
    site.write_conf(global_=global_)
    pyws.start()
    user = pwd.getpwnam(username or "nobody")
    gid = grp.getgrnam(groupname).gr_gid if groupname else user.pw_gid
    [gen] = pyws.generations()
    for pid in gen["pids"]:
        assert_unprivileged(pid, user.pw_uid, gid)
    # The root keeps its privileges: it binds listeners on reload.
    assert proc_status(pyws.pid)["Uid"].split()[0] == "0"
    # And the unprivileged worker still serves files (nothing imported lazily failed).
    assert pyws.get("/")[0] == 200
    assert pyws.get("/missing.html")[0] == 404


def test_replacement_workers_are_unprivileged_too(pyws: Pyws) -> None:
    pyws.start()
    assert pyws.reload().returncode == 0
    [gen] = [g for g in pyws.generations() if g["state"] == "active"]
    nobody = pwd.getpwnam("nobody")
    for pid in gen["pids"]:
        assert_unprivileged(pid, nobody.pw_uid, nobody.pw_gid)
