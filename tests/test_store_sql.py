"""The store contract on :class:`SqlStore` (SQLite file, PostgreSQL), plus schema management,
URLs, SQLite settings and concurrent claimers on PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import tests.store_contract as contract
from tasker_host.errors import ConfigurationError
from tasker_host.models import StepState, TaskState
from tasker_host.store import open_store
from tasker_host.store._common import RECLAIM_REASON
from tasker_host.store.base import Claim, ClaimRequest, StepOutcome, TaskChange, TaskFilter
from tasker_host.store.memory import MemoryStore
from tasker_host.store.sql import SqlStore
from tasker_host.store.sql.batch import PgStatement
from tasker_host.store.sql.engine import current_revision, head_revision, upgrade
from tasker_host.store.sql.schema import metadata
from tasker_host.store.urls import default_sqlite_url, normalize_url
from tests.audit_contract import AuditContract
from tests.lifecycle_contract import LifecycleContract
from tests.metric_facts_contract import MetricFactsContract
from tests.step_log_contract import StepLogContract
from tests.wait_contract import WaitContract
from tests.worker_contract import WorkerContract

NOW, LEASE = contract.NOW, contract.LEASE
names = contract.names


class TestSqliteStore(contract.StoreContract, WorkerContract, StepLogContract, MetricFactsContract, AuditContract,
                WaitContract, LifecycleContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        store = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
        yield store
        store.close()


@pytest.mark.postgres
class TestPostgresStore(contract.StoreContract, WorkerContract, StepLogContract, MetricFactsContract, AuditContract,
                WaitContract, LifecycleContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[SqlStore]:
        store = SqlStore(postgres_url, auto_upgrade=True)
        yield store
        store.close()


# -- URLs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgres://u:secret@h:5433/db", "postgresql+psycopg://u:secret@h:5433/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:///relative.db", "sqlite:///relative.db"),
    ("sqlite:////abs/path.db", "sqlite:////abs/path.db"),
    ("sqlite://", "sqlite://"),
])
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("bad", ["", "not a url", "mysql://u@h/db"])
def test_bad_urls_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        normalize_url(bad)


def test_default_sqlite_url_lives_under_tasker_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_HOME", str(tmp_path / "home"))
    assert default_sqlite_url() == f"sqlite:///{tmp_path / 'home' / 'tasker.db'}"
    assert (tmp_path / "home").is_dir()
    monkeypatch.delenv("TASKER_HOME")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_sqlite_url() == f"sqlite:///{tmp_path / 'user' / '.local/share/tasker-host/tasker.db'}"
    assert (tmp_path / "user" / ".local/share/tasker-host").is_dir()


def test_open_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_HOME", str(tmp_path))
    assert isinstance(open_store("memory://"), MemoryStore)
    store = open_store()
    assert isinstance(store, SqlStore) and (tmp_path / "tasker.db").exists()
    store.close()


# -- SQLite ------------------------------------------------------------------------------------
def test_sqlite_connection_settings(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'tasker.db'}")
    with store.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") >= 1000
    store.close()


def test_sqlite_in_memory_store_works_across_threads() -> None:
    store = SqlStore("sqlite://")
    store.create_task(contract.make_task(), NOW)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(store.claim("w1", 5, NOW, LEASE)))
    thread.start()
    thread.join()
    assert [c.step for c in result[0]] == ["a"]  # type: ignore[attr-defined]
    store.close()


def test_sqlite_data_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasker.db'}"
    store = SqlStore(url)
    store.create_task(contract.make_task(), NOW)
    [a] = store.claim("w1", 1, NOW, LEASE)
    store.record([contract.done(a)])
    store.close()
    again = SqlStore(url)
    assert again.step_results("t1") == {"a": {"step": "a"}}
    assert [c.step for c in again.claim("w1", 5, NOW + 2, LEASE)] == ["b", "c"]
    again.close()


def test_claim_query_uses_the_partial_index_on_sqlite(tmp_path: Path) -> None:
    from tasker_host.store.sql import work as sql_work

    store = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
    with store.engine.connect() as conn:
        ready_in = sql_work.READY.where(sql_work.S.namespace == "payments")
        for query, index in ((ready_in, "ix_steps_runnable"), (sql_work.EXPIRED, "ix_steps_running")):
            sql = query.limit(10).params(now=NOW).compile(conn, compile_kwargs={"literal_binds": True})
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            assert any(index in str(row) for row in plan), plan
    store.close()


# -- schema life cycle ---------------------------------------------------------------------------
def _assert_schema_matches_models(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_sqlite_migrations_produce_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasker.db'}"
    assert current_revision(url) is None
    assert upgrade(url) == head_revision() == "0010"
    assert current_revision(url) == head_revision()
    store = SqlStore(url, auto_upgrade=False)  # up to date: opens
    _assert_schema_matches_models(store.engine)
    store.close()


def _upgrade_a_0002_database_with_work(url: str) -> SqlStore:
    """A database at 0002 (steps without a namespace) holding a runnable task, upgraded to head."""
    assert upgrade(url, "0002") == "0002"
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO tasks (id, namespace, name, version, status, context, template, steps_remaining, "
            "created_at, updated_at) VALUES ('t1', 'payments', 'refund', '1.0.0', 'pending', '{}', '{}', 1, "
            ":now, :now)"), {"now": NOW})
        conn.execute(sa.text(
            "INSERT INTO steps (task_id, name, position, state, attempts, retry_limit, retryable, depends_on, "
            "dependents, pending_deps, ready_at) VALUES ('t1', 'a', 0, 'pending', 0, 3, true, '[]', '[]', 0, "
            ":now)"), {"now": NOW})
    engine.dispose()
    assert upgrade(url) == head_revision()
    return SqlStore(url, auto_upgrade=False)


def test_the_0003_migration_gives_existing_steps_their_namespace(tmp_path: Path) -> None:
    store = _upgrade_a_0002_database_with_work(f"sqlite:///{tmp_path / 'tasker.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT namespace FROM steps")).scalars().all() == ["payments"]
    assert names(store.claim("w1", 5, NOW + 1, LEASE)) == [("t1", "a")]
    _assert_schema_matches_models(store.engine)
    store.close()


@pytest.mark.postgres
def test_the_0003_migration_on_postgres(postgres_url: str) -> None:
    store = _upgrade_a_0002_database_with_work(postgres_url)
    assert names(store.claim("w1", 5, NOW + 1, LEASE)) == [("t1", "a")]
    _assert_schema_matches_models(store.engine)
    store.close()


def _upgrade_a_0006_database_with_a_child(url: str) -> SqlStore:
    """A database at 0006 holding a parent task (cs) and its child (pay), upgraded to head."""
    assert upgrade(url, "0006") == "0006"
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for task_id, namespace, parent in (("p1", "cs", None), ("c1", "pay", "p1")):
            conn.execute(sa.text(
                "INSERT INTO tasks (id, namespace, name, version, status, context, template, parent_task_id, "
                "steps_remaining, created_at, updated_at) VALUES (:id, :ns, 'flow', '1.0.0', 'pending', '{}', "
                "'{}', :parent, 1, :now, :now)"), {"id": task_id, "ns": namespace, "parent": parent, "now": NOW})
    engine.dispose()
    assert upgrade(url) == head_revision()
    return SqlStore(url, auto_upgrade=False)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_0008_migration_records_the_caller_of_existing_children(backend: str, tmp_path: Path,
                                                                    request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'tasker.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    store = _upgrade_a_0006_database_with_a_child(url)
    child, parent = store.get_task("c1"), store.get_task("p1")
    assert child is not None and parent is not None
    assert (child.caller_namespace, parent.caller_namespace, child.warnings) == ("cs", None, ())
    assert store.version_stats(since=NOW).started_by == {("pay", "flow", "1.0.0", "cs"): 1,
                                                         ("cs", "flow", "1.0.0", "direct"): 1}
    _assert_schema_matches_models(store.engine)
    store.close()


def test_sqlite_without_auto_upgrade_refuses_a_missing_schema(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="tasker-host db upgrade"):
        SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}", auto_upgrade=False)


@pytest.mark.postgres
def test_postgres_refuses_a_missing_schema_until_upgraded(postgres_url: str) -> None:
    with pytest.raises(ConfigurationError, match="run `tasker-host db upgrade`"):
        SqlStore(postgres_url)
    assert current_revision(postgres_url) is None
    assert upgrade(postgres_url) == head_revision()
    store = SqlStore(postgres_url)
    assert store.dialect == "postgresql"
    _assert_schema_matches_models(store.engine)
    store.close()


@pytest.mark.postgres
def test_postgres_refuses_an_unknown_revision(postgres_url: str) -> None:
    upgrade(postgres_url)
    engine = sa.create_engine(normalize_url(postgres_url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    engine.dispose()
    with pytest.raises(ConfigurationError, match="does not know"):
        SqlStore(postgres_url)


# -- PostgreSQL: several claimers --------------------------------------------------------------
@pytest.mark.postgres
def test_postgres_concurrent_stores_never_claim_the_same_step(postgres_url: str) -> None:
    upgrade(postgres_url)
    first, second = SqlStore(postgres_url), SqlStore(postgres_url)
    for i in range(40):
        first.create_task(contract.make_task(f"t{i:02}", {"a": (), "b": (), "c": (), "d": (), "e": ()}), NOW)
    taken: dict[str, list[tuple[str, str]]] = {}
    barrier = threading.Barrier(6)

    def worker(store: SqlStore, owner: str) -> None:
        got = taken.setdefault(owner, [])
        barrier.wait()
        while batch := store.claim(owner, 7, NOW + 1, LEASE):
            got += [(c.task_id, c.step) for c in batch]

    threads = [threading.Thread(target=worker, args=(store, f"{name}-{n}"))
               for n in range(3) for name, store in (("first", first), ("second", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [key for got in taken.values() for key in got]
    assert len(everything) == len(set(everything)) == 200
    first.close()
    second.close()


@pytest.mark.postgres
def test_postgres_namespace_cap_holds_across_stores(postgres_url: str) -> None:
    upgrade(postgres_url)
    stores = [SqlStore(postgres_url) for _ in range(3)]
    for i in range(30):
        stores[0].create_task(contract.single(f"t{i:02}", namespace="capped"), NOW)
    claimed: list[int] = []
    barrier = threading.Barrier(3)

    def worker(store: SqlStore, n: int) -> None:
        barrier.wait()
        claimed.append(len(store.claim(f"w{n}", 10, NOW + 1, LEASE, namespace_limits={"capped": 4})))

    threads = [threading.Thread(target=worker, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(claimed) == 4
    for s in stores:
        s.close()


@pytest.mark.postgres
def test_postgres_concurrent_creates_with_one_idempotency_key_make_one_task(postgres_url: str) -> None:
    upgrade(postgres_url)
    stores = [SqlStore(postgres_url) for _ in range(4)]
    results: list[object] = []
    barrier = threading.Barrier(4)

    def create(store: SqlStore, n: int) -> None:
        barrier.wait()
        results.append(store.create_task(contract.single(f"t{n}", idempotency_key="same"), NOW))

    threads = [threading.Thread(target=create, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1  # type: ignore[attr-defined]
    assert len({r.task.id for r in results}) == 1  # type: ignore[attr-defined]
    for s in stores:
        s.close()


# -- the single-statement hot paths (PostgreSQL) against the statement-per-step ones (SQLite) ----
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        store = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
    else:
        store = SqlStore(request.getfixturevalue("postgres_url"), auto_upgrade=True)
    yield store
    store.close()


def test_a_rejected_outcome_does_not_hide_a_valid_one_for_the_same_step(sql_store: SqlStore) -> None:
    sql_store.create_task(contract.single(), NOW)
    [a] = sql_store.claim("w1", 1, NOW, LEASE)
    stale, good = contract.done(a, owner="w2"), contract.done(a, NOW + 2)
    batch, claims = sql_store.record_and_claim([stale, good, contract.done(a, NOW + 3)], "w1", 5, NOW + 3, LEASE)
    assert batch.rejected == (stale, contract.done(a, NOW + 3)) and claims == []
    assert batch.changes == (TaskChange("t1", TaskState.IN_PROGRESS, TaskState.COMPLETE),)
    assert contract.step_of(sql_store, "t1", "a").completed_at == NOW + 2


def test_one_batch_over_several_tasks(sql_store: SqlStore) -> None:
    sql_store.create_task(contract.make_task("t1", {"a": (), "b": ()}), NOW)
    sql_store.create_task(contract.single("t2"), NOW + 1)
    sql_store.create_task(contract.single("t3"), NOW + 2)
    c = {(x.task_id, x.step): x for x in sql_store.claim("w1", 10, NOW + 5, LEASE)}
    first = contract.fail(c["t1", "a"], NOW + 6, message="first")
    retry = contract.done(c["t3", "a"], NOW + 7, state=StepState.WAITING_RETRY, error={"message": "later"})
    batch = sql_store.record([first, contract.done(c["t2", "a"], NOW + 6), retry,
                              contract.fail(c["t1", "b"], NOW + 8, message="second")])
    assert batch.rejected == ()
    assert sorted(batch.changes, key=lambda x: x.task_id) == [
        TaskChange("t1", TaskState.IN_PROGRESS, TaskState.ERROR),
        TaskChange("t2", TaskState.IN_PROGRESS, TaskState.COMPLETE)]
    t1 = sql_store.get_task("t1")
    assert t1 is not None and t1.error == {"type": "PermanentError", "message": "first", "step": "a"}
    assert (t1.updated_at, t1.completed_at) == (NOW + 8, NOW + 8)  # the task's last outcome in the batch
    assert [(t.step, t.from_state, t.to_state, t.at, t.reason) for t in sql_store.transitions("t1")[-3:]] == [
        ("a", "in_progress", "error", NOW + 6, "permanent error"),
        ("b", "in_progress", "error", NOW + 8, "permanent error"),
        (None, "in_progress", "error", NOW + 8, "step a failed: first")]
    t3 = contract.step_of(sql_store, "t3", "a")
    assert (t3.state, t3.ready_at, t3.last_error, t3.lease_owner) == (
        StepState.WAITING_RETRY, NOW + 7, {"message": "later"}, None)
    assert sql_store.get_task("t3").updated_at == NOW + 5  # type: ignore[union-attr]  (no count change)


def test_reclaim_reasons_keep_unusual_owner_names(sql_store: SqlStore) -> None:
    sql_store.create_task(contract.single(), NOW)
    first, second = "w%s{previous}%", "w%%{owner}"
    sql_store.claim(first, 1, NOW, LEASE)
    [again] = sql_store.claim(second, 1, NOW + LEASE + 1, LEASE)
    assert again.attempt == 2
    assert sql_store.transitions("t1")[-1].reason == RECLAIM_REASON.format(previous=first, owner=second)


def _log(store: SqlStore, task_id: str) -> list[tuple[str | None, str | None, str, str]]:
    return [(t.step, t.from_state, t.to_state, t.reason) for t in store.transitions(task_id)]


def test_record_and_claim_reclaims_a_retry_that_is_due(sql_store: SqlStore) -> None:
    """A retry whose backoff is over at ``now`` is claimed again by the same call (PostgreSQL: by
    the very UPDATE that records it), its error kept; one not yet due is not."""
    sql_store.create_task(contract.make_task("t1", {"a": (), "b": ()}), NOW)
    a, b = sql_store.claim("w1", 2, NOW, LEASE)
    later = contract.done(b, NOW + 2, state=StepState.WAITING_RETRY, error={"n": 2}, ready_at=NOW + 9)
    due = contract.done(a, NOW + 2, state=StepState.WAITING_RETRY, error={"n": 1})
    batch, claims = sql_store.record_and_claim([later, due], "w2", 5, NOW + 2, LEASE)
    assert batch.rejected == () and batch.changes == ()
    assert claims == [Claim("t1", "a", 2, "ns", "flow", "1.0.0")]
    step = contract.step_of(sql_store, "t1", "a")
    assert (step.state, step.attempts, step.lease_owner, step.lease_expires_at, step.last_error, step.ready_at,
            step.started_at) == (StepState.IN_PROGRESS, 2, "w2", NOW + 2 + LEASE, {"n": 1}, NOW + 2, NOW + 2)
    assert contract.step_of(sql_store, "t1", "b").state is StepState.WAITING_RETRY
    assert _log(sql_store, "t1")[-3:] == [
        ("b", "in_progress", "waiting_retry", ""), ("a", "in_progress", "waiting_retry", ""),
        ("a", "waiting_retry", "in_progress", "claimed by w2")]


def test_record_and_claim_skips_the_tasks_it_fails(sql_store: SqlStore) -> None:
    """Steps of a task the record part fails are not claimed, a live task's are."""
    sql_store.create_task(contract.make_task("t1", {"a": (), "b": ()}), NOW)
    sql_store.create_task(contract.make_task("t2", {"a": (), "b": ()}), NOW + 1)
    claims = {(c.task_id, c.step): c for c in sql_store.claim("w1", 2, NOW + 2, LEASE)}
    assert set(claims) == {("t1", "a"), ("t1", "b")}
    sql_store.record([contract.done(claims["t1", "b"], NOW + 3, state=StepState.WAITING_RETRY)])
    batch, again = sql_store.record_and_claim([contract.fail(claims["t1", "a"], NOW + 4)], "w1", 5, NOW + 4, LEASE)
    assert batch.changes == (TaskChange("t1", TaskState.IN_PROGRESS, TaskState.ERROR),)
    assert contract.names(again) == [("t2", "a"), ("t2", "b")]
    assert contract.step_of(sql_store, "t1", "b").state is StepState.WAITING_RETRY


