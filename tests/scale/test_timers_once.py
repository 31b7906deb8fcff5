"""A durable timer fires exactly once when three runners share one PostgreSQL database.

Three hosts (three runners, each with its own connections, lease owner and registration) run
``ctx.sleep_until`` steps whose timers fall due together, about a second after they started
waiting; every step must run again exactly once (the claim's ``FOR UPDATE SKIP LOCKED``), and the
work must be shared. The probe counts each step's runs in this process (all runners are here);
the test waits on an event, with a deadline as a guard only.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from tasker_host import StepHandler
from tasker_host.engine.config import EngineConfig
from tasker_host.host import Host, build_host
from tasker_host.models import TaskState
from tasker_host.settings import HostSettings
from tasker_host.store.base import TaskFilter
from tasker_host.store.sql.engine import upgrade
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

TASKS = 300


class Probe:
    def __init__(self) -> None:
        self.woken: Counter[str] = Counter()
        self.by_runner: Counter[str] = Counter()
        self.first_runs = 0
        self.all_waiting = anyio.Event()
        self.all_fired = anyio.Event()

    def handler(self, runner: str) -> type[StepHandler]:
        probe = self

        class Nap(StepHandler):
            async def process(self, ctx: Any) -> Any:
                if ctx.wake is None:
                    probe.first_runs += 1
                    if probe.first_runs == TASKS:
                        probe.all_waiting.set()
                    return ctx.sleep_until(datetime.fromtimestamp(ctx.task.context["at"], UTC))
                probe.woken[ctx.task.id] += 1
                probe.by_runner[runner] += 1
                if sum(probe.woken.values()) >= TASKS:
                    probe.all_fired.set()
                return {"runner": runner}

        return Nap


def runner(url: str, probe: Probe, name: str) -> Host:
    nap = template_doc("timers", "nap", "1.0.0", [{"name": "nap", "handler_class": "Nap"}])
    plugin = make_plugin(["timers"], [nap],
                         {"Nap": probe.handler(name)})
    settings = HostSettings(database_url=url, engine=EngineConfig(owner=name, claim_batch=16))
    return build_host(settings, entry_points=[FakeEntryPoint.of("timers", plugin, dist="tasker-timers")])


async def test_a_timer_fires_once_across_three_runners(postgres_url: str) -> None:
    upgrade(postgres_url)
    probe = Probe()
    hosts = [runner(postgres_url, probe, f"runner-{i}") for i in range(3)]
    try:
        at = time.time() + 2.0
        hosts[0].service.submit([hosts[0].service.prepare("timers", "nap", "1.0.0", {"at": at}) for _ in range(TASKS)])
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            for host in hosts:
                tg.start_soon(lambda h=host: h.engine.run(stop=stop, grace_seconds=5))
            with anyio.fail_after(60):
                await probe.all_waiting.wait()
                assert not probe.woken  # nobody ran a step again before its time
                await probe.all_fired.wait()
            stop.set()
        assert time.time() >= at
        assert len(probe.woken) == TASKS and set(probe.woken.values()) == {1}  # each exactly once
        assert len(probe.by_runner) >= 2, f"one runner took every timer: {probe.by_runner}"
        tasks = hosts[0].store.list_tasks(TaskFilter(limit=TASKS + 1))
        assert {t.status for t in tasks} == {TaskState.COMPLETE} and len(tasks) == TASKS
    finally:
        for host in hosts:
            host.close()
