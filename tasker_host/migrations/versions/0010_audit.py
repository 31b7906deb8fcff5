"""audit: the audit trail (who created, cancelled, retried, resolved; tokens; console sign-ins)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # frozen copies
Json = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("token_name", sa.String(200), nullable=True),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("os_user", sa.String(200), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("namespace", sa.String(200), nullable=True),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("details", Json, nullable=False),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_namespace", "audit", ["namespace", "id"])


def downgrade() -> None:
    op.drop_table("audit")
