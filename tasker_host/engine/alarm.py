"""When an idle runner wakes up by itself: at the earliest backoff end or durable timer it knows
of (steps ``waiting_retry`` / ``waiting`` with a ``ready_at``), else at its next poll.

The runner learns of the ones its own outcomes schedule as it commits them (:meth:`Alarm.learn`:
earlier than its alarm, the claim loop is woken to set it again), and of other runners' through
``next_ready_at`` at quiet polls. When the time it knew of falls due, it claims, then reads the
next one from the store at once (:meth:`Alarm.fell_due` then :meth:`Alarm.read`), so timers
set close together fire one after another, never a poll interval late.
"""

from __future__ import annotations

import math


class Alarm:
    def __init__(self) -> None:
        self.at: float | None = None  # the earliest known backoff end / timer
        self.reread = False  # the known one fell due: read the next from the store
        self.sleeping_until = math.inf  # when the idle claim loop wakes up by itself
        self._rushed = False  # one claim round more (a timer fell due meanwhile), per wake-up

    def learn(self, at: float) -> bool:
        """A backoff or timer this runner recorded; True when the sleeping loop must be woken."""
        self.at = min(at, self.at if self.at is not None else at)
        return at < self.sleeping_until

    def fell_due(self, now: float) -> bool:
        """True (and the next one is to be read) when the known time has come."""
        if self.at is None or self.at > now:
            return False
        self.at, self.reread = None, True
        return True

    def read(self, found: float | None, now: float) -> bool:
        """The store's next due time, read after one fell due; True to claim once more at once (it
        fell due since the claim round). Still due after that: work this runner cannot take now
        (no room, a commit under way, a namespace cap), which the next wake-up takes."""
        due = found is not None and found <= now
        self.reread, self.at = due, (None if due else found)
        if due and not self._rushed:
            self._rushed = True
            return True
        return False

    def sleep(self, poll_at: float) -> float:
        """The loop goes to sleep: until when."""
        self._rushed = False
        self.sleeping_until = min(poll_at, self.at if self.at is not None else poll_at)
        return self.sleeping_until

    def woke(self) -> None:
        self.sleeping_until = math.inf
