"""The pipeline registry: each version is an ordered list of stages, built from settings.

``describe()`` (``trax pipelines``) is generated from the stages themselves:
what each adds, its version, and whether it can run now. Building a version
for a run (``build``) resolves the model and hands every stage its settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trax.core import TranscriptionSettings
from trax.errors import TraxError

if TYPE_CHECKING:
    from trax.asr import Transcriber
    from trax.pipeline.stages import Stage


class PipelineError(TraxError):
    """A pipeline version that does not exist, is not available, or cannot run."""


@dataclass(frozen=True, slots=True)
class StageInfo:
    """One stage of a version, as ``trax pipelines`` shows it."""

    name: str
    version: str
    kind: str
    adds: str
    when: str
    """When the stage is part of a run (e.g. "unless --no-vad")."""
    available: bool
    reason: str
    optional: bool = False
    """A run goes on without it (recorded as skipped) when it cannot run."""


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    name: str
    title: str
    available: bool
    reason: str
    stages: tuple[StageInfo, ...]


StagesBuilder = Callable[[TranscriptionSettings, "Transcriber"], "list[Stage]"]


@dataclass(frozen=True, slots=True)
class PipelineVersion:
    name: str
    title: str
    build: StagesBuilder
    """The ordered stages of a run with these settings, sharing one recogniser."""
    describe: Callable[[], tuple[StageInfo, ...]]


def _v1_stages(settings: TranscriptionSettings, transcriber: Transcriber) -> list[Stage]:
    from trax.asr.sentences import SentenceSettings, SentenceStage
    from trax.asr.stages import (
        RecognitionStage,
        RedecodeSettings,
        RedecodeStage,
        VadSettings,
        VoiceActivityStage,
    )
    from trax.asr.transcriber import (
        COMPRESSION_RATIO_THRESHOLD,
        LOG_PROB_THRESHOLD,
        TEMPERATURES,
        RecognitionSettings,
    )

    recognition = RecognitionSettings(
        model_id=transcriber.model_id,
        language=settings.language,
        beam_size=settings.beam_size,
        initial_prompt=settings.initial_prompt,
        hotwords=settings.hotwords,
        batched=settings.batched,
        word_timestamps=settings.word_timestamps,
        # Whisper's sequential loop retries weak segments itself; batched decoding
        # cannot, which is what the re-decoding stage is for.
        temperatures=(0.0,) if settings.batched else TEMPERATURES,
    )
    stages: list[Stage] = []
    if settings.vad:
        vad = VadSettings.for_batched() if settings.batched else VadSettings()
        stages.append(VoiceActivityStage(vad))
    stages.append(RecognitionStage(recognition, transcriber))
    if settings.batched:
        redecode = RedecodeSettings(COMPRESSION_RATIO_THRESHOLD, LOG_PROB_THRESHOLD)
        stages.append(RedecodeStage(redecode, recognition, transcriber))
    if settings.word_timestamps:
        stages.append(SentenceStage(SentenceSettings()))
    return stages


def _v1_describe() -> tuple[StageInfo, ...]:
    from trax.asr.models import DEFAULT_MODEL, model_unavailable
    from trax.asr.sentences import SentenceStage
    from trax.asr.stages import RecognitionStage, RedecodeStage, VoiceActivityStage

    missing = model_unavailable(DEFAULT_MODEL)
    return (
        _info(VoiceActivityStage, "unless --no-vad", None),
        _info(RecognitionStage, "always", missing),
        _info(RedecodeStage, "batched decoding (not with --sequential)", missing),
        _info(SentenceStage, "with word timestamps", None),
    )


def _v2_stages(settings: TranscriptionSettings, transcriber: Transcriber) -> list[Stage]:
    """v1, then LLM enhancement of the whole transcript (skipped, keeping v1's text,
    where no API key is configured)."""
    from trax.config import load_config
    from trax.llm.stage import EnhanceRuntime, EnhanceSettings, EnhanceStage

    config = load_config()
    enhance = EnhanceStage(
        EnhanceSettings.from_config(config, settings.hotwords, settings.glossary),
        EnhanceRuntime.from_config(config),
    )
    return [*_v1_stages(settings, transcriber), enhance]


def _v2_describe() -> tuple[StageInfo, ...]:
    from trax.config import load_config
    from trax.llm.client import NO_KEY
    from trax.llm.stage import EnhanceStage

    reason = NO_KEY if load_config().llm_api_key is None else None
    enhance = _info(EnhanceStage, "always; skipped (v1 text kept) when it cannot run", reason)
    return (*_v1_describe(), enhance)


SECOND_PASS_MODEL = "tiny.en", "base"
"""v3's default pair: the fast model for pass 1, the larger bundled one for pass 2."""


