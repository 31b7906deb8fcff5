"""What running a task in a test gives back: :class:`TaskRun`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasker_host.engine.invocation import InvocationRequest
from tasker_host.models import StepState, TaskState
from tasker_host.store.base import TaskRecord

DONE = (StepState.COMPLETE, StepState.RESOLVED_MANUALLY)


@dataclass(frozen=True)
class TaskRun:
    """A task as it stands after the engine ran out of work: status and, per step, results,
    attempts, states and errors; ``invocations``: its ``ctx.invoke`` calls to stand-ins."""

    task: TaskRecord
    invocations: tuple[InvocationRequest, ...] = ()

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def full_name(self) -> str:
        return self.task.full_name

    @property
    def status(self) -> TaskState:
        return self.task.status

    @property
    def error(self) -> Mapping[str, Any] | None:
        return self.task.error

    @property
    def results(self) -> dict[str, Any]:
        """``{step: results}`` of the steps that completed, in template order."""
        return {s.name: s.results for s in self.task.steps if s.state in DONE}

    @property
    def waiting(self) -> dict[str, Mapping[str, Any]]:
        """``{step: what it waits for}`` (``event``, ``schema``, ``timeout_at``, ``until``) of the
        steps that wait (``ctx.wait_for`` / ``ctx.sleep_until``)."""
        return {s.name: dict(s.wait or {}) for s in self.task.steps if s.state.value == "waiting"}

    @property
    def attempts(self) -> dict[str, int]:
        return {s.name: s.attempts for s in self.task.steps}

    @property
    def states(self) -> dict[str, StepState]:
        return {s.name: s.state for s in self.task.steps}

    @property
    def errors(self) -> dict[str, Mapping[str, Any]]:
        """``{step: last_error}`` (``type``, ``kind``, ``message``) of the steps that failed."""
        return {s.name: s.last_error for s in self.task.steps if s.last_error}

    def describe(self) -> str:
        lines = [f"{self.full_name} ({self.task_id}): {self.status.value}"]
        for step in self.task.steps:
            error = step.last_error or {}
            why = f" - {error.get('kind')}: {error.get('message')}" if error else ""
            lines.append(f"  {step.name}: {step.state.value}, {step.attempts} attempt(s){why}")
        return "\n".join(lines)

    def assert_complete(self) -> TaskRun:
        """This run; ``AssertionError`` describing every step unless the task completed."""
        if self.status is not TaskState.COMPLETE:
            raise AssertionError(f"the task did not complete:\n{self.describe()}")
        return self


__all__ = ["TaskRun"]
