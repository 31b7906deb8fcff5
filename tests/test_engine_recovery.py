"""A runner that dies mid-run: a new runner picks its work up after the leases expire, nothing
is lost, and a step that had invoked a child re-attaches to it instead of creating another."""

from __future__ import annotations

import anyio
import pytest

from tasker_host.models import TaskState
from tasker_host.store.base import TaskFilter
from tests.engine_support import Script, doc, make_host
from tests.test_invocation import Delegate, caller_doc

pytestmark = pytest.mark.anyio


class FreezingStore:
    """Forwards to a real store until ``freeze()``; then every write hangs (a process frozen
    before it could commit), so nothing the dying runner did afterwards reaches the database."""

    inline = True

    def __init__(self, store):
        self._store, self._frozen = store, False

    def freeze(self) -> None:
        self._frozen = True

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name not in {"record", "record_and_claim", "claim", "renew_leases", "register", "heartbeat",
                        "deregister", "reap_workers"}:
            return attr

        def call(*args, **kwargs):
            if self._frozen:
                raise _Frozen()
            return attr(*args, **kwargs)

        return call


class _Frozen(BaseException):
    """Not an ``Exception``: the runner survives failing writes (it retries or isolates them),
    so the process's sudden death is simulated by something no handler catches."""


async def test_a_new_runner_finishes_a_dead_runners_work_without_a_second_child():
    script = Script()
    templates = [doc(), doc(version="1.2.0"), caller_doc()]
    host = make_host(script, templates, handlers={"Delegate": Delegate})  # the runner that survives
    frozen = FreezingStore(host.store)
    dying = make_host(script, templates, handlers={"Delegate": Delegate}, store=frozen)  # another process
    parent = dying.service.create_task("caller", "delegate", context={"child_script": {"b": ["wait"]}}).task

    with pytest.RaisesGroup(_Frozen, flatten_subgroups=True):  # the runner dies: its next write fails
        async with anyio.create_task_group() as tg:
            tg.start_soon(dying.engine.run)
            await script.started["b"].wait()  # the parent waits on its child, whose step b runs
            frozen.freeze()
            script.release["b"].set()
    [child] = host.store.list_tasks(TaskFilter(parent_task_id=parent.id))
    assert host.service.get_task(parent.id).status is TaskState.IN_PROGRESS

    await host.engine.run_until_idle()  # the new runner: leases still held by the dead one
    assert host.service.get_task(parent.id).status is TaskState.IN_PROGRESS
    host.clock.advance(61)  # past the default 60 s lease
    await host.engine.run_until_idle()

    parent = host.service.get_task(parent.id)
    assert parent.status is TaskState.COMPLETE
    assert parent.steps[0].attempts == 2  # the dead runner's attempt counts
    assert [t.id for t in host.store.list_tasks(TaskFilter(parent_task_id=parent.id))] == [child.id]
    child = host.service.get_task(child.id)
    assert child.status is TaskState.COMPLETE
    assert {s.name: s.attempts for s in child.steps}["b"] == 2
    assert parent.steps[0].results["child_id"] == child.id
