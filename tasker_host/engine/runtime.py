"""What the runner keeps in memory about a task it is working on (bounded; rebuilt from the
store on a miss, so a new runner after a crash needs nothing but the database)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tasker_host.context import TaskInfo
from tasker_host.engine.snapshot import steps_of
from tasker_host.models import StepState, StepTemplate
from tasker_host.store.base import RunInputs, TaskRecord

DONE = (StepState.COMPLETE, StepState.RESOLVED_MANUALLY)
K = TypeVar("K")
V = TypeVar("V")
#: tasks a runner keeps in memory at most (memory stays bounded however many are in flight)
RUNTIME_CACHE_SIZE = 4096


@dataclass
class TaskRuntime:
    info: TaskInfo
    steps: Mapping[str, StepTemplate]  # read-only: shared by the tasks of one template
    results: dict[str, Any] = field(default_factory=dict)
    result_schema: Mapping[str, Any] | None = None  # the template's, frozen with the task (contracts)
    traceparent: str | None = None  # the trace context the task was created under (step spans join it)

    @classmethod
    def from_record(cls, task: TaskRecord) -> TaskRuntime:
        info = TaskInfo(task.id, task.namespace, task.name, task.version, task.context, task.correlation_id)
        results = {s.name: s.results for s in task.steps if s.state in DONE}
        return cls(info, steps_of(task.template), results, task.template.get("result_schema"), task.traceparent)

    @classmethod
    def from_inputs(cls, task: RunInputs, templates: StepTemplates) -> TaskRuntime:
        info = TaskInfo(task.id, task.namespace, task.name, task.version, task.context, task.correlation_id)
        return cls(info, templates.of(task.template_json), dict(task.results),
                   templates.result_schema(task.template_json), task.traceparent)

    @property
    def first_root(self) -> str:
        return next(name for name, s in self.steps.items() if not s.depends_on)

    def has_inputs_of(self, step: str) -> bool:
        return all(dep in self.results for dep in self.steps[step].depends_on)


class Lru(Generic[K, V]):
    """A bounded map that forgets the least recently used entry first."""

    def __init__(self, capacity: int):
        self._items: OrderedDict[K, V] = OrderedDict()
        self._capacity = capacity

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def drop(self, key: K) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class StepTemplates:
    """Step templates parsed from frozen-template JSON texts, each distinct text once (bounded).
    Tasks of one template version share the parsed steps (they are immutable)."""

    def __init__(self, capacity: int = 256):
        self._parsed: Lru[str, tuple[Mapping[str, StepTemplate], Mapping[str, Any] | None]] = Lru(capacity)

    def of(self, template_json: str) -> Mapping[str, StepTemplate]:
        return self._parse(template_json)[0]

    def result_schema(self, template_json: str) -> Mapping[str, Any] | None:
        """The snapshot's ``result_schema`` (None: the template declared none, or the task was
        created before templates could)."""
        return self._parse(template_json)[1]

    def _parse(self, template_json: str) -> tuple[Mapping[str, StepTemplate], Mapping[str, Any] | None]:
        parsed = self._parsed.get(template_json)
        if parsed is None:
            snapshot = json.loads(template_json)
            parsed = (steps_of(snapshot), snapshot.get("result_schema"))
            self._parsed.put(template_json, parsed)
        return parsed
