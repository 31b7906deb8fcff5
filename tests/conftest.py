"""Database fixtures shared by the test suite.

PostgreSQL: the server named by ``TASKER_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``, trust auth). Every test gets a fresh, uniquely named
schema (``search_path`` set through the connection options), dropped afterwards, so concurrent runs
never collide. An unreachable server skips PostgreSQL tests — except under ``CI=true``, where a
missing database is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# the shared store contract's asserts get pytest's rewriting, like test modules'
pytest.register_assert_rewrite("tests.store_contract", "tests.worker_contract")

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """A reachable PostgreSQL server's URL (normalised to psycopg 3), or skip / fail (CI)."""
    import sqlalchemy as sa

    from tasker_host.store.urls import normalize_url

    url = normalize_url(os.environ.get("TASKER_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "no server"
        message = f"PostgreSQL not reachable at {engine.url!r}: {exc.__class__.__name__}: {exc}".splitlines()[0]
        if _under_ci():
            pytest.fail(f"{message} (CI=true: a missing database is a failure)")
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema (dropped after the test)."""
    with _fresh_schema(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_module_url(postgres_server_url: str) -> Iterator[str]:
    """As ``postgres_url``, one schema for a whole module (e.g. for a server it shares)."""
    with _fresh_schema(postgres_server_url) as url:
        yield url


@contextmanager
def _fresh_schema(postgres_server_url: str) -> Iterator[str]:
    import sqlalchemy as sa

    schema = f"tasker_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server_url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(postgres_server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
