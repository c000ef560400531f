"""Submitting a batch and summing it up: what every front end does with many files.

``trax transcribe``, and later the HTTP server, turn paths and settings into
a persisted batch of jobs here, then either run it in-process (the local
runner) or hand it to the distributed queue; its outcome is summarised here
too, so front ends only present it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trax.core import TranscriptionSettings
from trax.jobs.runner import batch_name
from trax.jobs.store import Batch, Job, SqlJobStore

if TYPE_CHECKING:
    from trax.export import SubtitleOptions
    from trax.pipeline.run import MediaInput
    from trax.store import Database, TranscriptStore


@dataclass(frozen=True, slots=True)
class Conflict:
    """An input whose own export base, ``wanted``, was taken (it got a numbered one).

    ``owner`` is the file whose exports are there (a job's path), or None when
    they are files Trax did not write; ``taken`` is one of them.
    """

    path: Path
    wanted: Path
    owner: str | None
    taken: Path


@dataclass(frozen=True, slots=True)
class Submission:
    """A submitted batch (None when no path held a file), the paths that failed up
    front with why, how many jobs went to the queue (None: run them here), and
    the inputs that export under another name than their own."""

    batch: Batch | None
    problems: list[tuple[Path, str]]
    enqueued: int | None = None
    conflicts: list[Conflict] = field(default_factory=list)


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
    overwrite: bool = False,
    subtitles: SubtitleOptions | None = None,
) -> Submission:
    """Create (or extend, or resume) the batch for these files and settings.

    Without a ``name`` the same paths, settings and outputs give the same
    batch, so submitting a killed command again resumes it. ``queue`` hands the
    jobs to ``trax worker`` processes (PostgreSQL only: checked before anything
    is written). ``overwrite`` lets exports replace whatever is at their own
    names (another file's exports, files Trax did not write). ``subtitles`` is
    the layout of srt and vtt exports, kept with the batch for whoever runs it.
    """
    from trax.pipeline import collect_inputs

    if queue:
        from trax.jobs.queue import require_postgresql

        require_postgresql(database)
    inputs, problems = collect_inputs(paths, output_dir)
    if not inputs:
        return Submission(None, problems)
    conflicts: list[Conflict] = []
    if not overwrite:
        inputs, conflicts = claim_export_bases(database, inputs)
    jobs = SqlJobStore(database)
    batch, _ = jobs.create_batch(
        name or jobs.next_run_name(batch_name(paths, settings, output_dir, formats, force)),
        settings.to_dict() | ({} if subtitles is None else {"subtitles": asdict(subtitles)}),
        formats,
        os.path.realpath(output_dir),  # like the jobs' paths: the same from any folder
        force,
        [(str(i.path), str(i.export_base)) for i in inputs],
        priority,
        queued=queue,
    )
    if not queue:
        return Submission(batch, problems, conflicts=conflicts)
    from trax.jobs.queue import enqueue

    return Submission(batch, problems, enqueue(database, jobs, batch), conflicts)


@dataclass(frozen=True, slots=True)
class _Holder:
    """A job that was given an export base: its file, and the content it had."""

    path: str
    status: str
    transcript_id: int | None
    sha256: str | None
    size_bytes: int | None


def claim_export_bases(
    database: Database, inputs: list[MediaInput]
) -> tuple[list[MediaInput], list[Conflict]]:
    """Move each input whose export base belongs to another file to ``base (2)``, ``(3)``, …

    The rule, so that an export never replaces a different file's unasked: an
    export base belongs to the file of the latest job that was given it (in
    this database) and still holds something. It is free for an input when
    that file is the same (the same absolute path, or the same content, by
    SHA-256) and, if no job holds it, when no export of any format exists
    there yet: a file Trax did not record (your own ``talk.txt`` beside
    ``talk.mp3``) is never overwritten either. Re-running a command,
    ``--force`` and a retry keep their export paths, and a file given a base
    by ``--overwrite`` owns it from then on; jobs that failed or were
    cancelled before anything was stored hold nothing. Two commands submitted
    at the very same moment may still pick the same free base.

    Returns the inputs, and a ``Conflict`` for each one that was moved
    because its own base was taken (not for numbers within this batch).
    """
    from trax.export import FORMATS, get_exporter
    from trax.pipeline.run import MediaInput, export_key, numbered_base

    extensions = [get_exporter(fmt).extension for fmt in FORMATS]
    in_batch = {export_key(i.export_base) for i in inputs}
    holders = _holders(database, [str(i.export_base) for i in inputs])
    claimed: list[MediaInput] = []
    conflicts: list[Conflict] = []
    for item in inputs:
        identity = _Identity(item.path)
        base, number = item.export_base, 1
        while True:
            # A numbered base that another input of this batch is called is skipped.
            if number == 1 or export_key(base) not in in_batch:
                if str(base) not in holders:
                    holders |= _holders(database, [str(base)])
                taken = _taken(identity, base, holders.get(str(base), []), extensions)
                if taken is None:
                    break
                if number == 1:
                    conflicts.append(Conflict(item.path, base, *taken))
            number += 1
            base = numbered_base(item.export_base, number)
        if base != item.export_base:
            in_batch.add(export_key(base))
        claimed.append(MediaInput(item.path, base))
    return claimed, conflicts


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
        # Batches made before paths were stored absolute hold paths relative to a
        # folder we cannot know: only content can tell, as it always did.
        if Path(holder.path).is_absolute() and os.path.realpath(holder.path) == self.real:
            return True
        if holder.sha256 is None or holder.size_bytes != self.size():
            return False  # the size first: hashing a whole file only when it may match
        return self.sha256() == holder.sha256


def _taken(
    identity: _Identity, base: Path, holders: list[_Holder], extensions: list[str]
) -> tuple[str | None, Path] | None:
    """None when ``base`` is free for this input; else who holds it (a job's path, or
    None for files Trax did not write) and one of the exports there."""
    holding = [h for h in holders if h.transcript_id is not None or h.status not in _NOTHING]
    owner = holding[-1] if holding else None  # the latest: --overwrite gives a base away
    if owner is not None and identity.same_as(owner):
        return None
    exports = [base.with_name(base.name + ext) for ext in extensions]
    present = next((path for path in exports if _exists(path)), None)
    if owner is not None:
        return owner.path, present or exports[0]
    return None if present is None else (None, present)


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
                .order_by(JobRow.id)
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
                "no_speech": transcript.no_speech if transcript else None,
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
        "no_speech": sum(bool(f.get("no_speech")) and f["status"] == "done" for f in files),
    }
