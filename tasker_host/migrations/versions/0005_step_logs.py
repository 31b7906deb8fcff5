"""step_logs: the lines handlers write through ctx.log, kept with the attempt that wrote them

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # frozen copy


def upgrade() -> None:
    op.create_table(
        "step_logs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_step_logs"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_step_logs_task_id_tasks"),
    )
    op.create_index("ix_step_logs_task", "step_logs", ["task_id", "id"])


def downgrade() -> None:
    op.drop_table("step_logs")
