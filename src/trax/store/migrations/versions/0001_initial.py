"""Media files and transcripts.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "media_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("container", sa.String(64), nullable=False),
        sa.Column("audio_codec", sa.String(64), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "media_id",
            sa.Integer(),
            sa.ForeignKey("media_files.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("pipeline", sa.String(16), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("settings_key", sa.String(64), nullable=False),
        sa.Column("settings", JSONDocument, nullable=False),
        sa.Column("stage_versions", JSONDocument, nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("language_probability", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("segments", JSONDocument, nullable=False),
        sa.Column("metrics", JSONDocument, nullable=False),
        sa.Column("timings", JSONDocument, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_transcripts_media_settings", "transcripts", ["media_id", "settings_key"])


def downgrade() -> None:
    op.drop_index("ix_transcripts_media_settings", table_name="transcripts")
    op.drop_table("transcripts")
    op.drop_table("media_files")
