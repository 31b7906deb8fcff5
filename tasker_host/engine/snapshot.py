"""The frozen copy of a template that a task runs on, so plugin upgrades never change work in
flight: written once at task creation, read back into step templates by the runner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasker_host import dag
from tasker_host.models import StepTemplate, TaskTemplate, frozen_mapping, plain_json
from tasker_host.store.base import NewStep


def snapshot_of(t: TaskTemplate) -> dict[str, Any]:
    doc = _snapshot(t)
    if t.result_schema is not None:  # checked as each step completes (contracts/results.py)
        doc["result_schema"] = plain_json(t.result_schema)
    return doc


def _snapshot(t: TaskTemplate) -> dict[str, Any]:
    return {
        "namespace": t.namespace,
        "name": t.name,
        "version": str(t.version),
        "description": t.description,
        "visibility": t.visibility.value,
        "steps": [
            {
                "name": s.name,
                "handler_class": s.handler_class,
                "depends_on": list(s.depends_on),
                "retryable": s.retryable,
                "retry_limit": s.retry_limit,
                "handler_config": plain_json(s.handler_config),
                "skippable": s.skippable,
            }
            for s in t.steps
        ],
    }


def steps_of(snapshot: Mapping[str, Any]) -> dict[str, StepTemplate]:
    """Step templates by name, rebuilt from a snapshot (no re-validation: it was valid)."""
    return {
        s["name"]: StepTemplate(
            name=s["name"],
            handler_class=s["handler_class"],
            depends_on=tuple(s["depends_on"]),
            retryable=s["retryable"],
            retry_limit=s["retry_limit"],
            handler_config=frozen_mapping(s["handler_config"]),
            skippable=s.get("skippable", False),
        )
        for s in snapshot["steps"]
    }


def new_steps(t: TaskTemplate) -> tuple[NewStep, ...]:
    deps = {s.name: list(s.depends_on) for s in t.steps}
    below = dag.dependents(deps)
    return tuple(
        NewStep(s.name, tuple(s.depends_on), tuple(below.get(s.name, ())), s.retry_limit, s.retryable)
        for s in t.steps
    )
