"""One step whose outcome the database refuses never stops the runner: 500 healthy tasks and a
poison one share the runner's batches; all 500 complete and the poison step fails with the cause.

The value rule (tasker_host/values.py) refuses such results before they reach the store; here it
is switched off, so a real store error — the last line of defence — is what the runner meets: on
PostgreSQL a lone surrogate, which ``jsonb`` refuses; on SQLite (which keeps any JSON text) a
set, which the store cannot serialise."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tasker_host import StepHandler
from tasker_host.engine import execute as execute_module
from tasker_host.models import TaskState
from tasker_host.store.sql import SqlStore
from tests.engine_support import Script, chain, doc, make_host

pytestmark = pytest.mark.anyio
HEALTHY = 500


@pytest.fixture
def anyio_backend():
    return "asyncio"


POISON = {"sqlite": {1, 2}, "postgres": "\ud800"}


class Poisonous(StepHandler):
    """Returns the poison value for the task marked poison, plain results otherwise."""

    async def process(self, ctx: Any) -> Any:
        kind = ctx.task.context.get("poison")
        return {"note": POISON[kind] if kind else "fine"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(dialect: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 't.db'}" if dialect == "sqlite" else request.getfixturevalue("postgres_url")


async def test_a_poison_outcome_fails_its_step_and_the_other_500_tasks_complete(dialect, url, monkeypatch):
    monkeypatch.setattr(execute_module, "require_storable", lambda *args, **kwargs: None)
    host = make_host(Script(), [doc(steps=chain(["a", "b"], handler_class="Poisonous"))],
                     handlers={"Poisonous": Poisonous}, store=SqlStore(url, auto_upgrade=True))
    healthy = [host.service.create_task("team", "flow", context={"i": i}).task.id for i in range(HEALTHY // 2)]
    poison = host.service.create_task("team", "flow", context={"poison": dialect}).task.id
    healthy += [host.service.create_task("team", "flow", context={"i": i}).task.id for i in range(HEALTHY // 2)]

    await host.engine.run_until_idle()

    tasks = host.store.get_tasks([*healthy, poison])
    assert Counter(tasks[t].status for t in healthy) == Counter({TaskState.COMPLETE: HEALTHY})
    failed = tasks[poison]
    assert failed.status is TaskState.ERROR
    assert failed.error["type"] == "UnrecordableOutcome" and failed.error["step"] == "a"
    assert "complete outcome could not be recorded" in failed.error["message"]
    assert [s.results for s in failed.steps] == [None, None]
    host.close()