def _v3_stages(settings: TranscriptionSettings, transcriber: Transcriber) -> list[Stage]:
    """v1's audio stages, then pass 2 over pass 1's weak spans (a second, larger model,
    loaded once), then v2's LLM enhancement (skipped without a key), then sentences."""
    from trax.asr.multipass import MultipassSettings, MultipassStage
    from trax.asr.sentences import SentenceStage
    from trax.asr.stages import RecognitionStage

    stages = _v2_stages(settings, transcriber)
    if not settings.word_timestamps:
        return stages  # pass 2 combines word by word: without words there is nothing to weigh
    recognition = next(s for s in stages if isinstance(s, RecognitionStage)).settings
    second = _second_transcriber(transcriber)
    multipass = MultipassStage(MultipassSettings(second.model_id), recognition, second)
    audio = [s for s in stages if s.kind == "audio"]
    later = [s for s in stages if s.kind != "audio" and not isinstance(s, SentenceStage)]
    last = [s for s in stages if isinstance(s, SentenceStage)]
    return [*audio, multipass, *later, *last]


_SECOND: dict[tuple[str, str], Transcriber] = {}
"""Pass-2 recognisers by (model name, device): resolved, verified and loaded once per
process, however many pipelines are built."""


def _second_transcriber(first: Transcriber) -> Transcriber:
    from trax.asr import FasterWhisperTranscriber, resolve_model

    name = SECOND_PASS_MODEL[1]
    device = str(getattr(first, "device", "auto"))
    if (name, device) not in _SECOND:
        _SECOND[name, device] = FasterWhisperTranscriber(resolve_model(name), device=device)
    second = _SECOND[name, device]
    # One model for both passes: pass 2 is its wider, prompted decode of the weak spans.
    return first if second.model_id == first.model_id else second


def _v3_describe() -> tuple[StageInfo, ...]:
    from trax.asr.models import model_unavailable
    from trax.asr.multipass import MultipassStage

    *audio, sentences = _v1_describe()
    enhance = _v2_describe()[-1]
    second = _info(
        MultipassStage,
        f"always; pass 2 with {SECOND_PASS_MODEL[1]} where pass 1 was unsure",
        model_unavailable(SECOND_PASS_MODEL[1]),
    )
    return (*audio, second, enhance, sentences)


def _v4_stages(settings: TranscriptionSettings, transcriber: Transcriber) -> list[Stage]:
    """v3, with speaker diarization before the sentences stage (which then never joins
    two speakers' words); without word timestamps there are no words to label."""
    from trax.asr.sentences import SentenceStage
    from trax.diarize.run import DiarizationSettings
    from trax.diarize.stage import DiarizeStage

    stages = _v3_stages(settings, transcriber)
    if not settings.word_timestamps:
        return stages
    at = next((i for i, s in enumerate(stages) if isinstance(s, SentenceStage)), len(stages))
    return [*stages[:at], DiarizeStage(DiarizationSettings()), *stages[at:]]


def _v4_describe() -> tuple[StageInfo, ...]:
    from trax.diarize.stage import DiarizeStage

    *before, sentences = _v3_describe()
    diarize = _info(DiarizeStage, "with word timestamps", DiarizeStage.unavailable_now())
    return (*before, diarize, sentences)


def _info(stage: Any, when: str, reason: str | None) -> StageInfo:
    """A stage class's own description (class attributes: nothing is built)."""
    return StageInfo(
        stage.name,
        stage.version,
        stage.kind,
        stage.adds,
        when,
        reason is None,
        reason or "",
        stage.optional,
    )


PIPELINES: dict[str, PipelineVersion] = {
    "v1": PipelineVersion("v1", "Whisper transcription", _v1_stages, _v1_describe),
    "v2": PipelineVersion("v2", "v1 + LLM enhancement", _v2_stages, _v2_describe),
    "v3": PipelineVersion("v3", "v2 + multi-pass accuracy", _v3_stages, _v3_describe),
    "v4": PipelineVersion("v4", "v3 + speaker diarization", _v4_stages, _v4_describe),
}

DEFAULT_PIPELINE = "v1"


def get_pipeline(name: str) -> PipelineVersion:
    version = PIPELINES.get(name)
    if version is not None:
        return version
    raise PipelineError(f"unknown pipeline '{name}' (choose from {', '.join(PIPELINES)})")


def describe() -> list[PipelineInfo]:
    """Every version with its stages and whether it can run now."""
    infos = []
    for version in PIPELINES.values():
        stages = version.describe()
        # An optional stage that cannot run is skipped; the version still runs.
        reasons = [f"{s.name}: {s.reason}" for s in stages if not s.available and not s.optional]
        infos.append(
            PipelineInfo(version.name, version.title, not reasons, "; ".join(reasons), stages)
        )
    return infos
