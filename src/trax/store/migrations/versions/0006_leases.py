"""Exactly once: content leases, and batch names of any length.

``leases`` holds who is transcribing a piece of content with given settings
right now, so a second process with the same bytes waits and reuses the result
instead of transcribing (and storing) it again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    # SQLite ignores VARCHAR lengths; PostgreSQL refused names over 200 characters.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("batches", "name", type_=sa.Text())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("batches", "name", type_=sa.String(200))
    op.drop_table("leases")
