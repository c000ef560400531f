"""Distributed jobs: procrastinate on PostgreSQL carries job ids to ``trax worker`` processes.

Our ``jobs`` table stays the source of truth for what a job is and how far it
got (so ``trax jobs`` shows progress from any machine); procrastinate brings
delivery, priorities, abort requests and worker heartbeats. A *delivery* is a
procrastinate job (``procrastinate_jobs``) carrying one Trax job id.

Both tables live in the same database, so whatever has to agree between them
is changed in one transaction: enqueueing a job inserts its delivery and
records the delivery's id together, and each worker runs a periodic
reconciliation pass (``reconcile``, every few seconds in a loop beside the
procrastinate worker; not a procrastinate periodic task, which leaves a job
row per tick and went down with the worker's side tasks) that repairs, in one
transaction, what a crash or a dropped connection left half-done on either side:

- a delivery whose worker stopped sending heartbeats (killed, or cut off), and
  whose job stopped reporting progress, is given back and its job released, so
  another worker takes it;
- a delivery still waiting or running for a job that ended is finished;
- a running job without a running delivery is released;
- a queued job without a waiting delivery is delivered again.

Each job has at most one waiting delivery: deliveries carry the queueing lock
``trax-job-<id>``, which procrastinate's unique index enforces, and enqueueing
looks for a live delivery before making one, so running ``--queue`` again
delivers nothing twice.

Workers ride out dropped connections: every database call they make is
retried on a fresh connection with backoff, procrastinate's worker loop is
restarted when it ends anyway, and a worker only exits (one line on stderr,
status 1) when the database stayed unreachable for ``give_up_after_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

from trax.errors import TraxError
from trax.jobs.runner import Outcome, process_job, settings_of
from trax.jobs.store import Batch, Job, JobStore, SqlJobStore

if TYPE_CHECKING:
    import procrastinate
    from procrastinate import job_context, jobs, retry
    from procrastinate import worker as procrastinate_worker
    from sqlalchemy.orm import Session

    from trax.service import TranscriptionService
    from trax.store import Database

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSCRIBE_QUEUE = "trax-transcribe"
TRANSCRIBE_TASK = "trax.transcribe"
# Earlier versions recovered with a procrastinate periodic task; its leftovers are dropped.
_LEGACY_RECOVERY_TASK = "trax.recover"
_SCHEMA_LOCK = 727_301  # pg advisory lock id: one process applies the queue schema
_QUEUE_LOCK = 727_302  # pg advisory lock id: enqueue, cancel and reconciliation take turns
_LOCK_PREFIX = "trax-job-"  # queueing lock of a job's delivery: one waiting delivery per job
_NEW_JOB_CHANNEL = f"procrastinate_queue_v1#{TRANSCRIBE_QUEUE}"  # what idle workers LISTEN on

HEARTBEAT_S = 5.0
"""Default seconds between a worker's heartbeats."""
STALLED_AFTER_S = 20.0
"""Default seconds without a heartbeat after which a worker's jobs go to others (4 missed beats)."""
RECOVERY_EVERY_S = 5.0
"""Default seconds between reconciliation passes: a dead worker's job is back within
``STALLED_AFTER_S + RECOVERY_EVERY_S`` of its last heartbeat."""
GIVE_UP_AFTER_S = 300.0
"""Default seconds a worker keeps trying to reach an unreachable database before it exits."""
_FETCH_POLL_S = 2.0  # a delivery put back by a retry sends no NOTIFY: idle workers poll this often
_MAX_BACKOFF_S = 15.0
_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # ~16 s: a server restart, a dropped connection


class QueueError(TraxError):
    """The distributed queue cannot be used; the message is one line."""


class TransientDatabaseError(TraxError):
    """The database connection was lost while a job ran: the job goes back to the queue."""


