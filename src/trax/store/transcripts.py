"""The transcript store: save and find transcripts, one transaction per file.

A media row and its transcript are written in the same transaction, so a
failure at any point leaves neither behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from trax.core import MediaInfo, StageRecord, Transcript
from trax.failpoints import failpoint
from trax.payload import (
    SCHEMA_VERSION,
    edits_to_list,
    from_payload,
    segment_to_dict,
    stages_to_list,
)
from trax.store.database import Database
from trax.store.models import CacheEntryRow, MediaFileRow, TranscriptRow
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
    version: int = 1
    """This transcript's place among its media file's transcripts, oldest first."""
    versions: int = 1
    """How many transcripts of the same media file are stored."""


@dataclass(frozen=True, slots=True)
class Removal:
    """What ``SqlTranscriptStore.delete`` removed."""

    transcripts: list[tuple[int, str]]
    """(id, media path) of every transcript removed, in id order."""
    media: list[str]
    """Paths of the media files left without any transcript, forgotten with their cache."""
    cache_entries: int
    unknown_ids: list[int]


class TranscriptStore(Protocol):
    def find(
        self, sha256: str, key: str, created_after: datetime | None = None
    ) -> Transcript | None: ...
    def save(self, transcript: Transcript, checks: Sequence[SaveCheck] = ()) -> Transcript: ...
    def get(self, transcript_id: int) -> Transcript | None: ...
    def summaries(
        self, limit: int = 50, path: str | None = None, since: datetime | None = None
    ) -> list[TranscriptSummary]: ...


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
        # What paid stages (the LLM) used and cost: tokens and dollars.
        **({"usage": dict(transcript.usage)} if transcript.usage else {}),
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

    def summaries(
        self, limit: int = 50, path: str | None = None, since: datetime | None = None
    ) -> list[TranscriptSummary]:
        """The newest transcripts, optionally of media whose path contains ``path`` (any
        case) and made since ``since``.

        Only the listed columns are read, not the segments: ``trax list`` stays fast
        on a library of long recordings.
        """
        from sqlalchemy import func, select
        from sqlalchemy.orm import aliased

        other = aliased(TranscriptRow)
        same_media = other.media_id == TranscriptRow.media_id
        query = (
            select(
                TranscriptRow.id,
                MediaFileRow.path,
                MediaFileRow.duration_s,
                TranscriptRow.pipeline,
                TranscriptRow.model_id,
                TranscriptRow.language,
                TranscriptRow.metrics,
                TranscriptRow.created_at,
                func.substr(TranscriptRow.text, 1, 60),
                select(func.count())
                .where(same_media, other.id <= TranscriptRow.id)
                .scalar_subquery(),
                select(func.count()).where(same_media).scalar_subquery(),
            )
            .join(MediaFileRow)
            .order_by(TranscriptRow.id.desc())
            .limit(limit)
        )
        if path:
            lower = func.trax_lower if self.database.dialect == "sqlite" else func.lower
            query = query.where(lower(MediaFileRow.path).contains(path.lower(), autoescape=True))
        if since is not None:
            # Stored in UTC (SQLite keeps the digits without the zone): compare in UTC.
            query = query.where(TranscriptRow.created_at >= since.astimezone(UTC))
        with self.database.session() as session:
            return [
                TranscriptSummary(
                    id=row[0],
                    path=row[1],
                    duration_s=row[2],
                    pipeline=row[3],
                    model_id=row[4],
                    language=row[5],
                    words=int(row[6].get("words", 0)),
                    created_at=row[7],
                    preview=row[8],
                    version=row[9],
                    versions=row[10],
                )
                for row in session.execute(query)
            ]

    def delete(self, ids: Sequence[int] = (), paths: Sequence[str] = ()) -> Removal:
        """Remove transcripts by id and every transcript of media stored under ``paths``.

        One transaction: their segments and search rows go with them (foreign keys
        and, on SQLite, the FTS trigger), jobs that made them keep their record
        without the link, the newest remaining transcript of a file becomes the one
        search covers, and a media file left without transcripts is forgotten along
        with its cached stage results. Unknown ids are returned, not raised.
        """
        from sqlalchemy import delete, func, or_, select, update

        query = (
            select(TranscriptRow.id, TranscriptRow.media_id, TranscriptRow.stages, MediaFileRow)
            .join(MediaFileRow)
            .where(or_(TranscriptRow.id.in_(ids), MediaFileRow.path.in_(paths)))
            .order_by(TranscriptRow.id)
            # Saves of the same file wait (they lock its media row): the choice of
            # its current transcript, and whether any is left, stay true until commit.
            .with_for_update(of=MediaFileRow)
        )
        with self.database.transaction() as session:
            rows = session.execute(query).all()
            found = {row.id for row in rows}
            session.execute(
                delete(TranscriptRow)
                .where(TranscriptRow.id.in_(found))
                .execution_options(synchronize_session=False)
            )
            forgotten: list[str] = []
            cache_keys: set[str] = set()
            for media in {row.MediaFileRow.id: row.MediaFileRow for row in rows}.values():
                newest = session.execute(
                    select(func.max(TranscriptRow.id)).where(TranscriptRow.media_id == media.id)
                ).scalar()
                if newest is None:
                    forgotten.append(media.path)
                    for row in rows:
                        if row.media_id == media.id:
                            cache_keys |= _cache_keys(media.sha256, row.stages)
                    session.execute(delete(MediaFileRow).where(MediaFileRow.id == media.id))
                else:  # the current transcript may have gone: the newest left takes over
                    session.execute(
                        update(TranscriptRow)
                        .where(TranscriptRow.id == newest, TranscriptRow.is_current.is_(False))
                        .values(is_current=True)
                    )
            cached = 0
            if cache_keys:
                result = session.execute(
                    delete(CacheEntryRow).where(CacheEntryRow.key.in_(cache_keys))
                )
                cached = int(result.rowcount)  # type: ignore[attr-defined]
            return Removal(
                transcripts=[(row.id, row.MediaFileRow.path) for row in rows],
                media=sorted(forgotten),
                cache_entries=cached,
                unknown_ids=[i for i in dict.fromkeys(ids) if i not in found],
            )


def _cache_keys(sha256: str, stages: Any) -> set[str]:
    """The stage cache keys a transcript's run used (see ``Pipeline.run``).

    Each stage's key chains its input's key with its own record, from the content
    hash on, and the stored records are exactly the stages that ran. Schema 1
    transcripts kept no stage settings, so their keys cannot be known (the
    entries then expire as usual).
    """
    from trax.pipeline.stages import stage_key

    if not isinstance(stages, list):
        return set()
    keys, key = set(), sha256
    for stage in stages:
        record = StageRecord(stage["name"], stage["version"], stage.get("settings", {}))
        key = stage_key(key, record)
        keys.add(key)
    return keys


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
        "usage": (row.metrics or {}).get("usage", {}),
    }
    if row.schema_version == 1:
        payload["stage_versions"] = row.stages  # schema 1 kept a name → version map here
    else:
        payload |= {"stages": row.stages, "skipped": row.skipped, "edits": row.edits}
    return from_payload(payload)
