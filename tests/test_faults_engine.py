"""The fault suite, engine half: real database faults while the runner works. PostgreSQL backends
are terminated (``pg_terminate_backend``) right before claims, records, task loads, creations,
heartbeats and while LISTENing; a SQLite database is locked beyond the busy timeout. After each,
no acknowledged task is lost, no step ran twice, and the same runner carries on — no restart."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tasker_host.engine.config import EngineConfig
from tasker_host.engine.heartbeat import Heartbeat
from tasker_host.errors import StoreUnavailableError
from tasker_host.models import TaskState
from tasker_host.store.base import TaskFilter
from tasker_host.store.sql import SqlStore
from tasker_host.store.sql import engine as sql_engine
from tests.engine_support import Script, chain, doc, fan, make_host
from tests.fault_support import FaultyStore, Terminator, with_application_name

pytestmark = pytest.mark.anyio
TEMPLATES = [doc(steps=chain(["a", "b", "c"])), doc("wide", steps=fan(4))]


@pytest.fixture
def pg(postgres_url: str, postgres_server_url: str) -> Iterator[tuple[str, Terminator]]:
    """A schema URL whose connections carry their own application name, and its terminator."""
    url, name = with_application_name(postgres_url)
    SqlStore(url, auto_upgrade=True).close()
    terminate = Terminator(postgres_server_url, name)
    yield url, terminate
    terminate.close()


def create_many(host: Any, n: int) -> list[str]:
    ids = []
    for i in range(n):
        name = "wide" if i % 5 == 0 else "flow"
        ids.append(host.service.create_task("team", name, context={"i": i}).task.id)
    return ids


def assert_all_ran_once(host: Any, script: Script, ids: list[str]) -> None:
    tasks = host.store.get_tasks(ids)
    assert Counter(t.status for t in tasks.values()) == Counter({TaskState.COMPLETE: len(ids)})
    runs = Counter((task_id, step) for task_id, step, _ in script.calls)
    assert max(runs.values()) == 1, [k for k, n in runs.items() if n > 1][:5]
    assert {attempt for _, _, attempt in script.calls} == {1}
    assert sum(len(t.steps) for t in tasks.values()) == len(runs)


@pytest.mark.postgres
async def test_backends_terminated_before_claims_records_loads_and_heartbeats(pg):
    url, terminate = pg
    script = Script()
    creator = make_host(script, TEMPLATES, store=SqlStore(url))  # another process's API: the runner loads
    ids = create_many(creator, 120)
    plan = {"claim": {1, 3}, "record_and_claim": {2, 7, 20, 45}, "run_inputs": {1, 4},
            "next_ready_at": {1}, "register": {1}, "reap_workers": {1}}
    faulty = FaultyStore(SqlStore(url), terminate, plan)
    # small batches: many claims and records, so the planned faults meet calls in mid-run
    runner = make_host(script, TEMPLATES, store=faulty, engine=EngineConfig(concurrency=8, claim_batch=8))

    await runner.engine.run_until_idle()

    assert_all_ran_once(runner, script, ids)
    assert faulty.faults == Counter({m: len(calls) for m, calls in plan.items()})  # every fault was met
    assert terminate.killed >= sum(faulty.faults.values())
    assert runner.engine.outage.incidents >= 1 and not runner.engine.outage.active
    creator.close()
    runner.close()


@pytest.mark.postgres
async def test_a_creation_whose_connection_died_is_repeated_safely_with_its_key(pg):
    url, terminate = pg
    host = make_host(Script(), TEMPLATES, store=SqlStore(url))
    host.service.create_task("team", "flow", context={})  # the pool now holds a connection
    terminate()
    with pytest.raises(StoreUnavailableError):
        host.service.create_task("team", "flow", context={"n": 1}, idempotency_key="order-7")
    again = host.service.create_task("team", "flow", context={"n": 1}, idempotency_key="order-7")
    retried = host.service.create_task("team", "flow", context={"n": 1}, idempotency_key="order-7")
    assert again.created and not retried.created and retried.task.id == again.task.id
    keyed = [t for t in host.store.list_tasks(TaskFilter(limit=100)) if t.idempotency_key == "order-7"]
    assert [t.id for t in keyed] == [again.task.id]
    host.close()


@pytest.mark.postgres
async def test_heartbeats_and_lease_renewals_survive_a_terminated_backend(pg):
    url, terminate = pg
    faulty = FaultyStore(SqlStore(url), terminate, {"heartbeat": {1}})
    host = make_host(Script(), TEMPLATES, store=faulty)
    beat = Heartbeat(host.engine)
    await beat.start()  # registers
    host.clock.advance(host.engine.config.lease_seconds)  # due for a lease renewal too
    await beat.beat()
    assert faulty.faults["heartbeat"] == 1 and faulty.calls["heartbeat"] == 2  # failed, then repeated
    [row] = [w for w in host.store.workers() if w.id == host.engine.config.owner]
    assert row.heartbeat_at == host.clock.now()  # the renewal went through on a fresh connection
    host.close()


async def wait_until(condition: Any, what: str, seconds: float = 15.0) -> None:
    """Wait (bounded) for something outside the engine's control: a reconnection, a lock taken."""
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.02)


@pytest.mark.postgres
async def test_the_listener_reconnects_and_wakes_the_runner_again(pg):
    url, terminate = pg
    script = Script()
    runner = make_host(script, TEMPLATES, store=SqlStore(url))
    creator = make_host(script, TEMPLATES, store=SqlStore(with_application_name(url)[0]))  # not terminated
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner.engine.run)  # the fake clock never polls: only NOTIFY wakes it
        first = creator.service.create_task("team", "flow", context={}).task.id
        with anyio.fail_after(15):
            assert await runner.engine.wait_for_task(first) is TaskState.COMPLETE
        assert terminate.listeners() == 1
        assert terminate() >= 1
        await wait_until(lambda: terminate.listeners() == 1, "the listener to reconnect")
        second = creator.service.create_task("team", "flow", context={}).task.id
        with anyio.fail_after(15):
            assert await runner.engine.wait_for_task(second) is TaskState.COMPLETE
        tg.cancel_scope.cancel()
    assert_all_ran_once(runner, script, [first, second])
    runner.close()
    creator.close()


async def test_a_sqlite_database_locked_beyond_its_timeout_pauses_the_runner(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sql_engine, "SQLITE_BUSY_TIMEOUT_MS", 20)
    db = tmp_path / "t.db"
    script = Script()
    host = make_host(script, TEMPLATES, store=SqlStore(f"sqlite:///{db}"))
    ids = create_many(host, 30)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run_until_idle)
        await wait_until(lambda: host.engine.outage.active, "the runner to meet the lock")
        blocker.execute("COMMIT")
    blocker.close()
    assert_all_ran_once(host, script, ids)
    assert host.engine.outage.incidents >= 1 and not host.engine.outage.active
    host.close()
