"""The step log lines of :class:`~tasker_host.store.memory.MemoryStore` (see
:mod:`tasker_host.store.step_logs`): a mixin on the store's own lock."""

from __future__ import annotations

import threading

from tasker_host.store.base import StepOutcome
from tasker_host.store.step_logs import StepLogEntry, entries


class MemoryStepLogs:
    """Keeps each applied outcome's lines, per task, in write order."""

    _lock: threading.Lock
    _step_logs: dict[str, list[StepLogEntry]]

    def _keep_logs(self, outcome: StepOutcome) -> None:
        """Under the store's lock, as ``outcome`` is applied."""
        if outcome.logs:
            self._step_logs.setdefault(outcome.task_id, []).extend(
                entries(outcome.step, outcome.attempt, outcome.logs))

    def step_logs(self, task_id: str, step: str | None = None) -> list[StepLogEntry]:
        with self._lock:
            found = self._step_logs.get(task_id, [])
            return [e for e in found if step is None or e.step == step]