def _one_line(exc: BaseException) -> str:
    if type(exc).__module__.startswith("procrastinate") and exc.__cause__ is not None:
        exc = exc.__cause__  # procrastinate says "Database error."; psycopg says which
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a lost or refused connection, not a wrong query.

    Those are worth retrying on a new connection: ``pg_terminate_backend``, a
    server restart, a network cut, a pool that could not connect in time.
    """
    import psycopg
    from sqlalchemy import exc as sa

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            psycopg.OperationalError
            | psycopg.InterfaceError
            | sa.OperationalError
            | sa.InterfaceError
            | TransientDatabaseError,
        ):
            return True
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def retrying(call: Callable[[], T], what: str) -> T:
    """``call()``, again on a fresh connection while it fails for a lost connection (~16 s).

    Only for calls that are one transaction each and mean the same when run
    twice (SQLAlchemy's pre-ping replaces pooled connections the server closed).
    """
    for delay in (*_RETRY_DELAYS_S, None):
        try:
            return call()
        except Exception as exc:
            if delay is None or not transient(exc):
                raise
            log.warning("%s: database connection lost (%s); retrying", what, _one_line(exc))
            time.sleep(delay)
    raise AssertionError("unreachable")


def _reaching(call: Callable[[], T], what: str) -> T:
    """``retrying(call)``, with a database that stays out of reach said in one line."""
    try:
        return retrying(call, what)
    except Exception as exc:
        if transient(exc):
            raise QueueError(f"cannot reach the queue's database: {_one_line(exc)}") from exc
        raise


def _conninfo(database: Database) -> str:
    """The libpq connection string procrastinate's psycopg connector wants."""
    url = database.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def require_postgresql(database: Database) -> None:
    if database.dialect != "postgresql":
        raise QueueError(
            "the distributed queue needs PostgreSQL: set TRAX_DATABASE_URL=postgresql://…"
        )


def ensure_queue_schema(database: Database) -> None:
    """Create procrastinate's tables once, whichever worker or client gets there first."""
    from sqlalchemy import text

    require_postgresql(database)

    def apply() -> None:
        with database.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK})
            if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
                import procrastinate

                # Straight to psycopg: without parameters it runs the script as written.
                driver = conn.connection.driver_connection
                assert driver is not None
                driver.execute(procrastinate.schema.SchemaManager.get_schema())

    _reaching(apply, "preparing the queue")


def _queue_exists(session: Session) -> bool:
    from sqlalchemy import text

    return session.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None


# --------------------------------------------------------------------------- deliveries

_LIVE_DELIVERIES = """
SELECT DISTINCT ON (args->>'job_id') (args->>'job_id')::bigint AS job_id, id
  FROM procrastinate_jobs
 WHERE task_name = :task AND status IN ('todo', 'doing')
   AND args->>'job_id' = ANY(CAST(:ids AS text[]))
 ORDER BY args->>'job_id', status = 'doing' DESC, id
"""


def _live_deliveries(session: Session, job_ids: Sequence[int]) -> dict[int, int]:
    """Job id → the id of its waiting or running delivery, for those that have one."""
    from sqlalchemy import text

    if not job_ids:
        return {}
    rows = session.execute(
        text(_LIVE_DELIVERIES), {"task": TRANSCRIBE_TASK, "ids": [str(i) for i in job_ids]}
    )
    return {int(job_id): int(queue_id) for job_id, queue_id in rows}


