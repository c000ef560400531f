"""The transcript store: save and find transcripts, one transaction per file.

A media row and its transcript are written in the same transaction, so a
failure at any point leaves neither behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from trax.core import MediaInfo, Transcript
from trax.failpoints import failpoint
from trax.payload import (
    SCHEMA_VERSION,
    edits_to_list,
    from_payload,
    segment_to_dict,
    stages_to_list,
)
from trax.store.database import Database
from trax.store.models import MediaFileRow, TranscriptRow
from trax.store.search import index_transcript

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SaveCheck = Callable[["Session", int], None]
"""Runs inside a save's transaction once the new transcript has its id: it may
write alongside (the job that made it) or raise, which stores nothing."""


@dataclass(frozen=True, slots=True)
class TranscriptSummary:
    """One row of ``trax list``: enough to pick a transcript, without its segments."""

    id: int
    path: str
    duration_s: float | None
    pipeline: str
    model_id: str
    language: str
    words: int
    created_at: datetime
    preview: str


class TranscriptStore(Protocol):
    def find(
        self, sha256: str, key: str, created_after: datetime | None = None
    ) -> Transcript | None: ...
    def save(self, transcript: Transcript, checks: Sequence[SaveCheck] = ()) -> Transcript: ...
    def get(self, transcript_id: int) -> Transcript | None: ...
    def summaries(self, limit: int = 50) -> list[TranscriptSummary]: ...


def transcript_metrics(transcript: Transcript) -> dict[str, Any]:
    """Quality and size figures, stored as JSON so later passes can query them."""
    words = transcript.words
    segments = transcript.segments
    speech = sum(s.end - s.start for s in segments)
    return {
        "segments": len(segments),
        "words": len(words),
        "speech_s": round(speech, 3),
        "mean_word_probability": (
            round(sum(w.probability for w in words) / len(words), 4) if words else None
        ),
        "mean_avg_logprob": (
            round(sum(s.avg_logprob for s in segments) / len(segments), 4) if segments else None
        ),
        "redecoded_segments": sum(1 for s in segments if s.temperature > 0),
    }


class SqlTranscriptStore:
    """``TranscriptStore`` on SQLAlchemy: SQLite embedded, or PostgreSQL with JSONB."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def find(
        self, sha256: str, key: str, created_after: datetime | None = None
    ) -> Transcript | None:
        """The newest transcript of this content made by the same stages (``Transcript.key``).

        ``created_after`` limits the search to transcripts made since then, so a
        forced job that crashed after saving finds its own result on resume
        instead of transcribing (and storing) the file a second time.
        """
        from sqlalchemy import select

        query = (
            select(TranscriptRow)
            .join(MediaFileRow)
            .where(MediaFileRow.sha256 == sha256, TranscriptRow.settings_key == key)
        )
        if created_after is not None:
            query = query.where(TranscriptRow.created_at >= created_after)
        with self.database.session() as session:
            row = session.scalars(query.order_by(TranscriptRow.id.desc()).limit(1)).first()
            return _to_transcript(row) if row else None

    def get(self, transcript_id: int) -> Transcript | None:
        with self.database.session() as session:
            row = session.get(TranscriptRow, transcript_id)
            return _to_transcript(row) if row else None

    def save(self, transcript: Transcript, checks: Sequence[SaveCheck] = ()) -> Transcript:
        from dataclasses import replace

        from sqlalchemy import select

        media = transcript.media
        with self.database.transaction() as session:
            media_row = session.scalars(
                select(MediaFileRow).where(MediaFileRow.sha256 == media.sha256)
            ).first()
            if media_row is None:
                media_row = MediaFileRow(sha256=media.sha256)
                session.add(media_row)
            _fill_media(media_row, media)
            row = TranscriptRow(
                media=media_row,
                schema_version=SCHEMA_VERSION,
                pipeline=transcript.settings.pipeline,
                model_id=transcript.model_id,
                settings_key=transcript.key,
                settings=transcript.settings.to_dict(),
                stages=stages_to_list(transcript.stages),
                skipped=[asdict(s) for s in transcript.skipped],
                edits=edits_to_list(transcript.edits),
                language=transcript.language,
                language_probability=transcript.language_probability,
                text=transcript.text,
                segments=[segment_to_dict(s) for s in transcript.segments],
                metrics=transcript_metrics(transcript),
                timings=dict(transcript.timings),
            )
            session.add(row)
            session.flush()
            index_transcript(session, row)
            for check in checks:
                check(session, row.id)
            failpoint("store.commit")
            return replace(transcript, id=row.id, created_at=row.created_at)

    def summaries(self, limit: int = 50) -> list[TranscriptSummary]:
        from sqlalchemy import select

        with self.database.session() as session:
            rows = session.execute(
                select(TranscriptRow, MediaFileRow)
                .join(MediaFileRow)
                .order_by(TranscriptRow.id.desc())
                .limit(limit)
            ).all()
            return [
                TranscriptSummary(
                    id=t.id,
                    path=m.path,
                    duration_s=m.duration_s,
                    pipeline=t.pipeline,
                    model_id=t.model_id,
                    language=t.language,
                    words=int(t.metrics.get("words", 0)),
                    created_at=t.created_at,
                    preview=t.text[:60],
                )
                for t, m in rows
            ]


def _fill_media(row: MediaFileRow, media: MediaInfo) -> None:
    for field in fields(MediaInfo):
        setattr(row, field.name, getattr(media, field.name))


def _to_transcript(row: TranscriptRow) -> Transcript:
    """Rebuild through the payload loader so old schema versions are upgraded."""
    media = row.media
    payload = {
        "schema_version": row.schema_version,
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "media": {f.name: getattr(media, f.name) for f in fields(MediaInfo)},
        "pipeline": row.pipeline,
        "model_id": row.model_id,
        "settings": row.settings,
        "language": row.language,
        "language_probability": row.language_probability,
        "timings": row.timings,
        "segments": row.segments,
    }
    if row.schema_version == 1:
        payload["stage_versions"] = row.stages  # schema 1 kept a name → version map here
    else:
        payload |= {"stages": row.stages, "skipped": row.skipped, "edits": row.edits}
    return from_payload(payload)