def test_record_and_claim_prefers_the_steps_it_unblocks(sql_store: SqlStore) -> None:
    """Within a namespace's turn, the steps this very call made ready come first (the runner carries
    on with its own tasks), then the oldest ``ready_at``."""
    sql_store.create_task(contract.make_task("t1", {"a": (), "b": ("a",)}), NOW)
    [a] = sql_store.claim("w1", 1, NOW + 1, LEASE)
    sql_store.create_task(contract.single("t2"), NOW - 10)  # ready before t1's b
    _, claims = sql_store.record_and_claim([contract.done(a, NOW + 2)], "w1", 1, NOW + 2, LEASE)
    assert contract.names(claims) == [("t1", "b")]  # made ready by this call, though t2's a is older
    assert contract.names(sql_store.claim("w1", 5, NOW + 3, LEASE)) == [("t2", "a")]


def test_record_and_claim_reclaims_expired_leases_it_does_not_record(sql_store: SqlStore) -> None:
    """An expired lease whose outcome the call records is not reclaimed (the step is done); one
    whose outcome is stale is, by the claimer."""
    sql_store.create_task(contract.single("t1"), NOW)
    sql_store.create_task(contract.single("t2"), NOW)
    c = {x.task_id: x for x in sql_store.claim("w1", 2, NOW, LEASE)}
    late = NOW + LEASE + 1
    stale = StepOutcome("t2", "a", "w1", c["t2"].attempt + 1, StepState.COMPLETE, late)
    batch, claims = sql_store.record_and_claim([contract.done(c["t1"], late), stale], "w2", 5, late, LEASE)
    assert batch.rejected == (stale,)
    assert batch.changes == (TaskChange("t1", TaskState.IN_PROGRESS, TaskState.COMPLETE),)
    assert claims == [Claim("t2", "a", 2, "ns", "flow", "1.0.0")]
    assert _log(sql_store, "t2")[-1] == ("a", "in_progress", "in_progress",
                                         RECLAIM_REASON.format(previous="w1", owner="w2"))


