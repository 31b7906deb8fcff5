"""The Store contract of the version lifecycle (``docs/templates.md``): version statistics (drain
status, callers, who started each version), caller namespaces and warnings on tasks, idempotent
replays and drain-check lookups. Mixed into the memory, SQLite and PostgreSQL store tests."""

from __future__ import annotations

from tasker_host.store.base import Store, TaskFilter
from tests.store_contract import LEASE, NOW, done, fail, single


class LifecycleContract:
    def test_version_stats_counts_statuses_last_start_callers_and_waiting_parents(self, store: Store) -> None:
        store.create_task(single("p1", namespace="cs", name="escalate", version="1.0.0"), NOW)
        store.create_task(single("p2", namespace="cs", name="escalate", version="2.0.0"), NOW + 1)
        store.create_task(single("c1", namespace="pay", name="refund", version="1.0.0", parent_task_id="p1",
                                 invocation_key="k1", caller_namespace="cs"), NOW + 2)
        store.create_task(single("c2", namespace="pay", name="refund", version="1.0.0", parent_task_id="p2",
                                 invocation_key="k1", caller_namespace="cs"), NOW + 3)
        store.create_task(single("c3", namespace="pay", name="refund", version="1.0.0"), NOW + 4)
        claims = store.claim("w1", 10, NOW + 5, LEASE)
        store.record([done(c, NOW + 6) for c in claims if c.task_id in ("p2", "c2")])  # p2, c2 complete
        stats = store.version_stats()
        assert stats.versions() == [("cs", "escalate", "1.0.0"), ("cs", "escalate", "2.0.0"),
                                    ("pay", "refund", "1.0.0")]
        assert stats.by_status[("pay", "refund", "1.0.0", "in_progress")] == 2
        assert stats.by_status[("pay", "refund", "1.0.0", "complete")] == 1
        assert stats.by_status[("cs", "escalate", "2.0.0", "complete")] == 1
        assert stats.last_created[("pay", "refund", "1.0.0")] == NOW + 4
        assert stats.callers == {("pay", "refund", "1.0.0", "cs"): 2}
        assert stats.waiting_on_child == {("cs", "escalate", "1.0.0"): 1}  # p1 (live) has c1 (live)
        mine = store.version_stats(["pay"])
        assert mine.versions() == [("pay", "refund", "1.0.0")] and mine.waiting_on_child == {}
        assert mine.callers == {("pay", "refund", "1.0.0", "cs"): 2}  # who calls it, never what they run

    def test_caller_namespace_and_warnings_are_stored(self, store: Store) -> None:
        warning = {"code": "deprecated_version", "message": "pay.refund@1.0.0 is deprecated", "sunset": None}
        store.create_task(single("p1", namespace="cs"), NOW)
        store.create_task(single("c1", namespace="pay", parent_task_id="p1", invocation_key="k",
                                 caller_namespace="cs", warnings=(warning,)), NOW)
        child = store.get_task("c1")
        assert child is not None and child.caller_namespace == "cs" and child.warnings == (warning,)
        listed = store.list_tasks(TaskFilter(namespaces=["pay"]))
        assert [(t.caller_namespace, t.warnings) for t in listed] == [("cs", (warning,))]
        top = store.get_task("p1")
        assert top is not None and top.caller_namespace is None and top.warnings == ()

    def test_version_stats_counts_who_started_each_version_since_a_time(self, store: Store) -> None:
        store.create_task(single("p1", namespace="cs"), NOW - 100)
        store.create_task(single("old", namespace="pay", name="refund", caller_namespace="cs",
                                 parent_task_id="p1", invocation_key="k0"), NOW - 50)
        store.create_task(single("c1", namespace="pay", name="refund", caller_namespace="cs",
                                 parent_task_id="p1", invocation_key="k1"), NOW)
        store.create_task(single("c2", namespace="pay", name="refund", caller_namespace="inv",
                                 parent_task_id="p1", invocation_key="k2"), NOW + 1)
        store.create_task(single("d1", namespace="pay", name="refund"), NOW + 2)
        [claim] = [c for c in store.claim("w1", 10, NOW + 3, LEASE) if c.task_id == "d1"] or [None]
        assert claim is not None
        store.record([fail(claim, NOW + 4)])  # d1: error, awaiting action
        stats = store.version_stats(["pay"], since=NOW)
        assert stats.started_by == {("pay", "refund", "1.0.0", "cs"): 1, ("pay", "refund", "1.0.0", "inv"): 1,
                                    ("pay", "refund", "1.0.0", "direct"): 1}
        assert stats.by_status[("pay", "refund", "1.0.0", "error")] == 1
        assert store.version_stats(["pay"]).started_by == {}  # only when asked for

    def test_find_idempotent_answers_the_task_of_a_key(self, store: Store) -> None:
        store.create_task(single("t1", namespace="pay", idempotency_key="key-1"), NOW)
        found = store.find_idempotent("pay", "key-1")
        assert found is not None and found.id == "t1" and [s.name for s in found.steps] == ["a"]
        assert store.find_idempotent("cs", "key-1") is None and store.find_idempotent("pay", "key-2") is None

    def test_unfinished_using_a_distribution_by_provenance_or_namespace(self, store: Store) -> None:
        mine, theirs = {"distribution": "tasker-payments"}, {"distribution": "tasker-cs"}
        store.create_task(single("a", namespace="pay", provenance=mine), NOW)
        store.create_task(single("b", namespace="cs", provenance=mine), NOW + 1)  # a template it provides
        store.create_task(single("c", namespace="cs", provenance=theirs), NOW + 2)
        store.create_task(single("d", namespace="inv", provenance=theirs), NOW + 3)  # handlers of "inv"
        store.create_task(single("e", namespace="pay", provenance=mine), NOW + 4)
        store.create_task(single("f", namespace="pay", provenance=mine), NOW + 5)
        store.cancel_task("e", NOW + 6)
        claims = {c.task_id: c for c in store.claim("w1", 10, NOW + 6, LEASE)}
        store.record([done(claims["f"], NOW + 7), fail(claims["a"], NOW + 7)])  # f complete, a in error
        found = store.unfinished_using("tasker-payments", ["inv"])
        assert [(t.id, t.status.value) for t in found] == [("a", "error"), ("b", "in_progress"),
                                                           ("d", "in_progress")]
        assert store.unfinished_using("tasker-nothing", []) == []