def _deliver(session: Session, jobs: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Insert one delivery per ``(job id, priority)`` and record its id on the job.

    The caller checked, under ``_QUEUE_LOCK``, that none of these jobs has a
    live delivery; the queueing lock makes the database refuse a second
    waiting one whatever happens. The insert and the recorded id commit together.
    """
    from sqlalchemy import text

    if not jobs:
        return {}
    ids = [job_id for job_id, _ in jobs]
    session.execute(
        text(
            "SELECT procrastinate_defer_jobs_v1(ARRAY("
            " SELECT ROW(:queue, :task, t.priority, NULL, :prefix || t.id::text,"
            "            jsonb_build_object('job_id', t.id), NULL)::procrastinate_job_to_defer_v1"
            "   FROM unnest(CAST(:ids AS bigint[]), CAST(:priorities AS integer[]))"
            "        AS t(id, priority)"
            "  ORDER BY t.id))"
        ),
        {
            "queue": TRANSCRIBE_QUEUE,
            "task": TRANSCRIBE_TASK,
            "prefix": _LOCK_PREFIX,
            "ids": ids,
            "priorities": [priority for _, priority in jobs],
        },
    )
    delivered = _live_deliveries(session, ids)
    _record_queue_ids(session, delivered)
    return delivered


def _record_queue_ids(session: Session, queue_ids: dict[int, int]) -> None:
    from sqlalchemy import text

    if queue_ids:
        session.execute(
            text(
                "UPDATE jobs SET queue_job_id = m.queue_id"
                "  FROM unnest(CAST(:ids AS bigint[]), CAST(:queue_ids AS bigint[]))"
                "       AS m(id, queue_id)"
                " WHERE jobs.id = m.id AND jobs.queue_job_id IS DISTINCT FROM m.queue_id"
            ),
            {"ids": list(queue_ids), "queue_ids": list(queue_ids.values())},
        )


def enqueue(database: Database, jobs: SqlJobStore, batch: Batch) -> int:
    """Hand every queued job of ``batch`` to the distributed queue, once; return how many.

    Running it again (``--queue`` twice, ``jobs resume``) delivers nothing
    twice: a job that already has a waiting or running delivery keeps it (and
    gets its id recorded, should an interrupted run have missed that). One
    transaction: a kill leaves every job either delivered with its id, or not.
    """
    from sqlalchemy import select, text

    from trax.store.models import JobRow

    ensure_queue_schema(database)  # (``jobs`` unused: this is SQL on both tables at once)

    def deliver() -> int:
        with database.transaction() as session:
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _QUEUE_LOCK})
            pending = session.execute(
                select(JobRow.id, JobRow.priority)
                .where(JobRow.batch_id == batch.id, JobRow.status == "queued")
                .order_by(JobRow.id)
            ).all()
            live = _live_deliveries(session, [job_id for job_id, _ in pending])
            _record_queue_ids(session, live)
            _deliver(session, [(i, p) for i, p in pending if i not in live])
            return len(pending)

    return _reaching(deliver, "enqueueing")


def cancel_in_queue(database: Database, job_ids: Sequence[int]) -> int:
    """Drop the waiting deliveries of these jobs and ask running ones to abort; return how many.

    Deliveries are found by the job id they carry, not by the id recorded on
    the job, so a job whose recorded id was lost (or one delivered twice by an
    earlier version) is cancelled all the same.
    """
    from sqlalchemy import text

    def cancel() -> int:
        with database.transaction() as session:
            if not _queue_exists(session):
                return 0
            session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _QUEUE_LOCK})
            rows = session.execute(
                text(
                    "SELECT id FROM procrastinate_jobs"
                    " WHERE task_name = :task AND status IN ('todo', 'doing')"
                    "   AND args->>'job_id' = ANY(CAST(:ids AS text[]))"
                    " ORDER BY id FOR UPDATE"
                ),
                {"task": TRANSCRIBE_TASK, "ids": [str(i) for i in job_ids]},
            ).scalars()
            found = list(rows.all())
            for queue_id in found:
                session.execute(
                    text("SELECT procrastinate_cancel_job_v1(:id, true, false)"), {"id": queue_id}
                )
            return len(found)

    return _reaching(cancel, "cancelling in the queue")


# --------------------------------------------------------------------------- reconciliation


@dataclass
class Reconciled:
    """What one reconciliation pass changed (ids of Trax jobs, or of deliveries)."""

    requeued: list[int] = field(default_factory=list)  # jobs whose worker stopped
    released: list[int] = field(default_factory=list)  # running jobs with no running delivery
    delivered: list[int] = field(default_factory=list)  # queued jobs with no live delivery
    finished: list[int] = field(default_factory=list)  # deliveries of jobs that had ended
    dropped: list[int] = field(default_factory=list)  # duplicate or leftover deliveries


_STALE_WORKER = "(w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => :stalled))"

# Deliveries that need something done, locked for this pass (a worker busy
# finishing one right now holds its lock, and it is skipped until next time).
_DELIVERIES_TO_FIX = f"""
SELECT p.id, p.status::text AS status, j.id AS job_id, j.status AS job_status,
       j.attempts, j.cancel_requested
  FROM procrastinate_jobs p
  LEFT JOIN procrastinate_workers w ON w.id = p.worker_id
  LEFT JOIN jobs j ON j.id = (p.args->>'job_id')::bigint
 WHERE p.task_name = :task AND p.status IN ('todo', 'doing')
   AND (
        j.id IS NULL
     OR (j.status IN ('done', 'failed', 'cancelled')
         AND (p.status = 'todo' OR {_STALE_WORKER}
              OR j.finished_at IS NULL OR j.finished_at < :cutoff))
     OR (p.status = 'doing' AND j.status = 'running' AND {_STALE_WORKER}
         AND (j.heartbeat_at IS NULL OR j.heartbeat_at < :cutoff))
     OR (p.status = 'doing' AND j.status = 'queued'
         AND ({_STALE_WORKER} OR NOT EXISTS (
              SELECT 1 FROM procrastinate_events e
               WHERE e.job_id = p.id AND e.type = 'started'
                 AND e.at > now() - make_interval(secs => :stalled))))
   )
 ORDER BY p.id
   FOR UPDATE OF p SKIP LOCKED
"""

_DUPLICATE_DELIVERIES = """
SELECT id FROM (
    SELECT id, status, row_number() OVER (
               PARTITION BY args->>'job_id' ORDER BY status = 'doing' DESC, id) AS n
      FROM procrastinate_jobs
     WHERE task_name = :task AND status IN ('todo', 'doing')) AS live
 WHERE n > 1 AND status = 'todo'
"""

_ORPHANED_RUNNING = """
SELECT j.id, j.attempts, j.cancel_requested
  FROM jobs j JOIN batches b ON b.id = j.batch_id
 WHERE b.queued AND j.status = 'running'
   AND (j.heartbeat_at IS NULL OR j.heartbeat_at < :cutoff)
   AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs p
                    WHERE p.task_name = :task AND p.status = 'doing'
                      AND p.args->>'job_id' = j.id::text)
 ORDER BY j.id
