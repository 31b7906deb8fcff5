"""The SQL :class:`~tasker_host.store.base.Store` (SQLite or PostgreSQL) and its parts:

* ``store`` — :class:`SqlStore`, transactions and retries; ``creation`` / ``reads`` its inserts and reads;
* ``work`` / ``pg`` — the claim / record hot paths (``pg``: PostgreSQL's one-statement versions);
* ``runs`` — what a runner loads; ``actions`` — cancel / retry / resolve; ``workers`` — registrations;
* ``engine`` — connection settings and the schema life cycle; ``schema`` — the tables;
* ``batch`` — multi-row statements; ``rows`` — record ↔ row; ``notify`` — LISTEN/NOTIFY wake-ups.
"""

from tasker_host.store.sql.store import SqlStore

__all__ = ["SqlStore"]
