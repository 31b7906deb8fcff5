"""Fair claiming between namespaces, through the whole engine: a 2,000-task backlog in one
namespace does not delay another namespace's single task beyond its fair share.

The backlog (2,000 four-step chains in ``bulk``) is created before the runner starts, so all its
first steps are ready and older than the ``solo`` task created once the runner is busy. Claimed
oldest-first, solo's first step would wait behind the ~2,000 bulk steps ready before it. Claimed in
turns, each of solo's steps waits at most for one batch: between solo's creation and its last
step the runner starts at most ``concurrency`` bulk steps per solo step (plus the batch already
claimed when solo was created).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tasker_host import StepHandler
from tasker_host.engine.config import EngineConfig
from tasker_host.models import TaskState
from tasker_host.store.sql import SqlStore
from tests.engine_support import Script, chain, doc, make_host

BACKLOG = 2_000
CONCURRENCY = 8
SOLO_STEPS = ["s1", "s2", "s3", "s4"]

pytestmark = pytest.mark.anyio


class Starts:
    """Every step start in order, (namespace, task id, step); ``busy`` is set once 50 have started."""

    def __init__(self) -> None:
        self.order: list[tuple[str, str, str]] = []
        self.busy = anyio.Event()


def recording_handler(starts: Starts) -> type[StepHandler]:
    class Recording(StepHandler):
        async def process(self, ctx: Any) -> dict[str, Any]:
            starts.order.append((ctx.task.namespace, ctx.task.id, ctx.step_name))
            if len(starts.order) >= 50:
                starts.busy.set()
            await anyio.lowlevel.checkpoint()
            return {"step": ctx.step_name}

    return Recording


def _host(starts: Starts, store: Any = None) -> Any:
    templates = [doc("backlog", chain(["b1", "b2", "b3", "b4"], handler_class="Recording"), namespace="bulk"),
                 doc("single", chain(SOLO_STEPS, handler_class="Recording"), namespace="solo")]
    return make_host(Script(), templates, store=store, handlers={"Recording": recording_handler(starts)},
                     engine=EngineConfig(concurrency=CONCURRENCY))


async def _bulk_steps_started_while_solo_ran(host: Any, starts: Starts) -> tuple[int, int]:
    """(bulk steps started between solo's creation and its last step's start, bulk tasks left)."""
    host.service.submit([host.service.prepare("bulk", "backlog") for _ in range(BACKLOG)])
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run)
        await starts.busy.wait()
        host.clock.advance(1.0)  # solo's steps become ready after the backlog's first steps
        solo = host.service.create_task("solo", "single").task
        created_at = len(starts.order)
        assert await host.engine.wait_for_task(solo.id) is TaskState.COMPLETE
        tg.cancel_scope.cancel()
    last = max(i for i, (ns, _, _) in enumerate(starts.order) if ns == "solo")
    between = sum(1 for ns, _, _ in starts.order[created_at:last] if ns == "bulk")
    finished = {task for ns, task, step in starts.order if ns == "bulk" and step == "b4"}
    return between, BACKLOG - len(finished)


def _assert_fair(between: int, backlog_left: int) -> None:
    assert backlog_left > BACKLOG // 2, "the backlog must still be there when solo completes"
    # the claims already on their way when solo was created, then one batch per solo step at most;
    # oldest-first would start ~4 * BACKLOG bulk steps first (measured: 7,944)
    assert between <= CONCURRENCY * (len(SOLO_STEPS) + 1), between


async def test_a_backlog_does_not_starve_another_namespace_memory() -> None:
    starts = Starts()
    host = _host(starts)
    _assert_fair(*await _bulk_steps_started_while_solo_ran(host, starts))


@pytest.mark.postgres
async def test_a_backlog_does_not_starve_another_namespace_postgres(postgres_url: str) -> None:
    starts = Starts()
    host = _host(starts, SqlStore(postgres_url, auto_upgrade=True))
    try:
        _assert_fair(*await _bulk_steps_started_while_solo_ran(host, starts))
    finally:
        host.close()


async def test_a_backlog_does_not_starve_another_namespace_sqlite(tmp_path: Any) -> None:
    starts = Starts()
    host = _host(starts, SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}"))
    try:
        _assert_fair(*await _bulk_steps_started_while_solo_ran(host, starts))
    finally:
        host.close()


async def test_a_namespace_limit_caps_its_running_steps() -> None:
    running, peak = [0], [0]

    class Counting(StepHandler):
        async def process(self, ctx: Any) -> dict[str, Any]:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            for _ in range(5):  # let the runner start whatever else it may
                await anyio.lowlevel.checkpoint()
            running[0] -= 1
            return {}

    fan_out = [{"name": "start", "handler_class": "Counting"}] + [
        {"name": f"branch_{i}", "handler_class": "Counting", "depends_on_step": "start"} for i in range(6)]
    host = make_host(Script(), [doc("fan", fan_out, namespace="capped")], handlers={"Counting": Counting},
                     engine=EngineConfig(concurrency=8, namespace_limits={"capped": 2}))
    tasks = [host.service.create_task("capped", "fan").task for _ in range(3)]
    await host.engine.run_until_idle()
    assert all(host.service.get_task(t.id).status is TaskState.COMPLETE for t in tasks)
    assert peak[0] == 2  # 18 branches ready at once, 8 slots, never more than the cap
