"""initial schema: tasks, steps, transitions

Revision ID: 0001
Revises:
Create Date: 2026-05-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies (a migration must not change when the models do later).
Json = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RUNNABLE = sa.text("state IN ('pending', 'waiting_retry') AND pending_deps = 0")
RUNNING = sa.text("state = 'in_progress'")


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("context", Json, nullable=False),
        sa.Column("template", Json, nullable=False),
        sa.Column("provenance", Json, nullable=True),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("parent_task_id", sa.String(64), nullable=True),
        sa.Column("parent_step", sa.String(200), nullable=True),
        sa.Column("invocation_key", sa.String(200), nullable=True),
        sa.Column("error", Json, nullable=True),
        sa.Column("steps_remaining", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("completed_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(["parent_task_id"], ["tasks.id"], name="fk_tasks_parent_task_id_tasks"),
    )
    op.create_index("ix_tasks_namespace_created", "tasks", ["namespace", "created_at", "id"])
    op.create_index("ix_tasks_created", "tasks", ["created_at", "id"])
    op.create_index("ix_tasks_status_created", "tasks", ["status", "created_at", "id"])
    op.create_index("uq_tasks_idempotency", "tasks", ["namespace", "idempotency_key"], unique=True)
    op.create_index("uq_tasks_invocation", "tasks", ["parent_task_id", "invocation_key"], unique=True)

    op.create_table(
        "steps",
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_limit", sa.Integer(), nullable=False),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("depends_on", Json, nullable=False),
        sa.Column("dependents", Json, nullable=False),
        sa.Column("pending_deps", sa.Integer(), nullable=False),
        sa.Column("ready_at", sa.Double(), nullable=True),
        sa.Column("results", Json, nullable=True),
        sa.Column("last_error", Json, nullable=True),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("completed_at", sa.Double(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "name", name="pk_steps"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_steps_task_id_tasks"),
    )
    op.create_index("ix_steps_runnable", "steps", ["ready_at"],
                    sqlite_where=RUNNABLE, postgresql_where=RUNNABLE)
    op.create_index("ix_steps_running", "steps", ["lease_expires_at"],
                    sqlite_where=RUNNING, postgresql_where=RUNNING)

    op.create_table(
        "transitions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("step", sa.String(200), nullable=True),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_transitions_task_id_tasks"),
    )
    op.create_index("ix_transitions_task", "transitions", ["task_id", "id"])


def downgrade() -> None:
    op.drop_table("transitions")
    op.drop_table("steps")
    op.drop_table("tasks")
