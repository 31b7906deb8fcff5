"""How the runner calls its store: inline (memory, SQLite: answers in well under a millisecond)
or in worker threads (PostgreSQL, a few at a time); database outages ridden out with backoff
(:mod:`tasker_host.engine.outage`); calls that claim steps made one at a time, giving back what
a call whose answer was lost may have claimed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from functools import partial
from typing import Any

import anyio

from tasker_host.engine.outage import Outage
from tasker_host.errors import StoreUnavailableError
from tasker_host.store.base import Claim, Store

log = logging.getLogger("tasker_host.engine")


class StoreCalls:
    def __init__(self, store: Store, outage: Outage | None = None) -> None:
        self.store = store
        self.inline = bool(getattr(store, "inline", False))
        self.outage = outage or Outage()  # the database as these calls find it (readiness reads it)
        self._limiter = anyio.CapacityLimiter(getattr(store, "parallel_calls", 1))
        self._claim_lock = anyio.Lock()

    async def __call__(self, fn: Callable[..., Any], *args: Any, patience: float | None = None,
                       **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``. A connection-level failure (:class:`StoreUnavailableError`)
        is retried with backoff until the call succeeds, or for ``patience`` seconds (then it is
        raised): an outage pauses the runner instead of stopping it. The backoff runs on real
        time, not the engine's clock: the database comes back in the real world."""
        give_up = None if patience is None else time.monotonic() + patience
        while True:
            try:
                result = await self.once(fn, *args, **kwargs)
            except StoreUnavailableError as exc:
                delay = self.outage.failed(exc, time.time())
                if give_up is not None and time.monotonic() + delay > give_up:
                    raise
                await anyio.sleep(delay)
                continue
            self.outage.recovered()
            return result

    async def once(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.inline:
            return fn(*args, **kwargs)
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self._limiter)

    async def claiming(self, owner: str, held: Callable[[], Collection[tuple[str, str]]], now: Callable[[], float],
                       claims_of: Callable[[Any], list[Claim]], fn: Callable[..., Any], *args: Any,
                       **kwargs: Any) -> Any:
        """A call that claims steps for ``owner`` (``claim``, ``record_and_claim``), one at a time.
        If the call met a dropped connection, an earlier try may have committed claims whose
        answer was lost: the owner's steps that are neither ``held()`` nor claimed by the answer
        are given back at once (their attempt uncounted), instead of staying leased to a live
        runner that never runs them."""
        async with self._claim_lock:
            failed = self.outage.failed_calls
            found = await self(fn, *args, **kwargs)
            if self.outage.failed_calls != failed:
                keep = {*held(), *((c.task_id, c.step) for c in claims_of(found))}
                released = await self(self.store.release, owner, now(), keep, patience=kwargs.get("patience"))
                if released:
                    log.warning("gave back %d steps claimed by a call whose answer was lost", released)
            return found
