"""The runner's heartbeat: it registers the runner as a worker, beats every ``heartbeat_seconds``,
takes over dead workers' steps, renews leases, and fences the runner if others presumed it dead.

Each beat (one loop per runner, beside the claim and commit loops):

1. ``Store.heartbeat`` (with the lease renewal when a third of the lease has passed): the runner
   is alive. False means another runner reaped it (it was silent for ``dead_after``: a stall, a
   long cut from the database): the store has marked the steps it held as lost (their lease
   owner is now ``"<owner> (lost)"``: nothing this runner records or renews for them counts any
   more) and others take them over. The runner is *fenced*: it cancels the handlers of those
   steps (the others it claimed since are still its own), says so in one log line and registers
   again.
2. ``Store.reap_workers``: every other worker that is silent for its ``dead_after``, or whose
   process is gone from this host (:mod:`~tasker_host.engine.liveness`: a restarted
   single-process host finds its previous self at once), is removed and its steps' leases
   expire now; the runner then looks for work at once, so they are taken within the beat.

The first beat runs before the runner's first claim (``start``); a clean stop deregisters
(``stop``: steps still held go back to waiting without counting the attempt). A beat that fails
is logged and tried again at the next one; after such a gap the runner counts others' silence
from the moment it is back (``watching_since``), so an outage of the database never makes every
worker look dead to the first runner that reconnects.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tasker_host.engine.liveness import ProcessTable
from tasker_host.store.base import LostWorker

if TYPE_CHECKING:
    from tasker_host.engine.runner import Engine

log = logging.getLogger("tasker_host.engine")
STOP_PATIENCE = 10.0  # seconds a stopping runner waits out a database outage to deregister


class Heartbeat:
    def __init__(self, engine: Engine, processes: ProcessTable | None = None) -> None:
        self._engine = engine
        self._processes = processes or ProcessTable()
        self._registered: str | None = None  # the owner this runner is registered as
        self._renew_at = float("-inf")  # when the leases are next renewed
        self._last_ok: float | None = None  # when the last beat got through
        self._cut_off = False  # the last beat failed
        self._watching_since: float | None = None  # others' silence counts from then

    async def start(self) -> None:
        """Register and reap once, before the runner's first claim (a run starts afresh: others'
        silence counts from their last heartbeat)."""
        self._renew_at, self._last_ok, self._cut_off, self._watching_since = float("-inf"), None, False, None
        await self.beat()

    async def run(self) -> None:
        clock, config = self._engine.clock, self._engine.config
        # (leases shorter than 3 beats are renewed in time: the runner then beats more often)
        interval = min(config.heartbeat_seconds, config.lease_seconds / 3)
        while True:
            await clock.sleep_until(clock.now() + interval)
            await self.beat()

    async def stop(self) -> None:
        """Deregister (a clean stop): the steps still held go back to waiting, not counted."""
        worker, self._registered = self._registered, None
        if worker is None:
            return
        engine = self._engine
        try:
            released = await engine.db(engine.store.deregister, worker, engine.clock.now(),
                                       patience=STOP_PATIENCE)
        except Exception:  # noqa: BLE001 - the runner is stopping: its row goes silent instead
            log.exception("worker %s could not deregister; other workers take over its steps when it "
                          "has been silent for %.1fs", worker, engine.config.dead_after_seconds)
            return
        if released:
            log.info("worker %s stopped; %d unfinished steps released to other workers", worker, released)

    async def beat(self) -> None:
        """One beat; never raises (a failure is logged, the next beat tries again)."""
        engine = self._engine
        began = engine.clock.now()
        try:
            await self._stay_registered(began)
            self._in_contact(began, engine.clock.now())
            lost: list[LostWorker] = await engine.db(
                engine.store.reap_workers, engine.config.owner, engine.clock.now(), self._processes.gone,
                self._watching_since)
        except Exception:  # noqa: BLE001 - the loop must outlive any failure
            self._cut_off = True
            log.exception("heartbeat of worker %s failed; next attempt in %.1fs", engine.config.owner,
                          engine.config.heartbeat_seconds)
            return
        for entry in lost:
            log.warning("worker %s presumed dead (%s): its %d running steps go to other workers",
                        entry.worker.id, entry.cause, entry.steps)
        if any(entry.steps for entry in lost):
            engine.nudge()  # take them now, not at the next poll

    async def _stay_registered(self, now: float) -> None:
        engine, config = self._engine, self._engine.config
        if self._registered == config.owner:
            renew = now >= self._renew_at
            if await engine.db(engine.store.heartbeat, config.owner, now, config.lease_seconds if renew else None):
                if renew:
                    self._renew_at = now + config.lease_seconds / 3
                return
            await self._fence()
        worker = self._processes.this_process(config.owner, config.dead_after_seconds)
        await engine.db(engine.store.register, worker, now)
        self._registered = worker.id

    async def _fence(self) -> None:
        """Reaped by another runner: cancel the handlers of the steps it took from this one (their
        lease owner is no longer this runner's: their outcomes would be rejected anyway)."""
        engine, owner = self._engine, self._engine.config.owner
        running = engine.running_steps()
        tasks = await engine.db(engine.store.get_tasks, sorted({task_id for task_id, _ in running}))
        held = {(t.id, s.name) for t in tasks.values() for s in t.steps if s.lease_owner == owner}
        lost = [scope for key, scope in running.items() if key not in held]
        for scope in lost:
            scope.cancel()
        log.warning("worker %s was presumed dead by another worker (no heartbeat got through for %.1fs): "
                    "cancelled its %d running steps that others run now; registering again", owner,
                    engine.config.dead_after_seconds, len(lost))

    def _in_contact(self, began: float, ended: float) -> None:
        """Note a beat that got through; after a gap, others' silence counts from now on."""
        interval = self._engine.config.heartbeat_seconds
        gap = self._last_ok is not None and began - self._last_ok > 2 * interval
        if self._cut_off or gap or ended - began > interval:
            self._watching_since = ended
        self._cut_off, self._last_ok = False, ended
