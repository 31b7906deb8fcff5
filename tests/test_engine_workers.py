"""Dead workers with the memory store and a fake clock: a silent worker's steps are taken over at
the first beat after its ``dead_after``, a dead process of this host at once, live workers never;
a runner presumed dead is fenced; attempts lost with workers count against the retry limit.
Nothing here sleeps."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from dataclasses import replace

import anyio
import pytest

from tasker_host.engine.config import EngineConfig
from tasker_host.engine.liveness import ProcessTable
from tasker_host.engine.retry import RetryPolicy, judge, lost_attempts
from tasker_host.errors import RetryableError
from tasker_host.models import StepState, TaskState
from tasker_host.store.base import NewWorker
from tasker_host.store.memory import MemoryStore
from tests.engine_support import Script, chain, doc, make_host

pytestmark = pytest.mark.anyio
BEAT, DEAD_AFTER, LEASE = 1.5, 6.0, 60.0


def exited_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def host_with_ghost(ghost: NewWorker, *, store=None, **step_extra):
    """A host (its runner not started) and a task whose step ``a`` the ghost claimed and holds."""
    script = Script()
    host = make_host(script, [doc(steps=chain(["a"], **step_extra))], store=store,
                     engine=EngineConfig(poll_seconds=30.0))
    task = host.service.create_task("team", "flow").task
    host.store.register(ghost, host.clock.now())
    [claim] = host.store.claim(ghost.id, 1, host.clock.now(), LEASE)
    assert claim.attempt == 1
    return script, host, task.id


async def beat(host, times: int = 1) -> None:
    for _ in range(times):
        host.clock.advance(BEAT)
        await anyio.wait_all_tasks_blocked()


async def test_a_silent_worker_is_reaped_and_its_step_taken_at_the_next_beat():
    script, host, task_id = host_with_ghost(NewWorker("ghost", "elsewhere", 4242, DEAD_AFTER))
    t0 = host.clock.now()
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run)
        await anyio.wait_all_tasks_blocked()
        await beat(host, 4)  # t0 + 6: silent for exactly dead_after, not yet dead
        step = host.service.get_task(task_id).steps[0]
        assert (step.lease_owner, step.attempts) == ("ghost", 1) and script.calls == []
        await beat(host)  # t0 + 7.5: reaped, and taken at once (the poll would come at t0 + 30)
        tg.cancel_scope.cancel()
    task = host.service.get_task(task_id)
    step = task.steps[0]
    assert task.status is TaskState.COMPLETE and script.calls == [(task_id, "a", 2)]
    assert step.started_at == t0 + 7.5 <= t0 + DEAD_AFTER + BEAT
    assert step.last_error == {"type": "WorkerLost", "kind": "lost",
                               "message": "attempt 1 lost with worker ghost (no heartbeat since "
                                          "2023-11-14T22:13:20.000Z)"}
    assert [w.id for w in host.store.workers()] == []  # the ghost reaped, the runner deregistered


async def test_a_dead_process_of_this_host_is_reaped_at_once():
    """A restarted single-process host takes its previous run's steps as it starts."""
    previous = replace(ProcessTable().this_process("previous", DEAD_AFTER), pid=exited_pid(), pid_started=None)
    script, host, task_id = host_with_ghost(previous)
    host.clock.advance(0.5)  # the restart
    await host.engine.run_until_idle()
    step = host.service.get_task(task_id).steps[0]
    assert (step.state, step.attempts, step.started_at) == (StepState.COMPLETE, 2, host.clock.now())
    assert step.last_error["message"] == (
        f"attempt 1 lost with worker previous (process {previous.pid} on {previous.hostname} is gone)")


async def test_live_workers_and_the_runner_itself_are_never_reaped():
    processes = ProcessTable()
    sibling = processes.this_process("sibling", DEAD_AFTER)  # another runner of this very process
    remote = NewWorker("remote", "elsewhere", 4242, DEAD_AFTER)
    script, host, task_id = host_with_ghost(sibling)
    host.store.register(remote, host.clock.now())
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run)
        await anyio.wait_all_tasks_blocked()
        for _ in range(20):  # 30 s: both keep beating
            await beat(host)
            for other in ("sibling", "remote"):
                assert host.store.heartbeat(other, host.clock.now())
            assert {w.id for w in host.store.workers()} == {"sibling", "remote", host.engine.config.owner}
        assert host.service.get_task(task_id).steps[0].lease_owner == "sibling"
        await beat(host, 4)  # the sibling falls silent: its pid lives, so only silence judges it
        assert "sibling" in {w.id for w in host.store.workers()}
        await beat(host)
        assert "sibling" not in {w.id for w in host.store.workers()}
        tg.cancel_scope.cancel()
    assert script.calls == [(task_id, "a", 2)]


