"""``Store.metric_facts`` (see :mod:`tasker_host.store.metric_facts`): the transitions behind
``/metrics``. Mix :class:`MetricFactsContract` beside :class:`~tests.store_contract.StoreContract`
(same ``store`` fixture)."""

from __future__ import annotations

import dataclasses

from tasker_host.models import StepState
from tasker_host.store.base import Store
from tests.store_contract import LEASE, NOW, done, make_task, single


def _keys(facts: list) -> list[tuple[str | None, str | None, str]]:  # type: ignore[type-arg]
    return [(f.step, f.from_state, f.to_state) for f in facts]


class MetricFactsContract:
    def test_facts_start_at_the_end_and_come_once(self, store: Store) -> None:
        store.create_task(single("old"), NOW)
        facts, cursor = store.metric_facts(None, NOW)
        assert facts == []
        store.create_task(make_task("t1", {"a": (), "b": ("a",)}), NOW + 1)
        facts, cursor = store.metric_facts(cursor, NOW + 1)
        assert {f.task_id for f in facts} == {"t1"}
        assert sorted(_keys(facts), key=str) == sorted([(None, None, "pending"), ("a", None, "pending"),
                                                         ("b", None, "pending")], key=str)
        assert all((f.namespace, f.name, f.version, f.caller) == ("ns", "flow", "1.0.0", None) for f in facts)
        again, cursor = store.metric_facts(cursor, NOW + 1)
        assert again == []

    def test_claims_and_outcomes_carry_the_step_row(self, store: Store) -> None:
        store.create_task(make_task("t1", {"a": (), "b": ("a",)}), NOW)
        _, cursor = store.metric_facts(None, NOW)
        [a] = store.claim("w1", 5, NOW + 2, LEASE)
        store.record([done(a, NOW + 5)])
        [b] = store.claim("w1", 5, NOW + 9, LEASE)
        facts, cursor = store.metric_facts(cursor, NOW + 9)
        by_key = {(f.step, f.to_state): f for f in facts}
        claim_a = by_key[("a", "in_progress")]
        assert (claim_a.from_state, claim_a.at, claim_a.started_at, claim_a.ready_since) == ("pending", NOW + 2,
                                                                                          NOW + 2, NOW)
        assert (by_key[("a", "complete")].at, by_key[("a", "complete")].attempts) == (NOW + 5, 1)
        claim_b = by_key[("b", "in_progress")]
        assert (claim_b.started_at, claim_b.ready_since) == (NOW + 9, NOW + 5)  # b was ready when a completed
        assert by_key[(None, "in_progress")].from_state == "pending"  # the task started
        store.record([done(b, NOW + 10)])
        facts, _ = store.metric_facts(cursor, NOW + 10)
        assert (None, "in_progress", "complete") in _keys(facts) and ("b", "in_progress", "complete") in _keys(facts)

    def test_a_retried_attempt_and_a_failure(self, store: Store) -> None:
        store.create_task(single("t1"), NOW)
        _, cursor = store.metric_facts(None, NOW)
        [a] = store.claim("w1", 5, NOW, LEASE)
        store.record([done(a, NOW + 1, state=StepState.WAITING_RETRY, ready_at=NOW + 3)])
        [a2] = store.claim("w1", 5, NOW + 3, LEASE)
        facts, cursor = store.metric_facts(cursor, NOW + 3)
        assert ("a", "in_progress", "waiting_retry") in _keys(facts)
        second = [f for f in facts if f.to_state == "in_progress" and f.step == "a"][-1]
        assert (second.from_state, second.ready_since, second.attempts) == ("waiting_retry", NOW + 3, 2)
        store.record([done(a2, NOW + 4, state=StepState.ERROR, error={"type": "X"})])
        facts, _ = store.metric_facts(cursor, NOW + 4)
        assert (None, "in_progress", "error") in _keys(facts)
        assert next(f for f in facts if f.step == "a").attempts == 2

    def test_a_child_task_names_its_callers_namespace(self, store: Store) -> None:
        store.create_task(single("parent", namespace="caller"), NOW)
        _, cursor = store.metric_facts(None, NOW)
        child = dataclasses.replace(single("child", namespace="callee"), parent_task_id="parent", parent_step="a",
                                    invocation_key="k")
        store.create_task(child, NOW + 1)
        facts, _ = store.metric_facts(cursor, NOW + 1)
        created = next(f for f in facts if f.step is None)
        assert (created.namespace, created.caller) == ("callee", "caller")
        assert all(f.caller is None for f in facts if f.step is not None)

    def test_a_limit_leaves_the_rest_for_the_next_call(self, store: Store) -> None:
        _, cursor = store.metric_facts(None, NOW)
        for i in range(3):
            store.create_task(single(f"t{i}"), NOW + i)
        first, cursor = store.metric_facts(cursor, NOW + 3, 4)
        rest, cursor = store.metric_facts(cursor, NOW + 3, 100)
        assert len(first) == 4 and len(first) + len(rest) == 6
        assert store.metric_facts(cursor, NOW + 3)[0] == []
