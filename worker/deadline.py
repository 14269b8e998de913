"""One loop timer per connection, shared by the HTTP and WebSocket protocols."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class DeadlineTimer:
    """A timer moved only when a deadline comes earlier: a later one is picked up when the
    timer fires (the owner re-arms then), so a busy keep-alive connection does no timer
    churn. The callback runs with the timer already spent.

    `close()` ends it for good, when the connection is gone: arming it later does nothing."""

    __slots__ = ("_at", "_callback", "_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback: Callable[[], None] | None = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    def arm(self, deadline: float | None) -> None:
        if deadline is None or self._callback is None:
            return
        if self._handle is not None:
            if self._at <= deadline:
                return
            self._handle.cancel()
        self._at = deadline
        self._handle = self._loop.call_at(deadline, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        """Cancel for good. The owner's callback is let go too: owner and timer refer to each
        other, and so are freed at once rather than by the garbage collector."""
        self.cancel()
        self._callback = None

    def _fire(self) -> None:
        self._handle = None
        if self._callback is not None:
            self._callback()
