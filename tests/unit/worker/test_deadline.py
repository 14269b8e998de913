"""DeadlineTimer: moved only earlier, fired once, and after close() never again."""

from __future__ import annotations

import asyncio
import gc
import weakref

from pyws.worker.deadline import DeadlineTimer


class Owner:
    """A connection's stand-in: it holds the timer, and the timer holds its callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.fired: list[float] = []
        self.loop = loop
        self.timer = DeadlineTimer(loop, self.on_timer)

    def on_timer(self) -> None:
        self.fired.append(self.loop.time())


def test_a_later_deadline_does_not_move_the_timer_and_it_fires_once() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        owner = Owner(loop)
        start = loop.time()
        owner.timer.arm(start + 0.05)
        owner.timer.arm(start + 10.0)  # later: picked up by the owner when the timer fires
        owner.timer.arm(None)
        await asyncio.sleep(0.2)
        assert len(owner.fired) == 1 and owner.fired[0] - start < 1.0
        assert owner.fired[0] >= start + 0.05  # late by up to a tick, never early

    asyncio.run(scenario())


def test_an_earlier_deadline_moves_the_timer() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        owner = Owner(loop)
        start = loop.time()
        owner.timer.arm(start + 10.0)
        owner.timer.arm(start + 0.05)
        await asyncio.sleep(0.2)
        assert len(owner.fired) == 1

    asyncio.run(scenario())


def test_after_close_nothing_fires_and_the_owner_is_freed_without_the_collector() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        owner = Owner(loop)
        fired = owner.fired
        owner.timer.arm(loop.time() + 0.05)
        owner.timer.close()
        owner.timer.arm(loop.time() + 0.01)  # a late arm from a plugin, say: ignored
        ref = weakref.ref(owner)
        del owner
        assert ref() is None  # reference counting alone, with the collector off
        await asyncio.sleep(0.2)
        assert fired == []

    gc.disable()
    try:
        asyncio.run(scenario())
    finally:
        gc.enable()


def test_a_failing_callback_does_not_keep_the_others_of_its_tick_from_firing() -> None:
    """Deadlines share a loop timer per tick: one owner's bug must not cost another its
    timeout (each would have had a loop timer of its own before)."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        owners = [Owner(loop) for _ in range(3)]

        def broken() -> None:
            raise RuntimeError("an owner's bug")

        failing = DeadlineTimer(loop, broken)
        deadline = loop.time() + 0.05
        owners[0].timer.arm(deadline)
        failing.arm(deadline)
        for owner in owners[1:]:
            owner.timer.arm(deadline)
        await asyncio.sleep(0.3)
        assert [len(owner.fired) for owner in owners] == [1, 1, 1]

    asyncio.run(scenario())
