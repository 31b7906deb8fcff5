"""The Store contract: every semantic in ``tasker_host/store/base.py``'s docstring, as tests.

Subclass :class:`StoreContract` and provide a ``store`` fixture (a fresh, empty store per test).
Time is always explicit (``now``); nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping, Sequence

import pytest

from tasker_host.models import StepState, TaskState
from tasker_host.store.base import Claim, ClaimRequest, NewStep, NewTask, StepOutcome, Store, TaskChange, TaskFilter

NOW = 1_000.0
LEASE = 30.0
DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


def make_task(task_id: str = "t1", steps: Mapping[str, Sequence[str]] | None = None, *, namespace: str = "ns",
              name: str = "flow", version: str = "1.0.0", **extra: object) -> NewTask:
    steps = DIAMOND if steps is None else steps
    dependents = {n: tuple(m for m, deps in steps.items() if n in deps) for n in steps}
    return NewTask(
        id=task_id, namespace=namespace, name=name, version=version,
        context={"order": 42, "items": ["x", "y"]}, template={"steps": list(steps)},
        steps=tuple(NewStep(n, tuple(deps), dependents[n], retry_limit=2) for n, deps in steps.items()),
        **extra,  # type: ignore[arg-type]
    )


def single(task_id: str = "t1", **extra: object) -> NewTask:
    return make_task(task_id, {"a": ()}, **extra)


def done(claim: Claim, at: float = NOW + 1, *, owner: str = "w1", state: StepState = StepState.COMPLETE,
         **extra: object) -> StepOutcome:
    extra.setdefault("results", {"step": claim.step} if state is StepState.COMPLETE else None)
    return StepOutcome(claim.task_id, claim.step, owner, claim.attempt, state, at, **extra)  # type: ignore[arg-type]


def fail(claim: Claim, at: float = NOW + 1, *, owner: str = "w1", message: str = "boom") -> StepOutcome:
    return StepOutcome(claim.task_id, claim.step, owner, claim.attempt, StepState.ERROR, at,
                       reason="permanent error", error={"type": "PermanentError", "message": message})


def names(claims: Sequence[Claim]) -> list[tuple[str, str]]:
    return [(c.task_id, c.step) for c in claims]


def step_of(store: Store, task_id: str, step: str):  # type: ignore[no-untyped-def]
    task = store.get_task(task_id)
    assert task is not None
    return next(s for s in task.steps if s.name == step)


class StoreContract:
    # -- create ------------------------------------------------------------------------------
    def test_create_writes_pending_task_and_steps(self, store: Store) -> None:
        result = store.create_task(make_task(correlation_id="corr", provenance={"dist": "p"}), NOW)
        assert result.created
        task = store.get_task("t1")
        assert task is not None and task == result.task
        assert (task.status, task.namespace, task.name, task.version) == (TaskState.PENDING, "ns", "flow", "1.0.0")
        assert task.full_name == "ns.flow@1.0.0"
        assert task.context == {"order": 42, "items": ["x", "y"]} and task.template == {"steps": ["a", "b", "c", "d"]}
        assert (task.correlation_id, task.provenance) == ("corr", {"dist": "p"})
        assert task.created_at == task.updated_at == NOW and task.completed_at is None and task.error is None
        assert [s.name for s in task.steps] == ["a", "b", "c", "d"]
        d = task.steps[3]
        assert (d.state, d.attempts, d.ready_at, d.pending_deps, d.depends_on) == (
            StepState.PENDING, 0, NOW, 2, ("b", "c"))
        assert task.steps[0].dependents == ("b", "c") and task.steps[0].pending_deps == 0
        assert (d.retry_limit, d.retryable, d.lease_owner, d.results) == (2, True, None, None)

    def test_create_records_a_transition_per_row(self, store: Store) -> None:
        store.create_task(make_task(), NOW)
        log = store.transitions("t1")
        assert [(t.step, t.from_state, t.to_state, t.at) for t in log] == [
            (None, None, "pending", NOW)] + [(s, None, "pending", NOW) for s in "abcd"]
        assert store.transitions("missing") == []

    def test_idempotency_key_returns_the_existing_task(self, store: Store) -> None:
        first = store.create_task(single("t1", idempotency_key="k"), NOW)
        again = store.create_task(single("t2", idempotency_key="k"), NOW + 1)
        assert first.created and not again.created
        assert again.task.id == "t1" and [s.name for s in again.task.steps] == ["a"]
        assert store.get_task("t2") is None and len(store.transitions("t1")) == 2
        other = store.create_task(single("t3", idempotency_key="k", namespace="other"), NOW)
        assert other.created and other.task.id == "t3"

    def test_invocation_key_reattaches_a_child(self, store: Store) -> None:
        store.create_task(single("parent"), NOW)
        child = store.create_task(single("c1", parent_task_id="parent", parent_step="a", invocation_key="k1"), NOW)
        again = store.create_task(single("c2", parent_task_id="parent", parent_step="a", invocation_key="k1"), NOW)
        assert child.created and not again.created and again.task.id == "c1"
        assert store.get_task("c2") is None
        found = store.find_child("parent", "k1")
        assert found is not None and (found.id, found.parent_task_id, found.parent_step) == ("c1", "parent", "a")
        assert store.find_child("parent", "k2") is None
        assert store.create_task(single("c3", parent_task_id="parent", invocation_key="k2"), NOW).created

    def test_create_can_claim_in_the_same_transaction(self, store: Store) -> None:
        result = store.create_task(make_task(), NOW, ClaimRequest("w1", 10, LEASE))
        assert result.created and result.task.status is TaskState.PENDING  # as created
        assert names(result.claims) == [("t1", "a")] and result.claims[0].attempt == 1
        a = step_of(store, "t1", "a")
        assert (a.state, a.lease_owner, a.lease_expires_at) == (StepState.IN_PROGRESS, "w1", NOW + LEASE)
        assert store.get_task("t1").status is TaskState.IN_PROGRESS
        again = store.create_task(make_task("t2", idempotency_key="k"), NOW, ClaimRequest("w1", 0, LEASE))
        assert again.created and again.claims == ()
        repeat = store.create_task(make_task("t3", idempotency_key="k"), NOW, ClaimRequest("w1", 10, LEASE))
        assert not repeat.created and repeat.claims == ()  # nothing written, nothing claimed

    def test_create_tasks_writes_a_batch_in_order(self, store: Store) -> None:
        store.create_task(single("old", idempotency_key="k"), NOW)
        results = store.create_tasks([single("t1"), single("t2", idempotency_key="k"), make_task("t3")], NOW,
                                     ClaimRequest("w1", 10, LEASE))
        assert [(r.task.id, r.created) for r in results] == [("t1", True), ("old", False), ("t3", True)]
        assert sorted(names(results[0].claims)) == [("old", "a"), ("t1", "a"), ("t3", "a")]
        assert results[2].claims == () and store.get_task("t2") is None
        assert store.get_task("t3").steps[0].state is StepState.IN_PROGRESS
        twice = store.create_tasks([single("t4", idempotency_key="j"), single("t5", idempotency_key="j")], NOW)
        assert [(r.task.id, r.created) for r in twice] == [("t4", True), ("t4", False)]
        assert store.get_task("t5") is None

    def test_get_tasks_and_get_task_without_steps(self, store: Store) -> None:
        store.create_task(make_task("t1"), NOW)
        store.create_task(single("t2"), NOW)
        found = store.get_tasks(["t1", "t2", "nope"])
        assert sorted(found) == ["t1", "t2"] and len(found["t1"].steps) == 4 and len(found["t2"].steps) == 1
        assert store.get_tasks([]) == {}
        bare = store.get_task("t1", with_steps=False)
        assert bare is not None and bare.steps == [] and bare.status is TaskState.PENDING
        assert store.get_task("nope") is None

    def test_run_inputs_hold_identity_template_and_done_results_only(self, store: Store) -> None:
        """What a runner loads for tasks it has not seen: done steps' results (complete or resolved,
        None results included), nothing of the others; the template as JSON text."""
        store.create_task(make_task("t1", correlation_id="corr"), NOW)
        store.create_task(single("t2"), NOW)
        a, _ = store.claim("w1", 10, NOW, LEASE)
        [b, c] = store.record_and_claim([done(a, results={"paid": [1, 2]})], "w1", 10, NOW + 1, LEASE)[1]
        store.record([fail(b, NOW + 2), done(c, NOW + 2, results=None)])
        assert store.resolve_step("t1", "b", NOW + 3, {"manual": True})
        found = store.run_inputs(["t1", "t2", "nope", "t1"])
        assert sorted(found) == ["t1", "t2"] and store.run_inputs([]) == {}
        t1 = found["t1"]
        assert (t1.id, t1.namespace, t1.name, t1.version, t1.correlation_id) == ("t1", "ns", "flow", "1.0.0", "corr")
        assert t1.context == {"order": 42, "items": ["x", "y"]}
        assert json.loads(t1.template_json) == {"steps": ["a", "b", "c", "d"]}
        assert dict(t1.results) == {"a": {"paid": [1, 2]}, "b": {"manual": True}, "c": None}
        assert dict(found["t2"].results) == {} and found["t2"].correlation_id is None

    def test_traceparent_is_kept_with_the_task_and_in_its_run_inputs(self, store: Store) -> None:
        """The W3C trace context a task was created under: on the record (every read) and in the
        run inputs, so a step that runs later in another process joins the same trace."""
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        store.create_tasks([make_task("t1", traceparent=parent), single("t2")], NOW)
        t1, t2 = store.get_task("t1"), store.get_task("t2", with_steps=False)
        assert t1 is not None and t2 is not None
        assert (t1.traceparent, t2.traceparent) == (parent, None)
        assert [t.traceparent for t in store.list_tasks(TaskFilter())] == [parent, None]
        assert store.get_tasks(["t1"])["t1"].traceparent == parent
        found = store.run_inputs(["t1", "t2"])
        assert (found["t1"].traceparent, found["t2"].traceparent) == (parent, None)

    # -- claim -------------------------------------------------------------------------------
    def test_claim_takes_a_ready_step_and_starts_its_task(self, store: Store) -> None:
        store.create_task(make_task(), NOW)
        claims = store.claim("w1", 10, NOW + 1, LEASE)
        assert claims == [Claim("t1", "a", 1, "ns", "flow", "1.0.0")]
        a = step_of(store, "t1", "a")
        assert (a.state, a.attempts, a.lease_owner, a.lease_expires_at, a.started_at) == (
            StepState.IN_PROGRESS, 1, "w1", NOW + 1 + LEASE, NOW + 1)
        task = store.get_task("t1")
        assert task is not None and task.status is TaskState.IN_PROGRESS and task.updated_at == NOW + 1
        log = [(t.step, t.from_state, t.to_state, t.at) for t in store.transitions("t1")][5:]
        assert sorted(log, key=str) == sorted([("a", "pending", "in_progress", NOW + 1),
                                               (None, "pending", "in_progress", NOW + 1)], key=str)
        assert store.claim("w1", 10, NOW + 1, LEASE) == [] and store.claim("w1", 0, NOW + 1, LEASE) == []

    def test_claim_honours_limit_and_takes_oldest_ready_first(self, store: Store) -> None:
        for i, at in ((3, NOW + 3), (1, NOW + 1), (2, NOW + 2)):
            store.create_task(single(f"t{i}"), at)
        assert names(store.claim("w1", 2, NOW + 10, LEASE)) == [("t1", "a"), ("t2", "a")]
        assert names(store.claim("w1", 2, NOW + 10, LEASE)) == [("t3", "a")]
        assert store.claim("w1", 2, NOW + 10, LEASE) == []

    def test_dependents_wait_for_their_dependencies(self, store: Store) -> None:
        store.create_task(make_task(), NOW)
        [a] = store.claim("w1", 10, NOW, LEASE)
        assert store.claim("w1", 10, NOW, LEASE) == []
        store.record([done(a)])
        assert step_of(store, "t1", "d").pending_deps == 2
        b, c = sorted(store.claim("w1", 10, NOW + 2, LEASE), key=lambda x: x.step)
        assert (b.step, c.step) == ("b", "c")
        store.record([done(b, NOW + 3)])
        assert step_of(store, "t1", "d").pending_deps == 1
        assert store.claim("w1", 10, NOW + 4, LEASE) == []
        store.record([done(c, NOW + 4)])
        assert names(store.claim("w1", 10, NOW + 5, LEASE)) == [("t1", "d")]

    def test_ready_at_gates_claims(self, store: Store) -> None:
        store.create_task(single(), NOW)
        assert store.claim("w1", 10, NOW - 1, LEASE) == []
        [a] = store.claim("w1", 10, NOW, LEASE)  # ready_at <= now
        error = {"type": "RetryableError", "message": "later"}
        batch = store.record([done(a, NOW + 1, state=StepState.WAITING_RETRY, error=error, ready_at=NOW + 50)])
        assert batch.changes == () and batch.rejected == ()
        step = step_of(store, "t1", "a")
        assert (step.state, step.last_error, step.ready_at, step.lease_owner, step.lease_expires_at) == (
            StepState.WAITING_RETRY, error, NOW + 50, None, None)
        assert store.get_task("t1").status is TaskState.IN_PROGRESS  # type: ignore[union-attr]
        assert store.claim("w1", 10, NOW + 49, LEASE) == []
        [again] = store.claim("w2", 10, NOW + 50, LEASE)
        assert (again.step, again.attempt) == ("a", 2)

    def test_expired_lease_is_reclaimed_with_attempts_counted(self, store: Store) -> None:
        store.create_task(single(), NOW)
        [first] = store.claim("w1", 10, NOW, LEASE)
        assert store.claim("w2", 10, NOW + LEASE, LEASE) == []  # expires_at < now: not yet
        [second] = store.claim("w2", 10, NOW + LEASE + 1, LEASE)
        assert (second.task_id, second.step, second.attempt) == ("t1", "a", 2)
        step = step_of(store, "t1", "a")
        assert (step.lease_owner, step.attempts, step.lease_expires_at) == ("w2", 2, NOW + 2 * LEASE + 1)
        last = store.transitions("t1")[-1]
        assert (last.step, last.from_state, last.to_state, last.at) == ("a", "in_progress", "in_progress",
                                                                        NOW + LEASE + 1)
        stale = done(first, NOW + LEASE + 2)
        assert store.record([stale]).rejected == (stale,)
        assert store.record([done(second, NOW + LEASE + 3, owner="w2")]).changes == (
            TaskChange("t1", TaskState.IN_PROGRESS, TaskState.COMPLETE),)

    def test_renew_leases_extends_only_the_owners_steps(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        store.create_task(single("t2"), NOW)
        assert len(store.claim("w1", 2, NOW, LEASE)) == 2
        store.claim("w2", 1, NOW, LEASE)
        assert store.renew_leases("w1", NOW + 20, LEASE) == 2
        assert store.renew_leases("nobody", NOW + 20, LEASE) == 0
        assert step_of(store, "t1", "a").lease_expires_at == NOW + 20 + LEASE
        assert names(store.claim("w3", 10, NOW + 40, LEASE)) == [("t2", "a")]  # only w2's lease expired
        assert len(store.claim("w3", 10, NOW + 51, LEASE)) == 2

    def test_namespace_limits_count_running_steps(self, store: Store) -> None:
        for i in range(3):
            store.create_task(single(f"a{i}", namespace="alpha"), NOW + i)
        for i in range(2):
            store.create_task(single(f"b{i}", namespace="beta"), NOW + i)
        claims = store.claim("w1", 10, NOW + 10, LEASE, namespace_limits={"alpha": 2})
        assert sorted(c.task_id for c in claims) == ["a0", "a1", "b0", "b1"]
        assert store.claim("w1", 10, NOW + 10, LEASE, namespace_limits={"alpha": 2}) == []
        store.record([done(next(c for c in claims if c.task_id == "a0"))])
        assert names(store.claim("w1", 10, NOW + 10, LEASE, namespace_limits={"alpha": 2})) == [("a2", "a")]

    def test_namespace_limit_zero_and_limit_take_oldest(self, store: Store) -> None:
        store.create_task(single("a0", namespace="alpha"), NOW)
        store.create_task(single("b0", namespace="beta"), NOW + 1)
        store.create_task(single("b1", namespace="beta"), NOW + 2)
        assert names(store.claim("w1", 1, NOW + 5, LEASE, namespace_limits={"alpha": 0})) == [("b0", "a")]
        assert names(store.claim("w1", 5, NOW + 5, LEASE, namespace_limits={"beta": 5})) == [("a0", "a"), ("b1", "a")]

    # -- fairness ----------------------------------------------------------------------------
    def test_claims_take_namespaces_in_turns(self, store: Store) -> None:
        for i in range(4):
            store.create_task(single(f"big{i}", namespace="big"), NOW + i)
        store.create_task(single("small0", namespace="small"), NOW + 10)
        # oldest first would hand out big0, big1: the small namespace's step gets the second turn
        assert names(store.claim("w1", 2, NOW + 20, LEASE)) == [("big0", "a"), ("small0", "a")]
        assert names(store.claim("w1", 10, NOW + 20, LEASE)) == [("big1", "a"), ("big2", "a"), ("big3", "a")]

    def test_record_and_claim_takes_namespaces_in_turns(self, store: Store) -> None:
        chain = {"a": (), "b": ("a",)}
        for i in range(4):
            store.create_task(make_task(f"big{i}", chain, namespace="big"), NOW)
        store.create_task(single("small0", namespace="small"), NOW + 5)
        [a] = store.claim("w1", 1, NOW + 6, LEASE)
        assert names([a]) == [("big0", "a")]
        _, claims = store.record_and_claim([done(a, NOW + 7)], "w1", 2, NOW + 7, LEASE)
        # the small namespace's step beside one of big's (big0's b or big1's a: both ready since NOW)
        assert len(claims) == 2 and names(claims).count(("small0", "a")) == 1

    def test_steps_of_a_failed_task_are_not_claimed(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        [a] = store.claim("w1", 1, NOW, LEASE)
        store.record([fail(a)])
        assert store.claim("w1", 10, NOW + 5, LEASE) == []
        assert store.next_ready_at() is None

    def test_concurrent_claims_never_share_a_step(self, store: Store) -> None:
        for i in range(20):
            store.create_task(make_task(f"t{i:02}", {"a": (), "b": (), "c": ()}), NOW)
        taken: list[list[Claim]] = [[] for _ in range(4)]

        def worker(n: int) -> None:
            while batch := store.claim(f"w{n}", 3, NOW + 1, LEASE):
                taken[n] += batch

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        everything = [names([c])[0] for batch in taken for c in batch]
        assert len(everything) == len(set(everything)) == 60

    # -- record ------------------------------------------------------------------------------
    def test_complete_stores_results_and_completes_the_task(self, store: Store) -> None:
        store.create_task(single(), NOW)
        [a] = store.claim("w1", 1, NOW, LEASE)
        batch = store.record([done(a, NOW + 2, results={"refund": 12.5, "ok": True}, reason="handler returned")])
        assert batch.changes == (TaskChange("t1", TaskState.IN_PROGRESS, TaskState.COMPLETE),) and batch.rejected == ()
        task = store.get_task("t1")
        assert task is not None and (task.status, task.completed_at, task.updated_at) == (
            TaskState.COMPLETE, NOW + 2, NOW + 2)
        step = task.steps[0]
        assert (step.state, step.results, step.completed_at, step.lease_owner) == (
            StepState.COMPLETE, {"refund": 12.5, "ok": True}, NOW + 2, None)
        assert store.step_results("t1") == {"a": {"refund": 12.5, "ok": True}}
        log = store.transitions("t1")[-2:]
        assert [(t.step, t.from_state, t.to_state, t.at) for t in log] == [
            ("a", "in_progress", "complete", NOW + 2), (None, "in_progress", "complete", NOW + 2)]
        assert log[0].reason == "handler returned"

    def test_whole_dag_completes_only_after_its_last_step(self, store: Store) -> None:
        store.create_task(make_task(), NOW)
        at = NOW
        while claims := store.claim("w1", 10, at, LEASE):
            at += 1
            assert store.get_task("t1").status is TaskState.IN_PROGRESS  # type: ignore[union-attr]
            batch = store.record([done(c, at) for c in claims])
        assert batch.changes == (TaskChange("t1", TaskState.IN_PROGRESS, TaskState.COMPLETE),)
        assert store.step_results("t1") == {s: {"step": s} for s in "abcd"}

    def test_record_and_claim_takes_the_steps_a_batch_made_ready(self, store: Store) -> None:
        store.create_task(make_task(), NOW)
        [a] = store.claim("w1", 10, NOW, LEASE)
        batch, claims = store.record_and_claim([done(a)], "w1", 10, NOW + 1, LEASE)
        assert not batch.rejected and names(claims) == [("t1", "b"), ("t1", "c")]
        assert all(c.attempt == 1 for c in claims) and step_of(store, "t1", "b").lease_owner == "w1"
        [b, c] = claims
        batch, claims = store.record_and_claim([done(b, NOW + 2)], "w1", 0, NOW + 2, LEASE)  # limit 0
        assert claims == [] and step_of(store, "t1", "b").state is StepState.COMPLETE
        batch, claims = store.record_and_claim([done(c, NOW + 3, owner="w2")], "w1", 10, NOW + 3, LEASE)
        assert [(o.step, o.owner) for o in batch.rejected] == [("c", "w2")] and claims == []
        batch, claims = store.record_and_claim([done(c, NOW + 3)], "w1", 10, NOW + 3, LEASE)
        assert names(claims) == [("t1", "d")]
        batch, claims = store.record_and_claim([done(claims[0], NOW + 4)], "w1", 10, NOW + 4, LEASE)
        assert batch.changes == (TaskChange("t1", TaskState.IN_PROGRESS, TaskState.COMPLETE),) and claims == []

    def test_error_fails_the_task_with_its_cause(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        a, b = store.claim("w1", 2, NOW, LEASE)
        batch = store.record([fail(a, NOW + 1, message="card declined")])
        assert batch.changes == (TaskChange("t1", TaskState.IN_PROGRESS, TaskState.ERROR),)
        task = store.get_task("t1")
        assert task is not None and task.status is TaskState.ERROR
        assert task.error == {"type": "PermanentError", "message": "card declined", "step": "a"}
        assert task.steps[0].state is StepState.ERROR and task.steps[0].last_error == {
            "type": "PermanentError", "message": "card declined"}
        # a second failure keeps the first cause; a running sibling may still finish
        assert store.record([fail(b, NOW + 2, message="other")]).changes == ()
        assert store.get_task("t1").error["step"] == "a"  # type: ignore[union-attr,index]
        assert store.step_results("t1") == {}

    def test_running_sibling_completes_after_the_task_failed(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        a, b = store.claim("w1", 2, NOW, LEASE)
        store.record([fail(a)])
        batch = store.record([done(b, NOW + 2)])
        assert batch.changes == () and batch.rejected == ()
        task = store.get_task("t1")
        assert task is not None and task.status is TaskState.ERROR and task.steps[1].state is StepState.COMPLETE

    def test_cancelled_outcome_changes_only_the_step(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        a, _ = store.claim("w1", 2, NOW, LEASE)
        assert store.record([done(a, state=StepState.CANCELLED)]).changes == ()
        task = store.get_task("t1")
        assert task is not None and task.status is TaskState.IN_PROGRESS
        assert (task.steps[0].state, task.steps[0].lease_owner) == (StepState.CANCELLED, None)

    def test_stale_outcomes_are_rejected(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        a, b = store.claim("w1", 2, NOW, LEASE)
        before = store.transitions("t1")
        wrong_owner = done(a, owner="w2")
        wrong_attempt = StepOutcome("t1", "a", "w1", 2, StepState.COMPLETE, NOW + 1)
        unknown = StepOutcome("t1", "zz", "w1", 1, StepState.COMPLETE, NOW + 1)
        batch = store.record([wrong_owner, wrong_attempt, unknown])
        assert batch.rejected == (wrong_owner, wrong_attempt, unknown) and batch.changes == ()
        assert store.transitions("t1") == before
        assert step_of(store, "t1", "a").state is StepState.IN_PROGRESS
        first, duplicate = done(b, NOW + 1), done(b, NOW + 2)
        batch = store.record([first, duplicate, done(a, NOW + 1)])
        assert batch.rejected == (duplicate,)
        assert batch.changes == (TaskChange("t1", TaskState.IN_PROGRESS, TaskState.COMPLETE),)
        assert step_of(store, "t1", "b").completed_at == NOW + 1
        assert store.record([done(a, NOW + 3)]).rejected == (done(a, NOW + 3),)  # already complete

    def test_record_refuses_a_non_outcome_state(self, store: Store) -> None:
        store.create_task(single(), NOW)
        [a] = store.claim("w1", 1, NOW, LEASE)
        with pytest.raises(ValueError):
            store.record([done(a, state=StepState.PENDING)])
        assert store.record([]).changes == ()

    # -- operator actions --------------------------------------------------------------------
    def test_cancel_cancels_every_unfinished_step(self, store: Store) -> None:
        store.create_task(make_task(), NOW)
        [a] = store.claim("w1", 10, NOW, LEASE)
        assert store.cancel_task("t1", NOW + 5, "operator said so")
        task = store.get_task("t1")
        assert task is not None and (task.status, task.completed_at) == (TaskState.CANCELLED, NOW + 5)
        assert [s.state for s in task.steps] == [StepState.CANCELLED] * 4
        assert task.steps[0].lease_owner is None
        assert store.claim("w1", 10, NOW + 100, LEASE) == []
        assert store.record([done(a, NOW + 6)]).rejected == (done(a, NOW + 6),)
        log = store.transitions("t1")[-5:]
        assert {(t.step, t.from_state, t.to_state, t.at, t.reason) for t in log} == {
            ("a", "in_progress", "cancelled", NOW + 5, "operator said so"),
            *((s, "pending", "cancelled", NOW + 5, "operator said so") for s in "bcd"),
            (None, "in_progress", "cancelled", NOW + 5, "operator said so")}
        assert log[-1].step is None
        assert not store.cancel_task("t1", NOW + 6) and not store.cancel_task("nope", NOW)
        assert store.next_ready_at() is None

    def test_cancel_refuses_finished_tasks_but_takes_failed_ones(self, store: Store) -> None:
        store.create_task(single("ok"), NOW)
        store.create_task(make_task("bad", {"a": (), "b": ("a",)}), NOW)
        claims = store.claim("w1", 10, NOW, LEASE)
        store.record([done(claims[0]) if claims[0].task_id == "ok" else fail(claims[0]),
                      done(claims[1]) if claims[1].task_id == "ok" else fail(claims[1])])
        assert not store.cancel_task("ok", NOW + 2)
        assert store.cancel_task("bad", NOW + 2)
        task = store.get_task("bad")
        assert task is not None and [s.state for s in task.steps] == [StepState.ERROR, StepState.CANCELLED]

    def test_retry_task_restarts_failed_steps(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ("a",)}), NOW)
        assert not store.retry_task("t1", NOW)  # not in error
        [a] = store.claim("w1", 10, NOW, LEASE)
        store.record([fail(a)])
        assert store.retry_task("t1", NOW + 10, "fixed the card")
        task = store.get_task("t1")
        assert task is not None and (task.status, task.error, task.completed_at) == (TaskState.IN_PROGRESS, None, None)
        step = task.steps[0]
        assert (step.state, step.attempts, step.ready_at, step.lease_owner) == (StepState.PENDING, 0, NOW + 10, None)
        assert store.transitions("t1")[-1].reason == "fixed the card"
        assert [(t.step, t.from_state, t.to_state) for t in store.transitions("t1")[-2:]] == [
            ("a", "error", "pending"), (None, "error", "in_progress")]
        [again] = store.claim("w1", 10, NOW + 10, LEASE)
        assert (again.step, again.attempt) == ("a", 1)
        store.record([done(again, NOW + 11)])
        [b] = store.claim("w1", 10, NOW + 11, LEASE)
        assert store.record([done(b, NOW + 12)]).changes == (TaskChange("t1", TaskState.IN_PROGRESS,
                                                                         TaskState.COMPLETE),)
        assert not store.retry_task("nope", NOW)

    def test_resolve_step_unblocks_dependents(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ("a",)}), NOW)
        [a] = store.claim("w1", 10, NOW, LEASE)
        store.record([fail(a)])
        assert store.resolve_step("t1", "a", NOW + 5, {"manual": True}, "refunded by hand")
        task = store.get_task("t1")
        assert task is not None and (task.status, task.error) == (TaskState.IN_PROGRESS, None)
        assert (task.steps[0].state, task.steps[0].results) == (StepState.RESOLVED_MANUALLY, {"manual": True})
        assert task.steps[1].pending_deps == 0
        assert store.step_results("t1") == {"a": {"manual": True}}
        assert [(t.step, t.from_state, t.to_state, t.reason) for t in store.transitions("t1")[-2:]] == [
            ("a", "error", "resolved_manually", "refunded by hand"),
            (None, "error", "in_progress", "refunded by hand")]
        [b] = store.claim("w1", 10, NOW + 5, LEASE)
        assert store.record([done(b, NOW + 6)]).changes == (TaskChange("t1", TaskState.IN_PROGRESS,
                                                                        TaskState.COMPLETE),)

    def test_resolving_the_last_step_completes_the_task(self, store: Store) -> None:
        store.create_task(single(), NOW)
        [a] = store.claim("w1", 1, NOW, LEASE)
        store.record([fail(a)])
        assert store.resolve_step("t1", "a", NOW + 5)
        task = store.get_task("t1")
        assert task is not None and (task.status, task.completed_at) == (TaskState.COMPLETE, NOW + 5)
        assert store.transitions("t1")[-1].to_state == "complete"

    def test_resolve_waiting_steps_of_a_failed_task(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ("a",)}), NOW)
        [a] = store.claim("w1", 1, NOW, LEASE)
        store.record([fail(a)])
        assert store.resolve_step("t1", "b", NOW + 1)  # pending, task in error
        assert store.get_task("t1").status is TaskState.ERROR  # type: ignore[union-attr]  (a still failed)
        assert store.resolve_step("t1", "a", NOW + 2, {"x": 1})
        task = store.get_task("t1")
        assert task is not None and task.status is TaskState.COMPLETE
        assert store.step_results("t1") == {"a": {"x": 1}, "b": None}

    def test_resolve_refuses_steps_that_are_not_resolvable(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ("a",)}), NOW)
        assert not store.resolve_step("t1", "b", NOW)  # pending in a live task
        [a] = store.claim("w1", 1, NOW, LEASE)
        before = store.transitions("t1")
        assert not store.resolve_step("t1", "a", NOW)  # running
        assert not store.resolve_step("t1", "zz", NOW) and not store.resolve_step("nope", "a", NOW)
        store.record([done(a)])
        assert not store.resolve_step("t1", "a", NOW + 2)  # complete
        assert len(store.transitions("t1")) == len(before) + 1
        store.cancel_task("t1", NOW + 3)
        assert not store.resolve_step("t1", "b", NOW + 4)  # cancelled task

    # -- history, listing, scheduling --------------------------------------------------------
    def test_transitions_follow_every_change_in_order(self, store: Store) -> None:
        store.create_task(single(), NOW)
        [a] = store.claim("w1", 1, NOW, LEASE)
        store.record([done(a, NOW + 1, state=StepState.WAITING_RETRY, reason="timeout", ready_at=NOW + 5)])
        [a] = store.claim("w1", 1, NOW + 5, LEASE)
        store.record([done(a, NOW + 6, reason="ok")])
        got = [(t.task_id, t.step, t.from_state, t.to_state, t.at) for t in store.transitions("t1")]
        assert got[:2] == [("t1", None, None, "pending", NOW), ("t1", "a", None, "pending", NOW)]
        assert sorted(got[2:4], key=str) == sorted([("t1", "a", "pending", "in_progress", NOW),
                                                    ("t1", None, "pending", "in_progress", NOW)], key=str)
        assert got[4:] == [("t1", "a", "in_progress", "waiting_retry", NOW + 1),
                           ("t1", "a", "waiting_retry", "in_progress", NOW + 5),
                           ("t1", "a", "in_progress", "complete", NOW + 6),
                           ("t1", None, "in_progress", "complete", NOW + 6)]
        assert store.transitions("t1")[4].reason == "timeout"

    def test_list_tasks_filters(self, store: Store) -> None:
        store.create_task(single("p1", namespace="pay", name="refund", version="1.0.0"), NOW)
        store.create_task(single("p2", namespace="pay", name="refund", version="2.0.0"), NOW + 1)
        store.create_task(single("p3", namespace="pay", name="charge"), NOW + 2)
        store.create_task(single("c1", namespace="cs", name="refund", parent_task_id="p1", invocation_key="k"),
                          NOW + 3)
        [claim] = store.claim("w1", 1, NOW + 10, LEASE)
        store.record([fail(claim)])

        def ids(**kw: object) -> list[str]:
            found = store.list_tasks(TaskFilter(**kw))  # type: ignore[arg-type]
            assert all(t.steps == [] for t in found)
            return [t.id for t in found]

        assert ids() == ["p1", "p2", "p3", "c1"]
        assert ids(namespaces=["pay"]) == ["p1", "p2", "p3"] and ids(namespaces=["cs", "x"]) == ["c1"]
        assert ids(namespaces=[]) == []
        assert ids(name="refund") == ["p1", "p2", "c1"] and ids(name="refund", version="2.0.0") == ["p2"]
        assert ids(status=TaskState.ERROR) == ["p1"] and ids(status=TaskState.PENDING) == ["p2", "p3", "c1"]
        assert ids(created_after=NOW + 1) == ["p2", "p3", "c1"] and ids(created_before=NOW + 1) == ["p1"]
        assert ids(created_after=NOW + 1, created_before=NOW + 3) == ["p2", "p3"]
        assert ids(parent_task_id="p1") == ["c1"] and ids(limit=2) == ["p1", "p2"]

    def test_list_tasks_cursor_pagination(self, store: Store) -> None:
        created = [("e", NOW), ("b", NOW + 1), ("d", NOW + 1), ("a", NOW + 1), ("c", NOW + 2), ("f", NOW + 3)]
        for task_id, at in created:
            store.create_task(single(task_id), at)
        expected = ["e", "a", "b", "d", "c", "f"]  # (created_at, id)
        pages, cursor = [], None
        while page := store.list_tasks(TaskFilter(after_id=cursor, limit=2)):
            pages.append([t.id for t in page])
            cursor = page[-1].id
        assert pages == [expected[0:2], expected[2:4], expected[4:6]]
        assert [t.id for t in store.list_tasks(TaskFilter(after_id="b", limit=10, created_before=NOW + 3))] == [
            "d", "c"]
        assert store.list_tasks(TaskFilter(after_id="missing")) == []

    def test_list_tasks_newest_first_with_keyset_cursor(self, store: Store) -> None:
        created = [("e", NOW), ("b", NOW + 1), ("d", NOW + 1), ("a", NOW + 1), ("c", NOW + 2), ("f", NOW + 3)]
        for task_id, at in created:
            store.create_task(single(task_id), at)
        expected = ["f", "c", "d", "b", "a", "e"]  # (created_at, id) descending
        pages, cursor = [], None
        while page := store.list_tasks(TaskFilter(after_id=cursor, limit=2, newest_first=True)):
            pages.append([t.id for t in page])
            cursor = page[-1].id
        assert pages == [expected[0:2], expected[2:4], expected[4:6]]
        assert [t.id for t in store.list_tasks(TaskFilter(after_id="d", newest_first=True, created_after=NOW + 1))] == [
            "b", "a"]
        assert store.list_tasks(TaskFilter(after_id="missing", newest_first=True)) == []

    def test_list_tasks_by_correlation_id_and_context_text(self, store: Store) -> None:
        store.create_task(dataclasses.replace(single("t1", correlation_id="corr-a"),
                                              context={"order": "ord_1", "note": "50% off_"}), NOW)
        second = dataclasses.replace(single("t2", correlation_id="corr-b"), context={"order": "ord_2"})
        store.create_task(second, NOW + 1)

        def ids(**kw: object) -> list[str]:
            return [t.id for t in store.list_tasks(TaskFilter(**kw))]  # type: ignore[arg-type]

        assert ids(correlation_id="corr-b") == ["t2"] and ids(correlation_id="corr") == []
        assert ids(context_text="ord_") == ["t1", "t2"] and ids(context_text='"ord_2"') == ["t2"]
        assert ids(context_text="50% off_") == ["t1"]  # LIKE wildcards are literal text
        assert ids(context_text="0_o") == [] and ids(context_text="%") == ["t1"]
        assert ids(context_text="ord_", correlation_id="corr-a") == ["t1"]

    def test_list_tasks_by_id_prefix(self, store: Store) -> None:
        for n, task_id in enumerate(("9ef7a482-1", "9ef7b000-2", "a_%1", "ab%1")):
            store.create_task(single(task_id), NOW + n)

        def ids(prefix: str) -> list[str]:
            return [t.id for t in store.list_tasks(TaskFilter(id_prefix=prefix))]

        assert ids("9ef7a") == ["9ef7a482-1"] and ids("9ef7") == ["9ef7a482-1", "9ef7b000-2"]
        assert ids("a_") == ["a_%1"] and ids("a%") == []  # LIKE wildcards are literal text
        assert ids("zz") == [] and ids("9ef7a482-1") == ["9ef7a482-1"]

    def test_next_ready_at_is_the_earliest_waiting_step(self, store: Store) -> None:
        assert store.next_ready_at() is None
        store.create_task(make_task("t1", {"a": (), "b": ("a",)}), NOW)
        assert store.next_ready_at() == NOW
        [a] = store.claim("w1", 10, NOW, LEASE)
        assert store.next_ready_at() is None  # b still waits for a: not counted
        store.record([done(a, NOW + 1, state=StepState.WAITING_RETRY, ready_at=NOW + 50)])
        assert store.next_ready_at() == NOW + 50
        store.create_task(single("t2"), NOW + 20)
        assert store.next_ready_at() == NOW + 20
        store.cancel_task("t2", NOW + 21)
        assert store.next_ready_at() == NOW + 50
        store.cancel_task("t1", NOW + 22)
        assert store.next_ready_at() is None
