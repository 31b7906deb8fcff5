"""Real database faults for the fault suite: PostgreSQL backends terminated with
``pg_terminate_backend`` (by application name, so only the host under test is hit), and a store
wrapper that does so right before chosen calls, so a test knows which call met the dead
connection."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa


def with_application_name(url: str, name: str | None = None) -> tuple[str, str]:
    """``url`` whose connections (pool, listener, notifier) carry a unique application name."""
    name = name or f"tasker_fault_{uuid.uuid4().hex[:10]}"
    return sa.make_url(url).update_query_dict({"application_name": name}).render_as_string(hide_password=False), name


class Terminator:
    """Terminates every backend whose ``application_name`` is ``name`` (from its own connection)."""

    def __init__(self, server_url: str, name: str):
        self.name = name
        self.killed = 0  # backends terminated so far
        self._admin = sa.create_engine(server_url, poolclass=sa.pool.NullPool)

    def __call__(self) -> int:
        with self._admin.connect() as conn:
            n = conn.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                     "WHERE application_name = :name AND pid <> pg_backend_pid()"),
                             {"name": self.name}).scalar_one()
        self.killed += n
        return n

    def listeners(self) -> int:
        """Backends of ``name`` whose last statement was a LISTEN (a runner's wake-up listener)."""
        with self._admin.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                                        "AND query LIKE 'LISTEN %'"), {"name": self.name}).scalar_one()

    def close(self) -> None:
        self._admin.dispose()


class FaultyStore:
    """Forwards to a real store; before the n-th call of a planned method, ``fault()`` runs (it
    kills the connections the call is about to use). ``plan``: method -> call numbers (1-based)."""

    def __init__(self, store: Any, fault: Callable[[], Any], plan: Mapping[str, set[int]]):
        self._store, self._fault, self._plan = store, fault, plan
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in self._plan:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if self.calls[name] in self._plan[name]:
                self._fault()
                self.faults[name] += 1
            return attr(*args, **kwargs)

        return call
