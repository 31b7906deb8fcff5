"""Step log lines in the Store contract (``StepOutcome.logs``, ``Store.step_logs``): subclass
:class:`StepLogContract` beside :class:`~tests.store_contract.StoreContract` (same ``store`` fixture)."""

from __future__ import annotations

from tasker_host.models import StepState
from tasker_host.store.base import StepOutcome, Store
from tasker_host.store.step_logs import LogLine, StepLogEntry
from tests.store_contract import LEASE, NOW, done, make_task, single


def lines(*messages: str, at: float = NOW + 0.5) -> tuple[LogLine, ...]:
    return tuple(LogLine(at + i, "info", m) for i, m in enumerate(messages))


class StepLogContract:
    def test_an_applied_outcome_keeps_its_lines_per_attempt(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ("a",)}), NOW)
        (a,) = store.claim("w1", 1, NOW, LEASE)
        retry = StepOutcome("t1", "a", "w1", 1, StepState.WAITING_RETRY, NOW + 1, "retry",
                            error={"type": "X", "message": "m"}, ready_at=NOW + 2, logs=lines("first try"))
        store.record_and_claim([retry], "w1", 0, NOW + 1, LEASE)
        (a2,) = store.claim("w1", 1, NOW + 3, LEASE)
        assert a2.attempt == 2
        _, (b,) = store.record_and_claim([done(a2, NOW + 4, logs=lines("second", "done ✓"))], "w1", 5, NOW + 4, LEASE)
        store.record_and_claim([done(b, NOW + 5)], "w1", 5, NOW + 5, LEASE)  # no lines
        assert store.step_logs("t1") == [
            StepLogEntry("a", 1, 0, NOW + 0.5, "info", "first try"),
            StepLogEntry("a", 2, 0, NOW + 0.5, "info", "second"),
            StepLogEntry("a", 2, 1, NOW + 1.5, "info", "done ✓"),
        ]
        assert store.step_logs("t1", "a") == store.step_logs("t1")
        assert store.step_logs("t1", "b") == [] and store.step_logs("nope") == []

    def test_a_rejected_outcome_keeps_no_lines(self, store: Store) -> None:
        store.create_task(single("t1"), NOW)
        (a,) = store.claim("w1", 1, NOW, LEASE)
        stale = done(a, owner="w2", logs=lines("not mine"))
        first, duplicate = done(a, logs=lines("kept")), done(a, NOW + 2, logs=lines("second of the batch"))
        batch = store.record([stale, first, duplicate])
        assert batch.rejected == (stale, duplicate)
        assert [e.message for e in store.step_logs("t1")] == ["kept"]

    def test_lines_of_a_batch_go_to_their_own_steps(self, store: Store) -> None:
        for task_id in ("t1", "t2"):
            store.create_task(single(task_id), NOW)
        claims = store.claim("w1", 2, NOW, LEASE)
        batch, _ = store.record_and_claim([done(c, logs=lines(f"{c.task_id} says hi")) for c in claims],
                                          "w1", 4, NOW + 1, LEASE)
        assert batch.rejected == ()
        for task_id in ("t1", "t2"):
            found = [(e.step, e.attempt, e.message) for e in store.step_logs(task_id)]
            assert found == [("a", 1, f"{task_id} says hi")]
