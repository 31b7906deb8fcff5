"""OpenTelemetry traces of the engine, read from the SDK's in-memory exporter: the seed's
customer_success refund (which invokes payments.process_refund) is ONE trace covering both
namespaces, one short span per step attempt, children of the task's stored context; retries link
to the attempt before them (also when another runner ran it); errors carry their class."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from opentelemetry.trace import StatusCode

from tasker_host.engine.clock import FakeClock, RealClock
from tasker_host.engine.config import EngineConfig
from tasker_host.engine.events import EventKind
from tasker_host.engine.retry import RetryPolicy
from tasker_host.host import Host, build_host
from tasker_host.models import TaskState
from tasker_host.settings import HostSettings
from tasker_host.store.base import Store, TaskFilter
from tests.engine_support import Script, chain, doc, make_host
from tests.trace_support import Recorder, by_name, one, parent_of, span_id, step_spans, trace_ids

pytestmark = pytest.mark.anyio

CS_CONTEXT = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
              "refund_reason": "Product defective", "agent_notes": "Customer very upset, expedite refund",
              "requires_approval": True}
PAYMENTS_CONTEXT = {"payment_id": "pay_123", "refund_amount": 4999, "refund_reason": "customer_request",
                    "partial_refund": False}
CS_STEPS = ["validate_refund_request", "check_refund_policy", "get_manager_approval", "execute_refund_workflow",
            "update_ticket_status"]
PAYMENTS_STEPS = ["validate_payment_eligibility", "process_gateway_refund", "update_payment_records",
                  "notify_customer"]


def team_host(recorder: Recorder | None, *, store: Store | None = None, url: str = "memory",
              clock: Any = None, **engine: Any) -> Host:
    h = build_host(HostSettings(database_url=url, strict_plugins=True), store=store, clock=clock or FakeClock(),
                   policy=RetryPolicy(jitter=0.0, base_seconds=0.01),
                   engine_config=EngineConfig(**engine) if engine else None,
                   tracer_provider=recorder.provider if recorder else None)
    if not {"payments", "customer_success"} <= set(h.registry.namespaces):
        pytest.fail("the team plugins must be installed (./scripts/test installs them)")
    return h


async def drain(host: Host, rounds: int = 20) -> None:
    for _ in range(rounds):
        await host.engine.run_until_idle()
        ready_at = host.store.next_ready_at()
        if ready_at is None:
            return
        host.clock.advance(max(0.0, ready_at - host.clock.now()))  # type: ignore[attr-defined]
    raise AssertionError("work still pending after draining")


def assert_one_refund_trace(spans: list, root_id: int | None) -> None:
    """The seed refund's tree: creation ← steps (customer_success); the delegating step ← the
    payments task's creation ← its steps. One span per attempt; everything in one trace."""
    assert len(trace_ids(spans)) == 1
    cs_create = one(spans, "create customer_success.process_refund")
    assert parent_of(cs_create) == root_id
    cs_steps = {s.attributes["tasker.step"]: s for s in step_spans(spans, "customer_success")}
    assert sorted(cs_steps) == sorted(CS_STEPS) and len(step_spans(spans, "customer_success")) == len(CS_STEPS)
    assert {parent_of(s) for s in cs_steps.values()} == {span_id(cs_create)}
    pay_create = one(spans, "create payments.process_refund")
    delegate = cs_steps["execute_refund_workflow"]
    assert parent_of(pay_create) == span_id(delegate)
    pay_steps = {s.attributes["tasker.step"]: s for s in step_spans(spans, "payments")}
    assert sorted(pay_steps) == sorted(PAYMENTS_STEPS)
    assert {parent_of(s) for s in pay_steps.values()} == {span_id(pay_create)}
    # the child's steps ran (and ended) while the delegating attempt waited for them
    assert all(delegate.start_time <= s.start_time and s.end_time <= delegate.end_time for s in pay_steps.values())
    # attributes: who, which version, which attempt, which plugin, which correlation
    correlation = {s.attributes["tasker.correlation_id"] for s in [*cs_steps.values(), *pay_steps.values()]}
    assert len(correlation) == 1
    v = delegate.attributes
    assert (v["tasker.namespace"], v["tasker.template"], v["tasker.version"], v["tasker.attempt"]) == (
        "customer_success", "process_refund", "1.3.3", 1)
    assert v["tasker.plugin.distribution"] == "tasker-customer-success" and v["tasker.plugin.version"]
    assert "tasker.outcome" not in v and v["tasker.task_id"]  # a completed attempt: status unset, no outcome
    p = pay_steps["process_gateway_refund"].attributes
    assert (p["tasker.namespace"], p["tasker.version"], p["tasker.plugin.distribution"]) == (
        "payments", "2.1.3", "tasker-payments")
    assert pay_create.attributes["tasker.task_id"] == p["tasker.task_id"] != v["tasker.task_id"]


