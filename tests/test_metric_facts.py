"""The SQL store's metric-facts cursor: ids that commit after a higher one (concurrent
transactions on PostgreSQL) are still read, once; ids missing for too long are given up."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tasker_host.store.metric_facts import GAP_SECONDS, MAX_GAPS, IdCursor
from tasker_host.store.sql import SqlStore
from tasker_host.store.sql.schema import transitions
from tests.store_contract import NOW, single


def test_skipped_ids_are_awaited_then_given_up() -> None:
    cursor = IdCursor(10).advance([11, 14], now=0.0)
    assert (cursor.after, sorted(cursor.gaps)) == (14, [12, 13])
    cursor = cursor.advance([12, 15], now=1.0)
    assert (cursor.after, sorted(cursor.gaps)) == (15, [13])
    assert cursor.advance([], now=GAP_SECONDS + 1).gaps == {}


def test_a_huge_jump_is_not_remembered_id_by_id() -> None:
    cursor = IdCursor(0).advance([MAX_GAPS + 10], now=0.0)
    assert cursor.after == MAX_GAPS + 10 and cursor.gaps == {}


def test_a_transition_committed_late_below_the_cursor_is_read(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
    try:
        store.create_task(single("t1"), NOW)
        _, cursor = store.metric_facts(None, NOW)
        with store.engine.begin() as conn:  # id 3 left free, as a concurrent transaction would
            top = conn.execute(sa.select(sa.func.max(transitions.c.id))).scalar_one()
            conn.execute(sa.insert(transitions), [{"id": top + 2, "task_id": "t1", "step": None,
                                                   "from_state": "pending", "to_state": "in_progress", "at": NOW}])
        facts, cursor = store.metric_facts(cursor, NOW)
        assert [f.to_state for f in facts] == ["in_progress"] and top + 1 in cursor.gaps
        with store.engine.begin() as conn:  # ... and commits now
            conn.execute(sa.insert(transitions), [{"id": top + 1, "task_id": "t1", "step": "a",
                                                   "from_state": "pending", "to_state": "in_progress", "at": NOW}])
        facts, cursor = store.metric_facts(cursor, NOW + 1)
        assert [(f.step, f.to_state) for f in facts] == [("a", "in_progress")] and not cursor.gaps
        assert store.metric_facts(cursor, NOW + 2)[0] == []
    finally:
        store.close()


def test_a_scrape_reads_a_backlog_in_batches_until_it_is_done() -> None:
    from tasker_host.api.store_metrics import TransitionMetrics
    from tasker_host.store.memory import MemoryStore

    store = MemoryStore()
    metrics = TransitionMetrics(store, limit=4)
    metrics.start()
    for i in range(5):
        store.create_task(single(f"t{i}"), NOW)  # 2 transitions each: 10, read 4 at a time
    metrics.refresh()
    assert sum(metrics.tasks["created"].values.values()) == 5
