"""The ``diarize`` transcript stage: a speaker for every word and segment.

It reads the recording again through ``RunContext.audio`` (bounded windows),
diarizes it (``trax.diarize.run``), labels every word (``trax.diarize.words``)
and splits segments where the speaker changes; the ``sentences`` stage after
it regroups the words into sentences without crossing a speaker change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Final

from trax.diarize.models import EMBEDDING, SEGMENTATION, model_unavailable
from trax.diarize.run import DiarizationRuntime, DiarizationSettings, Diarizer
from trax.diarize.words import apply_speakers

if TYPE_CHECKING:
    from trax.core import Transcript
    from trax.pipeline.stages import RunContext


class DiarizeStage:
    """Speaker diarization, per word (see the module docstring)."""

    name: Final = "diarize"
    version: Final = "diarize/1"
    kind: Final = "transcript"
    adds = "a speaker for every word (segmentation-3.0 + CAM++, spectral clustering)"
    cached = True  # the slowest transcript stage; its output is the whole labelled transcript
    optional = False

    def __init__(
        self, settings: DiarizationSettings, runtime: DiarizationRuntime | None = None
    ) -> None:
        self._settings = settings
        self._runtime = runtime or DiarizationRuntime()
        self._diarizer: Diarizer | None = None

    @property
    def settings(self) -> DiarizationSettings:
        return self._settings

    @staticmethod
    def unavailable_now() -> str | None:
        """Why the stage cannot run here (a model file or onnxruntime missing), or None."""
        return model_unavailable(SEGMENTATION) or model_unavailable(EMBEDDING)

    def unavailable(self) -> str | None:
        return self.unavailable_now()

    def process(self, transcript: Transcript, run: RunContext) -> Transcript:
        if not any(segment.words for segment in transcript.segments):
            return transcript  # nothing to label (no speech, or no word timestamps)
        if self._diarizer is None:
            self._diarizer = Diarizer(self._settings, self._runtime)
        diarization = self._diarizer(run.audio.windows(), run.report)
        segments = apply_speakers(transcript.segments, diarization)
        return replace(transcript, segments=tuple(segments))