async def test_the_seed_refund_is_one_trace_across_both_namespaces_in_process() -> None:
    recorder = Recorder()
    host = team_host(recorder)
    root, parent = recorder.root()
    task = host.service.create_task("customer_success", "process_refund", "1.3.3", CS_CONTEXT,
                                    traceparent=parent).task
    await drain(host)
    assert host.service.get_task(task.id).status is TaskState.COMPLETE
    spans = recorder.spans()
    assert_one_refund_trace([s for s in spans if s.name != "client"], span_id(root))
    # the stored contexts: the tasks' creation spans
    child = host.store.list_tasks(TaskFilter(parent_task_id=task.id))[0]
    created = {name: f"{span_id(one(spans, f'create {name}.process_refund')):016x}"
               for name in ("customer_success", "payments")}
    assert host.store.get_task(task.id).traceparent.split("-")[2] == created["customer_success"]
    assert child.traceparent.split("-")[2] == created["payments"]


async def test_a_retry_links_to_the_failed_attempt_whose_span_holds_the_error() -> None:
    recorder = Recorder()
    host = team_host(recorder)
    context = {**PAYMENTS_CONTEXT, "simulate": {"process_gateway_refund": ["unavailable", "ok"]}}
    task = host.service.create_task("payments", "process_refund", "2.1.3", context).task
    await drain(host)
    first, second = by_name(recorder.spans(), "run payments.process_refund/process_gateway_refund")
    assert (first.attributes["tasker.attempt"], second.attributes["tasker.attempt"]) == (1, 2)
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes["tasker.outcome"], first.attributes["tasker.error.class"]) == ("waiting_retry",
                                                                                           "retryable")
    assert [e.name for e in first.events] == ["exception"]
    assert [link.context.span_id for link in second.links] == [span_id(first)]
    assert parent_of(first) == parent_of(second)  # both children of the task's creation span
    assert second.status.status_code is StatusCode.UNSET and "tasker.error.class" not in second.attributes
    step = next(s for s in host.store.get_task(task.id).steps if s.name == "process_gateway_refund")
    assert step.last_error["traceparent"].split("-")[2] == f"{span_id(first):016x}"


async def test_a_permanent_failure_is_recorded_with_its_class() -> None:
    recorder = Recorder()
    host = team_host(recorder)
    context = {**PAYMENTS_CONTEXT, "simulate": {"process_gateway_refund": ["declined"]}}
    task = host.service.create_task("payments", "process_refund", "2.1.3", context).task
    await drain(host)
    assert host.service.get_task(task.id).status is TaskState.ERROR
    span = one(recorder.spans(), "run payments.process_refund/process_gateway_refund")
    assert (span.attributes["tasker.outcome"], span.attributes["tasker.error.class"]) == ("error", "permanent")
    assert span.status.status_code is StatusCode.ERROR and "declined" in (span.status.description or "").lower()


async def test_a_timeout_is_recorded_as_its_own_class() -> None:
    recorder = Recorder()
    script = Script()
    host = make_host(script, [doc(steps=chain(["a"], handler_config={"timeout_seconds": 5}))],
                     tracer_provider=recorder.provider)
    host.service.create_task("team", "flow", context={"script": {"a": ["hang"]}})
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run_until_idle)
        await script.started["a"].wait()
        host.clock.advance(5)
    span = one(recorder.spans(), "run team.flow/a")
    assert (span.attributes["tasker.outcome"], span.attributes["tasker.error.class"]) == ("waiting_retry", "timeout")


