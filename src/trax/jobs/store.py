"""Persisted batches and jobs: the state every runner and every machine shares.

All state changes are single statements or short transactions, so a process
killed at any moment leaves each job in a state a later run can act on:
``queued`` and orphaned ``running`` jobs are (re)done, ``done`` ones never are.

Every claim of a job counts an attempt, and the attempt is the claim's fence:
a worker's progress, result and outcome are accepted only while the job is
still ``running`` under its attempt. A worker that was paused or cut off
while its job went to another finds out at its next heartbeat or at its save,
and stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from trax.store.database import Database
from trax.store.leases import gone, process_id
from trax.store.models import BatchRow, JobRow, insert_if_absent

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "done", "failed", "cancelled")

Signal = Literal["go", "cancel", "lost"]
"""What a heartbeat hears back: carry on, stop because the job was cancelled, or
stop because the job is no longer this claim's (it went to another worker)."""


class ClaimLost(Exception):  # noqa: N818 - reads as what happened
    """The job went to another worker while this one worked: its result is not stored."""


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Batch:
    id: int
    name: str
    settings: dict[str, Any]
    formats: list[str]
    output_dir: str
    force: bool
    queued: bool  # jobs go to the distributed queue instead of a local runner
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    batch_id: int
    path: str
    export_base: str
    pipeline: str
    priority: int
    status: JobStatus
    attempts: int
    error: str | None
    position_s: float
    duration_s: float | None
    transcript_id: int | None
    cached: bool
    exports: list[str]
    worker: str | None
    cancel_requested: bool
    queue_job_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class BatchCounts:
    batch: Batch
    counts: dict[str, int]
    audio_s: float


class JobStore(Protocol):
    """What running one claimed job needs from the job state (``process_job``'s view).

    Each change is fenced by the claim's ``attempt`` and returns whether it applied.
    """

    def heartbeat(
        self, job_id: int, position_s: float, duration_s: float | None, *, attempt: int
    ) -> Signal: ...
    def fence(self, job: Job) -> Callable[[Session, int], None]: ...
    def finish(
        self,
        job_id: int,
        transcript_id: int,
        cached: bool,
        exports: list[str],
        duration: float,
        *,
        attempt: int,
    ) -> bool: ...
    def fail(
        self, job_id: int, error: str, *, attempt: int, transcript_id: int | None = None
    ) -> bool: ...
    def release(self, job_id: int, *, attempt: int) -> bool: ...
    def mark_cancelled(self, job_id: int, *, attempt: int) -> bool: ...


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _batch(row: BatchRow) -> Batch:
    return Batch(
        row.id,
        row.name,
        dict(row.settings),
        list(row.formats),
        row.output_dir,
        row.force,
        row.queued,
        _utc(row.created_at) or now(),
    )


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        batch_id=row.batch_id,
        path=row.path,
        export_base=row.export_base,
        pipeline=row.pipeline,
        priority=row.priority,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        error=row.error,
        position_s=row.position_s,
        duration_s=row.duration_s,
        transcript_id=row.transcript_id,
        cached=row.cached,
        exports=list(row.exports or []),
        worker=row.worker,
        cancel_requested=row.cancel_requested,
        queue_job_id=row.queue_job_id,
        created_at=_utc(row.created_at) or now(),
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
    )


