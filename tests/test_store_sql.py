"""The store contract on :class:`SqlStore` (SQLite file, PostgreSQL), plus schema management,
URLs, SQLite settings and concurrent claimers on PostgreSQL."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tasker_host.errors import ConfigurationError
from tasker_host.store import open_store
from tasker_host.store.memory import MemoryStore
from tasker_host.store.sql import SqlStore
from tasker_host.store.sql_engine import current_revision, head_revision, upgrade
from tasker_host.store.sql_schema import metadata
from tasker_host.store.urls import default_sqlite_url, normalize_url


def _import_contract():  # type: ignore[no-untyped-def]
    """``tests/`` is not a package: import the shared contract module with assertion rewriting."""
    pytest.register_assert_rewrite("store_contract")
    here = str(Path(__file__).resolve().parent)
    sys.path.insert(0, here)
    try:
        import store_contract
    finally:
        sys.path.remove(here)
    return store_contract


contract = _import_contract()
NOW, LEASE = contract.NOW, contract.LEASE


class TestSqliteStore(contract.StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        store = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
        yield store
        store.close()


@pytest.mark.postgres
class TestPostgresStore(contract.StoreContract):
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
    from tasker_host.store import sql_work

    store = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
    with store.engine.connect() as conn:
        for query, index in ((sql_work.READY, "ix_steps_runnable"), (sql_work.EXPIRED, "ix_steps_running")):
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
    assert upgrade(url) == head_revision() == "0002"
    assert current_revision(url) == head_revision()
    store = SqlStore(url, auto_upgrade=False)  # up to date: opens
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
