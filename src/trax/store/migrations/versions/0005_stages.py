"""Truthful stage records: the stages that ran, those skipped, and what each changed.

``stage_versions`` ({name: version}, declared) becomes ``stages`` ([{name,
version, settings}], what ran). Rows of schema 1 keep their map there; the
payload loader upgrades them when read.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # Plain SQL: both SQLite (≥ 3.25) and PostgreSQL rename in place, where a batch
    # operation would copy the table under the foreign keys that point at it.
    op.execute("ALTER TABLE transcripts RENAME COLUMN stage_versions TO stages")
    empty = sa.text("'[]'")
    op.add_column(
        "transcripts", sa.Column("skipped", JSONDocument, nullable=False, server_default=empty)
    )
    op.add_column(
        "transcripts", sa.Column("edits", JSONDocument, nullable=False, server_default=empty)
    )


def downgrade() -> None:
    op.drop_column("transcripts", "edits")
    op.drop_column("transcripts", "skipped")
    op.execute("ALTER TABLE transcripts RENAME COLUMN stages TO stage_versions")