"""

_UNDELIVERED = """
SELECT j.id, j.priority
  FROM jobs j JOIN batches b ON b.id = j.batch_id
 WHERE b.queued AND j.status = 'queued'
   AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs p
                    WHERE p.task_name = :task AND p.status IN ('todo', 'doing')
                      AND p.args->>'job_id' = j.id::text)
 ORDER BY j.id
   FOR UPDATE OF j SKIP LOCKED
"""

_ALL_LIVE_DELIVERIES = """
SELECT DISTINCT ON (args->>'job_id') (args->>'job_id')::bigint AS job_id, id
  FROM procrastinate_jobs
 WHERE task_name = :task AND status IN ('todo', 'doing')
 ORDER BY args->>'job_id', status = 'doing' DESC, id
"""

_END_STATUS = {"done": "succeeded", "failed": "failed", "cancelled": "aborted"}
_CANCEL_WAITING = "SELECT procrastinate_cancel_job_v1(:id, false, false)"
_RETRY_NOW = "SELECT procrastinate_retry_job_v2(:id, NULL, NULL, NULL, NULL)"


def _give_back(session: Session, job_id: int, attempt: int, cancel: bool) -> bool:
    """Release a running job whose worker is gone (cancelled, if that was asked); fenced."""
    from sqlalchemy import text

    if cancel:
        query = "status = 'cancelled', finished_at = :now"
    else:
        query = "status = 'queued', worker = NULL, position_s = 0"
    result = session.execute(
        text(
            f"UPDATE jobs SET {query} WHERE id = :id AND status = 'running' AND attempts = :attempt"
        ),
        {"id": job_id, "attempt": attempt, "now": datetime.now(UTC)},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def reconcile(database: Database, stalled_after_s: float = STALLED_AFTER_S) -> Reconciled:
    """One pass that makes procrastinate's deliveries and Trax's jobs agree again.

    Runs in one transaction under an advisory lock (a pass already under way
    elsewhere makes this one a no-op). Grace periods of ``stalled_after_s``
    keep it from racing a worker that is about to record what it did.
    Jobs of batches that are not queued (run by ``trax transcribe`` itself) are
    never touched.
    """
    from sqlalchemy import text

    done = Reconciled()
    params: dict[str, Any] = {
        "task": TRANSCRIBE_TASK,
        "stalled": float(stalled_after_s),
        # Trax's own timestamps are written by the workers' clocks, procrastinate's by the server's.
        "cutoff": datetime.now(UTC) - timedelta(seconds=stalled_after_s),
    }
    with database.transaction() as session:
        if not _queue_exists(session):
            return done
        if not session.execute(
            text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _QUEUE_LOCK}
        ).scalar():
            return done

        def do(what: str, statement: str, **values: Any) -> bool:
            # A savepoint each: one action refused (a duplicate found meanwhile)
            # leaves the rest of the pass standing.
            try:
                with session.begin_nested():
                    session.execute(text(statement), values)
            except Exception as exc:
                if transient(exc):
                    raise
                log.warning("reconciliation: %s: %s", what, _one_line(exc))
                return False
            return True

        # Deliveries of an earlier version's periodic recovery task: nothing consumes them.
        leftovers = (
            session.execute(
                text("SELECT id FROM procrastinate_jobs WHERE task_name = :t AND status = 'todo'"),
                {"t": _LEGACY_RECOVERY_TASK},
            )
            .scalars()
            .all()
        )
        duplicates = session.execute(text(_DUPLICATE_DELIVERIES), params).scalars().all()
        for queue_id in [*leftovers, *duplicates]:
            if do("drop", _CANCEL_WAITING, id=queue_id):
                done.dropped.append(queue_id)

        retried: list[int] = []
        for row in session.execute(text(_DELIVERIES_TO_FIX), params).all():
            queue_id, status, job_id, job_status = row.id, row.status, row.job_id, row.job_status
            if job_status is None or job_status in _END_STATUS:
                # The job ended (or is gone): its delivery has nothing left to do.
                if status == "todo":
                    ok = do("finish", _CANCEL_WAITING, id=queue_id)
                else:
                    end = _END_STATUS.get(job_status or "failed", "failed")
                    ok = do(
                        "finish",
                        "SELECT procrastinate_finish_job_v1(:id,"
                        " CAST(:end AS procrastinate_job_status), false)",
                        id=queue_id,
                        end=end,
                    )
                if ok:
                    done.finished.append(queue_id)
                continue
            if job_status == "running":
                # Its worker stopped beating and so did the job: nobody runs it.
                if not _give_back(session, job_id, row.attempts, row.cancel_requested):
                    continue
                done.requeued.append(job_id)
                if row.cancel_requested:
                    do(
                        "finish",
                        "SELECT procrastinate_finish_job_v1(:id, 'aborted', false)",
                        id=queue_id,
                    )
                    continue
            # Queued again: the same delivery goes back to the queue for any worker.
            if do("retry", _RETRY_NOW, id=queue_id):
                retried.append(queue_id)
                if job_status == "queued":
                    done.requeued.append(job_id)

        for row in session.execute(text(_ORPHANED_RUNNING), params).all():
            if _give_back(session, row.id, row.attempts, row.cancel_requested):
                done.released.append(row.id)

        missing = [(r.id, r.priority) for r in session.execute(text(_UNDELIVERED), params).all()]
        if missing:
            with session.begin_nested():
                _deliver(session, missing)
            done.delivered = [job_id for job_id, _ in missing]

        live = {
            int(j): int(q) for j, q in session.execute(text(_ALL_LIVE_DELIVERIES), params).all()
        }
        _record_queue_ids(session, live)
        for queue_id in retried:
            # A retried delivery is an UPDATE, which sends no NOTIFY: wake idle workers.
            session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {
                    "channel": _NEW_JOB_CHANNEL,
                    "payload": f'{{"type": "job_inserted", "job_id": {queue_id}}}',
                },
            )
    return done


def _log_reconciled(done: Reconciled) -> None:
    for job_id in done.requeued:
        log.warning("job %d: its worker stopped; queued again", job_id)
    for job_id in done.released:
        log.warning("job %d: left running with no worker on it; queued again", job_id)
    if done.delivered:
        log.warning("delivered again %d queued job(s) the queue had lost", len(done.delivered))
    if done.finished or done.dropped:
        log.info(
            "closed %d delivery(ies) of ended jobs, dropped %d duplicate(s)",
            len(done.finished),
            len(done.dropped),
        )


# --------------------------------------------------------------------------- the task

_services: dict[tuple[str, str], TranscriptionService] = {}
_services_lock = threading.Lock()


def _service(database: Database, device: str) -> TranscriptionService:
    """One service per database and device for the life of the worker: models load once."""
    from trax.service import TranscriptionService

    key = (database.url, device)
    with _services_lock:
        if key not in _services:
            _services[key] = TranscriptionService.open(database, device)
        return _services[key]


def _end_attempt(database: Database, job: Job, status: str, error: str | None = None) -> bool:
    """Settle (or, with ``queued``, give back) the job this attempt claimed.

    Fenced by the attempt: it applies only while the job is still this claim's
    (running, or given back by it and not claimed since).
    """
    from sqlalchemy import text

    values = (
        "status = 'queued', worker = NULL, position_s = 0"
        if status == "queued"
        else "status = :status, error = :error, finished_at = :now"
    )
    with database.transaction() as session:
        result = session.execute(
            text(
                f"UPDATE jobs SET {values}"
                " WHERE id = :id AND attempts = :attempt AND status IN ('running', 'queued')"
            ),
            {
                "id": job.id,
                "attempt": job.attempts,
                "status": status,
                "error": error,
                "now": datetime.now(UTC),
            },
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class _ResilientJobs:
    """``process_job``'s job store, riding out dropped connections.

    Each of its calls is one short transaction, fenced by the claim, that means
    the same when run twice; one cut by a lost connection is run again on a
    fresh connection. When ``process_job`` records a failure while handling a
    lost connection (a save cut half-way), that is no fault of the file: the job
    is given back instead, and ``lost`` tells the task to have it delivered again.
    """

    _RETRIED = frozenset({"heartbeat", "finish", "fail", "release", "mark_cancelled"})

    def __init__(self, database: Database, jobs: SqlJobStore, job: Job) -> None:
        self._database = database
        self._jobs = jobs
        self._job = job
        self.lost: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._jobs, name)
        if name not in self._RETRIED:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "fail":
                handling = sys.exc_info()[1]  # process_job calls fail() from its except clause
                if handling is not None and transient(handling):
                    self.lost = handling
                    log.warning(
                        "job %d: database connection lost mid-job (%s); it goes back to the queue",
                        self._job.id,
                        _one_line(handling),
                    )
                    return retrying(
                        lambda: _end_attempt(self._database, self._job, "queued"),
                        f"job {self._job.id}",
                    )
            result = retrying(lambda: target(*args, **kwargs), f"job {self._job.id}: {name}")
            if name == "finish" and result is False:
                # A finish whose reply was lost and that was run again finds the
                # job done by itself: that is this attempt's success, not another's.
                again = retrying(lambda: self._jobs.get(self._job.id), f"job {self._job.id}")
                transcript_id = args[1] if len(args) > 1 else kwargs.get("transcript_id")
                return bool(
                    again is not None
                    and again.status == "done"
                    and again.attempts == self._job.attempts
                    and again.transcript_id == transcript_id
                )
            return result

        return call


def run_queued_job(
    database: Database, job_id: int, should_abort: Any = None, device: str = "auto"
) -> Outcome | None:
    """The task body: the same ``process_job`` as the local runner, for one job id.

    Raises ``TransientDatabaseError`` when the database connection was lost
    for good mid-job; the job was given back and procrastinate delivers it again.
    """
    from trax.asr import ModelError
    from trax.pipeline import PipelineError

    jobs = SqlJobStore(database)
    try:
        job = retrying(lambda: jobs.claim(job_id=job_id), f"job {job_id}: claim")
    except Exception as exc:
        if transient(exc):
            raise TransientDatabaseError(f"job {job_id}: {_one_line(exc)}") from exc
        raise
    if job is None:
        log.info("job %d is not queued any more (done, cancelled or taken); skipping", job_id)
        return None
    store = _ResilientJobs(database, jobs, job)
    try:
        batch = retrying(lambda: jobs.batch_by_id(job.batch_id), f"job {job_id}")
        service = _service(database, device)
        service.pipeline(settings_of(batch, job))  # a model that can't load fails the job now
        outcome = process_job(
            job, batch, cast("JobStore", store), service, stop=should_abort or (lambda: False)
        )
    except Exception as exc:
        if transient(exc):
            with contextlib.suppress(Exception):  # if this fails too, reconciliation will
                retrying(lambda: _end_attempt(database, job, "queued"), f"job {job_id}")
            raise TransientDatabaseError(f"job {job_id}: {_one_line(exc)}") from exc
        if isinstance(exc, ModelError | PipelineError):
            # Retrying on this worker would fail the same way.
            reason = str(exc)
            retrying(lambda: _end_attempt(database, job, "failed", reason), f"job {job_id}")
            return "failed"
        error = f"unexpected error: {type(exc).__name__}: {_one_line(exc)}"
        retrying(lambda: _end_attempt(database, job, "failed", error), f"job {job_id}")
        raise
    if store.lost is not None:
        raise TransientDatabaseError(f"job {job_id}: {_one_line(store.lost)}") from store.lost
    if outcome == "interrupted":
        # Only procrastinate's abort stops a queued job from outside: that is a cancel.
        retrying(lambda: _end_attempt(database, job, "cancelled"), f"job {job_id}")
        return "cancelled"
    return outcome


def build_app(database: Database, device: str = "auto", concurrency: int = 1) -> procrastinate.App:
    import procrastinate
    from psycopg_pool import AsyncNullConnectionPool

    connector = procrastinate.PsycopgConnector(
        conninfo=_conninfo(database),
        # A fresh connection per query (a few ms; a worker makes one every
        # second or two). A pool keeps connections the server may have closed,
        # and after failed reconnections it backs off for up to minutes, so a
        # heartbeat waited on it past --stalled-after while the server was up.
        pool_factory=AsyncNullConnectionPool,
        max_size=concurrency + 4,  # each job's end, plus heartbeat, fetch, abort poll, listener
        timeout=10.0,
    )
    app = procrastinate.App(connector=connector)
    # A delivery whose job lost its connection is delivered again, after a pause.
    again = procrastinate.RetryStrategy(wait=2, retry_exceptions=[TransientDatabaseError])

    @app.task(name=TRANSCRIBE_TASK, queue=TRANSCRIBE_QUEUE, pass_context=True, retry=again)
    def transcribe(context: procrastinate.JobContext, job_id: int) -> None:
        run_queued_job(database, job_id, context.should_abort, device)

    return app


# --------------------------------------------------------------------------- the worker


class _Health:
    """How long the database has been unreachable, as seen by all of a worker's parts."""

    def __init__(self, give_up_after_s: float) -> None:
        self.give_up_after_s = give_up_after_s
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._reason = ""
        self._logged = 0.0

    def ok(self) -> None:
        with self._lock:
            if self._down_since is not None:
                log.warning(
                    "database reachable again after %.0f s", time.monotonic() - self._down_since
                )
            self._down_since = None

    def failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            if self._down_since is None:
                self._down_since = now
            self._reason = f"{what}: {_one_line(exc)}"
            if now - self._logged >= 10.0:  # a line per outage and every 10 s, not per retry
                self._logged = now
                log.warning("%s; retrying", self._reason)

    def given_up(self) -> str | None:
        """Why the worker must stop, once the outage lasted ``give_up_after_s``."""
        with self._lock:
            if self._down_since is None:
                return None
            if time.monotonic() - self._down_since < self.give_up_after_s:
                return None
            return f"the database was unreachable for {self.give_up_after_s:g} s ({self._reason})"


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake up when ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


