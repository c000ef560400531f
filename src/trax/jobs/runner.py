"""Run jobs: the same task code for the local runner and for distributed workers.

``process_job`` takes one claimed job from start to finish. Its order of
effects is what makes a crash at any point harmless: the transcript is stored
in one transaction, exports are then written atomically, and only then is the
job marked done. A rerun finds a stored transcript (even a forced one, by its
creation time) and only redoes what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from trax.asr import ModelError
from trax.core import Transcript, TranscriptionSettings
from trax.failpoints import failpoint
from trax.jobs.store import Batch, ClaimLost, Job, JobStore, Signal, SqlJobStore
from trax.media import MediaError
from trax.pipeline import PipelineError
from trax.pipeline.run import Interrupted, PreparedMedia, ProgressCallback
from trax.service import TranscriptionService
from trax.store.database import DatabaseError

if TYPE_CHECKING:
    from trax.export import SubtitleOptions

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
"""How often a running job writes its progress (and reads whether it was cancelled)."""

Outcome = Literal["done", "failed", "cancelled", "interrupted", "superseded"]
"""How an attempt ended; ``superseded``: the job went to another worker meanwhile."""


def batch_name(
    paths: Sequence[Path],
    settings: TranscriptionSettings,
    output_dir: Path,
    formats: Sequence[str],
    force: bool,
) -> str:
    """A stable name for a command: the same paths, settings and outputs give the same batch.

    That is what lets re-running a killed command resume it (and a folder that
    gained files extends its batch with them).
    """
    identity = {
        "paths": sorted(str(p.resolve()) for p in paths),
        "settings": settings.fingerprint(),
        "output_dir": str(output_dir.resolve()),
        "formats": list(formats),
        "force": force,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    first = paths[0].resolve().name if paths else "batch"
    return f"{first[:40]}-{digest}"


def settings_of(batch: Batch, job: Job) -> TranscriptionSettings:
    return TranscriptionSettings.from_dict(batch.settings | {"pipeline": job.pipeline})


def subtitles_of(batch: Batch) -> SubtitleOptions | None:
    """The subtitle layout the batch was submitted with (kept beside its settings)."""
    from trax.export import SubtitleOptions

    layout = batch.settings.get("subtitles")
    return SubtitleOptions(**layout) if layout else None


def process_job(
    job: Job,
    batch: Batch,
    jobs: JobStore,
    service: TranscriptionService,
    stop: Callable[[], bool] = lambda: False,
    on_progress: ProgressCallback | None = None,
    prepared: PreparedMedia | BaseException | None = None,
) -> Outcome:
    """Transcribe, store and export one claimed job, and record how it ended.

    ``prepared`` is what the prefetcher made of the file ahead of time: the
    probed, partly decoded media, or the error that probing raised. Every
    change to the job is fenced by this claim's attempt: when the job went to
    another worker meanwhile, this one stops, stores nothing and changes nothing.
    """
    from trax.export import ExportError, export_beside

    attempt = job.attempts
    last_beat = 0.0
    heard: Signal = "go"

    def progress(position: float, duration: float | None) -> None:
        nonlocal last_beat, heard
        if on_progress is not None:
            on_progress(position, duration)
        if time.monotonic() - last_beat >= HEARTBEAT_S:
            last_beat = time.monotonic()
            heard = jobs.heartbeat(job.id, position, duration, attempt=attempt)

    transcript_id = job.transcript_id
    try:
        transcript, cached = _stored_result(job, service)
        if transcript is not None:
            if isinstance(prepared, PreparedMedia):
                prepared.close()
        else:
            if isinstance(prepared, BaseException):
                raise prepared
            transcript, cached = service.transcribe(
                Path(job.path),
                settings_of(batch, job),
                force=batch.force,
                on_progress=progress,
                since=batch.created_at if batch.force else None,
                should_stop=lambda: heard != "go" or stop(),
                prepared=prepared,
                checks=[jobs.fence(job)],
            )
        assert transcript.id is not None
        transcript_id = transcript.id
        failpoint("job.before_export")
        try:
            written = export_beside(
                transcript, batch.formats, Path(job.export_base), subtitles_of(batch)
            )
        except ExportError as exc:
            error = f"stored as #{transcript_id}, export failed: {exc}"
            jobs.fail(job.id, error, attempt=attempt, transcript_id=transcript_id)
            return "failed"
        failpoint("job.before_done")
        exports = [str(p) for p in written]
        if not jobs.finish(
            job.id, transcript_id, cached, exports, transcript.duration_s, attempt=attempt
        ):
            return _superseded(job)
        return "done"
    except ClaimLost:
        return _superseded(job)
    except Interrupted:
        if heard == "lost":
            return _superseded(job)
        if heard == "cancel":
            jobs.mark_cancelled(job.id, attempt=attempt)
            return "cancelled"
        jobs.release(job.id, attempt=attempt)
        return "interrupted"
    except MediaError as exc:
        jobs.fail(job.id, str(exc), attempt=attempt)
    except OSError as exc:
        jobs.fail(job.id, _reason(exc), attempt=attempt)
    except DatabaseError:
        raise  # the database can't be used (full, damaged): no job can be recorded either
    except (ModelError, PipelineError, KeyboardInterrupt):
        jobs.release(job.id, attempt=attempt)  # not this file's fault: it goes back to the queue
        raise
    except Exception as exc:
        log.exception("unexpected error on %s", job.path)
        error = f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0]
        jobs.fail(job.id, error, attempt=attempt, transcript_id=transcript_id)
    return "failed"


def _stored_result(job: Job, service: TranscriptionService) -> tuple[Transcript | None, bool]:
    """The transcript an earlier attempt of this job stored, when only its exports are missing.

    (It crashed after saving, or its export failed: a retry exports again and
    neither transcribes nor stores another version.)
    """
    if job.transcript_id is None:
        return None, False
    transcript = service.store.get(job.transcript_id)
    return transcript, transcript is not None


def _superseded(job: Job) -> Outcome:
    log.warning(
        "job %d: given to another worker while attempt %d ran; its result is discarded",
        job.id,
        job.attempts,
    )
    return "superseded"


def _reason(exc: BaseException) -> str:
    """``PATH: reason`` for an OSError, the message otherwise: one line either way."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Prefetcher:
    """Claims and prepares the next job in a thread while the current one is recognised.

    Probing (hashing the whole file) and decoding the first window overlap
    recognition of the file before. Memory stays bounded: at most ``depth``
    files are prepared ahead, each holding a single decoded window.
    """

    _END = object()

    def __init__(
        self,
        jobs: SqlJobStore,
        batch: Batch,
        service: TranscriptionService,
        stop: threading.Event,
        depth: int = 1,
    ) -> None:
        self.jobs = jobs
        self.batch = batch
        self.service = service
        self.stop = stop
        self.ready: queue.Queue[object] = queue.Queue()
        # Claim only when there is room: never more than ``depth`` jobs held ahead.
        self.room = threading.Semaphore(depth)
        self.thread = threading.Thread(target=self._fill, name="trax-prefetch", daemon=True)

    def __enter__(self) -> Prefetcher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        """Give back whatever was claimed ahead and never processed."""
        self.stop.set()
        self.thread.join()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                item = self.ready.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, tuple):
                job, prepared = item
                if isinstance(prepared, PreparedMedia):
                    prepared.close()
                self.jobs.release(job.id, attempt=job.attempts)

    def _fill(self) -> None:
        try:
            while not self.stop.is_set():
                if not self.room.acquire(timeout=0.1):
                    continue
                job = self.jobs.claim(self.batch.id)
                if job is None:
                    break
                prepared: PreparedMedia | BaseException
                try:
                    # Paths are stored absolute; a batch from before that holds relative
                    # ones, which (as they always did) only work from the folder it ran in.
                    prepared = self.service.prepare(Path(job.path))
                except Exception as exc:  # noqa: BLE001 - handed to process_job, which records it
                    prepared = exc
                self.ready.put((job, prepared))
        except Exception as exc:  # noqa: BLE001 - the database failed (full, gone): raised in the runner
            self.ready.put(_Failed(exc))
        self.ready.put(self._END)

    def __iter__(self) -> Iterator[tuple[Job, PreparedMedia | BaseException]]:
        while True:
            item = self.ready.get()
            if item is self._END:
                return
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, tuple)
            self.room.release()
            yield item


