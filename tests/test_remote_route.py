"""Calls between hosts: the remote route over ``httpx.MockTransport`` (no network, no sleeping)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from tasker_host import PermanentError, RetryableError, StepHandler
from tasker_host.context import InvocationResult, TaskInfo
from tasker_host.engine.invocation import InvocationRequest
from tasker_host.errors import ConfigurationError
from tasker_host.host import REMOTE_ROUTE_PLUGIN, build_host
from tasker_host.models import StepState, TaskState
from tasker_host.remote import PollSchedule, RemoteRoutePlugin, idempotency_key, retry_after
from tasker_host.settings import HostSettings, RemoteHost, parse_remote_hosts
from tests.engine_support import Script, doc, make_host

pytestmark = pytest.mark.anyio

BASE = "http://payments.test:8081/tasker"
NOW = 1_700_000_000.0
PAYMENTS = RemoteHost("payments", BASE, "tsk_secret")


def task_json(status: str = "complete", task_id: str = "remote-1", **extra: Any) -> dict[str, Any]:
    steps = [{"name": "process_gateway_refund", "state": "complete", "results": {"refund_id": "rf_1"}}]
    return {"id": task_id, "namespace": "payments", "name": "process_refund", "version": "2.1.3",
            "full_name": "payments.process_refund@2.1.3", "status": status, "correlation_id": "corr-1",
            "steps": steps, "error": None, **extra}


class FakeRemote:
    """A scripted remote host: answers requests in order, records what it was sent."""

    def __init__(self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request) if callable(answer) else answer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers) if body is not None else \
        httpx.Response(status, headers=headers)


def invocation(namespace: str = "payments", *, wait: bool = True, version: str | None = "~=2.1",
               key: str = "execute_refund_workflow#1") -> InvocationRequest:
    caller = TaskInfo("caller-1", "customer_success", "process_refund", "1.3.3", {}, "corr-1")
    return InvocationRequest(caller, "execute_refund_workflow", namespace, "process_refund", version,
                             {"payment_id": "pay_1"}, wait, key, "corr-1")


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def plugin(remote: FakeRemote, sleeps: Sleeps | None = None) -> RemoteRoutePlugin:
    return RemoteRoutePlugin([PAYMENTS], client_factory=remote.client, sleep=Sleeps() if sleeps is None else sleeps,
                             now=lambda: NOW)


async def deliver(remote: FakeRemote, request: InvocationRequest | None = None,
                  sleeps: Sleeps | None = None) -> InvocationResult:
    request = request or invocation()
    routes = plugin(remote, sleeps)
    try:
        return await routes.tasker_route_invocation(request=request).deliver(request)
    finally:
        await routes.aclose()


# -- delivery ------------------------------------------------------------------------------------


async def test_creates_the_child_and_polls_until_it_is_complete():
    remote = FakeRemote(answer(201, task_json("pending")), answer(200, task_json("in_progress")),
                        answer(200, task_json("complete")))
    sleeps = Sleeps()
    result = await deliver(remote, sleeps=sleeps)
    assert [(r.method, str(r.url)) for r in remote.requests] == [
        ("POST", f"{BASE}/tasks"), ("GET", f"{BASE}/tasks/remote-1"), ("GET", f"{BASE}/tasks/remote-1")]
    assert sleeps == [0.05, 0.1]
    assert result == InvocationResult("remote-1", "payments", "process_refund", "2.1.3", "complete", "corr-1",
                                      {"process_gateway_refund": {"refund_id": "rf_1"}})


async def test_sends_the_task_body_token_idempotency_key_and_correlation_id():
    remote = FakeRemote(answer(201, task_json()))
    await deliver(remote)
    [post] = remote.requests
    assert json.loads(post.content) == {"namespace": "payments", "name": "process_refund", "version": "~=2.1",
                                        "context": {"payment_id": "pay_1"}}
    assert post.headers["Authorization"] == "Bearer tsk_secret"
    assert post.headers["Idempotency-Key"] == "caller-1:execute_refund_workflow#1"
    assert post.headers["X-Correlation-Id"] == "corr-1"


async def test_every_call_carries_the_calling_attempts_traceparent_through_an_untraced_host():
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    remote = FakeRemote(answer(201, task_json("pending")), answer(200, task_json()))
    await deliver(remote, dataclasses.replace(invocation(), traceparent=parent))
    assert [r.headers["traceparent"] for r in remote.requests] == [parent, parent]
    remote = FakeRemote(answer(201, task_json()))
    await deliver(remote)  # no context: no header
    assert "traceparent" not in remote.requests[0].headers


async def test_polls_carry_the_token_and_correlation_id_and_no_version_means_newest():
    remote = FakeRemote(answer(201, task_json("pending")), answer(200, task_json()))
    await deliver(remote, invocation(version=None))
    post, get = remote.requests
    assert "version" not in json.loads(post.content)
    assert (get.headers["Authorization"], get.headers["X-Correlation-Id"]) == ("Bearer tsk_secret", "corr-1")


def test_overlong_idempotency_keys_are_hashed_to_fit_the_api_limit():
    long = invocation(key="s" * 300 + "#1")
    key = idempotency_key(long)
    assert len(key) <= 200 and key.startswith("caller-1:") and key == idempotency_key(long)
    assert key != idempotency_key(invocation(key="s" * 300 + "#2"))


async def test_a_rerun_reattaches_with_the_same_idempotency_key():
    remote = FakeRemote(answer(201, task_json()), answer(200, task_json()))
    routes = plugin(remote)
    for _ in range(2):
        await routes.routes["payments"].deliver(invocation())
    await routes.aclose()
    assert {r.headers["Idempotency-Key"] for r in remote.requests} == {"caller-1:execute_refund_workflow#1"}


async def test_without_wait_returns_the_created_child_without_polling():
    remote = FakeRemote(answer(201, task_json("pending")))
    result = await deliver(remote, invocation(wait=False))
    assert (result.task_id, result.status, dict(result.results)) == ("remote-1", "pending", {})
    assert len(remote.requests) == 1


async def test_every_call_is_logged_with_the_correlation_id(caplog):
    caplog.set_level("INFO", logger="tasker_host.remote")
    await deliver(FakeRemote(answer(201, task_json("pending")), answer(200, task_json())))
    calls = [r for r in caplog.records if "-> HTTP" in r.getMessage()]
    assert [r.getMessage().split(" [")[0] for r in calls] == [
        f"POST {BASE}/tasks -> HTTP 201", f"GET {BASE}/tasks/remote-1 -> HTTP 200"]
    assert all(r.fields["correlation_id"] == "corr-1" and "corr-1" in r.getMessage() for r in calls)


def test_poll_interval_doubles_up_to_its_ceiling():
    delays = PollSchedule().delays()
    assert [next(delays) for _ in range(8)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


# -- classification ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
async def test_refusals_are_permanent_and_carry_the_remote_message(status):
    remote = FakeRemote(answer(status, {"error": {"type": "invalid_context", "message": "refund_amount missing"}}))
    with pytest.raises(PermanentError) as caught:
        await deliver(remote)
    assert f"host {BASE} answered creating payments.process_refund: HTTP {status}" in str(caught.value)
    assert "refund_amount missing" in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 418])
async def test_unavailability_and_unknown_statuses_are_retryable(status):
    remote = FakeRemote(answer(status, {"message": "try later"}))
    with pytest.raises(RetryableError) as caught:
        await deliver(remote)
    assert caught.value.retry_after is None and f"HTTP {status}: try later" in str(caught.value)


async def test_retry_after_seconds_is_honoured():
    with pytest.raises(RetryableError) as caught:
        await deliver(FakeRemote(answer(429, **{"Retry-After": "7"})))
    assert caught.value.retry_after == 7.0


async def test_retry_after_http_date_is_honoured():
    date = format_datetime(datetime.fromtimestamp(NOW + 30, tz=UTC), usegmt=True)
    with pytest.raises(RetryableError) as caught:
        await deliver(FakeRemote(answer(503, **{"Retry-After": date})))
    assert caught.value.retry_after == pytest.approx(30.0)


@pytest.mark.parametrize(("header", "expected"), [
    ("0", 0.0), (" 12 ", 12.0), ("-5", 0.0), ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0), ("soon", None),
    ("", None), (None, None), ("nan", None)])
def test_retry_after_header_values(header, expected):
    assert retry_after(header, NOW) == expected


@pytest.mark.parametrize("error", [httpx.ConnectError("connection refused"), httpx.ReadTimeout("timed out"),
                                   httpx.RemoteProtocolError("peer closed connection")])
async def test_transport_failures_are_retryable(error):
    with pytest.raises(RetryableError) as caught:
        await deliver(FakeRemote(error))
    assert f"cannot reach host {BASE} (POST /tasks)" in str(caught.value)


async def test_a_failing_poll_is_classified_too():
    with pytest.raises(RetryableError):
        await deliver(FakeRemote(answer(201, task_json("pending")), answer(503)))
    with pytest.raises(PermanentError, match="polling remote child task remote-1: HTTP 404"):
        await deliver(FakeRemote(answer(201, task_json("pending")), answer(404, {"message": "no task"})))


@pytest.mark.parametrize("status", ["error", "cancelled", "resolved_manually"])
async def test_a_child_ending_other_than_complete_is_permanent_and_named(status):
    failed = task_json(status, error={"message": "card declined"})
    with pytest.raises(PermanentError) as caught:
        await deliver(FakeRemote(answer(201, task_json("pending")), answer(200, failed)))
    assert str(caught.value) == (f"remote child task remote-1 (payments.process_refund@2.1.3) on host {BASE} "
                                 f"ended {status}: card declined")


async def test_a_success_without_a_task_document_is_permanent():
    with pytest.raises(PermanentError, match="without a task document"):
        await deliver(FakeRemote(httpx.Response(201, text="<html>ok</html>")))


# -- routing -------------------------------------------------------------------------------------


async def test_unmapped_namespaces_get_no_opinion():
    assert plugin(FakeRemote()).tasker_route_invocation(request=invocation("inventory")) is None


class Delegate(StepHandler):
    async def process(self, ctx: Any) -> Any:
        target = ctx.task.context["target"]
        child = await ctx.invoke(target, "flow" if target == "team" else "process_refund",
                                 version=ctx.task.context.get("version"), context={"payment_id": "pay_1"})
        return {"child_id": child.task_id, "child": child.full_name, "status": child.status}


def caller_host(remote: FakeRemote) -> Any:
    routes = RemoteRoutePlugin([PAYMENTS], client_factory=remote.client, sleep=Sleeps())
    caller = doc("delegate", [{"name": "call", "handler_class": "Delegate", "default_retry_limit": 3}],
                 namespace="caller")
    return make_host(Script(), [doc(), caller], handlers={"Delegate": Delegate},
                     extra_plugins=[(REMOTE_ROUTE_PLUGIN, routes)])


async def test_unmapped_namespaces_use_the_local_route():
    remote = FakeRemote()
    host = caller_host(remote)
    parent = host.service.create_task("caller", "delegate", context={"target": "team"}).task
    await host.engine.run_until_idle()
    parent = host.service.get_task(parent.id)
    assert parent.status is TaskState.COMPLETE and parent.steps[0].results["child"] == "team.flow@1.0.0"
    assert remote.requests == []


async def test_the_calling_step_retries_after_a_503_then_completes():
    remote = FakeRemote(answer(503, {"message": "payments is restarting"}, **{"Retry-After": "5"}),
                        answer(201, task_json("pending")), answer(200, task_json("complete")))
    host = caller_host(remote)
    parent = host.service.create_task("caller", "delegate", context={"target": "payments", "version": "~=2.1"}).task
    await host.engine.run_until_idle()
    step = host.service.get_task(parent.id).steps[0]
    assert step.state is StepState.WAITING_RETRY and step.ready_at == pytest.approx(host.clock.now() + 5)
    assert "payments is restarting" in step.last_error["message"]
    host.clock.advance(5)
    await host.engine.run_until_idle()
    parent = host.service.get_task(parent.id)
    assert parent.status is TaskState.COMPLETE and parent.steps[0].attempts == 2
    assert parent.steps[0].results == {"child_id": "remote-1", "child": "payments.process_refund@2.1.3",
                                       "status": "complete"}
    keys = {r.headers["Idempotency-Key"] for r in remote.requests if r.method == "POST"}
    assert keys == {f"{parent.id}:call#1"}


async def test_a_failed_remote_child_fails_the_calling_step_for_good():
    remote = FakeRemote(answer(201, task_json("error", error={"message": "gateway declined"})))
    host = caller_host(remote)
    parent = host.service.create_task("caller", "delegate", context={"target": "payments"}).task
    await host.engine.run_until_idle()
    parent = host.service.get_task(parent.id)
    step = parent.steps[0]
    assert parent.status is TaskState.ERROR and step.attempts == 1 and step.last_error["kind"] == "permanent"
    assert "remote child task remote-1 (payments.process_refund@2.1.3)" in step.last_error["message"]


def test_build_host_registers_the_remote_route_only_when_configured():
    assert build_host(HostSettings(database_url="memory"), entry_points=[]).plugin_manager.get_plugin(
        REMOTE_ROUTE_PLUGIN) is None
    host = build_host(HostSettings(database_url="memory", remote_hosts=(PAYMENTS,)), entry_points=[])
    routes = host.plugin_manager.get_plugin(REMOTE_ROUTE_PLUGIN)
    assert isinstance(routes, RemoteRoutePlugin) and set(routes.routes) == {"payments"}
    host.close()


async def test_the_client_is_made_once_and_closed_by_aclose():
    remote, made = FakeRemote(answer(201, task_json()), answer(201, task_json())), []
    routes = RemoteRoutePlugin([PAYMENTS], client_factory=lambda: made.append(remote.client()) or made[-1])
    for _ in range(2):
        await routes.routes["payments"].deliver(invocation())
    await routes.aclose()
    assert len(made) == 1 and made[0].is_closed


async def test_host_close_closes_the_client_on_its_running_loop():
    import anyio

    remote, made = FakeRemote(answer(201, task_json())), []
    routes = RemoteRoutePlugin([PAYMENTS], client_factory=lambda: made.append(remote.client()) or made[-1])
    host = build_host(HostSettings(database_url="memory"), entry_points=[],
                      extra_plugins=[(REMOTE_ROUTE_PLUGIN, routes)])
    await routes.routes["payments"].deliver(invocation())
    host.close()
    for _ in range(5):
        await anyio.lowlevel.checkpoint()
    assert made[0].is_closed


# -- configuration -------------------------------------------------------------------------------


def test_remote_hosts_are_read_from_the_environment(tmp_path):
    config = {"payments": {"url": "http://127.0.0.1:8081/tasker/", "token": "tsk_a"},
              "inventory": {"url": "https://inventory.internal/tasker", "token_env": "INVENTORY_TOKEN"}}
    env = {"TASKER_REMOTE_HOSTS": json.dumps(config), "INVENTORY_TOKEN": "tsk_b"}
    expected = (RemoteHost("inventory", "https://inventory.internal/tasker", "tsk_b"),
                RemoteHost("payments", "http://127.0.0.1:8081/tasker", "tsk_a"))
    assert HostSettings.from_env(env).remote_hosts == expected
    (tmp_path / "remote.json").write_text(json.dumps(config))
    assert parse_remote_hosts(f"@{tmp_path / 'remote.json'}", env) == expected
    assert "tsk_a" not in repr(expected)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "TASKER_REMOTE_HOSTS is not valid JSON"),
    ('["payments"]', "TASKER_REMOTE_HOSTS must be a JSON object"),
    ('{"payments": "http://x"}', "TASKER_REMOTE_HOSTS: payments must be an object"),
    ('{"payments": {"token": "t"}}', "TASKER_REMOTE_HOSTS: payments.url must be an http(s) URL"),
    ('{"payments": {"url": "ftp://x", "token": "t"}}', "payments.url must be an http(s) URL"),
    ('{"payments": {"url": "http://x"}}', "payments.token is required: give exactly one of token or token_env"),
    ('{"payments": {"url": "http://x", "token": "t", "token_env": "T"}}', "payments.token is required"),
    ('{"payments": {"url": "http://x", "token": ""}}', "payments.token must be a non-empty string"),
    ('{"payments": {"url": "http://x", "token_env": "UNSET_TOKEN"}}',
     "payments.token_env names $UNSET_TOKEN, which is not set or empty"),
    ('{"payments": {"url": "http://x", "tokn": "t"}}', "payments.tokn is not a known key"),
    ('{" ": {"url": "http://x", "token": "t"}}', "namespace names must not be empty"),
    ("@/nonexistent/remote.json", "cannot read TASKER_REMOTE_HOSTS file /nonexistent/remote.json"),
])
def test_bad_remote_host_config_is_reported_with_its_key(text, message):
    with pytest.raises(ConfigurationError) as caught:
        HostSettings.from_env({"TASKER_REMOTE_HOSTS": text})
    assert message in str(caught.value)
