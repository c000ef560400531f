"""Storage: SQLAlchemy models, Alembic migrations and the transcript store."""

from __future__ import annotations

from trax.store.database import Database, DatabaseError, default_url, open_database, redact
from trax.store.transcripts import (
    Removal,
    SqlTranscriptStore,
    TranscriptStore,
    TranscriptSummary,
    transcript_metrics,
)

__all__ = [
    "Database",
    "DatabaseError",
    "Removal",
    "SqlTranscriptStore",
    "TranscriptStore",
    "TranscriptSummary",
    "default_url",
    "open_database",
    "redact",
    "transcript_metrics",
]