@pytest.mark.postgres
def test_postgres_hot_paths_send_one_statement_each_whatever_the_batch(postgres_url: str) -> None:
    store = SqlStore(postgres_url, auto_upgrade=True)
    sent: list[str] = []
    for engine in store.engines:
        sa.event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))

    def statements(call):  # type: ignore[no-untyped-def]
        """The call's result and its statements but for wake-up notifications (tested below)."""
        sent.clear()
        result = call()
        return result, [s for s in sent if s != "NOTIFY tasker_work"]

    _, create = statements(lambda: store.create_task(contract.make_task("t1"), NOW))
    _, create_more = statements(lambda: store.create_task(contract.make_task("t2", {"a": ()}), NOW))
    claims, claim = statements(lambda: store.claim("w1", 1, NOW, LEASE))
    (_, claims), one = statements(lambda: store.record_and_claim([contract.done(claims[0])], "w1", 5, NOW, LEASE))
    assert len(claims) == 3
    _, three = statements(lambda: store.record_and_claim([contract.done(c) for c in claims], "w1", 5, NOW, LEASE))
    assert len(create) == len(claim) == 1 and create == create_more
    assert len(one) == 1 and one == three  # record + claim in one; the same SQL text for any batch (prepared once)
    _, record_only = statements(lambda: store.record_and_claim([contract.done(c) for c in claims], "w1", 0, NOW, LEASE))
    _, claim_only = statements(lambda: store.record_and_claim([], "w1", 5, NOW, LEASE))
    assert len(record_only) == 1 and claim_only == claim
    store.close()


