"""Submitting a batch and summing it up: what every front end does with many files.

``trax transcribe``, and later the HTTP server, turn paths and settings into
a persisted batch of jobs here, then either run it in-process (the local
runner) or hand it to the distributed queue; its outcome is summarised here
too, so front ends only present it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trax.core import TranscriptionSettings
from trax.jobs.runner import batch_name
from trax.jobs.store import Batch, Job, SqlJobStore

if TYPE_CHECKING:
    from trax.pipeline.run import MediaInput
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
    inputs = claim_export_bases(database, inputs)
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


@dataclass(frozen=True, slots=True)
class _Holder:
    """A job that was given an export base: its file, and the content it had."""

    path: str
    status: str
    transcript_id: int | None
    sha256: str | None
    size_bytes: int | None


def claim_export_bases(database: Database, inputs: list[MediaInput]) -> list[MediaInput]:
    """Move each input whose export base belongs to another file to ``base (2)``, ``(3)``, …

    The rule, so that an export never replaces a different file's: an export
    base belongs to the files of the jobs that were given it (in this
    database). It is free for an input when every such job is for the same
    file (the same absolute path, or the same content, by SHA-256) and, if no
    job was ever given it, when no export of any format exists there yet: a
    file Trax did not record (your own ``talk.txt`` beside ``talk.mp3``) is
    never overwritten either. Re-running a command, ``--force`` and a retry
    keep their export paths; jobs that failed or were cancelled before
    anything was stored hold nothing. Two commands submitted at the very same
    moment may still pick the same free base.
    """
    from trax.export import FORMATS, get_exporter
    from trax.pipeline.run import MediaInput, export_key, numbered_base

    extensions = [get_exporter(fmt).extension for fmt in FORMATS]
    in_batch = {export_key(i.export_base) for i in inputs}
    holders = _holders(database, [str(i.export_base) for i in inputs])
    claimed: list[MediaInput] = []
    for item in inputs:
        identity = _Identity(item.path)
        base, number = item.export_base, 1
        while True:
            # A numbered base that another input of this batch is called is skipped.
            if number == 1 or export_key(base) not in in_batch:
                if str(base) not in holders:
                    holders |= _holders(database, [str(base)])
                if _free_for(identity, base, holders.get(str(base), []), extensions):
                    break
            number += 1
            base = numbered_base(item.export_base, number)
        if base != item.export_base:
            in_batch.add(export_key(base))
        claimed.append(MediaInput(item.path, base))
    return claimed


class _Identity:
    """An input file as compared with a job's: its real path, and (only if asked) its content."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.real = os.path.realpath(path)
        self._sha256: str | None = None

    def size(self) -> int | None:
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    def sha256(self) -> str | None:
        from trax.media.probe import sha256_file

        if self._sha256 is None:
            try:
                self._sha256 = sha256_file(self.path)
            except Exception:  # noqa: BLE001 - unreadable: no content to match, a job says why
                return None
        return self._sha256

    def same_as(self, holder: _Holder) -> bool:
        # A relative path was relative to a folder we don't know: only content can tell.
        if Path(holder.path).is_absolute() and os.path.realpath(holder.path) == self.real:
            return True
        if holder.sha256 is None or holder.size_bytes != self.size():
            return False  # the size first: hashing a whole file only when it may match
        return self.sha256() == holder.sha256


def _free_for(
    identity: _Identity, base: Path, holders: list[_Holder], extensions: list[str]
) -> bool:
    holding = [h for h in holders if h.transcript_id is not None or h.status not in _NOTHING]
    if holding:
        return all(identity.same_as(h) for h in holding)
    return not any(_exists(base.with_name(base.name + ext)) for ext in extensions)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a folder we may not look into: writing there fails with its reason
        return False


_NOTHING = ("failed", "cancelled")
"""Statuses of jobs that wrote no exports, unless they stored a transcript."""


def _holders(database: Database, bases: list[str]) -> dict[str, list[_Holder]]:
    """The jobs given each of ``bases``, with the content of what they stored."""
    from sqlalchemy import select

    from trax.store.models import JobRow, MediaFileRow, TranscriptRow

    found: dict[str, list[_Holder]] = {base: [] for base in bases}
    with database.session() as session:
        for start in range(0, len(bases), 500):  # bounded IN lists
            query = (
                select(
                    JobRow.export_base,
                    JobRow.path,
                    JobRow.status,
                    JobRow.transcript_id,
                    MediaFileRow.sha256,
                    MediaFileRow.size_bytes,
                )
                .outerjoin(TranscriptRow, TranscriptRow.id == JobRow.transcript_id)
                .outerjoin(MediaFileRow, MediaFileRow.id == TranscriptRow.media_id)
                .where(JobRow.export_base.in_(bases[start : start + 500]))
            )
            for base, path, status, transcript_id, sha256, size in session.execute(query):
                found[base].append(_Holder(path, status, transcript_id, sha256, size))
    return found


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
