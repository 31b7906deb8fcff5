"""API tokens: the TokenStore contract (memory, SQLite file, PostgreSQL), issuing and authenticating,
digest-only storage, the 0002 migration, and ``host.tokens``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tasker_host.auth import Access, Grant, Principal, TokenRecord, TokenStore, token_digest
from tasker_host.errors import ConfigurationError
from tasker_host.host import build_host
from tasker_host.settings import HostSettings
from tasker_host.store.memory import MemoryStore
from tasker_host.store.sql import SqlStore
from tasker_host.store.sql.engine import current_revision, head_revision, upgrade
from tasker_host.store.tokens import MemoryTokenStore, SqlTokenStore, token_store_for
from tasker_host.tokens import authenticate, check_token_request, issue_token, token_doc

NOW = 1_000.0
PAYMENTS = (Grant("payments"), Grant("shared", Access.VIEW))


def record(name: str = "ci", *, id: str | None = None, digest: str | None = None, admin: bool = False,
           grants: tuple[Grant, ...] = PAYMENTS, created_at: float = NOW) -> TokenRecord:
    return TokenRecord(id=id or f"id-{name}", name=name, digest=digest or token_digest(f"tsk_{name}"),
                       admin=admin, grants=() if admin else grants, created_at=created_at)


# -- the contract --------------------------------------------------------------------------------
class TokenStoreContract:
    """Subclasses provide a ``tokens`` fixture: a fresh, empty token store per test."""

    def test_an_added_token_is_found_by_its_digest(self, tokens: TokenStore) -> None:
        ci, ops = record("ci"), record("ops", admin=True, created_at=NOW + 1)
        tokens.add_token(ci)
        tokens.add_token(ops)
        assert tokens.token_by_digest(ci.digest) == ci
        assert tokens.token_by_digest(ops.digest) == ops
        assert tokens.token_by_digest(token_digest("tsk_unknown")) is None

    def test_records_keep_every_field(self, tokens: TokenStore) -> None:
        grants = (Grant("payments"), Grant("inventory", Access.VIEW), Grant("shared", Access.VIEW))
        ci = record("ci", grants=grants, created_at=1234.5678)
        tokens.add_token(ci)
        [found] = tokens.list_tokens()
        assert found == ci
        assert found.grants == grants and found.admin is False and found.revoked_at is None
        assert found.principal == Principal("ci", False, grants)

    def test_a_taken_name_is_refused_and_nothing_is_written(self, tokens: TokenStore) -> None:
        first = record("ci")
        tokens.add_token(first)
        second = record("ci", id="other-id", digest=token_digest("tsk_other"), admin=True)
        with pytest.raises(ConfigurationError, match="'ci' already exists"):
            tokens.add_token(second)
        assert tokens.list_tokens() == [first]
        assert tokens.token_by_digest(second.digest) is None

    def test_a_revoked_name_stays_taken(self, tokens: TokenStore) -> None:
        tokens.add_token(record("ci"))
        tokens.revoke_token("ci", NOW + 1)
        with pytest.raises(ConfigurationError, match="already exists"):
            tokens.add_token(record("ci", id="other-id", digest=token_digest("tsk_other")))

    def test_list_is_oldest_first_with_revoked_tokens(self, tokens: TokenStore) -> None:
        for name, at in [("c", NOW + 2), ("a", NOW), ("z", NOW + 1), ("b", NOW)]:
            tokens.add_token(record(name, created_at=at))
        tokens.revoke_token("z", NOW + 5)
        listed = tokens.list_tokens()
        assert [(r.name, r.active) for r in listed] == [("a", True), ("b", True), ("z", False), ("c", True)]
        assert list(tokens.list_tokens()) == list(listed)

    def test_empty_store(self, tokens: TokenStore) -> None:
        assert list(tokens.list_tokens()) == []
        assert tokens.revoke_token("anything", NOW) is None

    def test_revoke_by_id_or_name(self, tokens: TokenStore) -> None:
        ci, ops = record("ci"), record("ops", admin=True)
        tokens.add_token(ci)
        tokens.add_token(ops)
        by_id = tokens.revoke_token(ci.id, NOW + 1)
        by_name = tokens.revoke_token("ops", NOW + 2)
        assert by_id is not None and (by_id.name, by_id.revoked_at, by_id.active) == ("ci", NOW + 1, False)
        assert by_name is not None and (by_name.id, by_name.revoked_at) == (ops.id, NOW + 2)
        assert tokens.token_by_digest(ci.digest) == by_id  # still found: revoked, not deleted
        assert {r.name: r.revoked_at for r in tokens.list_tokens()} == {"ci": NOW + 1, "ops": NOW + 2}

    def test_revoking_twice_keeps_the_first_time(self, tokens: TokenStore) -> None:
        tokens.add_token(record("ci"))
        tokens.revoke_token("ci", NOW + 1)
        again = tokens.revoke_token("ci", NOW + 9)
        assert again is not None and again.revoked_at == NOW + 1
        [listed] = tokens.list_tokens()
        assert listed.revoked_at == NOW + 1

    def test_revoking_an_unknown_token_changes_nothing(self, tokens: TokenStore) -> None:
        ci = record("ci")
        tokens.add_token(ci)
        assert tokens.revoke_token("nobody", NOW + 1) is None
        assert tokens.list_tokens() == [ci]

    def test_an_id_wins_over_a_name(self, tokens: TokenStore) -> None:
        target, decoy = record("target", id="abc"), record("abc", id="decoy-id")
        tokens.add_token(target)
        tokens.add_token(decoy)
        revoked = tokens.revoke_token("abc", NOW + 1)
        assert revoked is not None and revoked.name == "target"
        assert {r.name: r.active for r in tokens.list_tokens()} == {"target": False, "abc": True}

    def test_concurrent_adds_of_one_name_make_one_token(self, tokens: TokenStore) -> None:
        barrier, outcomes = threading.Barrier(6), []

        def add(i: int) -> None:
            barrier.wait()
            try:
                tokens.add_token(record("ci", id=f"id-{i}", digest=token_digest(f"tsk_{i}")))
                outcomes.append("added")
            except ConfigurationError:
                outcomes.append("refused")

        threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["added"] + ["refused"] * 5
        assert len(tokens.list_tokens()) == 1

    # the service functions, on every store
    def test_issue_then_authenticate(self, tokens: TokenStore) -> None:
        issued = issue_token(tokens, "ci-payments", grants=["payments", "shared:view"], now=NOW)
        assert issued.token.startswith("tsk_") and len(issued.token) > 40
        assert issued.record.digest == token_digest(issued.token)
        assert len(issued.record.id) == 32 and int(issued.record.id, 16) >= 0
        assert (issued.record.name, issued.record.created_at) == ("ci-payments", NOW)
        principal = authenticate(tokens, issued.token)
        assert principal == Principal("ci-payments", False, PAYMENTS)
        assert principal.may_manage("payments") and not principal.may_manage("shared")
        assert authenticate(tokens, f"Bearer {issued.token}") == principal
        assert authenticate(tokens, f"  bearer  {issued.token}\n") == principal

    def test_authenticate_refuses_unknown_and_revoked_tokens(self, tokens: TokenStore) -> None:
        admin = issue_token(tokens, "ops", admin=True, now=NOW)
        other = issue_token(tokens, "ci", grants=[Grant("payments")], now=NOW + 1)
        assert authenticate(tokens, admin.token) == Principal("ops", admin=True)
        for unknown in ("tsk_unknown", "", "   ", "Bearer ", admin.token[:-1], admin.record.digest):
            assert authenticate(tokens, unknown) is None
        tokens.revoke_token(admin.record.id, NOW + 2)
        assert authenticate(tokens, admin.token) is None
        assert authenticate(tokens, other.token) == Principal("ci", grants=(Grant("payments"),))

    def test_issue_refuses_a_taken_name(self, tokens: TokenStore) -> None:
        first = issue_token(tokens, "ci", grants=["payments"], now=NOW)
        with pytest.raises(ConfigurationError, match="'ci' already exists"):
            issue_token(tokens, " ci ", admin=True, now=NOW + 1)
        assert [r.id for r in tokens.list_tokens()] == [first.record.id]


class TestMemoryTokenStore(TokenStoreContract):
    @pytest.fixture
    def tokens(self) -> MemoryTokenStore:
        return MemoryTokenStore()


class TestSqliteTokenStore(TokenStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        store = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
        yield store
        store.close()

    @pytest.fixture
    def tokens(self, store: SqlStore) -> SqlTokenStore:
        return SqlTokenStore(store)


@pytest.mark.postgres
class TestPostgresTokenStore(TokenStoreContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[SqlStore]:
        store = SqlStore(postgres_url, auto_upgrade=True)
        yield store
        store.close()

    @pytest.fixture
    def tokens(self, store: SqlStore) -> SqlTokenStore:
        return SqlTokenStore(store)


# -- issuing: validation -------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "admin", "grants", "message"), [
    ("", False, ["payments"], "needs a name"),
    ("   ", True, [], "needs a name"),
    ("x" * 201, True, [], "too long"),
    ("0123456789abcdef0123456789abcdef", True, [], "looks like a token id"),
    ("ci", True, ["payments"], "give it no namespace grants"),
    ("ci", False, [], "admin rights or at least one namespace grant"),
    ("ci", False, ["payments:write"], "the level must be manage or view"),
    ("ci", False, [":view"], "expected NAMESPACE"),
])
def test_issue_refuses_bad_requests_and_stores_nothing(name: str, admin: bool, grants: list[str],
                                                        message: str) -> None:
    tokens = MemoryTokenStore()
    with pytest.raises(ConfigurationError, match=message):
        issue_token(tokens, name, admin=admin, grants=grants, now=NOW)
    assert list(tokens.list_tokens()) == []


def test_grants_are_parsed_and_deduplicated() -> None:
    name, grants = check_token_request(" ci ", grants=["payments", "payments:manage", Grant("inv", Access.VIEW)])
    assert (name, grants) == ("ci", (Grant("payments"), Grant("inv", Access.VIEW)))


def test_token_doc_never_shows_the_digest() -> None:
    issued = issue_token(MemoryTokenStore(), "ci", grants=["payments:view"], now=0.0)
    doc = token_doc(issued.record)
    assert doc == {"id": issued.record.id, "name": "ci", "admin": False, "grants": ["payments:view"],
                   "created_at": "1970-01-01T00:00:00.000Z", "revoked": False, "revoked_at": None}
    assert issued.token not in repr(issued)


# -- only the digest is stored -------------------------------------------------------------------
def test_sqlite_stores_the_digest_never_the_token(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
    tokens = token_store_for(store)
    issued = issue_token(tokens, "ci", grants=["payments"], now=NOW)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM api_tokens"))]
    assert rows == [{"id": issued.record.id, "name": "ci", "digest": token_digest(issued.token), "admin": 0,
                     "grants": '["payments:manage"]', "created_at": NOW, "revoked_at": None}]
    store.close()
    files = list(tmp_path.iterdir())
    assert files and all(issued.token.encode() not in f.read_bytes() for f in files)  # WAL included
    assert any(token_digest(issued.token).encode() in f.read_bytes() for f in files)


@pytest.mark.postgres
def test_postgres_stores_the_digest_never_the_token(postgres_url: str) -> None:
    store = SqlStore(postgres_url, auto_upgrade=True)
    issued = issue_token(token_store_for(store), "ci", admin=True, now=NOW)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM api_tokens"))]
    assert rows == [{"id": issued.record.id, "name": "ci", "digest": token_digest(issued.token), "admin": True,
                     "grants": [], "created_at": NOW, "revoked_at": None}]
    store.close()


def test_memory_stores_the_digest_never_the_token() -> None:
    tokens = MemoryTokenStore()
    issued = issue_token(tokens, "ci", admin=True, now=NOW)
    assert issued.token not in repr(tokens.list_tokens())
    assert tokens.list_tokens()[0].digest == token_digest(issued.token)


def test_sqlite_tokens_survive_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasker.db'}"
    store = SqlStore(url)
    issued = issue_token(token_store_for(store), "ci", grants=["payments"], now=NOW)
    store.close()
    store = SqlStore(url)
    assert authenticate(token_store_for(store), issued.token) == Principal("ci", grants=(Grant("payments"),))
    store.close()


# -- token_store_for and the host ----------------------------------------------------------------
def test_token_store_for_each_kind_of_store(tmp_path: Path) -> None:
    memory = MemoryStore()
    assert isinstance(token_store_for(memory), MemoryTokenStore)
    assert token_store_for(memory) is token_store_for(memory)  # one token store per memory store
    assert token_store_for(MemoryStore()) is not token_store_for(memory)
    sql = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
    assert isinstance(token_store_for(sql), SqlTokenStore)
    sql.close()

    class Wrapper:  # e.g. a test's store wrapper: tokens in memory, not persisted
        pass

    wrapper = Wrapper()
    assert isinstance(token_store_for(wrapper), MemoryTokenStore)
    assert token_store_for(wrapper) is token_store_for(wrapper)


def test_the_host_has_the_token_store_of_its_store(tmp_path: Path) -> None:
    host = build_host(HostSettings(database_url="memory"), entry_points=[])
    assert host.tokens is token_store_for(host.store)
    issued = issue_token(host.tokens, "ci", admin=True, now=host.clock.now())
    assert authenticate(host.tokens, issued.token) == Principal("ci", admin=True)
    host.close()

    url = f"sqlite:///{tmp_path / 'tasker.db'}"
    host = build_host(HostSettings(database_url=url), entry_points=[])
    assert isinstance(host.tokens, SqlTokenStore)
    issued = issue_token(host.tokens, "ci", admin=True, now=NOW)
    host.close()
    host = build_host(HostSettings(database_url=url), entry_points=[])
    assert authenticate(host.tokens, issued.token) == Principal("ci", admin=True)
    host.close()


# -- the 0002 migration --------------------------------------------------------------------------
def test_an_existing_sqlite_database_is_upgraded_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasker.db'}"
    assert upgrade(url, "0001") == "0001"
    store = SqlStore(url)  # SQLite: auto-upgrade
    assert current_revision(url) == head_revision()
    issued = issue_token(token_store_for(store), "ci", admin=True, now=NOW)
    assert authenticate(token_store_for(store), issued.token) == Principal("ci", admin=True)
    store.close()


def test_sqlite_at_0001_without_auto_upgrade_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tasker.db'}"
    upgrade(url, "0001")
    with pytest.raises(ConfigurationError, match=f"at schema revision 0001, this tasker-host needs {head_revision()}"):
        SqlStore(url, auto_upgrade=False)


@pytest.mark.postgres
def test_postgres_at_0001_is_refused_until_upgraded(postgres_url: str) -> None:
    assert upgrade(postgres_url, "0001") == "0001"
    with pytest.raises(ConfigurationError, match=f"needs {head_revision()}: run `tasker-host db upgrade`"):
        SqlStore(postgres_url)
    assert upgrade(postgres_url) == head_revision()
    store = SqlStore(postgres_url)
    issued = issue_token(token_store_for(store), "ci", grants=["payments:view"], now=NOW)
    assert authenticate(token_store_for(store), issued.token) == Principal(
        "ci", grants=(Grant("payments", Access.VIEW),))
    store.close()


def _race_lost(tokens: SqlTokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-check in the transaction misses a concurrent insert: the unique index decides."""
    first = record("ci")
    tokens.add_token(first)
    real, calls = SqlTokenStore._name_taken, []

    def missed_once(conn: sa.Connection, name: str) -> bool:  # the in-transaction check misses it
        calls.append(name)
        return False if len(calls) == 1 else real(conn, name)

    monkeypatch.setattr(SqlTokenStore, "_name_taken", staticmethod(missed_once))
    with pytest.raises(ConfigurationError, match="'ci' already exists"):
        tokens.add_token(record("ci", id="other-id", digest=token_digest("tsk_other")))
    monkeypatch.undo()
    assert calls == ["ci", "ci"]
    assert tokens.list_tokens() == [first]