async def test_a_runner_presumed_dead_cancels_the_steps_taken_from_it_and_registers_again(caplog):
    caplog.set_level(logging.WARNING, logger="tasker_host.engine")
    script = Script()
    host = make_host(script, [doc(steps=chain(["a"]))], engine=EngineConfig(poll_seconds=30.0))
    task = host.service.create_task("team", "flow", context={"script": {"a": ["hang"]}}).task
    me = host.engine.config.owner
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run)
        await script.started["a"].wait()
        # another runner presumes this one dead (it stalled, say) and expires its step's lease
        [lost] = host.store.reap_workers("other", host.clock.now(), gone=lambda w: w.id == me)
        assert lost.steps == 1
        await beat(host)  # the next heartbeat finds the registration gone
        assert [w.id for w in host.store.workers()] == [me]  # registered again
        tg.cancel_scope.cancel()
    [line] = [r.getMessage() for r in caplog.records if "presumed dead by another worker" in r.getMessage()]
    assert line == (f"worker {me} was presumed dead by another worker (no heartbeat got through for 6.0s): "
                    "cancelled its 1 running steps that others run now; registering again")
    task = host.service.get_task(task.id)
    assert task.status is TaskState.COMPLETE and [c[2] for c in script.calls] == [1, 2]
    log = [(t.from_state, t.to_state, t.reason) for t in host.store.transitions(task.id) if t.step == "a"]
    assert log == [(None, "pending", ""), ("pending", "in_progress", f"claimed by {me}"),
                   ("in_progress", "in_progress", f"lease of {me} (lost) expired; claimed by {me}"),
                   ("in_progress", "complete", "completed")]  # the cancelled attempt recorded nothing


class GatedStore(MemoryStore):
    """Calls run in worker threads (as on PostgreSQL); ``record_and_claim`` waits for ``gate``."""

    inline, parallel_calls = False, 4

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Event()

    def record_and_claim(self, *args, **kwargs):
        self.entered.set()
        self.gate.wait(10)
        return super().record_and_claim(*args, **kwargs)


async def test_outcomes_of_a_runner_presumed_dead_are_never_recorded():
    """An outcome in flight and one queued when the runner was reaped are rejected (its steps were
    taken from it); the steps run again, under a claim made after the reap."""
    script = Script()
    store = GatedStore()
    steps = [{"name": n, "handler_class": "Scripted"} for n in ("x", "y")]
    host = make_host(script, [doc(steps=steps)], store=store, engine=EngineConfig(poll_seconds=30.0))
    task = host.service.create_task("team", "flow", context={"script": {"x": ["wait"], "y": ["wait"]}}).task
    me = host.engine.config.owner
    with anyio.fail_after(10):  # a safety net only: every wait below is on an event
        async with anyio.create_task_group() as tg:
            tg.start_soon(host.engine.run)
            await script.started["x"].wait()
            await script.started["y"].wait()
            script.release["x"].set()
            await anyio.to_thread.run_sync(store.entered.wait)  # x's outcome rides in a commit
            script.release["y"].set()
            while not host.engine._outcomes:  # y's outcome waits for the next commit
                await anyio.lowlevel.checkpoint()
            [lost] = store.reap_workers("other", host.clock.now(), gone=lambda w: w.id == me)
            assert lost.steps == 2
            host.clock.advance(0.1)  # (a moment later: before the runner's next heartbeat)
            store.gate.set()
            while host.service.get_task(task.id).status is not TaskState.COMPLETE:
                await anyio.sleep(0)
            tg.cancel_scope.cancel()
    x, y = host.service.get_task(task.id).steps
    assert (x.attempts, y.attempts) == (2, 2)
    assert sorted(c[1:] for c in script.calls) == [("x", 1), ("x", 2), ("y", 1), ("y", 2)]
    log = [(t.step, t.to_state, t.reason) for t in host.store.transitions(task.id) if t.step]
    assert [entry for entry in log if entry[1] == "complete"] == [("x", "complete", "completed"),
                                                                  ("y", "complete", "completed")]


