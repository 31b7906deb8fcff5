"""Steps that wait: steps.wait, 'waiting' in the runnable index, the task_events table

A ``waiting`` step is claimable once its timer (``ready_at``) is due, through the same partial index
as pending steps and retries (``ix_steps_runnable``, whose predicate gains ``'waiting'``): due timers
are found by an index range scan, never by a scan of the waiting steps.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OLD = "state IN ('pending', 'waiting_retry') AND pending_deps = 0"
_NEW = "state IN ('pending', 'waiting_retry', 'waiting') AND pending_deps = 0"


def _runnable_index(predicate: str) -> None:
    op.drop_index("ix_steps_runnable", table_name="steps")
    op.create_index("ix_steps_runnable", "steps", ["namespace", "ready_at"],
                    sqlite_where=sa.text(predicate), postgresql_where=sa.text(predicate))


def upgrade() -> None:
    op.add_column("steps", sa.Column("wait", _JSON, nullable=True))  # nullable: no table rebuild on SQLite
    _runnable_index(_NEW)
    op.create_table(
        "task_events",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(64), sa.ForeignKey("tasks.id", name="fk_task_events_task_id_tasks"),
                  nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("payload", _JSON, nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("sender", sa.String(200), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("step", sa.String(200), nullable=True),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_task_events"),
    )
    op.create_index("ix_task_events_task", "task_events", ["task_id", "name", "id"])
    op.create_index("uq_task_events_key", "task_events", ["task_id", "name", "idempotency_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_task_events_key", table_name="task_events")
    op.drop_index("ix_task_events_task", table_name="task_events")
    op.drop_table("task_events")
    _runnable_index(_OLD)
    op.drop_column("steps", "wait")
