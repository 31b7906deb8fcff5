"""A revoked token stops working on running servers at once where the token store pushes
revocations (PostgreSQL: NOTIFY tasker_tokens; memory: in process), even with a long token
cache; on SQLite the CLI says it takes up to the cache time. Real servers on loopback."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from tasker_host.api import create_app
from tasker_host.api.auth import TokenCache
from tasker_host.cli.main import build_cli
from tasker_host.cli.state import CliState
from tasker_host.host import Host, build_host
from tasker_host.settings import HostSettings
from tasker_host.store.sql import SqlStore
from tasker_host.store.sql.notify import listener_conninfo
from tasker_host.store.token_notify import RevocationListener
from tasker_host.store.tokens import token_store_for
from tasker_host.tokens import issue_token

from .conftest import PREFIX, ServerThread, shared_entry_point

CACHE_SECONDS = 300.0  # far longer than any test: only a pushed revocation can end a cached entry
DEADLINE = 10.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition (bounded); never a fixed sleep standing in for one."""
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"{what}: not within {DEADLINE} s"
        time.sleep(0.005)


def cli(url: str, *args: str) -> Any:
    return CliRunner().invoke(build_cli(), ["--database-url", url, *args], obj=CliState())


class Served:
    def __init__(self, host: Host):
        self.host = host
        self.app = create_app(host, prefix=PREFIX, run_worker=False, token_cache_seconds=CACHE_SECONDS)
        self.server = ServerThread(self.app)
        self.server.start()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.server.port}{PREFIX}", timeout=10,
                                   limits=httpx.Limits(max_keepalive_connections=0))

    @property
    def cache(self) -> TokenCache:
        cache = self.app.state.api.authenticate
        assert isinstance(cache, TokenCache)
        return cache

    def status(self, token: str) -> int:
        return self.client.get("/handlers", headers={"Authorization": f"Bearer {token}"}).status_code

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def served(postgres_url: str) -> Iterator[Served]:
    from tasker_host.store.sql.engine import upgrade

    upgrade(postgres_url)
    node = Served(build_host(HostSettings(database_url=postgres_url), entry_points=[shared_entry_point()]))
    yield node
    node.stop()


@pytest.mark.postgres
def test_a_token_revoked_through_the_cli_is_refused_at_once_by_a_server_caching_for_300s(
        served: Served, postgres_url: str) -> None:
    token = issue_token(served.host.tokens, "ci", grants=["shared"], now=time.time()).token
    assert served.status(token) == 200
    assert served.cache.cached(token) is not None  # accepted and cached for 300 s
    result = cli(postgres_url, "tokens", "revoke", "ci")
    assert result.exit_code == 0, result.output
    assert "running servers are notified and stop accepting it at once" in result.stdout
    wait_until(lambda: served.cache.cached(token) is None, "the server's cache forgets the revoked token")
    assert served.status(token) == 401
    assert json.loads(cli(postgres_url, "tokens", "revoke", "ci", "--json").stdout)["servers_notified"] is True


@pytest.mark.postgres
def test_a_token_revoked_through_another_store_is_refused_at_once_and_others_stay_cached(
        served: Served, postgres_url: str) -> None:
    now = time.time()
    doomed = issue_token(served.host.tokens, "doomed", grants=["shared"], now=now).token
    kept = issue_token(served.host.tokens, "kept", grants=["shared"], now=now).token
    assert served.status(doomed) == 200 and served.status(kept) == 200
    other = SqlStore(postgres_url)  # another process's store, as a CLI or another API node has
    try:
        assert token_store_for(other).revoke_token("doomed", time.time()) is not None
    finally:
        other.close()
    wait_until(lambda: served.cache.cached(doomed) is None, "the server's cache forgets the revoked token")
    assert served.status(doomed) == 401
    assert served.cache.cached(kept) is not None and served.status(kept) == 200


@pytest.mark.postgres
def test_the_listener_resets_the_cache_after_losing_its_connection(postgres_url: str) -> None:
    """Notices sent while disconnected are lost: after reconnecting, the listener says so."""
    from tasker_host.store.sql.engine import upgrade

    upgrade(postgres_url)
    store = SqlStore(postgres_url)
    name = f"tasker-test-{uuid.uuid4().hex[:8]}"
    conninfo = listener_conninfo(store.engine.url)
    conninfo += ("&" if "?" in conninfo else "?") + f"application_name={name}"
    resets: list[float] = []
    revoked: list[str] = []
    listener = RevocationListener(conninfo, revoked.append, lambda: resets.append(time.monotonic()),
                                  retry_seconds=0.01).start()
    try:
        assert listener.listening and len(resets) == 1
        with psycopg.connect(listener_conninfo(store.engine.url), autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE application_name = %s", (name,)).fetchall()
        assert killed == [(True,)]
        wait_until(lambda: len(resets) == 2 and listener.listening, "the listener reconnects and resets")
        record = issue_token(token_store_for(store), "ci", admin=True, now=time.time()).record
        token_store_for(store).revoke_token("ci", time.time())
        wait_until(lambda: record.digest in revoked, "the notice after the reconnection arrives")
    finally:
        listener.close()
        store.close()


def test_on_sqlite_the_cli_says_a_revocation_takes_up_to_the_cache_time(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    assert cli(url, "tokens", "create", "--name", "ci", "--admin").exit_code == 0
    result = cli(url, "tokens", "revoke", "ci")
    assert result.exit_code == 0, result.output
    assert "running servers stop accepting it within their --token-cache-seconds (default 5 s)" in result.stdout
    assert "no longer authenticates" not in result.stdout and "at once" not in result.stdout
    assert json.loads(cli(url, "tokens", "revoke", "ci", "--json").stdout)["servers_notified"] is False
    help_text = cli(url, "tokens", "revoke", "--help").stdout
    assert "on PostgreSQL they are notified" in help_text and "on SQLite a server may accept it" in help_text


def test_with_a_memory_store_a_revocation_reaches_the_cache_in_process() -> None:
    node = Served(build_host(HostSettings(database_url="memory"), entry_points=[shared_entry_point()]))
    try:
        token = issue_token(node.host.tokens, "ci", grants=["shared"], now=time.time()).token
        assert node.status(token) == 200 and node.cache.cached(token) is not None
        node.host.tokens.revoke_token("ci", time.time())
        assert node.cache.cached(token) is None and node.status(token) == 401  # synchronously forgotten
    finally:
        node.stop()
