"""Cross-namespace calls: routed by hook, linked to the caller, re-attached on re-run."""

from __future__ import annotations

from typing import Any

import pytest

from tasker_host import PermanentError, StepHandler, hookimpl
from tasker_host.engine.clock import FakeClock
from tasker_host.host import build_host
from tasker_host.models import StepState, TaskState
from tasker_host.registry import ConflictPolicy
from tasker_host.settings import HostSettings
from tasker_host.store.base import TaskFilter
from tasker_host.testing import FakeEntryPoint, make_plugin
from tests.engine_support import Script, doc, make_host, scripted_handler

pytestmark = pytest.mark.anyio


class Delegate(StepHandler):
    """Invokes team.flow; on attempt 1 it crashes *after* the child exists (a lost worker)."""

    async def process(self, ctx: Any) -> Any:
        target = ctx.task.context.get("target", {})
        child = await ctx.invoke("team", target.get("name", "flow"), version=target.get("version", "~=1.0"),
                                 context={"script": ctx.task.context.get("child_script", {})})
        if ctx.attempt == 1 and ctx.task.context.get("crash_after_invoke"):
            raise RuntimeError("worker lost after invoking")
        return {"child_id": child.task_id, "child": child.full_name, "status": child.status,
                "child_results": sorted(child.results), "correlation_id": child.correlation_id}


def caller_doc():
    return doc("delegate", [{"name": "call", "handler_class": "Delegate"}], namespace="caller")


def host_with(script, *templates, **kw):
    return make_host(script, [doc(), doc(version="1.2.0"), caller_doc(), *templates],
                     handlers={"Delegate": Delegate}, **kw)


def children_of(host, task_id):
    return host.store.list_tasks(TaskFilter(parent_task_id=task_id))


async def test_invoke_creates_a_linked_child_resolved_by_range_and_waits_for_it():
    host = host_with(Script())
    parent = host.service.create_task("caller", "delegate").task
    await host.engine.run_until_idle()
    parent = host.service.get_task(parent.id)
    assert parent.status is TaskState.COMPLETE
    results = parent.steps[0].results
    assert results["child"] == "team.flow@1.2.0" and results["status"] == "complete"
    assert results["child_results"] == ["a", "b", "c", "d"]
    [child] = children_of(host, parent.id)
    assert (child.parent_task_id, child.parent_step, child.version) == (parent.id, "call", "1.2.0")
    assert child.correlation_id == parent.correlation_id == results["correlation_id"]


async def test_the_service_reads_what_the_api_shows_without_touching_the_store():
    host = host_with(Script())
    parent = host.service.create_task("caller", "delegate").task
    assert host.service.next_ready_at() == host.clock.now()  # its first step is due now
    await host.engine.run_until_idle()
    [child] = host.service.children(parent.id, limit=10)
    assert child.parent_task_id == parent.id and host.service.children(child.id, limit=10) == []
    assert host.service.find_task(child.id) == host.service.get_task(child.id)
    assert host.service.find_task("no-such-task") is None
    assert host.service.count_by_state().tasks_by_state() == {"complete": 2}
    assert host.service.next_ready_at() is None


async def test_rerunning_the_calling_step_reattaches_to_the_same_child():
    host = host_with(Script())
    parent = host.service.create_task("caller", "delegate", context={"crash_after_invoke": True}).task
    await host.engine.run_until_idle()
    host.clock.advance(10)
    await host.engine.run_until_idle()
    parent = host.service.get_task(parent.id)
    assert parent.status is TaskState.COMPLETE and parent.steps[0].attempts == 2
    assert len(children_of(host, parent.id)) == 1


async def test_child_permanent_failure_surfaces_as_permanent_error_naming_the_child():
    host = host_with(Script())
    parent = host.service.create_task("caller", "delegate",
                                      context={"child_script": {"b": ["permanent"]}}).task
    await host.engine.run_until_idle()
    parent = host.service.get_task(parent.id)
    [child] = children_of(host, parent.id)
    step = parent.steps[0]
    assert parent.status is TaskState.ERROR and step.attempts == 1
    assert step.last_error["kind"] == "permanent"
    assert f"child task {child.id} (team.flow@1.2.0) ended error" in step.last_error["message"]


