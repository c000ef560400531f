"""``trax jobs …`` and ``trax worker``: batches, their jobs, and distributed workers."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from trax.cli.main import EXIT_FAILED, EXIT_INTERRUPTED, Context, cli, clock, fail, pass_context

if TYPE_CHECKING:
    from trax.jobs import Batch, SqlJobStore


def _jobs(obj: Context) -> SqlJobStore:
    from trax.jobs import SqlJobStore

    return SqlJobStore(obj.store().database)


def _batch(jobs: SqlJobStore, name: str) -> Batch:
    batch = jobs.get_batch(name)
    if batch is None:
        fail(f"no batch named {name!r} (see `trax jobs list`)")
    return batch


@cli.group()
def jobs() -> None:
    """Batches of transcription jobs: list, inspect, retry, cancel, resume."""


@jobs.command("list")
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
@pass_context
def jobs_list(obj: Context, limit: int, as_json: bool) -> None:
    """Batches, newest first, with their jobs per status."""
    rows = _jobs(obj).batches(limit)
    if as_json:
        out = [
            {
                "batch": r.batch.name,
                "id": r.batch.id,
                "created_at": r.batch.created_at.isoformat(),
                "queued_remotely": r.batch.queued,
                "audio_s": round(r.audio_s, 3),
                **r.counts,
            }
            for r in rows
        ]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no batches yet: run `trax transcribe PATH…`", err=True)
        return
    click.echo(f"{'BATCH':40}  {'CREATED':16}  {'DONE':>5} {'FAILED':>6} {'LEFT':>5}  AUDIO")
    for r in rows:
        left = r.counts["queued"] + r.counts["running"]
        click.echo(
            f"{r.batch.name[:40]:40}  {r.batch.created_at:%Y-%m-%d %H:%M}  "
            f"{r.counts['done']:>5} {r.counts['failed']:>6} {left:>5}  {clock(r.audio_s)}"
        )


@jobs.command("show")
@click.argument("batch_name")
@click.option("--status", type=click.Choice(["queued", "running", "done", "failed", "cancelled"]))
@click.option("--json", "as_json", is_flag=True)
@pass_context
def jobs_show(obj: Context, batch_name: str, status: str | None, as_json: bool) -> None:
    """The jobs of one batch: status, attempts, progress, error."""
    from trax.cli.transcribe import shown

    store = _jobs(obj)
    batch = _batch(store, batch_name)
    rows = store.jobs(batch.id, status)
    if as_json:
        out = [
            {
                "id": j.id,
                "path": j.path,
                "status": j.status,
                "attempts": j.attempts,
                "error": j.error,
                "position_s": j.position_s,
                "duration_s": j.duration_s,
                "transcript_id": j.transcript_id,
                "worker": j.worker,
                "pipeline": j.pipeline,
                "priority": j.priority,
                "exports": j.exports,
            }
            for j in rows
        ]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    click.echo(
        f"batch {batch.name} → {shown(batch.output_dir)} "
        f"({', '.join(batch.formats) or 'no exports'})"
    )
    for j in rows:
        if j.status == "running" and j.duration_s:
            state = f"running {j.position_s / j.duration_s:4.0%}"
        else:
            state = j.status
        detail = f"  {j.error}" if j.error else (f"  #{j.transcript_id}" if j.transcript_id else "")
        click.echo(f"{j.id:>6}  {state:12}  try {j.attempts}  {shown(j.path)}{detail}")


@jobs.command("retry")
@click.argument("batch_name")
@pass_context
def jobs_retry(obj: Context, batch_name: str) -> None:
    """Run the failed (and cancelled) jobs of a batch again — only those."""
    store = _jobs(obj)
    batch = _batch(store, batch_name)
    again = [j.id for j in store.jobs(batch.id) if j.status in ("failed", "cancelled")]
    count = store.retry(again)
    click.echo(f"batch {batch.name}: {count} job(s) queued again", err=True)
    _continue(obj, store, batch)


@jobs.command("resume")
@click.argument("batch_name")
@pass_context
def jobs_resume(obj: Context, batch_name: str) -> None:
    """Finish a batch that was interrupted or killed: queued and orphaned jobs run again."""
    store = _jobs(obj)
    _continue(obj, store, _batch(store, batch_name))


def _continue(obj: Context, store: SqlJobStore, batch: Batch) -> None:
    """Run a batch's queued jobs here, or hand them to the workers if it is a queued batch."""
    if batch.queued:
        from trax.jobs.queue import QueueError, enqueue

        try:
            count = enqueue(store.database, store, batch)
        except QueueError as exc:
            fail(exc)
        click.echo(f"batch {batch.name}: {count} job(s) enqueued for trax worker", err=True)
        return
    from trax.cli.transcribe import finish_batch, run_local_batch

    elapsed = run_local_batch(obj, store, batch, quiet=False, as_json=False)
    finish_batch(store, obj.store(), batch, [], quiet=False, as_json=False, elapsed_s=elapsed)


