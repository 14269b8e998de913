"""Dropping a worker's privileges before it serves, and proving they are gone."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import signal

import prctl

log = logging.getLogger("pyws.worker")

DEFAULT_USER = "nobody"  # what nginx falls back to when started as root


class PrivilegeError(Exception):
    pass


def drop_privileges(username: str | None, groupname: str | None, root_pid: int) -> None:
    """setgroups([]), setgid, setuid, empty capability sets, no_new_privs, pdeathsig.

    Order matters: the bounding set can only shrink while CAP_SETPCAP is held, and
    the kernel resets the parent-death signal whenever credentials change, so it
    is set last.
    """
    started_as_root = os.geteuid() == 0
    if started_as_root:
        uid, gid = resolve_ids(username or DEFAULT_USER, groupname)
        prctl.capbset.limit()
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    prctl.cap_inheritable.limit()
    prctl.cap_effective.limit()
    prctl.cap_permitted.limit()
    prctl.set_no_new_privs(1)
    prctl.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != root_pid:
        # The root died before pdeathsig was armed: nobody would ever reap us.
        raise PrivilegeError("the root exited while this worker was booting")
    _verify(started_as_root)


def resolve_ids(username: str, groupname: str | None) -> tuple[int, int]:
    try:
        user = pwd.getpwnam(username)
    except KeyError:
        raise PrivilegeError(f"username {username!r}: no such user") from None
    if groupname is None:
        return user.pw_uid, user.pw_gid
    try:
        return user.pw_uid, grp.getgrnam(groupname).gr_gid
    except KeyError:
        raise PrivilegeError(f"groupname {groupname!r}: no such group") from None


def _verify(started_as_root: bool) -> None:
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    # Without CAP_SETPCAP an unprivileged start cannot shrink the bounding set.
    fields = ["CapEff", "CapPrm", "CapInh", "CapAmb"] + (["CapBnd"] if started_as_root else [])
    for field in fields:
        if field in status and int(status[field].strip(), 16) != 0:
            raise PrivilegeError(f"{field} is not empty after the drop: {status[field].strip()}")
    if status.get("NoNewPrivs", "1").strip() != "1":
        raise PrivilegeError("no_new_privs is not set")
