"""Speech to text: the model registry and the faster-whisper recogniser."""

from __future__ import annotations

from trax.asr.models import (
    BUNDLED,
    DEFAULT_MODEL,
    ModelEntry,
    ModelError,
    ResolvedModel,
    list_models,
    resolve_model,
)
from trax.asr.transcriber import (
    FasterWhisperTranscriber,
    Transcriber,
    WindowResult,
)

__all__ = [
    "BUNDLED",
    "DEFAULT_MODEL",
    "FasterWhisperTranscriber",
    "ModelEntry",
    "ModelError",
    "ResolvedModel",
    "Transcriber",
    "WindowResult",
    "list_models",
    "resolve_model",
]