@jobs.command("cancel")
@click.argument("batch_name")
@click.option("--job", "job_ids", type=int, multiple=True, help="Only these job ids.")
@pass_context
def jobs_cancel(obj: Context, batch_name: str, job_ids: tuple[int, ...]) -> None:
    """Cancel queued jobs now; running ones stop at their next progress report."""
    store = _jobs(obj)
    batch = _batch(store, batch_name)
    targets = [j for j in store.jobs(batch.id) if not job_ids or j.id in job_ids]
    queued, running = store.request_cancel([j.id for j in targets])
    if batch.queued and store.database.dialect == "postgresql":
        from trax.jobs.queue import QueueError, cancel_in_queue

        # By job id, not by the recorded delivery id: a job whose id was never
        # recorded (a kill during --queue) is found and aborted all the same.
        live = [j.id for j in targets if j.status in ("queued", "running")]
        try:
            cancel_in_queue(store.database, live)
        except QueueError as exc:
            fail(exc, EXIT_FAILED)
    click.echo(
        f"batch {batch.name}: {queued} cancelled, {running} running job(s) asked to stop", err=True
    )


@cli.command()
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Jobs transcribed at once by this worker (one model shared).",
)
@click.option(
    "--stalled-after",
    default=20.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds without a worker heartbeat (and without progress on its job) before "
    "its jobs are given to other workers.",
)
@click.option(
    "--heartbeat",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between this worker's heartbeats (keep several within --stalled-after).",
)
@click.option(
    "--recovery-every",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5),
    help="Seconds between reconciliation passes: stalled jobs given to others, the queue "
    "and the jobs table made to agree.",
)
@click.option(
    "--give-up-after",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds the database may stay unreachable before this worker exits (status 1).",
)
@click.option(
    "--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"])
)
@pass_context
def worker(
    obj: Context,
    concurrency: int,
    stalled_after: float,
    heartbeat: float,
    recovery_every: float,
    give_up_after: float,
    device: str,
) -> None:
    """Take jobs from the PostgreSQL queue (`trax transcribe --queue`) until stopped.

    With the defaults, a job whose worker died (killed, machine lost) is given
    to another worker within about 25 s (--stalled-after + --recovery-every).
    Lost database connections are retried with backoff; the worker exits only
    when the database stays unreachable for --give-up-after seconds, with the
    reason on one line. Ctrl-C (or SIGTERM) stops it after its current jobs.
    """
    import os

    from trax.jobs.queue import QueueError, require_postgresql, run_worker

    if stalled_after < 2 * heartbeat:
        # A worker would look stalled between two of its own heartbeats.
        fail("--stalled-after must be at least twice --heartbeat")
    database = obj.store().database
    try:
        require_postgresql(database)
    except QueueError as exc:
        fail(exc)
    click.echo(
        f"worker ready (concurrency {concurrency}); Ctrl-C to stop after current jobs", err=True
    )
    try:
        run_worker(
            database,
            concurrency,
            stalled_after,
            heartbeat,
            recovery_every,
            device,
            give_up_after,
        )
    except QueueError as exc:
        try:
            fail(exc, EXIT_FAILED)
        except SystemExit as exiting:
            # Now, not after job threads stuck on a dead connection (their jobs
            # are given back by the other workers' reconciliation).
            sys.stderr.flush()
            os._exit(int(exiting.code or EXIT_FAILED))
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
