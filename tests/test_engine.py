"""Engine rules with the memory store and a fake clock: nothing here sleeps."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import anyio
import pytest

from tasker_host import hookimpl
from tasker_host.engine.events import EventKind
from tasker_host.errors import InvalidContextError, InvalidStateError
from tasker_host.models import StepState, TaskState
from tests.engine_support import Script, chain, doc, fan, make_host

pytestmark = pytest.mark.anyio


def steps_by_name(task):
    return {s.name: s for s in task.steps}


async def test_chain_runs_in_order_and_passes_results():
    script = Script()
    host = make_host(script, [doc()])
    task = host.service.create_task("team", "flow").task
    await host.engine.run_until_idle()
    task = host.service.get_task(task.id)
    assert task.status is TaskState.COMPLETE
    assert [c[1] for c in script.calls] == ["a", "b", "c", "d"]
    steps = steps_by_name(task)
    assert steps["d"].results == {"step": "d", "inputs": ["a", "b", "c"]}
    assert all(s.attempts == 1 and s.state is StepState.COMPLETE for s in task.steps)


async def test_independent_steps_run_concurrently():
    script = Script()
    host = make_host(script, [doc(steps=fan(3))])
    plan = {f"branch_{i}": ["wait"] for i in range(3)}
    task = host.service.create_task("team", "flow", context={"script": plan}).task
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run_until_idle)
        with anyio.fail_after(5):  # safety net only: deadlocks if branches ran one by one
            for i in range(3):
                await script.started[f"branch_{i}"].wait()
        for i in range(3):  # all three are running at once before any is released
            script.release[f"branch_{i}"].set()
    assert host.service.get_task(task.id).status is TaskState.COMPLETE
    assert script.calls[-1][1] == "finish"


async def test_permanent_error_is_not_retried_and_fails_the_task_with_its_cause():
    script = Script()
    host = make_host(script, [doc()])
    task = host.service.create_task("team", "flow", context={"script": {"b": ["permanent"]}}).task
    await host.engine.run_until_idle()
    task = host.service.get_task(task.id)
    assert task.status is TaskState.ERROR
    b = steps_by_name(task)["b"]
    assert (b.state, b.attempts) == (StepState.ERROR, 1)
    assert b.last_error["message"] == "card declined" and b.last_error["kind"] == "permanent"
    assert task.error["step"] == "b" and "card declined" in task.error["message"]
    assert steps_by_name(task)["c"].state is StepState.PENDING


async def test_retryable_error_backs_off_then_succeeds():
    script = Script()
    host = make_host(script, [doc()])
    task = host.service.create_task("team", "flow", context={"script": {"a": ["retry", "retry"]}}).task
    clock = host.clock
    await host.engine.run_until_idle()
    a = steps_by_name(host.service.get_task(task.id))["a"]
    assert (a.state, a.attempts) == (StepState.WAITING_RETRY, 1)
    assert a.ready_at == pytest.approx(clock.now() + 1.0)  # base 1s, no jitter
    clock.advance(0.5)
    await host.engine.run_until_idle()  # backoff not over: nothing runs
    assert len(script.calls) == 1
    clock.advance(0.5)
    await host.engine.run_until_idle()
    a = steps_by_name(host.service.get_task(task.id))["a"]
    assert (a.state, a.attempts) == (StepState.WAITING_RETRY, 2)
    assert a.ready_at == pytest.approx(clock.now() + 2.0)  # exponential
    clock.advance(2.0)
    await host.engine.run_until_idle()
    task = host.service.get_task(task.id)
    assert task.status is TaskState.COMPLETE and steps_by_name(task)["a"].attempts == 3


async def test_retry_after_is_honoured():
    script = Script()
    host = make_host(script, [doc()])
    task = host.service.create_task("team", "flow", context={"script": {"a": ["retry_after:7"]}}).task
    await host.engine.run_until_idle()
    a = steps_by_name(host.service.get_task(task.id))["a"]
    assert a.ready_at == pytest.approx(host.clock.now() + 7)


async def test_exhausted_retries_end_the_task_in_error():
    script = Script()
    host = make_host(script, [doc(steps=chain(["a"]))])
    task = host.service.create_task("team", "flow", context={"script": {"a": ["crash"] * 5}}).task
    for _ in range(5):
        await host.engine.run_until_idle()
        host.clock.advance(1000)
    task = host.service.get_task(task.id)
    a = steps_by_name(task)["a"]
    assert task.status is TaskState.ERROR
    assert (a.state, a.attempts) == (StepState.ERROR, 3)  # default_retry_limit 3
    assert a.last_error["type"] == "ZeroDivisionError" and "bug in handler" in a.last_error["message"]


async def test_first_attempt_runs_even_when_not_retryable():
    script = Script()
    host = make_host(script, [doc(steps=chain(["a"], default_retryable=False))])
    task = host.service.create_task("team", "flow", context={"script": {"a": ["retry"]}}).task
    await host.engine.run_until_idle()
    task = host.service.get_task(task.id)
    assert task.status is TaskState.ERROR and steps_by_name(task)["a"].attempts == 1


async def test_timeout_is_a_retryable_failure():
    script = Script()
    host = make_host(script, [doc(steps=chain(["a"], handler_config={"timeout_seconds": 5}))])
    task = host.service.create_task("team", "flow", context={"script": {"a": ["hang"]}}).task
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run_until_idle)
        await script.started["a"].wait()
        host.clock.advance(5)
    a = steps_by_name(host.service.get_task(task.id))["a"]
    assert (a.state, a.attempts) == (StepState.WAITING_RETRY, 1)
    assert a.last_error["kind"] == "timeout"
    host.clock.advance(10)
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).status is TaskState.COMPLETE


async def test_cancel_stops_a_running_step_and_pending_steps_never_start():
    script = Script()
    host = make_host(script, [doc()])
    task = host.service.create_task("team", "flow", context={"script": {"b": ["hang"]}}).task
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run_until_idle)
        await script.started["b"].wait()
        host.service.cancel_task(task.id)
        host.engine.cancel_running(task.id)
    task = host.service.get_task(task.id)
    assert task.status is TaskState.CANCELLED
    states = {s.name: s.state for s in task.steps}
    assert states == {"a": StepState.COMPLETE, "b": StepState.CANCELLED, "c": StepState.CANCELLED,
                      "d": StepState.CANCELLED}
    assert [c[1] for c in script.calls] == ["a", "b"]
    with pytest.raises(InvalidStateError, match="only unfinished tasks can be cancelled"):
        host.service.cancel_task(task.id)


async def test_manual_resolution_lets_dependents_run():
    script = Script()
    host = make_host(script, [doc()])
    task = host.service.create_task("team", "flow", context={"script": {"b": ["permanent"]}}).task
    await host.engine.run_until_idle()
    host.service.resolve_step(task.id, "b", results={"resolved": True})
    await host.engine.run_until_idle()
    task = host.service.get_task(task.id)
    assert task.status is TaskState.COMPLETE
    assert steps_by_name(task)["b"].state is StepState.RESOLVED_MANUALLY
    assert steps_by_name(task)["c"].results["inputs"] == ["a", "b"]


async def test_retrying_a_failed_task_runs_the_failed_step_again():
    script = Script()
    host = make_host(script, [doc()])
    task = host.service.create_task("team", "flow", context={"script": {"c": ["permanent"]}}).task
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).status is TaskState.ERROR
    script.fixed.add("c")
    host.service.retry_task(task.id)
    await host.engine.run_until_idle()
    task = host.service.get_task(task.id)
    assert task.status is TaskState.COMPLETE and steps_by_name(task)["c"].attempts == 1
    with pytest.raises(InvalidStateError):
        host.service.retry_task(task.id)


async def test_idempotency_key_returns_the_same_task():
    host = make_host(Script(), [doc()])
    first = host.service.create_task("team", "flow", idempotency_key="k1")
    again = host.service.create_task("team", "flow", idempotency_key="k1")
    assert first.created and not again.created and again.task.id == first.task.id


async def test_invalid_context_lists_every_violation_and_writes_nothing():
    schema = {"type": "object", "required": ["payment_id", "refund_amount"],
              "properties": {"refund_amount": {"type": "number", "minimum": 0},
                             "reason": {"enum": ["fraud", "customer_request"]}}}
    from tasker_host.store.base import TaskFilter

    host = make_host(Script(), [doc(schema=schema)])
    with pytest.raises(InvalidContextError) as info:
        host.service.create_task("team", "flow", context={"refund_amount": -5, "reason": "x"})
    paths = [v["path"] for v in info.value.violations]
    assert paths == ["context", "context.reason", "context.refund_amount"]
    assert "'payment_id' is a required property" in str(info.value)
    assert "-5 is less than the minimum of 0" in str(info.value)
    assert host.store.list_tasks(TaskFilter()) == []


async def test_crashed_runner_steps_are_picked_up_after_the_lease_expires():
    script = Script()
    host = make_host(script, [doc()])
    task = host.service.create_task("team", "flow").task
    [claim] = host.store.claim("dead-worker", 10, host.clock.now(), 30.0)  # then it dies
    await host.engine.run_until_idle()
    assert script.calls == []  # leased to the dead worker
    host.clock.advance(31)
    await host.engine.run_until_idle()
    task = host.service.get_task(task.id)
    assert task.status is TaskState.COMPLETE
    assert steps_by_name(task)["a"].attempts == 2  # the lost attempt counts
    assert claim.step == "a"


async def test_sync_handlers_run_in_a_worker_thread():
    host = make_host(Script(), [doc(steps=[{"name": "s", "handler_class": "Sync"}])])
    task = host.service.create_task("team", "flow").task
    await host.engine.run_until_idle()
    [step] = host.service.get_task(task.id).steps
    assert step.state is StepState.COMPLETE and step.results["thread"] != "MainThread"


async def test_events_reach_observers_and_a_failing_observer_changes_nothing(caplog):
    seen = []

    @hookimpl
    def tasker_on_event(event):
        seen.append((event.kind, event.step, event.namespace, event.version))

    good = SimpleNamespace(tasker_on_event=tasker_on_event)
    bad = SimpleNamespace(tasker_on_event=hookimpl(lambda event: (_ for _ in ()).throw(RuntimeError("observer bug"))))
    script = Script()
    host = make_host(script, [doc(steps=chain(["a", "b"]))], observers=good,
                     extra_plugins=[("broken-observer", bad)])
    caplog.set_level(logging.ERROR)
    task = host.service.create_task("team", "flow", context={"script": {"b": ["retry"]}}).task
    await host.engine.run_until_idle()
    host.clock.advance(5)
    await host.engine.run_until_idle()
    assert host.service.get_task(task.id).status is TaskState.COMPLETE
    kinds = [k for k, *_ in seen]
    assert kinds == [EventKind.TASK_CREATED, EventKind.TASK_STARTED, EventKind.STEP_STARTED,
                     EventKind.STEP_COMPLETED, EventKind.STEP_STARTED, EventKind.STEP_RETRYING,
                     EventKind.STEP_STARTED, EventKind.STEP_COMPLETED, EventKind.TASK_COMPLETED]
    assert all(ns == "team" and v == "1.0.0" for _, _, ns, v in seen)
    assert "observer of plugin broken-observer failed" in caplog.text


async def test_stop_lets_running_steps_finish_and_claims_nothing_more():
    script = Script()
    host = make_host(script, [doc(steps=chain(["a", "b"]))])
    busy = host.service.create_task("team", "flow", context={"script": {"a": ["wait"]}}).task
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: host.engine.run(stop=stop, grace_seconds=30))
        await script.started["a"].wait()
        stop.set()
        await anyio.wait_all_tasks_blocked()
        later = host.service.create_task("team", "flow").task  # arrives while stopping
        script.release["a"].set()  # the running step finishes within the grace period
    busy = host.service.get_task(busy.id)
    assert steps_by_name(busy)["a"].state is StepState.COMPLETE  # recorded before returning
    assert steps_by_name(busy)["b"].state is StepState.PENDING  # not claimed after stop
    assert host.service.get_task(later.id).status is TaskState.PENDING
    assert [c[1] for c in script.calls] == ["a"]


async def test_stop_releases_steps_still_running_after_the_grace_period():
    script = Script()
    host = make_host(script, [doc(steps=chain(["a"]))])
    task = host.service.create_task("team", "flow", context={"script": {"a": ["hang"]}}).task
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: host.engine.run(stop=stop, grace_seconds=10))
        await script.started["a"].wait()
        stop.set()
        await anyio.wait_all_tasks_blocked()
        host.clock.advance(10)  # the grace period ends with step a still running
    a = steps_by_name(host.service.get_task(task.id))["a"]
    assert (a.state, a.lease_owner) == (StepState.WAITING_RETRY, None)  # released for another run
    assert a.ready_at == host.clock.now()


async def test_claimed_steps_count_as_running_while_their_tasks_load():
    """The runner counts claimed steps as running from the moment it has them, not once their
    tasks are loaded: a claim loop looking meanwhile (on PostgreSQL calls run in threads, several
    at once) must not see an idle runner, or a run --until-idle ends with those steps claimed."""
    from tasker_host.store.memory import MemoryStore

    running_while_loading: list[int] = []

    class Loads(MemoryStore):
        def run_inputs(self, task_ids):
            running_while_loading.append(host.engine._inflight)
            return super().run_inputs(task_ids)

    script = Script()
    host = make_host(script, [doc(steps=chain(["a"]))], store=Loads())
    tasks = [host.service.create_task("team", "flow").task for _ in range(3)]  # not in the runner's cache
    await host.engine.run_until_idle()
    assert all(host.service.get_task(t.id).status is TaskState.COMPLETE for t in tasks)
    assert running_while_loading and all(n >= 1 for n in running_while_loading), running_while_loading


async def test_the_claim_loop_gives_way_to_a_commit_in_flight():
    """A commit claims for all the room its runner has. Work announced while it runs (on
    PostgreSQL store calls run in threads, so the claim loop can run meanwhile) must not be
    claimed by the claim loop into the same room, which can take more steps than --concurrency;
    the loop looks once the commit is done, so nothing waits for a poll. Creations made meanwhile
    leave their steps to that look too."""
    from tasker_host.engine.config import EngineConfig
    from tasker_host.store.base import TaskFilter
    from tasker_host.store.memory import MemoryStore

    overlapping: list[int] = []
    peak: list[int] = []
    requests: list[object] = []

    class Threaded(MemoryStore):
        inline, parallel_calls, committing = False, 4, 0  # committing: the committing thread

        def claim(self, *args, **kwargs):
            if self.committing and threading.get_ident() != self.committing:  # (not record_and_claim's own)
                overlapping.append(host.engine._inflight)
            return super().claim(*args, **kwargs)

        def record_and_claim(self, *args, **kwargs):
            self.committing = threading.get_ident()
            peak.append(host.engine._inflight)
            try:
                if len(peak) == 1:  # new work appears and is announced while the first commit runs ...
                    for _ in range(5):
                        self.create_task(host.service.prepare("team", "flow"), host.clock.now())
                    host.engine.nudge()
                    anyio.from_thread.run(_let_the_loop_run)  # ... and the claim loop gets turns
                    requests.append(host.engine.claim_request())  # nor may a creation claim that room
                return super().record_and_claim(*args, **kwargs)
            finally:
                self.committing = 0

    async def _let_the_loop_run():
        for _ in range(20):
            await anyio.lowlevel.checkpoint()

    script = Script()
    host = make_host(script, [doc(steps=chain(["a", "b"]))], store=Threaded(),
                     engine=EngineConfig(concurrency=4))
    host.service.create_task("team", "flow")
    await host.engine.run_until_idle()
    assert [t.status for t in host.store.list_tasks(TaskFilter())] == [TaskState.COMPLETE] * 6
    assert overlapping == [] and max(peak) <= 4, (overlapping, peak)
    assert requests == [None]