@dataclass(frozen=True, slots=True)
class _Failed:
    """What stopped the prefetch thread, to be raised where the runner can report it."""

    error: Exception


@dataclass
class LocalRunner:
    """Works through a batch in this process, with the model loaded once."""

    jobs: SqlJobStore
    service: TranscriptionService
    stop: threading.Event

    def run(
        self,
        batch: Batch,
        on_start: Callable[[Job], None] | None = None,
        on_progress: ProgressCallback | None = None,
        on_end: Callable[[Job, Outcome], None] | None = None,
    ) -> bool:
        """Process queued jobs until none are left; False when stopped early."""
        recovered = self.jobs.recover(batch.id)
        if recovered:
            log.info("requeued %d job(s) left running by a process that is gone", recovered)
        with Prefetcher(self.jobs, batch, self.service, threading.Event()) as upcoming:
            for job, prepared in upcoming:
                if self.stop.is_set():
                    if isinstance(prepared, PreparedMedia):
                        prepared.close()
                    self.jobs.release(job.id, attempt=job.attempts)
                    return False
                if on_start is not None:
                    on_start(job)
                outcome = process_job(
                    job, batch, self.jobs, self.service, self.stop.is_set, on_progress, prepared
                )
                if on_end is not None:
                    on_end(self.jobs.get(job.id) or job, outcome)
                if outcome == "interrupted":
                    return False
        return not self.stop.is_set()
