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
from typing import Literal

from trax.asr import ModelError
from trax.core import TranscriptionSettings
from trax.failpoints import failpoint
from trax.jobs.store import Batch, Job, JobStore, SqlJobStore
from trax.media import MediaError
from trax.pipeline import PipelineError
from trax.pipeline.run import Interrupted, PreparedMedia, ProgressCallback
from trax.service import TranscriptionService

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
"""How often a running job writes its progress (and reads whether it was cancelled)."""

Outcome = Literal["done", "failed", "cancelled", "interrupted"]


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
    probed, partly decoded media, or the error that probing raised.
    """
    from trax.export import export_beside

    last_beat = 0.0
    cancelled = False

    def progress(position: float, duration: float | None) -> None:
        nonlocal last_beat, cancelled
        if on_progress is not None:
            on_progress(position, duration)
        if time.monotonic() - last_beat >= HEARTBEAT_S:
            last_beat = time.monotonic()
            cancelled = jobs.heartbeat(job.id, position, duration)

    try:
        if isinstance(prepared, BaseException):
            raise prepared
        transcript, cached = service.transcribe(
            Path(job.path),
            settings_of(batch, job),
            force=batch.force,
            on_progress=progress,
            since=job.created_at if batch.force else None,
            should_stop=lambda: cancelled or stop(),
            prepared=prepared,
        )
        failpoint("job.before_export")
        exports = [str(p) for p in export_beside(transcript, batch.formats, Path(job.export_base))]
        failpoint("job.before_done")
        assert transcript.id is not None
        jobs.finish(job.id, transcript.id, cached, exports, transcript.duration_s)
        return "done"
    except Interrupted:
        if cancelled:
            jobs.mark_cancelled(job.id)
            return "cancelled"
        jobs.release(job.id)
        return "interrupted"
    except MediaError as exc:
        jobs.fail(job.id, str(exc))
    except OSError as exc:
        jobs.fail(job.id, exc.strerror or str(exc))
    except (ModelError, PipelineError, KeyboardInterrupt):
        jobs.release(job.id)  # not this file's fault: it goes back to the queue
        raise
    except Exception as exc:
        log.exception("unexpected error on %s", job.path)
        jobs.fail(job.id, f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0])
    return "failed"


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
                self.jobs.release(job.id)

    def _fill(self) -> None:
        while not self.stop.is_set():
            if not self.room.acquire(timeout=0.1):
                continue
            job = self.jobs.claim(self.batch.id)
            if job is None:
                break
            prepared: PreparedMedia | BaseException
            try:
                prepared = self.service.prepare(Path(job.path))
            except Exception as exc:  # noqa: BLE001 - handed to process_job, which records it
                prepared = exc
            self.ready.put((job, prepared))
        self.ready.put(self._END)

    def __iter__(self) -> Iterator[tuple[Job, PreparedMedia | BaseException]]:
        while True:
            item = self.ready.get()
            if item is self._END:
                return
            assert isinstance(item, tuple)
            self.room.release()
            yield item


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
                    self.jobs.release(job.id)
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
