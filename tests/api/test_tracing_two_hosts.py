"""One trace across two hosts over HTTP: two real servers on loopback (customer_success on one,
payments on the other, each with its own database and its own TracerProvider). The client's
``traceparent`` reaches the support host's request span; the refund's delegating step calls the
payments host with ITS span as ``traceparent``; the payments task's steps join that trace."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from opentelemetry.trace import SpanKind

from tasker_host.api import create_app
from tasker_host.engine.events import EventKind
from tasker_host.engine.retry import RetryPolicy
from tasker_host.host import Host, build_host
from tasker_host.settings import HostSettings, RemoteHost
from tasker_host.tokens import issue_token
from tests.trace_support import Recorder, by_name, one, parent_of, span_id, step_spans, trace_ids

from .conftest import PREFIX, SEED_CUSTOMER_SUCCESS, ServerThread, TaskWaiter, make_host
from .test_two_hosts import plugins


def traced_host(db: Path, recorder: Recorder, entry_points: list, **settings: object) -> Host:
    return build_host(HostSettings(database_url=f"sqlite:///{db}", **settings), entry_points=entry_points,
                      policy=RetryPolicy(base_seconds=0.01, jitter=0.0), tracer_provider=recorder.provider)


def test_the_refund_is_one_trace_across_two_hosts_over_http(tmp_path: Path) -> None:
    now = time.time()
    support_rec, payments_rec = Recorder(), Recorder()
    payments = traced_host(tmp_path / "payments.db", payments_rec, plugins("payments"))
    payments_token = issue_token(payments.tokens, "customer-success", grants=["payments"], now=now).token
    payments_server = ServerThread(create_app(payments, prefix=PREFIX))
    payments_server.start()
    remote = RemoteHost("payments", f"http://127.0.0.1:{payments_server.port}{PREFIX}", payments_token)
    support = traced_host(tmp_path / "support.db", support_rec, plugins("customer_success"), remote_hosts=(remote,))
    support_token = issue_token(support.tokens, "support-desk", grants=["customer_success"], now=now).token
    waiter = TaskWaiter(support)
    support_server = ServerThread(create_app(support, prefix=PREFIX))
    support_server.start()
    client, traceparent = support_rec.root("client")
    try:
        with httpx.Client(timeout=10) as http:
            created = http.post(f"http://127.0.0.1:{support_server.port}{PREFIX}/tasks", json=SEED_CUSTOMER_SUCCESS,
                                headers={"Authorization": f"Bearer {support_token}", "traceparent": traceparent})
            assert created.status_code == 201, created.text
            assert waiter.wait(created.json()["id"], timeout=30) is EventKind.TASK_COMPLETED
    finally:
        support_server.stop()  # the caller first: it stops polling before payments goes away
        payments_server.stop()
        waiter.unsubscribe()

    def traced(spans: list) -> list:  # (the servers' start-up health probes, and the support host's
        # start-up check of its declared calls against the payments host's contracts, are traces of their own)
        return [s for s in spans if s.name not in ("client", "GET /tasker/health/live")
                and not s.name.startswith("GET /tasker/handlers/")]

    ours, theirs = traced(support_rec.spans()), traced(payments_rec.spans())
    spans = [*ours, *theirs]
    assert trace_ids(spans) == {client.get_span_context().trace_id}  # one trace, both hosts

    # the support host: request span <- creation <- each step attempt
    request = one(ours, "POST /tasker/tasks")
    assert parent_of(request) == span_id(client)
    assert (request.attributes["http.route"], request.attributes["http.response.status_code"]) == ("/tasker/tasks", 201)
    cs_create = one(ours, "create customer_success.process_refund")
    assert parent_of(cs_create) == span_id(request)
    cs_steps = {s.attributes["tasker.step"]: s for s in step_spans(ours, "customer_success")}
    assert len(cs_steps) == 5 and {parent_of(s) for s in cs_steps.values()} == {span_id(cs_create)}
    delegate = cs_steps["execute_refund_workflow"]

    # the remote route: a client span per request (create, then polls), children of the delegating
    # attempt; on the payments host each request's span is a child of its client span; the
    # payments task's creation is a child of the POST, its steps of that
    calls = [s for s in ours if s.kind is SpanKind.CLIENT]
    assert [s.name for s in calls][:1] == ["POST /tasks"] and {s.name for s in calls[1:]} <= {"GET /tasks/{task_id}"}
    assert {parent_of(s) for s in calls} == {span_id(delegate)}
    assert calls[0].attributes["http.response.status_code"] == 201
    their_requests = [s for s in theirs if s.attributes and "http.route" in s.attributes]
    assert sorted(parent_of(s) for s in their_requests) == sorted(span_id(s) for s in calls)
    their_post = one(theirs, "POST /tasker/tasks")
    pay_create = one(theirs, "create payments.process_refund")
    assert parent_of(pay_create) == span_id(their_post)
    pay_steps = step_spans(theirs, "payments")
    assert len(pay_steps) == 4 and {parent_of(s) for s in pay_steps} == {span_id(pay_create)}
    assert all(s.attributes["tasker.plugin.distribution"] == "tasker-payments" for s in pay_steps)
    assert {s.attributes["tasker.correlation_id"] for s in [*pay_steps, *cs_steps.values()]} == {
        cs_create.attributes["tasker.correlation_id"]}
    assert not step_spans(ours, "payments") and not step_spans(theirs, "customer_success")
    assert by_name(theirs, "GET /tasker/tasks/{task_id}")  # the route template, not the task id


def test_without_an_sdk_the_request_context_is_stored_on_the_task(tmp_path: Path) -> None:
    host = make_host(tmp_path / "t.db")  # no tracer provider: no-op spans
    token = issue_token(host.tokens, "ops", admin=True, now=time.time()).token
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    server = ServerThread(create_app(host, prefix=PREFIX, run_worker=False))
    server.start()
    try:
        with httpx.Client(timeout=10) as http:
            created = http.post(f"http://127.0.0.1:{server.port}{PREFIX}/tasks", json=SEED_CUSTOMER_SUCCESS,
                                headers={"Authorization": f"Bearer {token}", "traceparent": parent})
            bad = http.post(f"http://127.0.0.1:{server.port}{PREFIX}/tasks", json=SEED_CUSTOMER_SUCCESS,
                            headers={"Authorization": f"Bearer {token}", "traceparent": "00-nonsense"})
        assert (created.status_code, bad.status_code) == (201, 201)  # a malformed header is ignored, not refused
        assert host.store.get_task(created.json()["id"]).traceparent == parent
        assert host.store.get_task(bad.json()["id"]).traceparent is None
    finally:
        server.stop()