async def test_attempts_lost_with_their_workers_count_against_the_retry_limit():
    script, host, task_id = host_with_ghost(NewWorker("ghost1", "elsewhere", 1, DEAD_AFTER))
    for n in (1, 2, 3):
        if n > 1:
            host.store.register(NewWorker(f"ghost{n}", "elsewhere", n, DEAD_AFTER), host.clock.now())
            assert [c.attempt for c in host.store.claim(f"ghost{n}", 1, host.clock.now(), LEASE)] == [n]
        host.clock.advance(DEAD_AFTER + 1)
        assert [lost.steps for lost in host.store.reap_workers("observer", host.clock.now())] == [1]
    await host.engine.run_until_idle()
    task = host.service.get_task(task_id)
    step = task.steps[0]
    message = "attempt 4 exceeds the retry limit 3: earlier attempts were lost with their workers"
    assert (task.status, step.state, script.calls) == (TaskState.ERROR, StepState.ERROR, [])  # never run again
    assert step.last_error == {"type": "WorkerLost", "kind": "lost", "message": message}
    assert task.error == {**step.last_error, "step": "a"}


async def test_a_non_retryable_step_lost_with_its_worker_is_not_run_again():
    script, host, task_id = host_with_ghost(NewWorker("ghost", "elsewhere", 1, DEAD_AFTER), default_retryable=False)
    host.clock.advance(DEAD_AFTER + 1)
    await host.engine.run_until_idle()  # the runner reaps the ghost itself, then claims attempt 2
    step = host.service.get_task(task_id).steps[0]
    assert (step.state, step.attempts, script.calls) == (StepState.ERROR, 2, [])
    assert step.last_error["message"] == ("attempt 2 exceeds the single attempt of a non-retryable step: "
                                          "earlier attempts were lost with their workers")


@pytest.mark.parametrize(("retryable", "limit"), [(True, 1), (True, 3), (True, 5), (False, 3)])
def test_ordinary_retries_never_reach_past_the_limit(retryable: bool, limit: int) -> None:
    """``judge`` schedules attempt n + 1 only when n < the limit: only lost attempts get past it."""
    attempt = 1
    while judge(RetryableError("again"), attempt=attempt, retryable=retryable, retry_limit=limit,
                policy=RetryPolicy()).state is StepState.WAITING_RETRY:
        attempt += 1
        assert lost_attempts(attempt, retryable=retryable, retry_limit=limit) is None
    assert lost_attempts(attempt + 1, retryable=retryable, retry_limit=limit) is not None


async def test_leases_shorter_than_three_beats_are_still_renewed_in_time():
    script = Script()
    host = make_host(script, [doc(steps=chain(["a"]))], engine=EngineConfig(lease_seconds=1.2, poll_seconds=30.0))
    task = host.service.create_task("team", "flow", context={"script": {"a": ["hang"]}}).task
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run)
        await script.started["a"].wait()
        for _ in range(10):  # 4 s: the runner beats every 0.4 s (a third of the lease), not every 1.5 s
            host.clock.advance(0.4)
            await anyio.wait_all_tasks_blocked()
            step = host.service.get_task(task.id).steps[0]
            assert step.lease_expires_at > host.clock.now() and step.attempts == 1
        tg.cancel_scope.cancel()


class FlakyStore(MemoryStore):
    """The database is unreachable for the runner's heartbeats while ``down`` is set."""

    down = False

    def heartbeat(self, *args, **kwargs):
        if self.down:
            raise ConnectionError("database unreachable")
        return super().heartbeat(*args, **kwargs)

    def reap_workers(self, *args, **kwargs):
        if self.down:
            raise ConnectionError("database unreachable")
        return super().reap_workers(*args, **kwargs)


async def test_after_an_outage_a_runner_gives_the_others_time_to_beat_again(caplog):
    caplog.set_level(logging.ERROR, logger="tasker_host.engine")
    store = FlakyStore()
    script, host, task_id = host_with_ghost(NewWorker("peer", "elsewhere", 4242, DEAD_AFTER), store=store)
    async with anyio.create_task_group() as tg:
        tg.start_soon(host.engine.run)
        await anyio.wait_all_tasks_blocked()
        await beat(host, 2)
        assert store.heartbeat("peer", host.clock.now())
        store.down = True  # nobody reaches the database for 9 s
        await beat(host, 6)
        store.down = False
        await beat(host)  # back first: the peer's last beat is 9 s old, but so was this runner's
        assert "peer" in {w.id for w in store.workers()}
        host.clock.advance(1.0)
        for _ in range(10):  # the peer is back too, a second later, and beats on
            assert store.heartbeat("peer", host.clock.now())
            await beat(host)
        assert "peer" in {w.id for w in store.workers()}
        assert host.service.get_task(task_id).steps[0].lease_owner == "peer"
        tg.cancel_scope.cancel()
    failures = [r for r in caplog.records if "heartbeat of worker" in r.getMessage()]
    assert len(failures) == 6 and script.calls == []  # each failed beat logged; the loop carried on
