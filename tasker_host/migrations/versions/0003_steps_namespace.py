"""steps.namespace: runnable steps indexed by (namespace, ready_at) for fair claims across namespaces

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNABLE = "state IN ('pending', 'waiting_retry') AND pending_deps = 0"


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("namespace", sa.String(200), nullable=True))
    op.execute("UPDATE steps SET namespace = (SELECT tasks.namespace FROM tasks WHERE tasks.id = steps.task_id)")
    with op.batch_alter_table("steps") as batch:
        batch.alter_column("namespace", existing_type=sa.String(200), nullable=False)
    op.drop_index("ix_steps_runnable", table_name="steps")
    op.create_index("ix_steps_runnable", "steps", ["namespace", "ready_at"],
                    sqlite_where=sa.text(RUNNABLE), postgresql_where=sa.text(RUNNABLE))


def downgrade() -> None:
    op.drop_index("ix_steps_runnable", table_name="steps")
    op.create_index("ix_steps_runnable", "steps", ["ready_at"],
                    sqlite_where=sa.text(RUNNABLE), postgresql_where=sa.text(RUNNABLE))
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("namespace")