@pytest.mark.postgres
def test_postgres_writes_that_leave_work_unclaimed_notify_listeners(postgres_url: str) -> None:
    store = SqlStore(postgres_url, auto_upgrade=True)
    sent: list[str] = []
    for engine in store.engines:
        sa.event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    requested: list[str] = []
    store._notifier.request = lambda: requested.append("create")  # type: ignore[union-attr, method-assign]

    def notifications(call) -> int:  # type: ignore[no-untyped-def]
        """Wake-ups a call sends: in statements, or requested from the notifier."""
        sent.clear(), requested.clear()
        call()
        return sum(s == "NOTIFY tasker_work" or "pg_notify('tasker_work'" in s for s in sent) + len(requested)

    one = {"a": ()}
    assert notifications(lambda: store.create_task(contract.make_task("t1", one), NOW)) == 1  # nobody claimed it
    assert len(sent) == 1 and not requested  # no other creation under way: the insert notifies
    # claimed with its creation, t1's step too, room left: nothing for anyone else
    t2 = contract.make_task("t2", one)
    assert notifications(lambda: store.create_task(t2, NOW, ClaimRequest("w1", 5, LEASE))) == 0
    # a full claim (1 of 2 ready steps): the other may wait for an idle runner
    two = {"a": (), "b": ()}
    t3 = contract.make_task("t3", two)
    assert notifications(lambda: store.create_task(t3, NOW, ClaimRequest("w1", 1, LEASE))) == 1
    assert notifications(lambda: store.claim("w1", 5, NOW, LEASE)) == 0  # t3's b, room left
    store._creations = 1  # another creation under way: this one leaves the wake-up to the notifier
    assert notifications(lambda: store.create_task(contract.make_task("t4", one), NOW)) == 1
    assert requested == ["create"] and len(sent) == 1 and "pg_notify" not in sent[0]
    store._creations = 0
    store.close()


