"""Keeping a process's runner alive: database outages never stop it (store calls are retried,
see :mod:`tasker_host.engine.outage`), and if it stops with any other error — a bug — it is
logged and started again after a backoff, so ``serve`` and ``worker`` never end up running
without their engine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from tasker_host.engine.outage import Backoff

if TYPE_CHECKING:
    from tasker_host.engine.runner import Engine

log = logging.getLogger("tasker_host.engine")


async def run_supervised(engine: Engine, stop: anyio.Event, *, grace_seconds: float, until_idle: bool = False,
                         on_crash: Callable[[BaseException | None], None] | None = None,
                         backoff: Backoff | None = None) -> int:
    """Run ``engine`` until it ends normally or ``stop`` is set; restart it after each crash.
    ``on_crash(error)`` is told of each crash, and ``on_crash(None)`` when it runs again.
    Returns the number of crashes."""
    backoff = backoff or Backoff(first=1.0, cap=30.0)
    crashes = 0
    while True:
        try:
            await engine.run(until_idle=until_idle, stop=stop, grace_seconds=grace_seconds)
            return crashes
        except Exception as exc:  # noqa: BLE001 - a bug in the engine or a plugin hook: restart
            crashes += 1
            delay = backoff.delay(crashes)
            log.exception("the engine stopped with an error (%s); restarting it in %.1f s",
                          type(exc).__name__, delay)
            if on_crash is not None:
                on_crash(exc)
        with anyio.move_on_after(delay):
            await stop.wait()
        if stop.is_set():
            return crashes
        log.warning("restarting the engine (crash %d)", crashes)
        if on_crash is not None:
            on_crash(None)
