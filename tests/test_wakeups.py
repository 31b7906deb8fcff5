"""Wake-ups between processes (PostgreSQL LISTEN/NOTIFY): work created by another host reaches an
idle runner at once, not at its next poll."""

from __future__ import annotations

import anyio
import pytest

from tasker_host.engine.clock import RealClock
from tasker_host.engine.config import EngineConfig
from tasker_host.host import build_host
from tasker_host.models import TaskState
from tasker_host.settings import HostSettings
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

HOUR = 3600.0


def _host(url: str, poll_seconds: float = 1.0):  # type: ignore[no-untyped-def]
    steps = [{"name": "a", "handler_class": "Noop"}, {"name": "b", "handler_class": "Noop", "depends_on_step": "a"}]
    plugin = make_plugin(["team"], [template_doc("team", "flow", "1.0.0", steps)], {"Noop": NoopHandler})
    settings = HostSettings(database_url=url, engine=EngineConfig(poll_seconds=poll_seconds))
    return build_host(settings, entry_points=[FakeEntryPoint.of("team", plugin, dist="tasker-team")],
                      clock=RealClock())


async def test_an_idle_runner_is_woken_by_work_another_host_creates(postgres_url: str) -> None:
    from tasker_host.store.sql.engine import upgrade

    upgrade(postgres_url)
    worker, api = _host(postgres_url, poll_seconds=HOUR), _host(postgres_url)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.engine.run)
            # one task after another, each created once the worker is idle again (it nudges its
            # loop when a batch ends, which then finds nothing): without a wake-up, the next poll
            # would be an hour away
            for _ in range(5):
                task = api.service.create_task("team", "flow").task  # by a host running no engine
                with anyio.fail_after(30):
                    assert await worker.engine.wait_for_task(task.id) is TaskState.COMPLETE
            tg.cancel_scope.cancel()
    finally:
        worker.close()
        api.close()
