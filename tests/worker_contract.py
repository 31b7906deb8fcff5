"""The Store contract for worker registrations ("Workers" in ``tasker_host/store/base.py``'s
docstring), as tests: register, heartbeat, deregister, reap.

Subclass :class:`WorkerContract` beside :class:`~tests.store_contract.StoreContract` (same
``store`` fixture: a fresh, empty store per test). Time is always explicit; nothing sleeps.
"""

from __future__ import annotations

import threading

from tasker_host.models import StepState
from tasker_host.store._common import RECLAIM_REASON
from tasker_host.store.base import LostWorker, NewWorker, Store, WorkerRecord
from tests.store_contract import LEASE, NOW, done, make_task, names, single, step_of

DEAD_AFTER = 6.0


def worker(worker_id: str, *, pid: int = 100, hostname: str = "host-a", **extra: object) -> NewWorker:
    return NewWorker(worker_id, hostname, pid, DEAD_AFTER, **extra)  # type: ignore[arg-type]


def ids(lost: list[LostWorker]) -> list[str]:
    return [entry.worker.id for entry in lost]


class WorkerContract:
    def test_register_and_list_workers(self, store: Store) -> None:
        store.register(worker("w2", pid=7, pid_scope="boot:ns", pid_started=123456), NOW)
        store.register(worker("w1", hostname="host-b"), NOW + 1)
        assert store.workers() == [
            WorkerRecord("w1", "host-b", 100, DEAD_AFTER, NOW + 1, NOW + 1),
            WorkerRecord("w2", "host-a", 7, DEAD_AFTER, NOW, NOW, "boot:ns", 123456)]
        store.register(worker("w2", pid=8), NOW + 2)  # the same id again: replaces the row
        assert [(w.id, w.pid, w.started_at, w.pid_scope) for w in store.workers()] == [
            ("w1", 100, NOW + 1, None), ("w2", 8, NOW + 2, None)]

    def test_heartbeat_moves_heartbeat_at_and_says_whether_registered(self, store: Store) -> None:
        store.register(worker("w1"), NOW)
        assert store.heartbeat("w1", NOW + 1.5) is True
        assert store.heartbeat("stranger", NOW + 1.5) is False
        [w1] = store.workers()
        assert (w1.started_at, w1.heartbeat_at) == (NOW, NOW + 1.5)
        assert [w.id for w in store.workers()] == ["w1"]  # a heartbeat registers nobody

    def test_heartbeat_renews_leases_only_while_registered(self, store: Store) -> None:
        store.create_task(single("t1"), NOW)
        store.create_task(single("t2"), NOW)
        store.claim("w1", 1, NOW, LEASE)
        store.claim("w2", 1, NOW, LEASE)
        store.register(worker("w1"), NOW)
        assert store.heartbeat("w1", NOW + 20, LEASE)
        assert not store.heartbeat("w2", NOW + 20, LEASE)  # reaped (never registered here)
        assert step_of(store, "t1", "a").lease_expires_at == NOW + 20 + LEASE
        assert step_of(store, "t2", "a").lease_expires_at == NOW + LEASE  # not extended

    def test_a_silent_worker_is_reaped_and_its_steps_taken_at_once(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        store.register(worker("dead"), NOW)
        store.register(worker("live"), NOW)
        assert len(store.claim("dead", 2, NOW, LEASE)) == 2
        store.heartbeat("live", NOW + DEAD_AFTER + 0.5)
        assert store.reap_workers("reaper", NOW + DEAD_AFTER) == []  # silent for exactly dead_after
        lost = store.reap_workers("reaper", NOW + DEAD_AFTER + 0.5)
        assert [(entry.worker.id, entry.cause, entry.steps) for entry in lost] == [
            ("dead", "no heartbeat since 1970-01-01T00:16:40.000Z", 2)]
        assert [w.id for w in store.workers()] == ["live"]
        a = step_of(store, "t1", "a")
        assert (a.state, a.lease_owner, a.lease_expires_at, a.attempts) == (
            StepState.IN_PROGRESS, "dead (lost)", NOW, 1)
        assert a.last_error == {"type": "WorkerLost", "kind": "lost", "message": (
            "attempt 1 lost with worker dead (no heartbeat since 1970-01-01T00:16:40.000Z)")}
        claims = store.claim("w2", 10, NOW + DEAD_AFTER + 0.5, LEASE)  # long before the lease ends
        assert sorted(names(claims)) == [("t1", "a"), ("t1", "b")] and {c.attempt for c in claims} == {2}
        assert store.transitions("t1")[-1].reason == RECLAIM_REASON.format(previous="dead (lost)", owner="w2")
        assert store.reap_workers("reaper", NOW + DEAD_AFTER + 0.5) == []  # reported once

    def test_the_reaper_itself_is_never_reaped(self, store: Store) -> None:
        store.register(worker("me"), NOW)
        assert store.reap_workers("me", NOW + 100, gone=lambda w: True) == []
        assert [w.id for w in store.workers()] == ["me"]

    def test_a_worker_whose_process_is_gone_is_reaped_at_once(self, store: Store) -> None:
        store.create_task(single("t1"), NOW)
        store.register(worker("crashed", pid=42, pid_scope="boot:ns", pid_started=9), NOW)
        store.register(worker("running", pid=43), NOW)
        store.claim("crashed", 1, NOW, LEASE)
        seen: list[WorkerRecord] = []

        def gone(w: WorkerRecord) -> bool:
            seen.append(w)
            return w.pid == 42

        lost = store.reap_workers("reaper", NOW + 1, gone=gone)
        assert [(entry.worker.id, entry.cause, entry.steps) for entry in lost] == [
            ("crashed", "process 42 on host-a is gone", 1)]
        assert sorted((w.id, w.pid_scope, w.pid_started) for w in seen) == [
            ("crashed", "boot:ns", 9), ("running", None, None)]
        assert [w.id for w in store.workers()] == ["running"]
        a = step_of(store, "t1", "a")
        assert a.lease_expires_at == NOW  # its last heartbeat: any later claim takes it
        assert a.last_error["message"] == "attempt 1 lost with worker crashed (process 42 on host-a is gone)"
        assert [c.attempt for c in store.claim("w2", 10, NOW + 1, LEASE)] == [2]
        assert store.heartbeat("crashed", NOW + 2) is False  # had it been alive: it learns it was reaped

    def test_a_reaped_worker_can_neither_record_nor_renew_its_lost_steps(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        store.register(worker("stalled"), NOW)
        [a, b] = store.claim("stalled", 2, NOW, LEASE)
        store.reap_workers("reaper", NOW + 10)  # it stalled for 10 s: presumed dead
        # it wakes up before anyone took its steps: too late, they are no longer its own
        assert not store.heartbeat("stalled", NOW + 10.5, LEASE)
        assert store.renew_leases("stalled", NOW + 10.5, LEASE) == 0
        assert store.record([done(a, NOW + 10.5, owner="stalled")]).rejected == (done(a, NOW + 10.5, owner="stalled"),)
        store.register(worker("stalled"), NOW + 11)  # registered again: what it claims now is its own
        claims = store.claim("stalled", 2, NOW + 11, LEASE)
        assert sorted((c.step, c.attempt) for c in claims) == [("a", 2), ("b", 2)]
        assert not store.record([done(c, NOW + 12, owner="stalled") for c in claims]).rejected

    def test_silence_counts_from_watching_since(self, store: Store) -> None:
        store.register(worker("w1"), NOW)
        # the reaper lost the database until NOW + 5: w1 may have been cut off just as long
        assert store.reap_workers("reaper", NOW + 10, watching_since=NOW + 5) == []
        assert ids(store.reap_workers("reaper", NOW + 11.5, watching_since=NOW + 5)) == ["w1"]

    def test_reaping_never_extends_an_expired_lease(self, store: Store) -> None:
        store.create_task(single("t1"), NOW)
        store.register(worker("w1"), NOW + 100)
        store.claim("w1", 1, NOW, LEASE)  # claimed before registering: its lease ran out at NOW + 30
        assert ids(store.reap_workers("reaper", NOW + 200)) == ["w1"]
        assert step_of(store, "t1", "a").lease_expires_at == NOW + LEASE

    def test_deregister_releases_the_steps_without_counting_the_attempt(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ()}), NOW)
        store.create_task(single("t2"), NOW)
        store.register(worker("w1"), NOW)
        [mine, _] = store.claim("w1", 2, NOW, LEASE)
        store.record([done(mine, NOW + 1)])
        [other] = store.claim("w2", 1, NOW + 1, LEASE)
        assert store.deregister("w1", NOW + 2) == 1
        assert store.deregister("w1", NOW + 3) == 0
        assert store.workers() == []
        left = next(s for s in store.get_task("t1").steps if s.name != mine.step)
        assert (left.state, left.attempts, left.ready_at, left.lease_owner) == (
            StepState.WAITING_RETRY, 0, NOW + 2, None)
        last = store.transitions("t1")[-1]
        assert (last.from_state, last.to_state, last.reason) == ("in_progress", "waiting_retry",
                                                                 "worker w1 stopped; released")
        assert step_of(store, other.task_id, "a").lease_owner == "w2"  # another worker's step stays
        [again] = store.claim("w3", 10, NOW + 2, LEASE)
        assert (again.step, again.attempt) == (left.name, 1)

    def test_concurrent_reapers_never_reap_a_worker_twice(self, store: Store) -> None:
        for i in range(20):
            store.create_task(single(f"t{i:02}"), NOW)
            store.register(worker(f"dead{i:02}"), NOW)
            store.claim(f"dead{i:02}", 1, NOW, LEASE)
        found: list[list[LostWorker]] = [[] for _ in range(4)]

        def reaper(n: int) -> None:
            found[n] = store.reap_workers(f"r{n}", NOW + 60)

        threads = [threading.Thread(target=reaper, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        everyone = [entry.worker.id for batch in found for entry in batch]
        assert sorted(everyone) == [f"dead{i:02}" for i in range(20)]
        assert sum(entry.steps for batch in found for entry in batch) == 20
