"""The relational schema (SQLAlchemy 2 typed declarative models).

Alembic owns the schema (``tasker_host/migrations``): these models are its ``target_metadata`` and
a test checks that ``versions/`` produce exactly them. The store's hot paths do not use the ORM
unit of work; they run Core statements against ``TaskRow.__table__`` / ``StepRow.__table__``.

Times are epoch seconds (double precision). JSON columns are JSONB on PostgreSQL. A task row
keeps ``steps_remaining`` (steps neither complete nor resolved) so completing a task is O(1).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSON everywhere, JSONB on PostgreSQL; Python ``None`` is stored as SQL NULL.
Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
#: 64-bit integer that is still SQLite's rowid alias (autoincrement) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The predicates of the partial indexes. Queries repeat them as literal SQL (not bound
# parameters) so both planners can prove the index applies.
#: ``waiting`` steps are runnable once their timer (``ready_at``) is due; one that waits without a
#: timer has ``ready_at`` NULL, which no ``ready_at <= now`` matches (migration 0007)
RUNNABLE_PREDICATE = "state IN ('pending', 'waiting_retry', 'waiting') AND pending_deps = 0"
RUNNING_PREDICATE = "state = 'in_progress'"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(sa.String(200))
    name: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(32))
    context: Mapped[Any] = mapped_column(Json)
    template: Mapped[Any] = mapped_column(Json)
    provenance: Mapped[Any | None] = mapped_column(Json, nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(sa.String(200))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    parent_task_id: Mapped[str | None] = mapped_column(sa.String(64), sa.ForeignKey("tasks.id"))
    parent_step: Mapped[str | None] = mapped_column(sa.String(200))
    invocation_key: Mapped[str | None] = mapped_column(sa.String(200))
    error: Mapped[Any | None] = mapped_column(Json, nullable=True)
    steps_remaining: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[float] = mapped_column(sa.Double)
    updated_at: Mapped[float] = mapped_column(sa.Double)
    completed_at: Mapped[float | None] = mapped_column(sa.Double)
    caller_namespace: Mapped[str | None] = mapped_column(sa.String(200))  # parent's namespace; NULL: direct
    warnings: Mapped[Any | None] = mapped_column(Json, nullable=True)  # lifecycle warnings (list)
    traceparent: Mapped[str | None] = mapped_column(sa.String(64))  # W3C trace context (55 characters)

    __table_args__ = (
        sa.Index("ix_tasks_namespace_created", "namespace", "created_at", "id"),
        sa.Index("ix_tasks_version_stats", "namespace", "name", "version", "status", "caller_namespace",
                 "created_at"),  # drain status from the index alone (store/sql/version_stats.py)
        sa.Index("ix_tasks_created", "created_at", "id"),
        sa.Index("ix_tasks_status_created", "status", "created_at", "id"),
        sa.Index("ix_tasks_namespace_status", "namespace", "status"),  # counts, from the index alone
        sa.Index("uq_tasks_idempotency", "namespace", "idempotency_key", unique=True),
        sa.Index("uq_tasks_invocation", "parent_task_id", "invocation_key", unique=True),
    )


class StepRow(Base):
    __tablename__ = "steps"

    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("tasks.id"), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    namespace: Mapped[str] = mapped_column(sa.String(200))  # the task's: claims take namespaces in turn
    position: Mapped[int] = mapped_column(sa.Integer)  # template order
    state: Mapped[str] = mapped_column(sa.String(32))
    attempts: Mapped[int] = mapped_column(sa.Integer)
    retry_limit: Mapped[int] = mapped_column(sa.Integer)
    retryable: Mapped[bool] = mapped_column(sa.Boolean)
    depends_on: Mapped[Any] = mapped_column(Json)
    dependents: Mapped[Any] = mapped_column(Json)
    pending_deps: Mapped[int] = mapped_column(sa.Integer)
    ready_at: Mapped[float | None] = mapped_column(sa.Double)
    results: Mapped[Any | None] = mapped_column(Json, nullable=True)
    last_error: Mapped[Any | None] = mapped_column(Json, nullable=True)
    started_at: Mapped[float | None] = mapped_column(sa.Double)
    completed_at: Mapped[float | None] = mapped_column(sa.Double)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(200))
    lease_expires_at: Mapped[float | None] = mapped_column(sa.Double)
    # the step's last wait (ctx.wait_for / ctx.sleep_until, see tasker_host.store.waits)
    wait: Mapped[Any | None] = mapped_column(Json, nullable=True)

    __table_args__ = (
        # claims: each namespace's runnable steps, oldest ready_at first (and the namespaces that
        # have some, by a loose index scan); next_ready_at
        sa.Index("ix_steps_runnable", "namespace", "ready_at",
                 sqlite_where=sa.text(RUNNABLE_PREDICATE), postgresql_where=sa.text(RUNNABLE_PREDICATE)),
        # expired-lease reclaims, renewals and per-namespace running counts
        sa.Index("ix_steps_running", "lease_expires_at",
                 sqlite_where=sa.text(RUNNING_PREDICATE), postgresql_where=sa.text(RUNNING_PREDICATE)),
    )


class TransitionRow(Base):
    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("tasks.id"))
    step: Mapped[str | None] = mapped_column(sa.String(200))
    from_state: Mapped[str | None] = mapped_column(sa.String(32))
    to_state: Mapped[str] = mapped_column(sa.String(32))
    at: Mapped[float] = mapped_column(sa.Double)
    reason: Mapped[str] = mapped_column(sa.Text, default="")

    __table_args__ = (sa.Index("ix_transitions_task", "task_id", "id"),)


class StepLogRow(Base):
    """A line a handler wrote through ``ctx.log`` (see :mod:`tasker_host.store.step_logs`)."""

    __tablename__ = "step_logs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("tasks.id"))
    step: Mapped[str] = mapped_column(sa.String(200))
    attempt: Mapped[int] = mapped_column(sa.Integer)
    seq: Mapped[int] = mapped_column(sa.Integer)  # position in its attempt
    at: Mapped[float] = mapped_column(sa.Double)
    level: Mapped[str] = mapped_column(sa.String(16))
    message: Mapped[str] = mapped_column(sa.Text)

    __table_args__ = (sa.Index("ix_step_logs_task", "task_id", "id"),)


class TaskEventRow(Base):
    """An event sent to a task (``POST /tasks/{id}/events/{name}``, ``ctx.send``): kept until a step
    waiting for its name takes it (``step``, ``delivered_at``); see :mod:`tasker_host.store.waits`."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(sa.String(64), sa.ForeignKey("tasks.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    payload: Mapped[Any | None] = mapped_column(Json, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    sender: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[float] = mapped_column(sa.Double)
    step: Mapped[str | None] = mapped_column(sa.String(200))  # the step it was delivered to
    delivered_at: Mapped[float | None] = mapped_column(sa.Double)

    __table_args__ = (
        sa.Index("ix_task_events_task", "task_id", "name", "id"),
        sa.Index("uq_task_events_key", "task_id", "name", "idempotency_key", unique=True),
    )


class ApiTokenRow(Base):
    """An API bearer token: only its SHA-256 ``digest`` is kept, never the token itself.

    ``grants`` is a JSON list of ``"namespace:level"`` strings (level ``manage`` or ``view``).
    """

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # uuid4 hex
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)  # sha256 hex
    admin: Mapped[bool] = mapped_column(sa.Boolean)
    grants: Mapped[Any] = mapped_column(Json)
    created_at: Mapped[float] = mapped_column(sa.Double)
    revoked_at: Mapped[float | None] = mapped_column(sa.Double)


