"""The pipes and pidfds of a worker's running scripts, in one epoll set of their own.

The loop watches the set as one fd. A script's stdout is watched once per request, and
through uvloop's add_reader that costs a libuv poll handle, three syscalls that probe
the fd, a batched registration, and a weak-reference lookup in Python that raises and
catches a KeyError (as does remove_reader): 8% of a CGI request's own instructions.
Here a watch is one epoll_ctl and a forget another.

Level-triggered, as the loop's own readers are. Every callback must bear a call when its
fd has nothing for it: an event read in one batch may be for an fd that an earlier
callback of the batch closed, and whose number a new pipe has taken since.
"""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable
from typing import Final

from pyws.worker.looplocal import LoopLocal

log: Final = logging.getLogger("pyws.cgi")

_BATCH: Final = 64  # events taken per wakeup; more wait for the loop's next turn
_IN: Final = select.EPOLLIN  # looked up once: compiled, `select.EPOLLIN` is a dict lookup
_OUT: Final = select.EPOLLOUT


class PipeWatcher:
    """The epoll set of one loop: `watch()` an fd with its callback, `forget()` it before
    closing it (a closed fd leaves the set only once no process holds a copy of it, and a
    script being spawned may, for a moment)."""

    __slots__ = ("_callbacks", "_epoll", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._epoll = select.epoll()  # close-on-exec, as every fd of the worker
        self._callbacks: dict[int, Callable[[], None]] = {}
        loop.add_reader(self._epoll.fileno(), self._dispatch)

    def watch(self, fd: int, callback: Callable[[], None], *, write: bool = False) -> None:
        """Call `callback` while `fd` is readable (or writable, with `write`), or at its
        end or error. The fd must be non-blocking, and not watched already."""
        self._epoll.register(fd, _OUT if write else _IN)
        self._callbacks[fd] = callback

    def forget(self, fd: int) -> None:
        """Stop watching `fd`; nothing if it is not watched."""
        if self._callbacks.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def _dispatch(self) -> None:
        callbacks = self._callbacks
        for fd, _ in self._epoll.poll(0, _BATCH):
            callback = callbacks.get(fd)
            if callback is not None:
                try:
                    callback()
                except Exception:  # each fd is a script's: one's bug stops no other
                    log.exception("cgi pipe callback failed")


_watchers: Final = LoopLocal(PipeWatcher)


def watcher_for(loop: asyncio.AbstractEventLoop) -> PipeWatcher:
    """The watcher of `loop` (see LoopLocal: a watcher lives on in the runs that hold it)."""
    return _watchers.of(loop)
