"""Stages: the steps a pipeline is made of, and the keys that identify their output.

A stage has a name, a version and its own frozen settings, and adds one thing
to what the stages before it made. There are two kinds:

- **audio** stages see the recording. The pipeline decodes the file once, as a
  stream of bounded windows, and hands every window to each audio stage in
  turn (voice activity → recognition → re-decoding of weak segments), so a
  3-hour file is never in memory; a stage that must go back to another span
  of the file reads it through ``RunContext.audio``.
- **transcript** stages see the whole transcript after the audio stages
  (LLM enhancement, speaker clustering and naming).

A stage's cache key is made of its input's identity (the content hash for the
first stage, else the upstream stage's key) and its own name, version and
settings, so it changes exactly when the stage's output could.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from trax.core import AudioWindow, StageRecord, Transcript, digest

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from trax.media.source import AudioSource
    from trax.store.cache import StageCache

StageKind = Literal["audio", "transcript"]


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a running stage may use besides its input.

    ``audio`` re-reads any span of the file (seeking, bounded memory);
    ``progress`` takes a position in the file (seconds) and may raise
    ``Interrupted`` when the run was asked to stop. ``cache`` is the stage
    cache, for a stage that keeps parts of its work (an LLM's answer per
    chunk) rather than its whole output; None when the run has none or was
    asked to compute everything again.
    """

    audio: AudioSource
    duration_s: float | None
    progress: Callable[[float], None] | None = None
    cache: StageCache | None = None

    def report(self, position_s: float) -> None:
        if self.progress is not None:
            self.progress(position_s)


class Stage(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def kind(self) -> StageKind: ...

    @property
    def adds(self) -> str:
        """What the stage adds, in a few words (``trax pipelines``)."""
        ...

    @property
    def cached(self) -> bool:
        """Whether the stage's output is worth keeping in the stage cache."""
        ...

    @property
    def optional(self) -> bool:
        """Whether a run goes on without it (recorded as skipped) when it cannot run."""
        ...

    @property
    def settings(self) -> DataclassInstance:
        """Everything that changes the stage's output: hashed into its key, recorded."""
        ...

    def unavailable(self) -> str | None:
        """Why the stage cannot run now (e.g. "needs an API key"), or None."""
        ...


class AudioStage(Stage, Protocol):
    def process(
        self, window: AudioWindow, transcript: Transcript, run: RunContext
    ) -> tuple[AudioWindow, Transcript]:
        """Add what this stage finds in ``window`` to the window or the transcript."""
        ...


class TranscriptStage(Stage, Protocol):
    def process(self, transcript: Transcript, run: RunContext) -> Transcript: ...


def settings_of(stage: Stage) -> dict[str, Any]:
    """The stage's settings as JSON values, exactly as a stored record reads them back."""
    import json

    loaded: dict[str, Any] = json.loads(json.dumps(asdict(stage.settings)))
    return loaded


def record(stage: Stage) -> StageRecord:
    return StageRecord(stage.name, stage.version, settings_of(stage))


def stage_key(upstream: str, stage: Stage | StageRecord) -> str:
    """The key of a stage's output: its input's identity, its name, version and settings."""
    settings = stage.settings if isinstance(stage, StageRecord) else settings_of(stage)
    return digest([upstream, stage.name, stage.version, settings])