_BEAT = """
INSERT INTO procrastinate_workers (id, last_heartbeat) OVERRIDING SYSTEM VALUE
VALUES (%(worker_id)s, now())
ON CONFLICT (id) DO UPDATE SET last_heartbeat = now()
"""

_FINISH = """
SELECT procrastinate_finish_job_v1(id, %(status)s::procrastinate_job_status, false)
  FROM procrastinate_jobs
 WHERE id = %(job_id)s AND status = 'doing' AND (worker_id = %(worker_id)s OR worker_id IS NULL)
"""

_RETRY = """
SELECT procrastinate_retry_job_v2(id, %(retry_at)s, %(priority)s, %(queue)s, %(lock)s)
  FROM procrastinate_jobs
 WHERE id = %(job_id)s AND status = 'doing' AND (worker_id = %(worker_id)s OR worker_id IS NULL)
"""


@cache
def _worker_class() -> type[procrastinate_worker.Worker]:
    """procrastinate's worker, made to ride out lost connections.

    procrastinate 3.10 (pinned below 3.11 in pyproject) stops a worker when any
    side task raises — a heartbeat or a LISTEN on a connection the server
    closed — and ends its loop when a fetch fails. Here the heartbeat and the
    listener retry with backoff, a failed fetch is tried again, and a job's end
    is recorded once the database is back. Overridden: ``_start_side_tasks``,
    ``_fetch_and_process_jobs``, ``_persist_job_status``.
    """
    from procrastinate import exceptions
    from procrastinate import worker as base

    class TraxWorker(base.Worker):
        health: _Health

        def _start_side_tasks(self) -> list[asyncio.Task[Any]]:
            # No periodic deferrer: Trax registers no periodic task (recovery is
            # the reconciliation loop beside the worker).
            tasks = [
                asyncio.create_task(self._beat(), name="update_heartbeats"),
                asyncio.create_task(self._poll_jobs_to_abort(), name="poll_jobs_to_abort"),  # type: ignore[no-untyped-call]
            ]
            if self.listen_notify:
                tasks.append(asyncio.create_task(self._listen(), name="listener"))
            return tasks

        async def _beat(self) -> None:
            """Heartbeats that survive connection loss.

            An upsert, not an update: a worker cut off long enough for another
            to prune its row keeps its id (its jobs reference it) and comes back.
            """
            wait = self.update_heartbeat_interval
            while True:
                await asyncio.sleep(wait)
                try:
                    await self.app.connector.execute_query_async(_BEAT, worker_id=self.worker_id)
                except Exception as exc:  # noqa: BLE001 - the heartbeat must never stop
                    self.health.failed("heartbeat", exc)
                    wait = min(1.0, self.update_heartbeat_interval)
                else:
                    self.health.ok()
                    wait = self.update_heartbeat_interval

        async def _listen(self) -> None:
            """LISTEN for new jobs, reconnecting for as long as the worker runs."""
            delay = 0.5
            while True:
                started = time.monotonic()
                try:
                    await self.app.job_manager.listen_for_jobs(
                        on_notification=self._handle_notification, queues=self.queues
                    )
                except Exception as exc:  # noqa: BLE001 - polling covers the gap; retry
                    self.health.failed("listening for jobs", exc)
                if time.monotonic() - started > 60:
                    delay = 0.5
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)

        async def _fetch_and_process_jobs(self) -> None:
            delay = 0.5
            while not self._stop_event.is_set():
                try:
                    await super()._fetch_and_process_jobs()  # type: ignore[no-untyped-call]
                    return
                except exceptions.ConnectorException as exc:
                    if not transient(exc):
                        raise
                    self.health.failed("fetching jobs", exc)
                await _pause(self._stop_event, delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)

        async def _persist_job_status(
            self,
            job: jobs.Job,
            status: jobs.Status,
            retry_decision: retry.RetryDecision | None,
            context: job_context.JobContext,
            job_result: job_context.JobResult | None,
        ) -> None:
            """Record how a delivery ended, retrying until the database answers.

            Only while the delivery is still this worker's: one that was given
            to another worker meanwhile (this one was paused or cut off) is theirs.
            """
            assert job.id is not None
            if retry_decision is not None:
                query, values = (
                    _RETRY,
                    {
                        "retry_at": retry_decision.retry_at,
                        "priority": retry_decision.priority,
                        "queue": retry_decision.queue,
                        "lock": retry_decision.lock,
                    },
                )
            else:
                query, values = _FINISH, {"status": status.value}
            delay = 0.5
            while True:
                try:
                    await self.app.connector.execute_query_async(
                        query, job_id=job.id, worker_id=self.worker_id, **values
                    )
                    break
                except Exception as exc:  # noqa: BLE001 - reconciliation settles what is left
                    if not transient(exc):
                        log.warning("delivery %d: end not recorded: %s", job.id, _one_line(exc))
                        break
                    self.health.failed("recording a job's end", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
            self._job_ids_to_abort.pop(job.id, None)

    return TraxWorker


async def _reconcile_forever(
    database: Database, stalled_after_s: float, every_s: float, health: _Health
) -> None:
    """The reconciliation pass, every ``every_s`` seconds, for as long as the worker runs."""
    while True:
        try:
            done = await asyncio.to_thread(reconcile, database, stalled_after_s)
        except Exception as exc:  # noqa: BLE001 - the next pass tries again; never stop
            if transient(exc):
                health.failed("reconciliation", exc)
            else:
                log.error("reconciliation pass failed: %s", _one_line(exc))
        else:
            health.ok()
            _log_reconciled(done)
        await asyncio.sleep(every_s)


def run_worker(
    database: Database,
    concurrency: int = 1,
    stalled_after_s: float = STALLED_AFTER_S,
    heartbeat_s: float = HEARTBEAT_S,
    recovery_every_s: float = RECOVERY_EVERY_S,
    device: str = "auto",
    give_up_after_s: float = GIVE_UP_AFTER_S,
) -> None:
    """Serve the queue until stopped (SIGINT/SIGTERM: finish current jobs, then return).

    procrastinate's worker loop is restarted with backoff whenever it ends on
    its own; ``QueueError`` (one line) when the database stayed unreachable for
    ``give_up_after_s``. Job threads may still be running then, on a dead
    connection: the caller should exit the process at once.
    """
    ensure_queue_schema(database)
    pool_log = logging.getLogger("psycopg.pool")
    if pool_log.getEffectiveLevel() >= logging.WARNING:
        # It warns at every reconnection attempt; outages are reported here, every 10 s.
        pool_log.setLevel(logging.ERROR)
    app = build_app(database, device, concurrency)
    name = f"trax@{socket.gethostname()}:{os.getpid()}"
    health = _Health(give_up_after_s)
    worker_class = _worker_class()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        current: list[procrastinate_worker.Worker] = []

        def on_signal() -> None:
            stopping.set()
            for worker in current:
                worker.stop()  # type: ignore[no-untyped-call]
            for sig in (signal.SIGINT, signal.SIGTERM):  # a second one interrupts at once
                loop.remove_signal_handler(sig)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)

        async def run_once() -> None:
            await asyncio.to_thread(ensure_queue_schema, database)
            async with app.open_async():
                worker = worker_class(
                    app=app,
                    queues=[TRANSCRIBE_QUEUE],
                    name=name,
                    concurrency=concurrency,
                    install_signal_handlers=False,
                    update_heartbeat_interval=heartbeat_s,
                    stalled_worker_timeout=stalled_after_s,
                    fetch_job_polling_interval=_FETCH_POLL_S,
                )
                worker.health = health  # type: ignore[attr-defined]
                current[:] = [worker]
                if stopping.is_set():
                    return
                try:
                    await worker.run()  # type: ignore[no-untyped-call]
                finally:
                    current.clear()

        reconciling = asyncio.create_task(
            _reconcile_forever(database, stalled_after_s, recovery_every_s, health)
        )
        delay = 1.0
        try:
            while not stopping.is_set():
                started = time.monotonic()
                attempt = asyncio.create_task(run_once())
                while not attempt.done():
                    await asyncio.wait({attempt}, timeout=1.0)
                    if (why := health.given_up()) is not None and not attempt.done():
                        for worker in current:
                            worker.stop()  # type: ignore[no-untyped-call]
                        await asyncio.wait({attempt}, timeout=5.0)
                        raise QueueError(f"worker stopped: {why}")
                try:
                    attempt.result()
                    reason = "its loop ended"
                except Exception as exc:  # noqa: BLE001 - restarted below; given up on by health
                    if transient(exc):
                        health.failed("worker", exc)
                    reason = _one_line(exc)
                if stopping.is_set():
                    break
                if (why := health.given_up()) is not None:
                    raise QueueError(f"worker stopped: {why}")
                if time.monotonic() - started > 60:
                    delay = 1.0
                log.warning("worker loop stopped (%s); restarting in %.0f s", reason, delay)
                await _pause(stopping, delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
        finally:
            reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciling

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(serve())
    except QueueError:
        raise  # not waiting for job threads stuck on a dead connection: the caller exits
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