class SqlJobStore:
    """``JobStore`` on the same database as the transcripts (SQLite or PostgreSQL)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # ----------------------------------------------------------------- batches

    def create_batch(
        self,
        name: str,
        settings: dict[str, Any],
        formats: Sequence[str],
        output_dir: str,
        force: bool,
        files: Iterable[tuple[str, str]],
        priority: int = 0,
        queued: bool = False,
    ) -> tuple[Batch, int]:
        """Create the batch, or extend an existing one with files it lacks.

        Returns the batch and how many jobs were added; files already in the
        batch keep their state, which is what makes re-running a command resume it.
        """
        from sqlalchemy import select

        # Inserts that skip rows already there: two processes submitting the
        # same command at once both succeed and share one batch.
        dialect = self.database.dialect
        with self.database.transaction() as session:
            session.execute(
                insert_if_absent(
                    dialect,
                    BatchRow,
                    {
                        "name": name,
                        "settings": settings,
                        "formats": list(formats),
                        "output_dir": output_dir,
                        "force": force,
                        "queued": queued,
                    },
                )
            )
            row = session.scalars(select(BatchRow).where(BatchRow.name == name)).one()
            added = 0
            for path, export_base in files:  # a path already in the batch keeps its job
                added += (
                    session.execute(
                        insert_if_absent(
                            dialect,
                            JobRow,
                            {
                                "batch_id": row.id,
                                "path": path,
                                "export_base": export_base,
                                "pipeline": settings.get("pipeline", "v1"),
                                "priority": priority,
                            },
                        )
                    ).first()
                    is not None
                )
            return _batch(row), added

    def get_batch(self, name_or_id: str) -> Batch | None:
        from sqlalchemy import select

        with self.database.session() as session:
            query = select(BatchRow).where(BatchRow.name == name_or_id)
            row = session.scalars(query).first()
            if row is None and name_or_id.isdigit():
                row = session.get(BatchRow, int(name_or_id))
            return _batch(row) if row else None

    def next_run_name(self, name: str) -> str:
        """``name`` while that batch is new or unfinished; else the next free ``name.N``.

        Re-running a command whose batch finished is a new run (stored
        transcripts make it cheap), recorded as its own batch; re-running one
        that was interrupted resumes it.
        """
        candidate, n = name, 1
        while (batch := self.get_batch(candidate)) is not None:
            counts = self.counts(batch.id)
            if counts["queued"] or counts["running"]:
                return candidate
            n += 1
            candidate = f"{name}.{n}"
        return candidate

    def counts(self, batch_id: int) -> dict[str, int]:
        """Jobs of the batch per status (every status present, zero when none)."""
        with self.database.session() as session:
            return _totals(session, batch_id)[0]

    def batches(self, limit: int = 20) -> list[BatchCounts]:
        from sqlalchemy import select

        with self.database.session() as session:
            rows = session.scalars(select(BatchRow).order_by(BatchRow.id.desc()).limit(limit))
            return [BatchCounts(_batch(row), *_totals(session, row.id)) for row in rows]

    def batch_by_id(self, batch_id: int) -> Batch:
        with self.database.session() as session:
            row = session.get(BatchRow, batch_id)
            if row is None:
                raise LookupError(f"no batch with id {batch_id}")
            return _batch(row)

    # ----------------------------------------------------------------- jobs

    def jobs(self, batch_id: int | None = None, status: str | None = None) -> list[Job]:
        from sqlalchemy import select

        query = select(JobRow).order_by(JobRow.id)
        if batch_id is not None:
            query = query.where(JobRow.batch_id == batch_id)
        if status is not None:
            query = query.where(JobRow.status == status)
        with self.database.session() as session:
            return [_job(r) for r in session.scalars(query)]

    def get(self, job_id: int) -> Job | None:
        with self.database.session() as session:
            row = session.get(JobRow, job_id)
            return _job(row) if row else None

    def claim(self, batch_id: int | None = None, job_id: int | None = None) -> Job | None:
        """Atomically take the next queued job (or the named one) for this process.

        On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets many workers claim at once
        without waiting on each other; SQLite serialises writers anyway.
        """
        from sqlalchemy import select

        query = select(JobRow).where(JobRow.status == "queued")
        if job_id is not None:
            query = query.where(JobRow.id == job_id)
        if batch_id is not None:
            query = query.where(JobRow.batch_id == batch_id)
        query = query.order_by(JobRow.priority.desc(), JobRow.id).limit(1)
        with self.database.transaction() as session:
            row = session.scalars(query.with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            stamp = now()
            row.status = "running"
            row.attempts += 1
            row.worker = process_id()
            row.started_at = row.heartbeat_at = stamp
            row.error = None
            row.position_s = 0.0
            return _job(row)

    def _update(self, job_id: int, attempt: int | None = None, **values: Any) -> bool:
        """Change a job; with ``attempt``, only while that claim still owns it."""
        from sqlalchemy import update

        query = update(JobRow).where(JobRow.id == job_id)
        if attempt is not None:
            query = query.where(JobRow.status == "running", JobRow.attempts == attempt)
        with self.database.transaction() as session:
            return bool(session.execute(query.values(**values)).rowcount)  # type: ignore[attr-defined]

    def heartbeat(
        self, job_id: int, position_s: float, duration_s: float | None, *, attempt: int
    ) -> Signal:
        """Record progress; hear back whether to go on, or why to stop."""
        from sqlalchemy import update

        query = (
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == "running", JobRow.attempts == attempt)
            .values(position_s=position_s, duration_s=duration_s, heartbeat_at=now())
            .returning(JobRow.cancel_requested)
        )
        with self.database.transaction() as session:
            cancel = session.execute(query).scalar_one_or_none()
        if cancel is None:
            return "lost"
        return "cancel" if cancel else "go"

    def fence(self, job: Job) -> Callable[[Session, int], None]:
        """A check for the transaction that saves this job's transcript.

        It records the transcript on the job in that same transaction, so an
        attempt that dies after saving leaves the job pointing at its result
        (a later attempt only exports it), and raises ``ClaimLost`` when the
        job is no longer this claim's, which rolls the save back.
        """
        from sqlalchemy import update

        def record(session: Session, transcript_id: int) -> None:
            result = session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job.id,
                    JobRow.status == "running",
                    JobRow.attempts == job.attempts,
                )
                .values(transcript_id=transcript_id, heartbeat_at=now())
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise ClaimLost(f"job {job.id} attempt {job.attempts}")

        return record

    def finish(
        self,
        job_id: int,
        transcript_id: int,
        cached: bool,
        exports: list[str],
        duration: float,
        *,
        attempt: int | None = None,
    ) -> bool:
        stamp = now()
        return self._update(
            job_id,
            attempt,
            status="done",
            transcript_id=transcript_id,
            cached=cached,
            exports=exports,
            position_s=duration,
            duration_s=duration,
            finished_at=stamp,
            heartbeat_at=stamp,
            error=None,
        )

    def fail(
        self,
        job_id: int,
        error: str,
        *,
        attempt: int | None = None,
        transcript_id: int | None = None,
    ) -> bool:
        """Record a failure; ``transcript_id`` when the transcript was stored (an export failed)."""
        values: dict[str, Any] = {"status": "failed", "error": error, "finished_at": now()}
        if transcript_id is not None:
            values["transcript_id"] = transcript_id
        return self._update(job_id, attempt, **values)

    def release(self, job_id: int, *, attempt: int | None = None) -> bool:
        """Give a running job (interrupted, or its worker died) back to the queue.

        It is done again from the start (or, when its transcript was stored,
        only exported); a job that already ended is left alone.
        """
        from sqlalchemy import update

        query = update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
        if attempt is not None:
            query = query.where(JobRow.attempts == attempt)
        with self.database.transaction() as session:
            result = session.execute(query.values(status="queued", worker=None, position_s=0.0))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_queue_job(self, job_id: int, queue_job_id: int) -> None:
        self._update(job_id, queue_job_id=queue_job_id)

    def mark_cancelled(self, job_id: int, *, attempt: int | None = None) -> bool:
        return self._update(job_id, attempt, status="cancelled", finished_at=now())

    def request_cancel(self, job_ids: Iterable[int]) -> tuple[int, int]:
        """Cancel queued jobs at once and ask running ones to stop; return both counts."""
        from sqlalchemy import update

        ids = list(job_ids)
        with self.database.transaction() as session:
            queued = session.execute(
                update(JobRow)
                .where(JobRow.id.in_(ids), JobRow.status == "queued")
                .values(status="cancelled", cancel_requested=True, finished_at=now())
            ).rowcount  # type: ignore[attr-defined]
            running = session.execute(
                update(JobRow)
                .where(JobRow.id.in_(ids), JobRow.status == "running")
                .values(cancel_requested=True)
            ).rowcount  # type: ignore[attr-defined]
        return int(queued), int(running)

    def retry(self, job_ids: Iterable[int]) -> int:
        """Queue failed or cancelled jobs again."""
        from sqlalchemy import update

        with self.database.transaction() as session:
            result = session.execute(
                update(JobRow)
                .where(JobRow.id.in_(list(job_ids)), JobRow.status.in_(("failed", "cancelled")))
                .values(status="queued", error=None, cancel_requested=False, worker=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def recover(self, batch_id: int | None = None, stale_after: timedelta | None = None) -> int:
        """Requeue ``running`` jobs whose process is gone.

        A job is orphaned when its worker ran on this host and that pid is no
        longer alive, or (any host) when its heartbeat is older than ``stale_after``.
        """
        from sqlalchemy import select

        cutoff = now() - stale_after if stale_after is not None else None
        query = select(JobRow).where(JobRow.status == "running")
        if batch_id is not None:
            query = query.where(JobRow.batch_id == batch_id)
        recovered = 0
        with self.database.transaction() as session:
            for row in session.scalars(query.with_for_update(skip_locked=True)):
                dead_here = gone(row.worker)
                beat = _utc(row.heartbeat_at)
                stale = cutoff is not None and (beat is None or beat < cutoff)
                if dead_here or stale:
                    row.status, row.worker, row.position_s = "queued", None, 0.0
                    recovered += 1
        return recovered


def _totals(session: Session, batch_id: int) -> tuple[dict[str, int], float]:
    """Jobs per status (all statuses present) and the seconds of audio they hold."""
    from sqlalchemy import func, select

    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    audio = 0.0
    for status, n, seconds in session.execute(
        select(JobRow.status, func.count(), func.sum(JobRow.duration_s))
        .where(JobRow.batch_id == batch_id)
        .group_by(JobRow.status)
    ):
        counts[status] = n
        audio += seconds or 0.0
    return counts, audio
