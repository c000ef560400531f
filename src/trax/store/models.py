"""The declarative model registry: one set of tables for SQLite and PostgreSQL.

Structured parts of a transcript (segments with words, metrics, settings,
timings) are JSON columns, stored as JSONB on PostgreSQL so they can be
indexed and queried there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    literal_column,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class MediaFileRow(Base):
    """One row per distinct content (SHA-256); ``path`` is where it was last seen."""

    __tablename__ = "media_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    duration_s: Mapped[float | None] = mapped_column(Float)
    container: Mapped[str] = mapped_column(String(64))
    audio_codec: Mapped[str] = mapped_column(String(64))
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    transcripts: Mapped[list[TranscriptRow]] = relationship(back_populates="media")


class TranscriptRow(Base):
    """One pipeline run over one media file; later runs add rows, never overwrite."""

    __tablename__ = "transcripts"
    __table_args__ = (
        Index("ix_transcripts_media_settings", "media_id", "settings_key"),
        # Search keeps to current transcripts: their ids come from this index alone.
        Index("ix_transcripts_current", "is_current", "id"),
        # At most one current transcript per media file, whatever runs concurrently.
        Index(
            "ux_transcripts_current_media",
            "media_id",
            unique=True,
            sqlite_where=literal_column("is_current"),
            postgresql_where=literal_column("is_current"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media_files.id", ondelete="CASCADE"))
    schema_version: Mapped[int] = mapped_column(Integer)
    pipeline: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[str] = mapped_column(Text)
    # The dedup key: a digest of the stages that made it (model weights included).
    settings_key: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # The stages that ran: [{name, version, settings}] (schema 1 rows: {name: version}).
    stages: Mapped[Any] = mapped_column(JSONDocument)
    skipped: Mapped[list[dict[str, str]]] = mapped_column(JSONDocument, default=list)
    edits: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    language: Mapped[str] = mapped_column(String(16))
    language_probability: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    timings: Mapped[dict[str, float]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The newest transcript of its media file (highest id): the one search covers.
    # Set by ``trax.store.search.index_transcript`` when a transcript is saved.
    is_current: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    media: Mapped[MediaFileRow] = relationship(back_populates="transcripts")


class SegmentRow(Base):
    """One segment of a stored transcript, as a row so that it can be searched.

    The ``segments`` JSON of the transcript stays the record; these rows are
    written once from it (``trax.store.search.index_transcript``). Their index
    is not mapped here: an FTS5 table ``segments_fts`` (rowid = id) on SQLite,
    a ``tsv`` tsvector column with a GIN index on PostgreSQL.
    """

    __tablename__ = "segments"
    __table_args__ = (
        Index("ix_segments_transcript_position", "transcript_id", "position", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    speaker: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)


class BatchRow(Base):
    """A named run of ``trax transcribe``: its settings and where exports go."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    formats: Mapped[list[str]] = mapped_column(JSONDocument)
    output_dir: Mapped[str] = mapped_column(Text)
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    queued: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    jobs: Mapped[list[JobRow]] = relationship(back_populates="batch")


class JobRow(Base):
    """One file of a batch: queued → running → done / failed / cancelled."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("batch_id", "path", name="uq_jobs_batch_path"),
        Index("ix_jobs_batch_status", "batch_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    export_base: Mapped[str] = mapped_column(Text)
    pipeline: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    position_s: Mapped[float] = mapped_column(Float, default=0.0)
    duration_s: Mapped[float | None] = mapped_column(Float)
    transcript_id: Mapped[int | None] = mapped_column(
        ForeignKey("transcripts.id", ondelete="SET NULL")
    )
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    exports: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    worker: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    batch: Mapped[BatchRow] = relationship(back_populates="jobs")


class LeaseRow(Base):
    """Who is transcribing a piece of content with given settings, until when.

    The holder renews it while it works; a lease whose holder died runs out
    (or is taken over at once when the holder was a process on this host).
    """

    __tablename__ = "leases"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def insert_if_absent(dialect: str, model: type[Base], values: dict[str, Any]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING key``: a row back means it was new.

    Two processes inserting the same key both succeed; one of them inserted it.
    """
    from sqlalchemy import inspect
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = inspect(model).primary_key[0]
    return insert(model).values(values).on_conflict_do_nothing().returning(key)


class CacheEntryRow(Base):
    """A cached result of an expensive stage (ASR per model + settings, LLM answers)."""

    __tablename__ = "cache_entries"

    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONDocument)
    size_bytes: Mapped[int] = mapped_column(Integer)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
