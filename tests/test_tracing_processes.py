"""The seed refund as one trace across two real ``tasker-host worker`` processes on one PostgreSQL
database. Each worker sets the SDK up from OTEL_* variables (``OTEL_TRACES_EXPORTER=console``:
its spans as JSON on its standard output, flushed when it stops); the task is created in this
process under a root span. The support worker (``--concurrency 1``) runs the customer_success
steps; the payments worker starts only once the delegating step runs (which fills the support
worker), so every payments step runs there and the trace crosses processes through the database."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasker_host.engine.clock import RealClock
from tasker_host.host import build_host
from tasker_host.settings import HostSettings

pytestmark = pytest.mark.postgres

BIN = Path(sys.executable).parent / "tasker-host"
CS_CONTEXT = {"ticket_id": "cs_456", "customer_id": "cust_789", "refund_amount": 4999,
              "refund_reason": "Product defective", "agent_notes": "Customer very upset, expedite refund",
              "requires_approval": True}
TIMEOUT = 60.0


class Worker:
    """A worker process whose JSON log lines are read as they come (a reader thread)."""

    def __init__(self, url: str, *args: str):
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "worker"}
        self.proc = subprocess.Popen([str(BIN), "--database-url", url, "worker", "--log-format", "json",
                                      "--poll-seconds", "0.1", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass

    def wait_for(self, event: str, step: str | None = None) -> dict[str, Any]:
        while True:
            try:
                doc = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no {event} {step or ''} in: {''.join(self.stderr)[-3000:]}") from None
            if doc.get("event") == event and (step is None or doc.get("step") == step):
                return doc

    def stop(self) -> list[dict[str, Any]]:
        """SIGTERM; the spans it exported (console exporter: JSON objects on stdout)."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=TIMEOUT)
        assert self.proc.returncode == 0, "".join(self.stderr)[-3000:]
        return list(_objects(out))


def _objects(text: str) -> Iterator[dict[str, Any]]:
    decoder, at = json.JSONDecoder(), 0
    while (at := _skip_space(text, at)) < len(text):
        doc, at = decoder.raw_decode(text, at)
        yield doc


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def parent(span: dict[str, Any]) -> str | None:
    return span.get("parent_id")


def sid(span: dict[str, Any]) -> str:
    return span["context"]["span_id"]


@pytest.mark.skipif(not BIN.exists(), reason="tasker-host is not installed in this environment")
def test_the_seed_refund_is_one_trace_across_two_worker_processes(postgres_url: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tasker_host.engine.tracing import traceparent_of
    from tasker_host.store.sql.engine import upgrade

    upgrade(postgres_url)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    creator = build_host(HostSettings(database_url=postgres_url), clock=RealClock(), tracer_provider=provider)
    root = provider.get_tracer("test").start_span("client")
    root.end()
    support = Worker(postgres_url, "--concurrency", "1")
    payments: Worker | None = None
    try:
        task = creator.service.create_task("customer_success", "process_refund", "1.3.3", CS_CONTEXT,
                                           traceparent=traceparent_of(root)).task
        support.wait_for("step.started", "execute_refund_workflow")
        payments = Worker(postgres_url)
        assert support.wait_for("task.completed")["task_id"] == task.id  # (the child completes in the other)
    finally:
        support_spans = support.stop()
        payments_spans = payments.stop() if payments is not None else []
        creator.close()
    created = [s for s in exporter.get_finished_spans() if s.name.startswith("create ")]
    assert [s.name for s in created] == ["create customer_success.process_refund"]
    cs_create = f"0x{created[0].context.span_id:016x}"
    trace = f"0x{root.get_span_context().trace_id:032x}"
    assert {s["context"]["trace_id"] for s in support_spans + payments_spans} == {trace}
    cs_steps = {s["attributes"]["tasker.step"]: s for s in support_spans if s["name"].startswith("run ")}
    assert len(cs_steps) == 5 and {parent(s) for s in cs_steps.values()} == {cs_create}
    assert all(s["name"].startswith("run customer_success.") for s in cs_steps.values())
    [pay_create] = [s for s in support_spans if s["name"] == "create payments.process_refund"]
    assert parent(pay_create) == sid(cs_steps["execute_refund_workflow"])  # created by the delegating step
    pay_steps = [s for s in payments_spans if s["name"].startswith("run ")]
    assert len(pay_steps) == 4 and all(s["name"].startswith("run payments.") for s in pay_steps)
    assert {parent(s) for s in pay_steps} == {sid(pay_create)}  # in the other process, from the database
    assert {s["resource"]["attributes"]["service.name"] for s in support_spans + payments_spans} == {"worker"}
