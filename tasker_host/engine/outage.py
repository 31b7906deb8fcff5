"""Riding out database outages: backoff with jitter, one log line when an outage starts and one
when it ends, and the state that readiness reports.

Every store call the runner makes goes through :meth:`tasker_host.engine.runner.Engine.db`, which
repeats a call that failed with :class:`~tasker_host.errors.StoreUnavailableError` after
:meth:`Outage.failed`'s delay until it succeeds (or the caller's patience runs out): a terminated
backend, a restarting server or a lock held beyond its timeout pauses the engine instead of
stopping it.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field

log = logging.getLogger("tasker_host.engine")


@dataclass
class Backoff:
    """Exponential delays: ``first * 2**n`` capped at ``cap``, each ±``jitter`` (a fraction) so
    that the workers of a fleet do not reconnect in lock step."""

    first: float = 0.1
    cap: float = 2.0  # a database back from an outage is used again within ~2 s
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int) -> float:
        """The delay after the ``failures``-th consecutive failure (1-based)."""
        base = min(self.cap, self.first * 2.0 ** max(0, failures - 1))
        return base * (1 + self.jitter * (2 * self.rng.random() - 1))


#: a client's creation repeated while the database (or the server) is unavailable, always with the
#: same idempotency key: how many tries, and the backoff between them
CREATE_TRIES = 5


def creation_backoff() -> Backoff:
    return Backoff(first=0.5, cap=4.0)


@dataclass
class Outage:
    """Whether the database is reachable, as this process's last calls found it."""

    backoff: Backoff = field(default_factory=Backoff)
    meanwhile: str = "retrying with backoff"  # what the process does meanwhile (for the log line)
    since: float | None = None  # when the current outage began (None: reachable)
    failures: int = 0  # consecutive failed calls in the current outage
    cause: str = ""
    incidents: int = 0  # outages since start (for status pages and tests)
    failed_calls: int = 0  # failed calls since start

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException, now: float) -> float:
        """Note a failed call; returns how long to wait before the next try."""
        self.failures += 1
        self.failed_calls += 1
        self.cause = f"{type(error).__name__}: {error}"
        if self.since is None:
            self.since, self.incidents = now, self.incidents + 1
            log.warning("database unavailable (%s); %s", self.cause, self.meanwhile)
        return self.backoff.delay(self.failures)

    def recovered(self, now: float | None = None) -> None:
        """Note a call that succeeded: a no-op outside an outage (called after every call, so it
        reads the clock only when an outage ends; ``now`` defaults to the wall clock)."""
        if self.since is None:
            return
        now = time.time() if now is None else now
        log.warning("database available again after %.1f s (%d failed calls)", now - self.since, self.failures)
        self.since, self.failures, self.cause = None, 0, ""
