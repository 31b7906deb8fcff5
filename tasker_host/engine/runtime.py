"""What the runner keeps in memory about a task it is working on (bounded; rebuilt from the
store on a miss, so a new runner after a crash needs nothing but the database)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tasker_host.context import TaskInfo
from tasker_host.engine.snapshot import steps_of
from tasker_host.models import StepState, StepTemplate
from tasker_host.store.base import RunInputs, TaskRecord

DONE = (StepState.COMPLETE, StepState.RESOLVED_MANUALLY)


@dataclass
class TaskRuntime:
    info: TaskInfo
    steps: Mapping[str, StepTemplate]  # read-only: shared by the tasks of one template
    results: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, task: TaskRecord) -> TaskRuntime:
        info = TaskInfo(task.id, task.namespace, task.name, task.version, task.context, task.correlation_id)
        results = {s.name: s.results for s in task.steps if s.state in DONE}
        return cls(info, steps_of(task.template), results)

    @classmethod
    def from_inputs(cls, task: RunInputs, templates: StepTemplates) -> TaskRuntime:
        info = TaskInfo(task.id, task.namespace, task.name, task.version, task.context, task.correlation_id)
        return cls(info, templates.of(task.template_json), dict(task.results))

    @property
    def first_root(self) -> str:
        return next(name for name, s in self.steps.items() if not s.depends_on)

    def has_inputs_of(self, step: str) -> bool:
        return all(dep in self.results for dep in self.steps[step].depends_on)


class RuntimeCache:
    """An LRU of task runtimes, so memory stays bounded however many tasks are in flight."""

    def __init__(self, capacity: int = 4096):
        self._items: OrderedDict[str, TaskRuntime] = OrderedDict()
        self._capacity = capacity

    def get(self, task_id: str) -> TaskRuntime | None:
        item = self._items.get(task_id)
        if item is not None:
            self._items.move_to_end(task_id)
        return item

    def put(self, runtime: TaskRuntime) -> None:
        self._items[runtime.info.id] = runtime
        self._items.move_to_end(runtime.info.id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def drop(self, task_id: str) -> None:
        self._items.pop(task_id, None)

    def __len__(self) -> int:
        return len(self._items)


class StepTemplates:
    """Step templates parsed from frozen-template JSON texts, each distinct text once (bounded).
    Tasks of one template version share the parsed steps (they are immutable)."""

    def __init__(self, capacity: int = 256):
        self._items: OrderedDict[str, Mapping[str, StepTemplate]] = OrderedDict()
        self._capacity = capacity

    def of(self, template_json: str) -> Mapping[str, StepTemplate]:
        steps = self._items.get(template_json)
        if steps is None:
            steps = self._items[template_json] = steps_of(json.loads(template_json))
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return steps