@pytest.mark.postgres
def test_postgres_step_outcomes_commit_without_waiting_for_the_wal_flush_unless_durable(postgres_url: str) -> None:
    """The runner's claims and outcomes use connections with synchronous_commit off; creations
    (and everything else) wait for the flush; ``durable_steps`` puts the hot paths there too."""
    def settings(store: SqlStore) -> dict[str, str]:
        found = {}
        for name, engine in (("main", store.engine), ("steps", store.engines[-1])):
            with engine.connect() as conn:
                found[name] = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        return found

    store = SqlStore(postgres_url, auto_upgrade=True)
    assert settings(store) == {"main": "on", "steps": "off"}
    store.create_task(contract.make_task("t1", {"a": ()}), NOW)
    [a] = store.claim("w1", 1, NOW, LEASE)
    assert store.record([contract.done(a)]).changes  # the outcome is there for every reader
    assert store.get_task("t1").status is TaskState.COMPLETE  # type: ignore[union-attr]
    store.close()
    durable = SqlStore(postgres_url, durable_steps=True)
    assert len(durable.engines) == 1 and settings(durable) == {"main": "on", "steps": "on"}
    durable.close()


@pytest.mark.postgres
def test_postgres_a_creation_wakes_a_listener_in_another_connection(postgres_url: str) -> None:
    store = SqlStore(postgres_url, auto_upgrade=True)
    woken = threading.Event()
    listener = store.listen(woken.set)
    assert listener is not None
    woken.clear()  # (it reports once on connecting: notifications may have been missed before)
    try:
        store.create_task(contract.make_task("t1", {"a": ()}), NOW)
        assert woken.wait(10)  # sent with the insert, delivered to the listener's connection
        woken.clear()
        store._notifier.request()  # type: ignore[union-attr]  # (concurrent creations' path)
        assert woken.wait(10)  # sent by the notifier's thread
    finally:
        listener.close()
        store.close()