async def test_private_templates_cannot_be_invoked_from_another_namespace():
    private = doc("secret", visibility="private")
    host = host_with(Script(), private)
    parent = host.service.create_task("caller", "delegate", context={"target": {"name": "secret"}}).task
    await host.engine.run_until_idle()
    step = host.service.get_task(parent.id).steps[0]
    assert step.state is StepState.ERROR
    assert "may not invoke team.secret@1.0.0 (visibility private)" in step.last_error["message"]
    assert children_of(host, parent.id) == []


async def test_authorize_hook_overrides_visibility():
    policy = type("Policy", (), {"tasker_authorize_invocation": staticmethod(hookimpl(
        lambda caller_namespace, target_namespace, target_name, visibility: True))})()
    host = host_with(Script(), doc("secret", visibility="private"), extra_plugins=[("policy", policy)])
    parent = host.service.create_task("caller", "delegate", context={"target": {"name": "secret"}}).task
    await host.engine.run_until_idle()
    assert host.service.get_task(parent.id).status is TaskState.COMPLETE


async def test_a_route_hook_decides_delivery():
    delivered = []

    class Route:
        async def deliver(self, request):
            delivered.append((request.namespace, request.name, request.version, request.invocation_key))
            raise PermanentError("remote host refused")

    router = type("Router", (), {"tasker_route_invocation": staticmethod(hookimpl(lambda request: Route()))})()
    host = host_with(Script(), extra_plugins=[("router", router)])
    parent = host.service.create_task("caller", "delegate").task
    await host.engine.run_until_idle()
    assert delivered == [("team", "flow", "~=1.0", "call#1")]
    assert "remote host refused" in host.service.get_task(parent.id).steps[0].last_error["message"]


async def test_host_allow_rule_opens_a_private_template_to_one_caller():
    host = host_with(Script(), doc("secret", visibility="private"), allow_invocations=("caller->team.secret",))
    parent = host.service.create_task("caller", "delegate", context={"target": {"name": "secret"}}).task
    await host.engine.run_until_idle()
    assert host.service.get_task(parent.id).status is TaskState.COMPLETE


async def test_host_deny_rule_wins_over_visibility_and_plugin_hooks():
    permissive = type("Policy", (), {"tasker_authorize_invocation": staticmethod(hookimpl(
        lambda caller_namespace, target_namespace, target_name, visibility: True))})()
    host = host_with(Script(), deny_invocations=("*->team",), extra_plugins=[("policy", permissive)])
    parent = host.service.create_task("caller", "delegate").task
    await host.engine.run_until_idle()
    step = host.service.get_task(parent.id).steps[0]
    assert step.state is StepState.ERROR and "may not invoke team.flow@1.2.0" in step.last_error["message"]


def test_invocation_rules_are_validated():
    from tasker_host.engine.policy import InvocationRule
    from tasker_host.errors import ConfigurationError

    assert InvocationRule.parse("inventory->payments.process_refund") == \
        InvocationRule("inventory", "payments", "process_refund")
    with pytest.raises(ConfigurationError, match="expected CALLER->NAMESPACE"):
        InvocationRule.parse("inventory payments")


async def test_invoking_a_quarantined_namespace_fails_saying_so_and_naming_its_claimants():
    handlers = {"Scripted": scripted_handler(Script()), "Delegate": Delegate}
    eps = [FakeEntryPoint.of("team", make_plugin(["team"], [doc()], handlers), dist="tasker-team"),
           FakeEntryPoint.of("rival", make_plugin(["team"]), dist="tasker-rival", version="0.0.1"),
           FakeEntryPoint.of("caller", make_plugin(["caller"], [caller_doc()], handlers), dist="tasker-caller")]
    host = build_host(HostSettings(database_url="memory", on_conflict=ConflictPolicy.QUARANTINE),
                      entry_points=eps, clock=FakeClock())
    parent = host.service.create_task("caller", "delegate").task
    await host.engine.run_until_idle()
    step = host.service.get_task(parent.id).steps[0]
    assert step.state is StepState.ERROR and step.attempts == 1  # permanent: not retried
    message = step.last_error["message"]
    assert "namespace 'team' is quarantined" in message and "no route" not in message
    assert "tasker-team 1.0.0" in message and "tasker-rival 0.0.1" in message
    assert children_of(host, parent.id) == []
