"""The transcription service: probe → dedup lookup → run (with the stage cache) → save.

The pipeline computes and touches no database; this layer around it stores,
deduplicates and reuses. Every caller goes through it — the CLI, the local job
runner, the distributed worker task, the Python API when it is asked to store
— so the pipeline is built in one place and a model is loaded once per process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trax.core import Transcript, TranscriptionSettings, digest

if TYPE_CHECKING:
    from trax.asr import Transcriber
    from trax.media import PyAVDecoder
    from trax.pipeline.run import Pipeline, PreparedMedia, ProgressCallback
    from trax.store import Database, TranscriptStore
    from trax.store.cache import StageCache
    from trax.store.leases import Leases
    from trax.store.transcripts import SaveCheck

log = logging.getLogger(__name__)

WAIT_S = 0.5
"""How often a process waiting for another to finish the same content looks again."""


class TranscriptionService:
    """Transcribes files with any settings, reusing stored transcripts and cached stages."""

    def __init__(
        self,
        store: TranscriptStore,
        cache: StageCache | None = None,
        device: str = "auto",
        decoder: PyAVDecoder | None = None,
        transcriber: Transcriber | None = None,
        leases: Leases | None = None,
    ) -> None:
        from trax.media import PyAVDecoder

        self.store = store
        self.cache = cache
        self.leases = leases
        self.device = device
        self.decoder = decoder or PyAVDecoder()
        self._transcribers: dict[str, Transcriber] = {}
        if transcriber is not None:
            self._transcribers[transcriber.model_id] = transcriber
        self._pipelines: dict[TranscriptionSettings, Pipeline] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, database: Database, device: str = "auto") -> TranscriptionService:
        """The service on one database: its transcripts and its stage cache."""
        from trax.store import SqlTranscriptStore
        from trax.store.cache import SqlStageCache
        from trax.store.leases import SqlLeases

        return cls(
            SqlTranscriptStore(database),
            SqlStageCache(database),
            device,
            leases=SqlLeases(database),
        )

    def pipeline(self, settings: TranscriptionSettings) -> Pipeline:
        """The pipeline for these settings, built once; pipelines share a model's weights.

        Raises ``ModelError`` or ``PipelineError`` before any file is touched.
        """
        from trax.asr import FasterWhisperTranscriber, resolve_model
        from trax.pipeline import build

        with self._lock:
            if settings not in self._pipelines:
                model = resolve_model(settings.model)
                transcriber = self._transcribers.get(model.model_id)
                if transcriber is None:
                    transcriber = FasterWhisperTranscriber(model, device=self.device)
                    self._transcribers[model.model_id] = transcriber
                self._pipelines[settings] = build(settings, transcriber, decoder=self.decoder)
            return self._pipelines[settings]

    def prepare(self, path: Path, decode_ahead: bool = True) -> PreparedMedia:
        """Probe and hash a file and decode its first window (ahead of its turn)."""
        from trax.pipeline.run import prepare

        return prepare(path, self.decoder, decode_ahead)

    def transcribe(
        self,
        path: Path,
        settings: TranscriptionSettings,
        *,
        force: bool = False,
        since: datetime | None = None,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        prepared: PreparedMedia | None = None,
        checks: Sequence[SaveCheck] = (),
    ) -> tuple[Transcript, bool]:
        """Transcribe and store one file; return (transcript, reused_from_store).

        The same content run through the same stages (same model weights,
        versions and settings) is never transcribed twice, also by processes
        working at the same time: the first takes the content's lease, the
        others wait for it and then reuse its transcript. ``force`` runs again
        and ignores the cache, except that transcripts made since ``since``
        (earlier in the same forced batch) still count. Nothing is stored unless
        the whole run succeeded and every one of ``checks`` passed in the
        transaction that saves.
        """
        from trax.pipeline.run import Interrupted
        from trax.store.leases import LeaseLost

        pipeline = self.pipeline(settings)
        prepared = prepared or self.prepare(path, decode_ahead=False)
        stop = should_stop or (lambda: False)
        try:
            while True:
                found = self._stored(prepared, pipeline, force, since)
                if found is not None:
                    return found, True
                lease = (
                    self.leases.acquire(self._lease_key(prepared, pipeline))
                    if self.leases
                    else None
                )
                if self.leases is not None and lease is None:
                    # Another process is transcribing these bytes with these stages.
                    if on_progress is not None:
                        on_progress(0.0, prepared.media.duration_s)
                    if stop():
                        raise Interrupted
                    threading.Event().wait(WAIT_S)
                    continue
                try:
                    found = self._stored(prepared, pipeline, force, since)
                    if found is not None:
                        return found, True  # the lease's previous holder stored it
                    transcript = pipeline.run(
                        prepared,
                        cache=self.cache,
                        refresh=force,
                        on_progress=on_progress,
                        should_stop=should_stop,
                    )
                    return self.store.save(
                        transcript, [*checks, *([lease.check] if lease else [])]
                    ), False
                except LeaseLost:
                    # Paused past the lease while another process took over: look again.
                    log.warning("%s: another process took over this content; looking again", path)
                    prepared.close()
                    prepared = self.prepare(path, decode_ahead=False)
                finally:
                    if lease is not None:
                        lease.close()
        finally:
            prepared.close()

    def _stored(
        self,
        prepared: PreparedMedia,
        pipeline: Pipeline,
        force: bool,
        since: datetime | None,
    ) -> Transcript | None:
        if force and since is None:
            return None
        return self.store.find(
            prepared.media.sha256, pipeline.key, created_after=since if force else None
        )

    @staticmethod
    def _lease_key(prepared: PreparedMedia, pipeline: Pipeline) -> str:
        return digest(["transcribe", prepared.media.sha256, pipeline.key])