@pytest.mark.postgres
def test_postgres_record_and_claim_needs_no_transaction_of_its_own(postgres_url: str) -> None:
    """Its one statement runs in autocommit mode (no BEGIN / COMMIT round trips), as do a claim
    and a creation with no key to look up; the connection goes back to the pool transactional,
    for the statements that need a transaction."""
    store = SqlStore(postgres_url, auto_upgrade=True)
    autocommit: list[bool] = []
    for engine in store.engines:
        sa.event.listen(engine, "before_cursor_execute",  # (wake-up notifications aside)
                        lambda conn, cursor, statement, *_: statement == "NOTIFY tasker_work" or
                        autocommit.append(conn.connection.driver_connection.autocommit))
    store.create_task(contract.make_task("t1"), NOW)
    [a] = store.claim("w1", 1, NOW, LEASE)
    assert autocommit == [True, True]
    store.create_task(contract.make_task("t2", idempotency_key="k"), NOW)  # looks the key up first
    assert autocommit[2:] == [False, False]
    del autocommit[:]
    _, claims = store.record_and_claim([contract.done(a)], "w1", 5, NOW + 1, LEASE)
    store.record_and_claim([contract.done(c) for c in claims], "w1", 0, NOW + 2, LEASE)
    store.record_and_claim([], "w1", 5, NOW + 3, LEASE, {"other": 1})  # capped: a transaction again
    assert autocommit == [True, True] + [False] * (len(autocommit) - 2)
    assert store.get_task("t1").status is TaskState.IN_PROGRESS  # type: ignore[union-attr]
    store.close()


