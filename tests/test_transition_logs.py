"""Engine logs: a line per task and step transition (failures and retries at WARNING, with the
error), each with task id, namespace, template@version, step, attempt, correlation id and trace
id; ``ctx.log`` lines carry the same fields; both formatters print them."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tasker_host import StepHandler
from tasker_host.api.access_log import JsonFormatter, KeyValueFormatter
from tasker_host.engine.events import EventBus, EventKind, LifecycleEvent
from tasker_host.engine.transition_log import LOGGER, TransitionLog, fields_of, message_of
from tests.engine_support import Script, chain, doc, make_host
from tests.trace_support import Recorder

pytestmark = pytest.mark.anyio

STEP_FIELDS = {"event", "task_id", "namespace", "template", "step", "attempt", "correlation_id", "trace_id"}


def transitions(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


class Logging(StepHandler):
    """Writes one ``ctx.log`` line."""

    async def process(self, ctx: Any) -> Any:
        ctx.log.info("charging %s", ctx.task.context.get("amount"))
        return {"ok": True}


async def test_every_transition_is_a_line_with_its_fields_and_failures_are_warnings(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    recorder, script = Recorder(), Script()
    host = make_host(script, [doc(steps=chain(["a", "b"]))], tracer_provider=recorder.provider)
    TransitionLog().attach(host.events)
    _, parent = recorder.root()
    task = host.service.create_task("team", "flow", context={"script": {"b": ["retry", "permanent"]}},
                                    correlation_id="corr-7", traceparent=parent).task
    await host.engine.run_until_idle()
    host.clock.advance(5)
    await host.engine.run_until_idle()
    records = transitions(caplog)
    kinds = [r.fields["event"] for r in records]
    assert kinds == ["task.created", "task.started", "step.started", "step.completed", "step.started",
                     "step.retrying", "step.started", "step.failed", "task.failed"]
    trace_id = parent[3:35]
    for record in records:
        f = record.fields
        assert (f["task_id"], f["namespace"], f["template"], f["correlation_id"], f["trace_id"]) == (
            task.id, "team", "flow@1.0.0", "corr-7", trace_id)
        if f["event"].startswith("step."):
            assert STEP_FIELDS <= set(f) and f["step"] in ("a", "b")
    levels = {r.fields["event"]: r.levelno for r in records}
    assert levels["step.retrying"] == levels["step.failed"] == levels["task.failed"] == logging.WARNING
    assert levels["step.completed"] == levels["task.started"] == logging.INFO
    retrying, failed = (next(r for r in records if r.fields["event"] == k) for k in ("step.retrying", "step.failed"))
    assert retrying.fields["error"] == "RetryableError: service unavailable" and retrying.fields["attempt"] == 1
    assert retrying.fields["error_class"] == "retryable" and retrying.fields["retry_at"].startswith("20")
    assert (failed.fields["error"], failed.fields["error_class"], failed.fields["attempt"]) == (
        "PermanentError: card declined", "permanent", 2)
    assert "card declined" in failed.getMessage() and "step b of team.flow@1.0.0 failed" in failed.getMessage()


async def test_retried_and_resolved_by_request_are_logged_too(caplog) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    script = Script()
    host = make_host(script, [doc(steps=chain(["a", "b"], default_retryable=False))])
    task = host.service.create_task("team", "flow", context={"script": {"a": ["permanent"]}}).task
    await host.engine.run_until_idle()
    host.service.resolve_step(task.id, "a", {"by": "hand"})
    said = [(r.fields["event"], r.fields.get("step")) for r in transitions(caplog)]
    assert ("step.resolved", "a") in said
    task2 = host.service.create_task("team", "flow", context={"script": {"a": ["permanent"]}}).task
    await host.engine.run_until_idle()
    host.service.retry_task(task2.id)
    [line] = [r for r in transitions(caplog) if r.fields["event"] == "task.retried"]
    assert (line.fields["task_id"], line.fields["template"]) == (task2.id, "flow@1.0.0")


async def test_ctx_log_lines_carry_the_same_fields(caplog) -> None:
    caplog.set_level(logging.INFO, logger="tasker_host.step")
    recorder, script = Recorder(), Script()
    host = make_host(script, [doc(steps=[{"name": "a", "handler_class": "Logging"}])],
                     handlers={"Logging": Logging}, tracer_provider=recorder.provider)
    task = host.service.create_task("team", "flow", context={"amount": 42}, correlation_id="corr-9").task
    await host.engine.run_until_idle()
    [line] = [r for r in caplog.records if r.name == "tasker_host.step"]
    [span] = [s for s in recorder.spans() if s.name == "run team.flow/a"]
    assert line.getMessage() == "charging 42"
    assert line.fields == {
        "task_id": task.id, "namespace": "team", "template": "flow@1.0.0", "step": "a", "attempt": 1,
        "correlation_id": "corr-9", "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}"}


def test_a_waiting_step_says_when_it_wakes_not_when_it_retries() -> None:
    event = LifecycleEvent(EventKind.STEP_WAITING, "t-1", "customer_success", "process_refund", "1.4.0", 0.0,
                           "get_manager_approval", 1, "corr-1", {"retry_at": 172800.0})
    fields = fields_of(event)
    assert fields["wake_at"] == "1970-01-03T00:00:00.000+00:00" and "retry_at" not in fields
    assert message_of(event) == ("step get_manager_approval of customer_success.process_refund@1.4.0 waiting "
                                 "(task t-1, attempt 1)")


def test_both_formats_print_the_fields() -> None:
    event = LifecycleEvent(EventKind.STEP_RETRYING, "t-1", "payments", "process_refund", "2.1.3", 0.0,
                           "charge", 2, "corr-1", {"error": {"type": "Timeout", "kind": "timeout",
                                                             "message": "gateway slow"}, "retry_at": 10.0},
                           trace_id="0af7651916cd43dd8448eb211c80319c")
    record = logging.LogRecord(LOGGER, logging.WARNING, __file__, 1, "%s", (message_of(event),), None)
    record.fields = fields_of(event)
    doc_ = json.loads(JsonFormatter().format(record))
    assert doc_["message"] == ("step charge of payments.process_refund@2.1.3 retrying (task t-1, attempt 2): "
                               "Timeout: gateway slow")
    assert (doc_["level"], doc_["task_id"], doc_["template"], doc_["step"], doc_["attempt"]) == (
        "warning", "t-1", "process_refund@2.1.3", "charge", 2)
    assert (doc_["correlation_id"], doc_["trace_id"], doc_["error_class"]) == (
        "corr-1", "0af7651916cd43dd8448eb211c80319c", "timeout")
    assert doc_["retry_at"] == "1970-01-01T00:00:10.000+00:00"
    text = KeyValueFormatter().format(record)
    for part in ("task_id=t-1", "namespace=payments", "template=process_refund@2.1.3", "step=charge", "attempt=2",
                 "correlation_id=corr-1", "trace_id=0af7651916cd43dd8448eb211c80319c", "level=warning"):
        assert part in text


def test_the_tally_counts_in_the_order_of_a_tasks_life() -> None:
    bus, log = EventBus(), TransitionLog(logging.getLogger("test.tally"))
    log.attach(bus)
    assert log.tally() == "nothing ran"
    for kind in (EventKind.STEP_COMPLETED, EventKind.TASK_COMPLETED, EventKind.STEP_COMPLETED,
                 EventKind.STEP_RETRYING):
        bus.emit(LifecycleEvent(kind, "t", "ns", "n", "1", 0.0, None if kind.value.startswith("task") else "s", 1))
    assert log.tally() == "1 task completed, 2 steps completed, 1 step retrying"
