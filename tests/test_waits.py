"""Steps that wait for an event or a timer, through the whole engine, on memory, SQLite and
PostgreSQL: wait → event → complete, timeouts, early events, duplicates, invalid payloads,
restarts, and who may send. The fake clock drives every timer; nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from tasker_host import RetryableError, StepHandler
from tasker_host.api.metrics import Metrics
from tasker_host.engine.clock import FakeClock
from tasker_host.engine.config import EngineConfig
from tasker_host.engine.events import EventKind, LifecycleEvent
from tasker_host.engine.retry import RetryPolicy
from tasker_host.errors import EventTimeoutError, InvalidEventError, InvalidValueError, TaskEndedError
from tasker_host.host import Host, build_host
from tasker_host.markers import hookimpl
from tasker_host.models import StepState, TaskState
from tasker_host.settings import HostSettings
from tasker_host.store.sql.engine import upgrade
from tasker_host.store.waits import SendStatus
from tasker_host.testing import FakeEntryPoint, make_plugin, template_doc

pytestmark = pytest.mark.anyio

SCHEMA = {"type": "object", "required": ["approved", "approver"], "additionalProperties": False,
          "properties": {"approved": {"type": "boolean"}, "approver": {"type": "string"},
                         "note": {"type": "string"}}}
HOURS_48 = 48 * 3600.0
RUNS: list[tuple[str, str, str | None]] = []  # (task id, step, wake reason) of every run


class Approval(StepHandler):
    """Waits for ``approval``; on a timeout does what the context says (``on_timeout``)."""

    def process(self, ctx: Any) -> Any:
        RUNS.append((ctx.task.id, ctx.step_name, ctx.wake.reason.value if ctx.wake else None))
        try:
            approval = ctx.event("approval")
        except EventTimeoutError:
            if ctx.task.context.get("on_timeout") == "reject":
                return {"approved": False, "timed_out": True}
            raise
        if approval is None:
            return ctx.wait_for("approval", schema=SCHEMA, timeout=timedelta(hours=48))
        return {"approved": approval["approved"], "by": approval["approver"]}


class Nap(StepHandler):
    def process(self, ctx: Any) -> Any:
        RUNS.append((ctx.task.id, ctx.step_name, ctx.wake.reason.value if ctx.wake else None))
        if ctx.wake is None:
            return ctx.sleep_until(datetime.fromtimestamp(ctx.task.context["until"], UTC))
        return {"woke": ctx.wake.reason.value}


class Sender(StepHandler):
    async def process(self, ctx: Any) -> Any:
        sent = await ctx.send(ctx.task.context["target"], "approval",
                              {"approved": True, "approver": f"task {ctx.task.id}"})
        return {"event": sent["id"], "duplicate": sent["duplicate"]}


class FlakyAfterApproval(StepHandler):
    """Fails its first attempt after the approval came; the retry still reads the approval."""

    def process(self, ctx: Any) -> Any:
        approval = ctx.event("approval")
        if approval is None:
            return ctx.wait_for("approval")
        if ctx.attempt == 1:
            raise RetryableError("ledger busy")
        return {"attempt": ctx.attempt, "by": approval["approver"], "reason": ctx.wake.reason.value}


class Done(StepHandler):
    def process(self, ctx: Any) -> Any:
        return {"after": sorted(ctx.results)}


HANDLERS = {"Approval": Approval, "Nap": Nap, "Sender": Sender, "Done": Done, "Flaky": FlakyAfterApproval}


def _templates(namespace: str) -> list[dict[str, Any]]:
    return [
        template_doc(namespace, "refund", "1.0.0", [
            {"name": "approve", "handler_class": "Approval"},
            {"name": "pay", "handler_class": "Done", "depends_on_step": "approve"}]),
        template_doc(namespace, "nap", "1.0.0", [{"name": "sleep", "handler_class": "Nap"}]),
        template_doc(namespace, "send", "1.0.0", [{"name": "send", "handler_class": "Sender"}]),
        template_doc(namespace, "flaky", "1.0.0", [{"name": "book", "handler_class": "Flaky"}]),
    ]


class SignalPolicy:
    """Lets namespace ``other`` signal ``team`` (the tasker_authorize hook, action signal)."""

    @hookimpl
    def tasker_authorize(self, principal: Any, action: str, namespace: str) -> bool | None:
        if action == "signal" and principal.name == "namespace:other" and namespace == "team":
            return True
        return None


def make(url: str, clock: FakeClock, *, policy: bool = False, poll_seconds: float = 1.0) -> Host:
    eps = [FakeEntryPoint.of(ns, make_plugin([ns], _templates(ns), HANDLERS), dist=f"tasker-{ns}")
           for ns in ("team", "other")]
    if policy:
        eps.append(FakeEntryPoint.of("policy", SignalPolicy(), dist="tasker-policy"))
    return build_host(HostSettings(database_url=url, engine=EngineConfig(poll_seconds=poll_seconds)),
                      entry_points=eps, clock=clock,
                      policy=RetryPolicy(base_seconds=1.0, jitter=0.0))


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tasker.db'}"
    pg: str = request.getfixturevalue("postgres_url")
    upgrade(pg)
    return pg


@pytest.fixture
def clock() -> FakeClock:
    RUNS.clear()
    return FakeClock()


@pytest.fixture
def host(url: str, clock: FakeClock) -> Iterator[Host]:
    h = make(url, clock)
    yield h
    h.close()


def _step(host: Host, task_id: str, name: str) -> Any:
    return next(s for s in host.service.get_task(task_id).steps if s.name == name)


APPROVED = {"approved": True, "approver": "maria", "note": "ok"}


async def test_wait_then_event_completes(host: Host) -> None:
    task = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    step = _step(host, task.id, "approve")
    assert step.state is StepState.WAITING and step.wait["event"] == "approval"
    assert step.ready_at == host.clock.now() + HOURS_48  # the timeout is the step's timer
    assert host.service.get_task(task.id).status is TaskState.IN_PROGRESS
    sent = host.service.send_event(task.id, "approval", APPROVED, idempotency_key="k1", sender="maria")
    assert sent.status is SendStatus.SENT and sent.woke == "approve"
    await host.engine.run_until_idle()
    done = host.service.get_task(task.id)
    assert done.status is TaskState.COMPLETE
    assert done.steps[0].results == {"approved": True, "by": "maria"} and done.steps[0].attempts == 1
    assert [r[2] for r in RUNS] == [None, "event"]
    states = [t.to_state for t in host.store.transitions(task.id) if t.step == "approve"]
    assert states == ["pending", "in_progress", "waiting", "in_progress", "complete"]


async def test_timeout_is_the_handlers_choice(host: Host, clock: FakeClock) -> None:
    rejected = host.service.create_task("team", "refund", context={"on_timeout": "reject"}).task
    failed = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    clock.advance(HOURS_48 - 1)
    await host.engine.run_until_idle()
    assert _step(host, rejected.id, "approve").state is StepState.WAITING  # not yet
    clock.advance(1)
    await host.engine.run_until_idle()
    assert host.service.get_task(rejected.id).status is TaskState.COMPLETE
    assert _step(host, rejected.id, "approve").results == {"approved": False, "timed_out": True}
    lost = host.service.get_task(failed.id)
    assert lost.status is TaskState.ERROR and lost.error["type"] == "EventTimeoutError"
    assert _step(host, failed.id, "approve").attempts == 1  # waiting never counted as an attempt


async def test_an_event_sent_before_the_wait_is_not_lost(host: Host) -> None:
    task = host.service.create_task("team", "refund").task
    early = host.service.send_event(task.id, "approval", APPROVED)
    assert early.woke is None
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).status is TaskState.COMPLETE
    assert [r[2] for r in RUNS] == [None, "event"]


async def test_a_duplicate_key_is_a_no_op_returning_the_original(host: Host) -> None:
    task = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    first = host.service.send_event(task.id, "approval", APPROVED, idempotency_key="same")
    again = host.service.send_event(task.id, "approval", {**APPROVED, "approved": False}, idempotency_key="same")
    assert again.status is SendStatus.DUPLICATE and again.event == first.event
    await host.engine.run_until_idle()
    assert _step(host, task.id, "approve").results["approved"] is True
    assert len(host.service.task_events(task.id)) == 1
    # the original is still returned once the task has ended; a new key is refused
    assert host.service.send_event(task.id, "approval", APPROVED, idempotency_key="same").status is SendStatus.DUPLICATE
    with pytest.raises(TaskEndedError):
        host.service.send_event(task.id, "approval", APPROVED, idempotency_key="new")


async def test_an_invalid_payload_lists_every_problem_and_writes_nothing(host: Host) -> None:
    task = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    with pytest.raises(InvalidEventError) as caught:
        host.service.send_event(task.id, "approval", {"approved": "yes", "extra": 1})
    paths = sorted(v["path"] for v in caught.value.violations)
    assert paths == ["payload", "payload", "payload.approved"]  # approver missing, extra, type
    with pytest.raises(InvalidValueError):
        host.service.send_event(task.id, "bad name!", {})
    with pytest.raises(InvalidValueError):
        host.service.send_event(task.id, "approval", {"approved": True, "approver": "a\x00b"})
    with pytest.raises(InvalidValueError):
        host.service.send_event(task.id, "approval", APPROVED, idempotency_key="k" * 201)
    assert host.service.task_events(task.id) == []
    assert _step(host, task.id, "approve").state is StepState.WAITING


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tasker.db'}"
    pg: str = request.getfixturevalue("postgres_url")
    upgrade(pg)
    return pg


async def test_a_restart_while_waiting_loses_nothing(durable_url: str, clock: FakeClock) -> None:
    url = durable_url
    first = make(url, clock)
    approval = first.service.create_task("team", "refund").task
    nap = first.service.create_task("team", "nap", context={"until": clock.now() + 600}).task
    await first.engine.run_until_idle()
    first.close()
    second = make(url, clock)  # a new process: nothing but the database
    try:
        assert _step(second, approval.id, "approve").state is StepState.WAITING
        second.service.send_event(approval.id, "approval", APPROVED)
        clock.advance(600)
        await second.engine.run_until_idle()
        assert second.service.get_task(approval.id).status is TaskState.COMPLETE
        assert second.service.get_task(nap.id).steps[0].results == {"woke": "timer"}
    finally:
        second.close()


async def test_sleep_until_wakes_the_step_at_its_time(host: Host, clock: FakeClock) -> None:
    task = host.service.create_task("team", "nap", context={"until": clock.now() + 30}).task
    await host.engine.run_until_idle()
    assert host.store.next_ready_at() == clock.now() + 30
    assert host.service.count_by_state().steps[("team", "waiting")] == 1
    assert b'tasker_steps{namespace="team",state="waiting"} 1.0' in Metrics(host.store).render()
    clock.advance(30)
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).steps[0].results == {"woke": "timer"}


async def test_cancelling_a_waiting_task_refuses_later_events(host: Host) -> None:
    task = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    host.service.cancel_task(task.id)
    assert _step(host, task.id, "approve").state is StepState.CANCELLED
    with pytest.raises(TaskEndedError):
        host.service.send_event(task.id, "approval", APPROVED)


async def test_ctx_send_wakes_a_task_of_its_own_namespace(host: Host) -> None:
    target = host.service.create_task("team", "refund").task
    await host.engine.run_until_idle()
    sender = host.service.create_task("team", "send", context={"target": target.id}).task
    await host.engine.run_until_idle()
    assert host.service.get_task(sender.id).status is TaskState.COMPLETE
    assert host.service.get_task(target.id).status is TaskState.COMPLETE
    [event] = host.service.task_events(target.id)
    assert event.sender == f"task:{sender.id}" and event.idempotency_key == f"{sender.id}:send#1"


async def test_ctx_send_to_another_namespace_needs_a_grant(url: str, clock: FakeClock) -> None:
    for policy, expected in ((False, TaskState.ERROR), (True, TaskState.COMPLETE)):
        host = make(url, clock, policy=policy)
        try:
            target = host.service.create_task("team", "refund").task
            sender = host.service.create_task("other", "send", context={"target": target.id}).task
            await host.engine.run_until_idle()
            found = host.service.get_task(sender.id)
            assert found.status is expected
            if expected is TaskState.ERROR:
                assert "may not send events" in found.error["message"]
                assert _step(host, target.id, "approve").state is StepState.WAITING
        finally:
            host.close()


async def test_a_running_runner_wakes_for_each_timer_not_at_its_next_poll(url: str, clock: FakeClock) -> None:
    host = make(url, clock, poll_seconds=3600.0)  # a poll would come an hour late
    waiting = anyio.Event()
    seen: list[str] = []

    def on_event(event: LifecycleEvent) -> None:
        if event.kind is EventKind.STEP_WAITING:
            seen.append(event.task_id)
            if len(seen) == 2:
                waiting.set()

    host.events.subscribe(on_event)
    try:
        first = host.service.create_task("team", "nap", context={"until": clock.now() + 10}).task
        second = host.service.create_task("team", "nap", context={"until": clock.now() + 11}).task
        async with anyio.create_task_group() as tg:
            tg.start_soon(host.engine.run)
            with anyio.fail_after(10):
                await waiting.wait()
                clock.advance(10)
                assert await host.engine.wait_for_task(first.id) is TaskState.COMPLETE
                assert host.service.get_task(second.id).status is TaskState.IN_PROGRESS
                clock.advance(1)
                assert await host.engine.wait_for_task(second.id) is TaskState.COMPLETE
            tg.cancel_scope.cancel()
    finally:
        host.close()


async def test_a_retry_after_the_event_still_reads_it(host: Host, clock: FakeClock) -> None:
    task = host.service.create_task("team", "flaky").task
    await host.engine.run_until_idle()
    assert _step(host, task.id, "book").attempts == 0  # waiting: the attempt was given back
    host.service.send_event(task.id, "approval", APPROVED)
    await host.engine.run_until_idle()
    assert _step(host, task.id, "book").state is StepState.WAITING_RETRY
    clock.advance(60)
    await host.engine.run_until_idle()
    assert _step(host, task.id, "book").results == {"attempt": 2, "by": "maria", "reason": "event"}
