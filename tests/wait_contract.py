"""The Store contract for steps that wait and events (``tasker_host/store/waits.py``), mixed into
the store test classes of memory, SQLite and PostgreSQL. Time is explicit; nothing sleeps."""

from __future__ import annotations

import threading

from tasker_host.models import StepState, TaskState
from tasker_host.store.base import Claim, StepOutcome, Store
from tasker_host.store.waits import NewEvent, SendStatus, wait_doc
from tests.store_contract import LEASE, NOW, done, names, single, step_of


def wait(claim: Claim, event: str | None = "approval", *, at: float = NOW + 1, timeout_at: float | None = None,
         until: float | None = None, owner: str = "w1") -> StepOutcome:
    doc = wait_doc(event, {"type": "object"} if event else None, timeout_at, until, at)
    ready = min([t for t in (timeout_at, until) if t is not None], default=None)
    return StepOutcome(claim.task_id, claim.step, owner, claim.attempt, StepState.WAITING, at,
                       reason="waiting", wait=doc, ready_at=ready)


def waiting_step(store: Store, task_id: str = "t1", **kw: object) -> Claim:
    store.create_task(single(task_id), NOW)
    [claim] = store.claim("w1", 1, NOW, LEASE)
    batch = store.record([wait(claim, **kw)])  # type: ignore[arg-type]
    assert batch.rejected == ()
    return claim


