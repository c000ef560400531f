"""Distributed jobs: procrastinate on PostgreSQL carries job ids to ``trax worker`` processes.

Our ``jobs`` table stays the source of truth for what a job is and how far it
got (so ``trax jobs`` shows progress from any machine); procrastinate brings
delivery, priorities, locking and worker heartbeats. A worker killed mid-job
leaves its procrastinate job in ``doing``: the periodic recovery task, on a
queue of its own so long transcriptions can never starve it, finds jobs whose
worker stopped sending heartbeats and puts them back in both tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from trax.errors import TraxError
from trax.jobs.runner import Outcome, process_job, settings_of
from trax.jobs.store import Batch, SqlJobStore

if TYPE_CHECKING:
    import procrastinate

    from trax.service import TranscriptionService
    from trax.store import Database

log = logging.getLogger(__name__)

TRANSCRIBE_QUEUE = "trax-transcribe"
RECOVERY_QUEUE = "trax-recovery"
TRANSCRIBE_TASK = "trax.transcribe"
_SCHEMA_LOCK = 727_301  # pg advisory lock id: one process applies the queue schema


class QueueError(TraxError):
    """The distributed queue cannot be used; the message is one line."""


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
    with database.engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _SCHEMA_LOCK})
        if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
            import procrastinate

            # Straight to psycopg: without parameters it runs the script as written.
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute(procrastinate.schema.SchemaManager.get_schema())


_services: dict[tuple[str, str], TranscriptionService] = {}


def _service(database: Database, device: str) -> TranscriptionService:
    """One service per database and device for the life of the worker: models load once."""
    from trax.service import TranscriptionService

    key = (database.url, device)
    if key not in _services:
        _services[key] = TranscriptionService.open(database, device)
    return _services[key]


def run_queued_job(
    database: Database, job_id: int, should_abort: Any = None, device: str = "auto"
) -> Outcome | None:
    """The task body: the same ``process_job`` as the local runner, for one job id."""
    from trax.asr import ModelError
    from trax.pipeline import PipelineError

    jobs = SqlJobStore(database)
    job = jobs.claim(job_id=job_id)
    if job is None:
        log.info("job %d is not queued any more (done, cancelled or taken); skipping", job_id)
        return None
    batch = jobs.batch_by_id(job.batch_id)
    service = _service(database, device)
    try:
        service.pipeline(settings_of(batch, job))  # a model that can't load fails the job now
        outcome = process_job(job, batch, jobs, service, stop=should_abort or (lambda: False))
    except (ModelError, PipelineError) as exc:
        jobs.fail(job.id, str(exc))  # retrying on this worker would fail the same way
        return "failed"
    if outcome == "interrupted":
        # Only procrastinate's abort stops a queued job from outside: that is a cancel.
        jobs.mark_cancelled(job.id)
        return "cancelled"
    return outcome


def build_app(
    database: Database,
    stalled_after_s: float = 30.0,
    recovery_every_s: int = 5,
    device: str = "auto",
) -> procrastinate.App:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=_conninfo(database)))

    @app.task(name=TRANSCRIBE_TASK, queue=TRANSCRIBE_QUEUE, pass_context=True)
    def transcribe(context: procrastinate.JobContext, job_id: int) -> None:
        run_queued_job(database, job_id, context.should_abort, device)

    @app.periodic(cron=f"*/{recovery_every_s} * * * * *", periodic_id="recover")
    @app.task(name="trax.recover", queue=RECOVERY_QUEUE, pass_context=True)
    async def recover(context: procrastinate.JobContext, timestamp: int) -> None:
        manager = context.app.job_manager
        stalled = await manager.get_stalled_jobs(
            queue=TRANSCRIBE_QUEUE, seconds_since_heartbeat=stalled_after_s
        )
        jobs = SqlJobStore(database)
        for stalled_job in stalled:
            job_id = int(str(stalled_job.task_kwargs["job_id"]))
            # Ours first: the retried delivery must find the job queued again.
            await asyncio.to_thread(jobs.release, job_id)
            await manager.retry_job(stalled_job)
            log.warning("job %d: its worker stopped; queued again", job_id)

    return app


def enqueue(database: Database, jobs: SqlJobStore, batch: Batch) -> int:
    """Hand every queued job of ``batch`` to the distributed queue; return how many."""
    ensure_queue_schema(database)
    app = build_app(database)
    pending = jobs.jobs(batch.id, status="queued")
    with app.open():
        task = app.tasks[TRANSCRIBE_TASK]
        for job in pending:
            queue_id = task.configure(priority=job.priority).defer(job_id=job.id)
            jobs.set_queue_job(job.id, queue_id)
    return len(pending)


def cancel_in_queue(database: Database, queue_job_ids: list[int]) -> None:
    """Ask procrastinate to abort running deliveries and drop pending ones."""
    app = build_app(database)
    with app.open():
        for queue_id in queue_job_ids:
            app.job_manager.cancel_job_by_id(queue_id, abort=True)


def run_worker(
    database: Database,
    concurrency: int = 1,
    stalled_after_s: float = 30.0,
    heartbeat_s: float = 10.0,
    recovery_every_s: int = 5,
    device: str = "auto",
) -> None:
    """Serve both queues until stopped: transcriptions, and recovery beside them."""
    ensure_queue_schema(database)
    app = build_app(database, stalled_after_s, recovery_every_s, device)
    name = f"trax@{socket.gethostname()}:{os.getpid()}"

    async def serve() -> None:
        async with app.open_async():
            # The recovery worker lives as long as the transcription worker, which
            # owns the signal handlers (Ctrl-C: finish current jobs, then stop).
            recovery = asyncio.create_task(
                app.run_worker_async(
                    queues=[RECOVERY_QUEUE],
                    concurrency=1,
                    name=f"{name}/recovery",
                    install_signal_handlers=False,
                    update_heartbeat_interval=heartbeat_s,
                    stalled_worker_timeout=stalled_after_s,
                )
            )
            try:
                await app.run_worker_async(
                    queues=[TRANSCRIBE_QUEUE],
                    concurrency=concurrency,
                    name=name,
                    update_heartbeat_interval=heartbeat_s,
                    stalled_worker_timeout=stalled_after_s,
                )
            finally:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery

    asyncio.run(serve())
