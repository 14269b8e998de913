"""One object per event loop, made on first use: the running loop's timer wheel, say."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoopLocal(Generic[T]):
    """The `T` of a loop, made by `factory(loop)`. A worker has one loop, so only the last
    one is kept: another loop (a test's) gets a new `T`, and the old one lives on in
    whatever holds it."""

    __slots__ = ("_factory", "_loop", "_value")

    def __init__(self, factory: Callable[[asyncio.AbstractEventLoop], T]) -> None:
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._value: T | None = None

    def of(self, loop: asyncio.AbstractEventLoop) -> T:
        value = self._value
        if value is None or self._loop is not loop:
            value = self._value = self._factory(loop)
            self._loop = loop
        return value
