"""Persistence: the :class:`Store` contract (``base``) and its two implementations.

* :class:`MemoryStore` — in memory (tests, benchmarks' no-persistence lower bound);
* :class:`SqlStore` — SQLite (the embedded default) or PostgreSQL, schema managed by Alembic.

:func:`open_store` is what the composition root calls; :func:`upgrade` / :func:`current_revision`
back ``tasker-host db upgrade`` / ``db current``. SQL names are imported lazily so that using the
contract or the memory store does not import SQLAlchemy and Alembic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasker_host.store.base import (
    Claim,
    CreateResult,
    NewStep,
    NewTask,
    StepOutcome,
    StepRecord,
    StepResultBatch,
    Store,
    TaskChange,
    TaskFilter,
    TaskRecord,
    Transition,
)
from tasker_host.store.memory import MemoryStore

if TYPE_CHECKING:  # pragma: no cover
    from tasker_host.store.sql import SqlStore
    from tasker_host.store.sql.engine import current_revision, head_revision, upgrade
    from tasker_host.store.urls import default_sqlite_url, normalize_url

__all__ = [
    "Claim", "CreateResult", "MemoryStore", "NewStep", "NewTask", "SqlStore", "StepOutcome", "StepRecord",
    "StepResultBatch", "Store", "TaskChange", "TaskFilter", "TaskRecord", "Transition", "current_revision",
    "default_sqlite_url", "head_revision", "normalize_url", "open_store", "upgrade",
]

_LAZY = {
    "SqlStore": "tasker_host.store.sql",
    "current_revision": "tasker_host.store.sql.engine",
    "head_revision": "tasker_host.store.sql.engine",
    "upgrade": "tasker_host.store.sql.engine",
    "default_sqlite_url": "tasker_host.store.urls",
    "normalize_url": "tasker_host.store.urls",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def open_store(url: str | None = None, *, auto_upgrade: bool | None = None, durable_steps: bool = False) -> Store:
    """The store for ``url``: ``memory://`` (no persistence), a SQLAlchemy URL, or ``None`` for the
    embedded SQLite database under ``$TASKER_HOME`` / ``~/.local/share/tasker-host``."""
    if url is not None and url.strip() in {"memory:", "memory://"}:
        return MemoryStore()
    from tasker_host.store.sql import SqlStore
    from tasker_host.store.urls import default_sqlite_url

    return SqlStore(url or default_sqlite_url(), auto_upgrade=auto_upgrade, durable_steps=durable_steps)