class WorkerRow(Base):
    """A registered runner (``id`` = its lease owner), beating every few seconds; see
    :mod:`tasker_host.store.sql.workers`. ``pid_scope`` / ``pid_started`` say which process
    ``pid`` is where the platform tells (Linux), so only a worker's own host judges its pid."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int] = mapped_column(sa.Integer)
    pid_scope: Mapped[str | None] = mapped_column(sa.String(200))
    pid_started: Mapped[int | None] = mapped_column(sa.BigInteger)
    dead_after: Mapped[float] = mapped_column(sa.Double)  # presumed dead after this long silent
    started_at: Mapped[float] = mapped_column(sa.Double)
    heartbeat_at: Mapped[float] = mapped_column(sa.Double)


class AuditRow(Base):
    """The audit trail (:mod:`tasker_host.audit`): appended with the change it records, never
    updated or deleted by the host."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(sa.Double)
    principal: Mapped[str] = mapped_column(sa.String(200))
    token_name: Mapped[str | None] = mapped_column(sa.String(200))
    actor_kind: Mapped[str] = mapped_column(sa.String(16))  # api, cli, console
    os_user: Mapped[str | None] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(32))
    namespace: Mapped[str | None] = mapped_column(sa.String(200))
    target: Mapped[str | None] = mapped_column(sa.String(200))  # a task id, a token name
    details: Mapped[Any] = mapped_column(Json)
    correlation_id: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (sa.Index("ix_audit_namespace", "namespace", "id"),)


metadata = Base.metadata
tasks: sa.Table = TaskRow.__table__  # type: ignore[assignment]
steps: sa.Table = StepRow.__table__  # type: ignore[assignment]
transitions: sa.Table = TransitionRow.__table__  # type: ignore[assignment]
api_tokens: sa.Table = ApiTokenRow.__table__  # type: ignore[assignment]
workers: sa.Table = WorkerRow.__table__  # type: ignore[assignment]
step_logs: sa.Table = StepLogRow.__table__  # type: ignore[assignment]
audit: sa.Table = AuditRow.__table__  # type: ignore[assignment]
task_events: sa.Table = TaskEventRow.__table__  # type: ignore[assignment]