def test_pg_statement_numbers_named_parameters_once() -> None:
    statement = PgStatement("SELECT %(b)s, %(a)s::int, %(b)s, '100%%'")
    assert (statement.sql, statement.names) == ("SELECT $1, $2::int, $1, '100%'", ("b", "a"))


@pytest.mark.postgres
def test_postgres_concurrent_runners_record_and_claim_without_deadlocks(postgres_url: str) -> None:
    """Fan-out / fan-in tasks: runners complete siblings of the same tasks in different orders
    and unblock shared dependents at once; rows are locked in one order, so nobody deadlocks
    (a deadlock would be retried: the retry hook counts them)."""
    upgrade(postgres_url)
    stores = [SqlStore(postgres_url) for _ in range(4)]
    transient: list[object] = []
    for store in stores:
        original = store._transient
        store._transient = lambda exc, original=original: bool(transient.append(exc)) or original(exc)  # type: ignore[method-assign]
    shape = {"a": (), "b": ("a",), "c": ("a",), "d": ("a",), "e": ("b", "c", "d")}
    tasks = 60
    for i in range(tasks):
        stores[0].create_task(contract.make_task(f"t{i:02}", shape), NOW)
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def runner(store: SqlStore, owner: str, seed: int) -> None:
        shuffle = random.Random(seed).shuffle
        try:
            barrier.wait()
            claims: list[Claim] = []
            while True:
                if not claims:
                    claims = store.claim(owner, 6, NOW + 1, LEASE)
                    if not claims:
                        if len(store.list_tasks(TaskFilter(status=TaskState.COMPLETE, limit=100))) == tasks:
                            return
                        continue
                shuffle(claims)
                batch, claims = store.record_and_claim([contract.done(c, NOW + 1, owner=owner) for c in claims],
                                                       owner, 6, NOW + 1, LEASE)
                assert batch.rejected == ()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(store, f"w{n}", n)) for n, store in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not transient
    for task in stores[0].get_tasks([f"t{i:02}" for i in range(tasks)]).values():
        assert task.status is TaskState.COMPLETE
        assert {s.name: (s.state, s.pending_deps, s.attempts) for s in task.steps} == {
            n: (StepState.COMPLETE, 0, 1) for n in shape}
        log = stores[0].transitions(task.id)
        assert sorted(t.step for t in log if t.to_state == "complete" and t.step) == list(shape)
    for store in stores:
        store.close()


