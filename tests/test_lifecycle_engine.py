"""Version lifecycle at run time: deprecation warnings (task, event, metric with the caller's
namespace), sunset refusal for new tasks and ctx.invoke, running tasks that finish, replays."""

from __future__ import annotations

from typing import Any

import pytest

from tasker_host.api.metrics import Metrics
from tasker_host.engine.events import EventKind, LifecycleEvent
from tasker_host.errors import VersionSunsetError
from tasker_host.models import TaskState
from tests.engine_support import Script, doc, make_host
from tests.test_invocation import Delegate, caller_doc

pytestmark = pytest.mark.anyio

DAY = 86_400.0
SUNSET = "2023-11-20"  # the fake clock starts on 2023-11-14 (UTC)


def lifecycle_host(*templates: dict[str, Any]):
    host = make_host(Script(), [*templates, caller_doc()], handlers={"Delegate": Delegate})
    events: list[LifecycleEvent] = []
    host.events.subscribe(events.append)
    return host, events


def deprecations(events: list[LifecycleEvent]) -> list[LifecycleEvent]:
    return [e for e in events if e.kind is EventKind.TASK_DEPRECATED_VERSION]


async def test_a_range_may_pick_a_deprecated_version_and_the_child_carries_the_warning():
    host, events = lifecycle_host(doc(), doc(version="1.2.0", deprecated="1.2 loses rounding", replaced_by="~=2.0"),
                                  doc(version="2.0.0"))
    metrics = Metrics(host.store)
    metrics.start()  # counted from the store's transitions (every process's), from here on
    assert host.service.create_task("team", "flow").task.version == "2.0.0"  # omitted: never the deprecated one
    parent = host.service.create_task("caller", "delegate").task  # invokes team.flow ~=1.0
    await host.engine.run_until_idle()
    assert host.service.get_task(parent.id).status is TaskState.COMPLETE
    [child] = host.service.children(parent.id, 10)
    assert (child.version, child.caller_namespace) == ("1.2.0", "caller")
    [warning] = child.warnings
    assert warning == {"code": "deprecated_version", "replaced_by": "~=2.0", "replacement": "team.flow@2.0.0",
                       "sunset": None,
                       "message": "team.flow@1.2.0 is deprecated: 1.2 loses rounding; use team.flow@2.0.0"}
    [event] = deprecations(events)
    assert (event.task_id, event.full_name, event.detail["caller_namespace"]) == (child.id, "team.flow@1.2.0",
                                                                                   "caller")
    direct = host.service.create_task("team", "flow", "1.2.0").task  # exact: allowed, warned
    assert direct.caller_namespace is None and len(direct.warnings) == 1
    assert deprecations(events)[-1].detail["caller_namespace"] == "direct"
    text = metrics.render().decode()
    assert 'tasker_deprecated_version_tasks_total{namespace="caller",target="team.flow@1.2.0"} 1.0' in text
    assert 'tasker_deprecated_version_tasks_total{namespace="direct",target="team.flow@1.2.0"} 1.0' in text
    assert "tasker_deprecated_version_tasks_total{" not in metrics.render(["team"]).decode()  # callers' series


async def test_after_the_sunset_new_tasks_are_refused_running_ones_finish_and_replays_answer():
    host, _ = lifecycle_host(doc(sunset=SUNSET, replaced_by="~=2.0"), doc(version="2.0.0"))
    before = host.service.create_task("team", "flow", "1.0.0", idempotency_key="order-7").task
    assert before.warnings[0]["sunset"] == SUNSET
    host.clock.advance(7 * DAY)  # type: ignore[attr-defined]
    with pytest.raises(VersionSunsetError) as info:
        host.service.create_task("team", "flow", "1.0.0")
    assert info.value.replacement == "team.flow@2.0.0"
    assert "team.flow@1.0.0 reached its sunset on 2023-11-20" in str(info.value)
    replay = host.service.create_task("team", "flow", "1.0.0", idempotency_key="order-7")
    assert (replay.created, replay.task.id) == (False, before.id)
    assert host.service.create_task("team", "flow").task.version == "2.0.0"
    await host.engine.run_until_idle()  # the task created before the sunset runs to the end
    assert host.service.get_task(before.id).status is TaskState.COMPLETE


async def test_invoking_a_sunset_version_fails_the_calling_step_for_good():
    host, _ = lifecycle_host(doc(sunset=SUNSET, replaced_by="~=2.0"), doc(version="2.0.0"))
    host.clock.advance(7 * DAY)  # type: ignore[attr-defined]
    parent = host.service.create_task("caller", "delegate", context={"target": {"version": "1.0.0"}}).task
    await host.engine.run_until_idle()
    done = host.service.get_task(parent.id)
    assert done.status is TaskState.ERROR and done.steps[0].attempts == 1  # permanent: no retry
    message = done.error["message"] if done.error else ""
    assert "reached its sunset on 2023-11-20" in message and "use team.flow@2.0.0" in message
    assert host.service.children(parent.id, 10) == []