class WaitContract:
    def test_a_waiting_step_holds_no_lease_and_is_not_claimed(self, store: Store) -> None:
        waiting_step(store)
        step = step_of(store, "t1", "a")
        assert (step.state, step.lease_owner, step.lease_expires_at, step.attempts) == (
            StepState.WAITING, None, None, 0)
        assert step.wait is not None and step.wait["event"] == "approval" and step.wait["delivered"] is None
        assert store.claim("w2", 10, NOW + 10_000, LEASE) == []
        assert store.next_ready_at() is None
        assert store.count_by_state().steps[("ns", "waiting")] == 1
        assert [t.to_state for t in store.transitions("t1") if t.step == "a"][-1] == "waiting"

    def test_an_event_wakes_the_waiting_step_once(self, store: Store) -> None:
        waiting_step(store)
        sent = store.send_event(NewEvent("t1", "approval", {"approved": True}, "k1", "mgr"), NOW + 5)
        assert sent.status is SendStatus.SENT and sent.woke == "a" and sent.event is not None
        assert (sent.event.step, sent.event.payload, sent.event.sender) == ("a", {"approved": True}, "mgr")
        assert store.next_ready_at() == NOW + 5
        [claim] = store.claim("w2", 10, NOW + 5, LEASE)
        assert (claim.step, claim.attempt, claim.resumed) == ("a", 1, True)
        wake = store.wakes([("t1", "a")])[("t1", "a")]
        assert wake.wait["delivered"] == sent.event.id and [e.payload for e in wake.events] == [{"approved": True}]
        assert store.claim("w3", 10, NOW + 5, LEASE) == []
        store.record([done(claim, NOW + 6, owner="w2")])
        task = store.get_task("t1")
        assert task is not None and task.status is TaskState.COMPLETE

    def test_an_event_sent_before_the_wait_is_delivered_when_it_waits(self, store: Store) -> None:
        store.create_task(single(), NOW)
        early = store.send_event(NewEvent("t1", "approval", {"n": 1}), NOW)
        assert early.status is SendStatus.SENT and early.woke is None
        assert store.send_event(NewEvent("t1", "other", {"n": 2}), NOW).woke is None
        [claim] = store.claim("w1", 1, NOW, LEASE)
        assert not claim.resumed
        store.record([wait(claim, at=NOW + 1)])
        assert step_of(store, "t1", "a").state is StepState.WAITING
        [again] = store.claim("w1", 1, NOW + 1, LEASE)
        assert again.step == "a" and again.attempt == 1
        wake = store.wakes([("t1", "a")])[("t1", "a")]
        assert [e.name for e in wake.events] == ["approval"]
        assert [e.step for e in store.task_events("t1")] == ["a", None]

    def test_a_duplicate_key_returns_the_original_and_writes_nothing(self, store: Store) -> None:
        store.create_task(single(), NOW)
        first = store.send_event(NewEvent("t1", "approval", {"v": 1}, "key"), NOW)
        again = store.send_event(NewEvent("t1", "approval", {"v": 2}, "key"), NOW + 1)
        assert again.status is SendStatus.DUPLICATE and again.event == first.event
        other_name = store.send_event(NewEvent("t1", "note", {"v": 3}, "key"), NOW + 1)
        assert other_name.status is SendStatus.SENT
        assert [e.payload for e in store.task_events("t1")] == [{"v": 1}, {"v": 3}]

    def test_concurrent_duplicates_store_one_event(self, store: Store) -> None:
        store.create_task(single(), NOW)
        results = []

        def send() -> None:
            results.append(store.send_event(NewEvent("t1", "approval", {}, "same"), NOW))

        threads = [threading.Thread(target=send) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status.value for r in results) == ["duplicate"] * 3 + ["sent"]
        assert len(store.task_events("t1")) == 1

    def test_events_to_ended_or_unknown_tasks_are_refused(self, store: Store) -> None:
        waiting_step(store)
        assert store.send_event(NewEvent("nope", "approval"), NOW).status is SendStatus.NO_TASK
        store.cancel_task("t1", NOW + 2)
        assert step_of(store, "t1", "a").state is StepState.CANCELLED
        refused = store.send_event(NewEvent("t1", "approval", {}), NOW + 3)
        assert refused.status is SendStatus.ENDED and refused.task_status == "cancelled"
        assert store.task_events("t1") == []

    def test_a_timeout_makes_the_step_claimable_when_due(self, store: Store) -> None:
        waiting_step(store, timeout_at=NOW + 100)
        assert store.next_ready_at() == NOW + 100
        assert store.claim("w1", 1, NOW + 99, LEASE) == []
        [claim] = store.claim("w1", 1, NOW + 100, LEASE)
        assert claim.resumed and claim.attempt == 1
        wake = store.wakes([("t1", "a")])[("t1", "a")]
        assert wake.wait["delivered"] is None and wake.events == ()
        # an event arriving after the timeout fired is stored, not delivered to the running step
        late = store.send_event(NewEvent("t1", "approval", {}), NOW + 101)
        assert late.status is SendStatus.SENT and late.woke is None

    def test_a_timer_fires_once_across_claimers(self, store: Store) -> None:
        for i in range(20):
            waiting_step(store, f"t{i:02}", event=None, until=NOW + 50)
        taken: list[Claim] = []
        lock = threading.Lock()

        def claim(owner: str) -> None:
            got = store.claim(owner, 7, NOW + 50, LEASE)
            with lock:
                taken.extend(got)

        threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        taken += store.claim("late", 50, NOW + 50, LEASE)
        assert sorted(names(taken)) == [(f"t{i:02}", "a") for i in range(20)]

    def test_a_stale_wait_is_rejected(self, store: Store) -> None:
        store.create_task(single(), NOW)
        [claim] = store.claim("w1", 1, NOW, LEASE)
        batch = store.record([wait(claim, owner="other")])
        assert len(batch.rejected) == 1 and step_of(store, "t1", "a").state is StepState.IN_PROGRESS

    def test_record_and_claim_applies_waits_beside_other_outcomes(self, store: Store) -> None:
        store.create_task(single("t1"), NOW)
        store.create_task(single("t2"), NOW)
        c1, c2 = store.claim("w1", 2, NOW, LEASE)
        batch, claims = store.record_and_claim([wait(c1), done(c2)], "w1", 5, NOW + 1, LEASE)
        assert batch.rejected == () and claims == []
        assert step_of(store, c1.task_id, "a").state is StepState.WAITING
        assert [c.after for c in batch.changes] == [TaskState.COMPLETE]

    def test_next_ready_at_skips_waits_without_a_timer(self, store: Store) -> None:
        waiting_step(store, "t1")  # no timer
        waiting_step(store, "t2", timeout_at=NOW + 500)
        waiting_step(store, "t3", event=None, until=NOW + 300)
        assert store.next_ready_at() == NOW + 300
        store.create_task(single("t4", namespace="other"), NOW + 1)
        assert store.next_ready_at() == NOW + 1