@pytest.mark.postgres
def test_postgres_matches_sqlite_on_random_workloads(postgres_url: str, tmp_path: Path) -> None:
    """The same random sequence of operations on both databases gives the same answers and the
    same rows (claims take everything ready, so ties in ``ready_at`` cannot order them apart)."""
    pg, lite = SqlStore(postgres_url, auto_upgrade=True), SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
    rng = random.Random(20261127)
    shapes = [{"a": ()}, {"a": (), "b": ("a",), "c": ("b",)}, contract.DIAMOND,
              {"a": (), "b": ("a",), "c": ("a",), "d": ("a",), "e": ("b", "c", "d")}, {"a": (), "b": ()}]
    now, ids, held = NOW, [], {}  # held: owner -> claims not yet recorded

    def both(call):  # type: ignore[no-untyped-def]
        return call(pg), call(lite)

    def outcome(c: Claim, owner: str) -> StepOutcome:
        roll = rng.random()
        if roll < 0.1:  # stale: someone else's lease or an old attempt
            return StepOutcome(c.task_id, c.step, owner + "x", c.attempt, StepState.COMPLETE, now)
        if roll < 0.2:
            return contract.fail(c, now, owner=owner, message=rng.choice(["boom", ""]))
        if roll < 0.3:
            return contract.done(c, now, owner=owner, state=StepState.WAITING_RETRY, error={"n": rng.random()},
                                 ready_at=rng.choice([None, now + rng.randint(0, 3)]))
        if roll < 0.35:
            return contract.done(c, now, owner=owner, state=StepState.CANCELLED)
        return contract.done(c, now, owner=owner, results={"r": rng.random()})

    for op in range(250):
        now += rng.choice([0.5, 1, 2, LEASE + 1 if op % 40 == 39 else 1])
        owner = rng.choice(["w1", "w2", "w3"])
        roll = rng.random()
        if roll < 0.2 or len(ids) < 3:
            ids.append(f"t{len(ids):03}")
            shape = rng.choice(shapes)
            assert both(lambda s: s.create_task(contract.make_task(ids[-1], shape), now))[0].created
        elif roll < 0.35:
            got = both(lambda s: sorted(s.claim(owner, 1000, now, LEASE), key=lambda c: (c.task_id, c.step)))
            assert got[0] == got[1]
            held.setdefault(owner, []).extend(got[0])
        elif roll < 0.85:
            mine = held.pop(owner, [])
            rng.shuffle(mine)
            batch = [outcome(c, owner) for c in mine[:rng.randint(0, len(mine))]]
            batch += [rng.choice(batch)] if batch and rng.random() < 0.2 else []  # a duplicate
            held[owner] = mine[len(batch):]
            limit = rng.choice([0, 1000, 1000])
            (pg_batch, pg_claims), (lite_batch, lite_claims) = both(
                lambda s: s.record_and_claim(batch, owner, limit, now, LEASE))
            assert pg_batch.rejected == lite_batch.rejected
            assert sorted(pg_batch.changes, key=str) == sorted(lite_batch.changes, key=str)
            key = lambda c: (c.task_id, c.step)  # noqa: E731
            assert sorted(pg_claims, key=key) == sorted(lite_claims, key=key)
            held[owner] += pg_claims
        else:
            task_id = rng.choice(ids)
            action = rng.choice(["cancel", "retry", "resolve"])
            if action == "cancel":
                assert both(lambda s: s.cancel_task(task_id, now))[0] in (True, False)
            elif action == "retry":
                assert len(set(both(lambda s: s.retry_task(task_id, now)))) == 1
            else:
                assert len(set(both(lambda s: s.resolve_step(task_id, "a", now, {"by": "hand"})))) == 1
        assert pg.get_tasks(ids) == lite.get_tasks(ids), f"operation {op}"
        for task_id in ids if op % 25 == 24 else ():
            pg_log, lite_log = both(lambda s: sorted((t.step or "", t.from_state or "", t.to_state, t.at, t.reason)
                                                     for t in s.transitions(task_id)))
            assert pg_log == lite_log, f"operation {op}, task {task_id}"
    statuses = [t.status for t in pg.get_tasks(ids).values()]
    assert statuses.count(TaskState.COMPLETE) > 5 and statuses.count(TaskState.ERROR) > 0
    pg.close()
    lite.close()