async def test_a_retry_run_by_another_runner_links_to_the_first_attempt_through_the_store() -> None:
    first_runner, second_runner = Recorder(), Recorder()
    a = team_host(first_runner)
    b = team_host(second_runner, store=a.store, clock=a.clock)  # one database, two runners
    context = {**PAYMENTS_CONTEXT, "simulate": {"validate_payment_eligibility": ["unavailable", "ok"]}}
    a.service.create_task("payments", "process_refund", "2.1.3", context)
    await a.engine.run_until_idle()  # attempt 1 fails here
    a.clock.advance(60)
    await drain(b)  # attempt 2 and the rest run there
    [failed] = by_name(first_runner.spans(), "run payments.process_refund/validate_payment_eligibility")
    [retried] = by_name(second_runner.spans(), "run payments.process_refund/validate_payment_eligibility")
    assert retried.attributes["tasker.attempt"] == 2
    assert [link.context.span_id for link in retried.links] == [span_id(failed)]
    assert trace_ids([failed, retried]) == trace_ids(first_runner.spans())


async def test_without_an_sdk_the_callers_context_still_reaches_tasks_and_their_children() -> None:
    host = team_host(None)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    task = host.service.create_task("customer_success", "process_refund", "1.3.3", CS_CONTEXT,
                                    traceparent=parent).task
    await drain(host)
    [child] = host.store.list_tasks(TaskFilter(parent_task_id=task.id))
    assert host.store.get_task(task.id).traceparent == parent == child.traceparent
    assert host.service.get_task(task.id).status is TaskState.COMPLETE


async def test_a_task_created_untraced_gets_no_context_and_its_steps_root_spans() -> None:
    recorder = Recorder()
    untraced = team_host(None)
    task = untraced.service.create_task("payments", "process_refund", "2.1.3", PAYMENTS_CONTEXT).task
    assert untraced.store.get_task(task.id).traceparent is None
    worker = team_host(recorder, store=untraced.store, clock=untraced.clock)
    await drain(worker)
    spans = step_spans(recorder.spans(), "payments")
    assert len(spans) == len(PAYMENTS_STEPS) and all(s.parent is None for s in spans)
    assert {s.attributes["tasker.task_id"] for s in spans} == {task.id}


@pytest.mark.postgres
async def test_the_seed_refund_is_one_trace_across_two_runners_on_postgresql(postgres_url: str) -> None:
    """Two runners (each with its own provider and exporter, as two processes have) on one
    PostgreSQL database. The support runner (room for one step) runs the customer_success steps;
    the payments runner starts once the delegating step runs (which fills the support runner), so
    every payments step runs there: the trace crosses runners through the stored contexts alone."""
    from tasker_host.store.sql.engine import upgrade

    upgrade(postgres_url)
    support_rec, payments_rec = Recorder(), Recorder()
    support = team_host(support_rec, url=postgres_url, clock=RealClock(), poll_seconds=0.05, concurrency=1)
    payments = team_host(payments_rec, url=postgres_url, clock=RealClock(), poll_seconds=0.05)
    delegating = anyio.Event()
    support.events.subscribe(lambda e: delegating.set() if (e.kind is EventKind.STEP_STARTED
                                                            and e.step == "execute_refund_workflow") else None)
    root, parent = support_rec.root()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(support.engine.run)
            task = support.service.create_task("customer_success", "process_refund", "1.3.3", CS_CONTEXT,
                                               traceparent=parent).task
            with anyio.fail_after(60):
                await delegating.wait()
                tg.start_soon(payments.engine.run)
                assert await support.engine.wait_for_task(task.id) is TaskState.COMPLETE
            tg.cancel_scope.cancel()
    finally:
        support.close()
        payments.close()
    assert len(step_spans(support_rec.spans(), "customer_success")) == len(CS_STEPS)
    assert len(step_spans(payments_rec.spans(), "payments")) == len(PAYMENTS_STEPS)
    assert not step_spans(support_rec.spans(), "payments") and not step_spans(payments_rec.spans(), "customer")
    spans = [s for s in [*support_rec.spans(), *payments_rec.spans()] if s.name != "client"]
    assert_one_refund_trace(spans, span_id(root))
