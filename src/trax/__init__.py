"""Trax: local-first transcription of any media into stored, searchable transcripts.

The quickest way in from Python::

    import trax
    transcript = trax.transcribe("interview.mp3")
    print(transcript.text)

For batches, custom stores or other settings, compose the pieces directly:
``trax.pipeline.Pipeline`` with a ``trax.store.SqlTranscriptStore``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trax.core import Transcript


def transcribe(
    path: str | Path, database_url: str | None = None, force: bool = False, **settings: Any
) -> Transcript:
    """Transcribe one file with the given settings, store it and return the transcript.

    ``settings`` are the fields of ``trax.core.TranscriptionSettings``
    (``model``, ``language``, ``beam_size``, ``pipeline``, …).
    """
    from trax.core import TranscriptionSettings
    from trax.pipeline import Pipeline
    from trax.store import SqlTranscriptStore, open_database
    from trax.store.cache import SqlStageCache

    database = open_database(database_url)
    pipeline = Pipeline(
        TranscriptionSettings(**settings),
        SqlTranscriptStore(database),
        cache=SqlStageCache(database),
    )
    transcript, _ = pipeline.transcribe(Path(path), force=force)
    return transcript


__all__ = ["transcribe"]
