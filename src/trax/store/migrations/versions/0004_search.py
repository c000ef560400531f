"""Searchable segments and the current transcript of each media file.

Segments become rows, indexed by FTS5 on SQLite and by a tsvector column
with a GIN index on PostgreSQL; both index the same Python-made tokens (see
``trax.store.search``). Transcripts already stored are indexed here.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

# The tokeniser, not the ORM: the index must hold the tokens that queries are
# made of today (a later tokeniser change comes with its own re-indexing step).
from trax.store.search import index_text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")
BACKFILL_BATCH = 200
"""Transcripts read at a time: their segment JSON is the bulk of a database."""


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "transcript_id",
            sa.Integer(),
            sa.ForeignKey("transcripts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("speaker", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        *([sa.Column("tsv", TSVECTOR(), nullable=True)] if postgresql else []),
    )
    op.create_index(
        "ix_segments_transcript_position", "segments", ["transcript_id", "position"], unique=True
    )
    if postgresql:
        # fastupdate off: a transcript is written once and searched often, and a
        # pending list (unsorted until vacuum) is read in full by every search.
        op.create_index(
            "ix_segments_tsv",
            "segments",
            ["tsv"],
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        )
    else:
        # A plain FTS5 table (it keeps its own copy of the tokens): SQLite 3.40
        # cannot delete from a contentless one, and the tokens are not a column
        # of ``segments`` for an external-content one to read.
        op.execute(
            "CREATE VIRTUAL TABLE segments_fts USING fts5("
            "tokens, tokenize = 'unicode61 remove_diacritics 0')"
        )
        op.execute(
            "CREATE TRIGGER segments_fts_delete AFTER DELETE ON segments BEGIN "
            "DELETE FROM segments_fts WHERE rowid = old.id; END"
        )
    op.add_column(
        "transcripts",
        sa.Column("is_current", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    _backfill(postgresql)
    op.create_index("ix_transcripts_current", "transcripts", ["is_current", "id"])
    op.create_index(
        "ux_transcripts_current_media",
        "transcripts",
        ["media_id"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )


def _backfill(postgresql: bool) -> None:
    """Index every stored transcript; the newest of each media file becomes current."""
    bind = op.get_bind()
    transcripts = sa.table("transcripts", sa.column("id"), sa.column("segments", JSONDocument))
    columns = 'transcript_id, position, start, "end", speaker, text'
    values = ":transcript_id, :position, :start, :end, :speaker, :text"
    if postgresql:
        tsv = "to_tsvector('simple', :tokens)"
        inserts = [f"INSERT INTO segments ({columns}, tsv) VALUES ({values}, {tsv})"]
    else:
        inserts = [
            f"INSERT INTO segments ({columns}) VALUES ({values})",
            "INSERT INTO segments_fts (rowid, tokens) VALUES ((SELECT id FROM segments "
            "WHERE transcript_id = :transcript_id AND position = :position), :tokens)",
        ]
    last = 0
    while True:
        batch = bind.execute(
            sa.select(transcripts.c.id, transcripts.c.segments)
            .where(transcripts.c.id > last)
            .order_by(transcripts.c.id)
            .limit(BACKFILL_BATCH)
        ).all()
        if not batch:
            break
        rows = [
            {
                "transcript_id": transcript_id,
                "position": position,
                "start": float(segment["start"]),
                "end": float(segment["end"]),
                "speaker": segment.get("speaker"),
                "text": segment["text"],
                "tokens": index_text(segment["text"]),
            }
            for transcript_id, segments in batch
            for position, segment in enumerate(segments or [])
        ]
        for insert in inserts if rows else []:
            bind.execute(sa.text(insert), rows)
        last = batch[-1][0]
    op.execute(
        "UPDATE transcripts SET is_current = "
        "(id IN (SELECT max(id) FROM transcripts GROUP BY media_id))"
    )


def downgrade() -> None:
    op.drop_index("ux_transcripts_current_media", table_name="transcripts")
    op.drop_index("ix_transcripts_current", table_name="transcripts")
    # Plain ALTER TABLE (SQLite ≥ 3.35 has it): batch mode would copy the table.
    op.execute("ALTER TABLE transcripts DROP COLUMN is_current")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_segments_tsv", table_name="segments")
    else:
        op.execute("DROP TRIGGER segments_fts_delete")
        op.execute("DROP TABLE segments_fts")
    op.drop_index("ix_segments_transcript_position", table_name="segments")
    op.drop_table("segments")
