"""Submitting a batch and summing it up: what every front end does with many files.

``trax transcribe``, and later the HTTP server, turn paths and settings into
a persisted batch of jobs here, then either run it in-process (the local
runner) or hand it to the distributed queue; its outcome is summarised here
too, so front ends only present it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trax.core import TranscriptionSettings
from trax.jobs.runner import batch_name
from trax.jobs.store import Batch, Job, SqlJobStore

if TYPE_CHECKING:
    from trax.store import Database, TranscriptStore


@dataclass(frozen=True, slots=True)
class Submission:
    """A submitted batch (None when no path held a file), the paths that failed up
    front with why, and how many jobs went to the queue (None: run them here)."""

    batch: Batch | None
    problems: list[tuple[Path, str]]
    enqueued: int | None = None


def submit_batch(
    database: Database,
    paths: Sequence[Path],
    settings: TranscriptionSettings,
    formats: Sequence[str],
    output_dir: Path,
    *,
    force: bool = False,
    name: str | None = None,
    priority: int = 0,
    queue: bool = False,
) -> Submission:
    """Create (or extend, or resume) the batch for these files and settings.

    Without a ``name`` the same paths, settings and outputs give the same
    batch, so submitting a killed command again resumes it. ``queue`` hands the
    jobs to ``trax worker`` processes (PostgreSQL only: checked before anything
    is written).
    """
    from trax.pipeline import collect_inputs

    if queue:
        from trax.jobs.queue import require_postgresql

        require_postgresql(database)
    inputs, problems = collect_inputs(paths, output_dir)
    if not inputs:
        return Submission(None, problems)
    jobs = SqlJobStore(database)
    batch, _ = jobs.create_batch(
        name or jobs.next_run_name(batch_name(paths, settings, output_dir, formats, force)),
        settings.to_dict(),
        formats,
        str(output_dir),
        force,
        [(str(i.path), str(i.export_base)) for i in inputs],
        priority,
        queued=queue,
    )
    if not queue:
        return Submission(batch, problems)
    from trax.jobs.queue import enqueue

    return Submission(batch, problems, enqueue(database, jobs, batch))


def batch_summary(
    batch: Batch | None,
    batch_jobs: list[Job],
    problems: list[tuple[Path, str]],
    store: TranscriptStore,
) -> dict[str, Any]:
    """Every file of a batch (and every path that failed up front): status, error,
    transcript, text and exports, with the counts."""
    files: list[dict[str, Any]] = [
        {"path": str(path), "status": "failed", "error": problem} for path, problem in problems
    ]
    for job in batch_jobs:
        entry: dict[str, Any] = {
            "path": job.path,
            "status": job.status,
            "error": job.error,
            "job_id": job.id,
            "attempts": job.attempts,
        }
        if job.transcript_id is not None:
            transcript = store.get(job.transcript_id)
            entry |= {
                "transcript_id": job.transcript_id,
                "cached": job.cached,
                "duration_s": job.duration_s,
                "language": transcript.language if transcript else None,
                "text": transcript.text if transcript else None,
                "exports": job.exports,
            }
        files.append(entry)
    statuses = [f["status"] for f in files]
    return {
        "batch": batch.name if batch else None,
        "files": files,
        "done": sum(s == "done" for s in statuses),
        "cached": sum(bool(f.get("cached")) for f in files),
        "failed": statuses.count("failed"),
        "cancelled": statuses.count("cancelled"),
    }
