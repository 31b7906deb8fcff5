"""tasks.caller_namespace (who started a child task) and tasks.warnings (e.g. a deprecated
version, backfilled for existing child tasks), and a covering index for per-version drain status

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("caller_namespace", sa.String(200), nullable=True))
        batch.add_column(sa.Column("warnings", Json, nullable=True))
    # children created before this revision: their caller is their parent's namespace
    op.execute("UPDATE tasks SET caller_namespace = (SELECT parent.namespace FROM tasks AS parent "
               "WHERE parent.id = tasks.parent_task_id) WHERE parent_task_id IS NOT NULL")
    op.create_index("ix_tasks_version_stats", "tasks",
                    ["namespace", "name", "version", "status", "caller_namespace", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_version_stats", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("warnings")
        batch.drop_column("caller_namespace")