def test_sqlite_unique_name_index_is_the_last_word(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
    _race_lost(SqlTokenStore(store), monkeypatch)
    store.close()


@pytest.mark.postgres
def test_postgres_unique_name_index_is_the_last_word(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqlStore(postgres_url, auto_upgrade=True)
    _race_lost(SqlTokenStore(store), monkeypatch)
    store.close()


def test_memory_token_store_tells_its_listeners_of_revocations_until_closed() -> None:
    tokens = MemoryTokenStore()
    assert tokens.revocations_pushed is True
    first = issue_token(tokens, "first", admin=True, now=NOW).record
    second = issue_token(tokens, "second", admin=True, now=NOW).record
    heard: list[str] = []
    subscription = tokens.listen(heard.append, lambda: None)
    tokens.revoke_token("first", NOW + 1)
    assert heard == [first.digest]
    subscription.close()
    tokens.revoke_token("second", NOW + 1)
    assert heard == [first.digest] and second.digest not in heard


def test_only_postgresql_sql_token_stores_push_revocations(tmp_path: Path) -> None:
    sql = SqlStore(f"sqlite:///{tmp_path / 'tasker.db'}")
    tokens = token_store_for(sql)
    assert tokens.revocations_pushed is False
    assert tokens.listen(lambda digest: None, lambda: None) is None
    sql.close()
