"""The engine's only source of time: a real clock, or a fake one tests move by hand."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...

    def deadline(self, seconds: float | None) -> AbstractContextManager[None]: ...  # TimeoutError

    async def wait(self, event: anyio.Event, deadline: float) -> None:
        """Return when ``event`` is set or ``deadline`` passes, whichever comes first."""


class RealClock:
    """Wall-clock time (epoch seconds) with anyio's own timers."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep(max(0.0, deadline - time.time()))

    @contextmanager
    def deadline(self, seconds: float | None) -> Iterator[None]:
        if seconds is None:
            yield
            return
        with anyio.fail_after(seconds):
            yield

    async def wait(self, event: anyio.Event, deadline: float) -> None:
        with anyio.move_on_after(max(0.0, deadline - time.time())):
            await event.wait()


class FakeClock:
    """Time that moves only when a test calls :meth:`advance` (no test ever sleeps)."""

    def __init__(self, start: float = 1_700_000_000.0):
        self._now = start
        self._timers: list[tuple[float, int, anyio.Event | anyio.CancelScope]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every sleeper and deadline that falls due."""
        self._now += seconds
        while self._timers and self._timers[0][0] <= self._now:
            _, _, waiter = heapq.heappop(self._timers)
            if isinstance(waiter, anyio.Event):
                waiter.set()
            else:
                waiter.cancel()

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        heapq.heappush(self._timers, (deadline, next(self._seq), event))
        await event.wait()

    async def wait(self, event: anyio.Event, deadline: float) -> None:
        if deadline > self._now:
            heapq.heappush(self._timers, (deadline, next(self._seq), event))
            await event.wait()
        else:
            await anyio.lowlevel.checkpoint()

    @contextmanager
    def deadline(self, seconds: float | None) -> Iterator[None]:
        if seconds is None:
            yield
            return
        with anyio.CancelScope() as scope:
            timer = (self._now + seconds, next(self._seq), scope)
            heapq.heappush(self._timers, timer)
            try:
                yield
            finally:  # an ended scope's timer must not fire later (perhaps outside any event loop)
                if timer in self._timers:
                    self._timers.remove(timer)
                    heapq.heapify(self._timers)
        if scope.cancelled_caught:
            raise TimeoutError(f"deadline of {seconds}s passed")

    @property
    def pending_timers(self) -> int:
        return len(self._timers)
