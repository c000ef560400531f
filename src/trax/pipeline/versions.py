"""The pipeline registry: which capability is available in which version.

Each transcription job names a version; a stored transcript records it with
the versions of the stages that produced it, so results stay comparable as
the pipeline grows.
"""

from __future__ import annotations

from dataclasses import dataclass

STAGE_VERSIONS_V1 = {
    "media": "pyav-decode/1",
    "vad": "silero-vad-v6/1",
    "asr": "faster-whisper-batched+fallback/1",
}


@dataclass(frozen=True, slots=True)
class PipelineVersion:
    name: str
    title: str
    features: tuple[str, ...]
    stages: dict[str, str]
    available: bool
    note: str = ""


PIPELINES: dict[str, PipelineVersion] = {
    "v1": PipelineVersion(
        name="v1",
        title="Whisper transcription",
        features=(
            "decode any media (PyAV) in bounded windows",
            "Silero voice activity detection",
            "faster-whisper batched decoding, temperature fallback on weak segments",
            "word timestamps and per-segment quality signals",
            "stored, deduplicated transcripts; txt/srt/vtt/json/tsv/md exports",
        ),
        stages=STAGE_VERSIONS_V1,
        available=True,
    ),
    "v2": PipelineVersion(
        name="v2",
        title="v1 + LLM enhancement",
        features=("punctuation, casing and mis-hearing fixes via DeepSeek", "cost per transcript"),
        stages={},
        available=False,
        note="planned",
    ),
    "v3": PipelineVersion(
        name="v3",
        title="v2 + multi-pass accuracy",
        features=("re-decode weak spans harder and combine", "faster than v1 end to end"),
        stages={},
        available=False,
        note="planned",
    ),
    "v4": PipelineVersion(
        name="v4",
        title="v3 + speaker diarization",
        features=("who spoke when, per word",),
        stages={},
        available=False,
        note="planned",
    ),
}

DEFAULT_PIPELINE = "v1"


class PipelineError(ValueError):
    """A pipeline version that does not exist or is not available yet."""


def get_pipeline(name: str) -> PipelineVersion:
    version = PIPELINES.get(name)
    if version is None:
        raise PipelineError(f"unknown pipeline '{name}' (choose from {', '.join(PIPELINES)})")
    if not version.available:
        ready = ", ".join(n for n, v in PIPELINES.items() if v.available)
        raise PipelineError(f"pipeline {name} ({version.title}) is not available yet; use {ready}")
    return version
