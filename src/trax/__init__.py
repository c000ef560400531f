"""Trax: local-first transcription of any media into stored, searchable transcripts.

The quickest way in from Python::

    import trax
    transcript = trax.transcribe("interview.mp3")          # nothing is written anywhere
    print(transcript.text)
    trax.transcribe("interview.mp3", store=True)            # stored (and deduplicated)

For batches and other storage, use ``trax.service.TranscriptionService``;
``trax.pipelines()`` lists the pipeline versions and their stages. Every error
Trax raises on purpose is a ``trax.TraxError``; its kinds (``trax.MediaError``,
``trax.ModelError``, …) are importable from here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trax.asr.models import ModelError
    from trax.config import ConfigError
    from trax.core import Transcript
    from trax.errors import TraxError
    from trax.eval import EvalError
    from trax.export import ExportError
    from trax.jobs.queue import QueueError
    from trax.languages import LanguageError
    from trax.media.errors import MediaError
    from trax.payload import PayloadError
    from trax.pipeline import PipelineInfo
    from trax.pipeline.versions import PipelineError
    from trax.store.database import DatabaseError

_ERRORS = {
    "TraxError": "trax.errors",
    "ConfigError": "trax.config",
    "DatabaseError": "trax.store.database",
    "EvalError": "trax.eval",
    "ExportError": "trax.export",
    "LanguageError": "trax.languages",
    "MediaError": "trax.media.errors",
    "ModelError": "trax.asr.models",
    "PayloadError": "trax.payload",
    "PipelineError": "trax.pipeline.versions",
    "QueueError": "trax.jobs.queue",
}
"""Where each public error class lives: imported on first use, so that ``import trax``
stays light (a CLI's start-up time is its first impression)."""


def __getattr__(name: str) -> Any:
    module = _ERRORS.get(name)
    if module is None:
        raise AttributeError(f"module 'trax' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # found directly next time
    return value


def transcribe(
    path: str | Path,
    *,
    store: bool = False,
    database_url: str | None = None,
    force: bool = False,
    device: str = "auto",
    **settings: Any,
) -> Transcript:
    """Transcribe one file and return the transcript.

    Without ``store`` this is a pure run: no database is created, opened or
    written. ``store=True`` saves the transcript (in ``database_url``, else the
    configured database) and reuses a stored one made the same way unless
    ``force``. ``settings`` are the fields of ``trax.core.TranscriptionSettings``
    (``model``, ``language``, ``beam_size``, ``pipeline``, …).
    """
    from dataclasses import replace

    from trax.core import TranscriptionSettings
    from trax.errors import TraxError
    from trax.languages import checked_language

    request = TranscriptionSettings(**settings)
    request = replace(request, language=checked_language(request.language, request.model))
    if not store:
        if database_url is not None or force:
            raise TraxError("database_url and force apply only with store=True")
        from trax.pipeline import build

        return build(request, device=device).run(Path(path))
    from trax.service import TranscriptionService
    from trax.store import open_database

    service = TranscriptionService.open(open_database(database_url), device)
    transcript, _ = service.transcribe(Path(path), request, force=force)
    return transcript


def pipelines() -> list[PipelineInfo]:
    """Every pipeline version with its stages, and whether each can run now."""
    from trax.pipeline import describe

    return describe()


__all__ = [
    "ConfigError",
    "DatabaseError",
    "EvalError",
    "ExportError",
    "LanguageError",
    "MediaError",
    "ModelError",
    "PayloadError",
    "PipelineError",
    "QueueError",
    "TraxError",
    "pipelines",
    "transcribe",
]
