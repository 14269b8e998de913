"""Deadlines for connections and scripts: one loop timer per tick, not one per deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from pyws.worker.looplocal import LoopLocal

# Deadlines are rounded up to the next tick, so they fire up to 1/32 s late, never early.
# Every deadline in a tick shares one loop timer: a worker arms at most 32 a second, where
# one per connection and per script cost more than the rest of the timer's work together
# (uvloop's call_at and cancel: a handle, a heap insert and remove, about 1.5 us).
TICKS_PER_SEC: Final = 32

log: Final = logging.getLogger("pyws.worker")


class TimerWheel:
    """The deadlines of one loop, in buckets of a tick each."""

    __slots__ = ("_buckets", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._buckets: dict[int, dict[DeadlineTimer, None]] = {}

    def add(self, timer: DeadlineTimer, deadline: float) -> int:
        """File `timer` under the tick that ends at or after `deadline`; returns the tick."""
        tick = int(deadline * TICKS_PER_SEC) + 1
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = {}
            self.loop.call_at(tick / TICKS_PER_SEC, self._expire, tick)
        bucket[timer] = None
        return tick

    def remove(self, timer: DeadlineTimer, tick: int) -> None:
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.pop(timer, None)

    def _expire(self, tick: int) -> None:
        # Taken out whole first: a callback may arm or cancel any timer, this tick's too.
        bucket = self._buckets.pop(tick, None)
        if bucket:
            for timer in bucket:
                try:
                    timer.expire(tick)
                except Exception:  # each timer is a connection's: one's bug stops no other
                    log.exception("deadline callback failed")


_wheels: Final = LoopLocal(TimerWheel)


def wheel_for(loop: asyncio.AbstractEventLoop) -> TimerWheel:
    """The wheel of `loop` (see LoopLocal: a wheel lives on in the timers filed under it)."""
    return _wheels.of(loop)


class DeadlineTimer:
    """A timer moved only when a deadline comes earlier: a later one is picked up when the
    timer fires (the owner re-arms then), so a busy keep-alive connection does no timer
    churn. The callback runs with the timer already spent.

    `close()` ends it for good, when the connection is gone: arming it later does nothing."""

    __slots__ = ("_at", "_callback", "_tick", "_wheel")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._wheel = wheel_for(loop)
        self._callback: Callable[[], None] | None = callback
        self._tick = 0  # the tick it is filed under; 0 while not armed
        self._at = 0.0

    def arm(self, deadline: float | None) -> None:
        if deadline is None or self._callback is None:
            return
        if self._tick:
            if self._at <= deadline:
                return
            self._wheel.remove(self, self._tick)
        self._at = deadline
        self._tick = self._wheel.add(self, deadline)

    def cancel(self) -> None:
        if self._tick:
            self._wheel.remove(self, self._tick)
            self._tick = 0

    def close(self) -> None:
        """Cancel for good. The owner's callback is let go too: owner and timer refer to each
        other, and so are freed at once rather than by the garbage collector."""
        self.cancel()
        self._callback = None

    def expire(self, tick: int) -> None:
        """The wheel's call: `tick` has come. Nothing happens if the timer moved since."""
        if tick != self._tick:
            return
        if self._wheel.loop.time() < self._at:
            # A loop timer may fire a hair early (libuv counts whole milliseconds): never
            # report a deadline before it has passed, even by that much.
            self._tick = self._wheel.add(self, self._at)
            return
        self._tick = 0
        if self._callback is not None:
            self._callback()
