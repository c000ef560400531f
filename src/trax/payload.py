"""The versioned JSON payload of a transcript.

The same payload is stored in the database (JSONB on PostgreSQL) and written
by the JSON exporter, so what a user exports can be loaded back. Every payload
carries ``schema_version``; payloads from older schemas are upgraded step by
step on load, so transcripts stored long ago stay readable.

Schema 2 records the stages that ran (name, version, settings), the stages
skipped and why, the edits later stages made, and a speaker per word. Schema 3
stores words without their leading space, with ``attached`` where no space
precedes them, and a language per segment; optional fields added since (each
read with a default, so payloads without them load): an edit's ``status`` and
``reason``, and the transcript's ``usage`` (LLM tokens and cost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from trax.core import (
    Edit,
    MediaInfo,
    Segment,
    SkippedStage,
    StageRecord,
    Transcript,
    TranscriptionSettings,
    Word,
)
from trax.errors import TraxError

SCHEMA_VERSION = 3


def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 declared stage versions as a name → version map, with no settings."""
    upgraded = {k: v for k, v in payload.items() if k != "stage_versions"}
    upgraded["stages"] = [
        {"name": name, "version": version, "settings": {}}
        for name, version in (payload.get("stage_versions") or {}).items()
    ]
    upgraded["skipped"] = []
    upgraded["edits"] = []
    upgraded["schema_version"] = 2
    return upgraded


def _v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 kept Whisper's leading space in each word's text; it marks a word that is
    not attached to the one before."""
    upgraded = dict(payload)
    segments = []
    for segment in payload.get("segments", ()):
        words = []
        for word in segment.get("words", ()):
            raw = word["text"]
            attached = bool(raw) and not raw[0].isspace()
            words.append(word | {"text": raw.strip(), "attached": attached})
        segments.append(segment | {"words": words, "language": None})
    upgraded["segments"] = segments
    upgraded["schema_version"] = 3
    return upgraded


# Upgrade steps: UPGRADES[n] turns a schema-n payload into a schema-(n+1) one.
# Add a step here whenever SCHEMA_VERSION is raised, and keep a stored fixture
# of the old schema in tests/data so the step stays tested.
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}


class PayloadError(TraxError):
    """A payload that this version of Trax cannot read."""


def _round(value: float) -> float:
    return round(float(value), 3)


def segment_to_dict(segment: Segment) -> dict[str, Any]:
    return {
        "start": _round(segment.start),
        "end": _round(segment.end),
        "text": segment.text,
        "speaker": segment.speaker,
        "language": segment.language,
        "avg_logprob": round(segment.avg_logprob, 4),
        "compression_ratio": round(segment.compression_ratio, 4),
        "no_speech_prob": round(segment.no_speech_prob, 4),
        "temperature": segment.temperature,
        "words": [
            {
                "start": _round(w.start),
                "end": _round(w.end),
                "text": w.text,
                "probability": round(w.probability, 4),
                "speaker": w.speaker,
                "attached": w.attached,
            }
            for w in segment.words
        ],
    }


def segment_from_dict(data: dict[str, Any]) -> Segment:
    return Segment(
        start=data["start"],
        end=data["end"],
        text=data["text"],
        speaker=data.get("speaker"),
        language=data.get("language"),
        avg_logprob=data.get("avg_logprob", 0.0),
        compression_ratio=data.get("compression_ratio", 0.0),
        no_speech_prob=data.get("no_speech_prob", 0.0),
        temperature=data.get("temperature", 0.0),
        words=tuple(
            Word(
                start=w["start"],
                end=w["end"],
                text=w["text"],
                probability=w["probability"],
                speaker=w.get("speaker"),
                attached=w.get("attached", False),
            )
            for w in data.get("words", ())
        ),
    )


def stages_to_list(records: tuple[StageRecord, ...]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]


def edits_to_list(edits: tuple[Edit, ...]) -> list[dict[str, Any]]:
    return [asdict(e) | {"start": _round(e.start), "end": _round(e.end)} for e in edits]


def to_payload(transcript: Transcript) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "id": transcript.id,
        "created_at": transcript.created_at.isoformat() if transcript.created_at else None,
        "media": asdict(transcript.media),
        "pipeline": transcript.settings.pipeline,
        "model_id": transcript.model_id,
        "stages": stages_to_list(transcript.stages),
        "skipped": [asdict(s) for s in transcript.skipped],
        "edits": edits_to_list(transcript.edits),
        "settings": transcript.settings.to_dict(),
        "language": transcript.language,
        "language_probability": round(transcript.language_probability, 4),
        "text": transcript.text,
        "no_speech": transcript.no_speech,
        "timings": {k: round(v, 3) for k, v in transcript.timings.items()},
        "usage": dict(transcript.usage),
        "segments": [segment_to_dict(s) for s in transcript.segments],
    }


def upgrade_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a payload of any known schema up to ``SCHEMA_VERSION``."""
    version = payload.get("schema_version")
    if not isinstance(version, int):
        raise PayloadError("transcript payload has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise PayloadError(
            f"transcript payload has schema_version {version}, newer than this Trax "
            f"understands ({SCHEMA_VERSION}); upgrade Trax to read it"
        )
    while version < SCHEMA_VERSION:
        payload = UPGRADES[version](payload)
        version = payload["schema_version"]
    return payload


def from_payload(payload: dict[str, Any]) -> Transcript:
    payload = upgrade_payload(payload)
    settings = TranscriptionSettings.from_dict(payload["settings"])
    created = payload.get("created_at")
    return Transcript(
        media=MediaInfo(**payload["media"]),
        segments=tuple(segment_from_dict(s) for s in payload["segments"]),
        language=payload["language"],
        language_probability=payload.get("language_probability", 1.0),
        settings=settings,
        model_id=payload["model_id"],
        stages=tuple(StageRecord(**r) for r in payload.get("stages", ())),
        skipped=tuple(SkippedStage(**s) for s in payload.get("skipped", ())),
        edits=tuple(Edit(**e) for e in payload.get("edits", ())),
        timings=dict(payload.get("timings", {})),
        id=payload.get("id"),
        created_at=datetime.fromisoformat(created) if created else None,
        usage=dict(payload.get("usage") or {}),
    )
