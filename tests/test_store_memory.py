"""The store contract on :class:`MemoryStore`, plus what is particular to it."""

from __future__ import annotations

import pytest

import tests.store_contract as contract
from tasker_host.models import StepState
from tasker_host.store.memory import MemoryStore
from tests.audit_contract import AuditContract
from tests.lifecycle_contract import LifecycleContract
from tests.metric_facts_contract import MetricFactsContract
from tests.step_log_contract import StepLogContract
from tests.wait_contract import WaitContract
from tests.worker_contract import WorkerContract


class TestMemoryStore(contract.StoreContract, WorkerContract, StepLogContract, MetricFactsContract, AuditContract,
                WaitContract, LifecycleContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


def test_returned_records_are_copies() -> None:
    store = MemoryStore()
    store.create_task(contract.single(), contract.NOW)
    task = store.get_task("t1")
    assert task is not None
    task.steps[0].state = StepState.COMPLETE
    task.steps.clear()
    again = store.get_task("t1")
    assert again is not None and again.steps[0].state is StepState.PENDING


def test_stale_heap_entries_do_not_pile_up() -> None:
    """Claims pop what they take; retries and completions leave no garbage behind for long."""
    store = MemoryStore()
    for i in range(50):
        store.create_task(contract.make_task(f"t{i}"), contract.NOW)
    at = contract.NOW
    while claims := store.claim("w1", 16, at, contract.LEASE):
        at += 1
        store.record([contract.done(c, at) for c in claims])
    assert store.next_ready_at() is None
    assert sum(len(h) for h in store._ready.values()) == 0 and store._ready_token == {}
    assert all(n == 0 for n in store._running.values()) and all(not s for s in store._owned.values())
