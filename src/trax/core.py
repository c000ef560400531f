"""Typed core objects that every stage of Trax speaks.

Data flows one way: media (``MediaInfo``) → audio windows (``AudioWindow``)
→ segments with words and quality signals (``Segment``/``Word``) → a stored,
versioned ``Transcript`` → exports. Each stage reads the previous object and
adds to it; none reaches back.

These are plain dataclasses with no heavy imports so that the CLI can load
them without pulling in numpy or faster-whisper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SAMPLE_RATE = 16_000
"""Every decoded window is 16 kHz mono float32 — what Whisper expects."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What we know about a media file before decoding its samples."""

    path: str
    size_bytes: int
    sha256: str
    duration_s: float | None
    container: str
    audio_codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class AudioWindow:
    """A bounded stretch of decoded audio; ``start_s`` is its offset in the file."""

    start_s: float
    samples: npt.NDArray[np.float32]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of recognised speech with the decoder's quality signals.

    ``avg_logprob``, ``compression_ratio`` and ``no_speech_prob`` are kept so
    later passes (multi-pass re-decoding, enhancement) can find weak spans.
    ``speaker`` stays ``None`` until a diarization stage fills it.
    """

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptionSettings:
    """Everything that changes what the recogniser produces.

    Two runs with equal settings on the same bytes give the same transcript,
    so ``cache_key`` (with the content hash) decides whether to transcribe again.
    """

    pipeline: str = "v1"
    model: str = "tiny.en"
    language: str | None = None
    beam_size: int = 5
    initial_prompt: str | None = None
    hotwords: str | None = None
    vad: bool = True
    batched: bool = True
    word_timestamps: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscriptionSettings:
        """Rebuild stored settings; keys this version doesn't know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def cache_key(self) -> str:
        import hashlib
        import json

        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Transcript:
    """The result of one pipeline run over one media file."""

    media: MediaInfo
    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    settings: TranscriptionSettings
    model_id: str
    stage_versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    id: int | None = None
    created_at: datetime | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def duration_s(self) -> float:
        return self.media.duration_s or (self.segments[-1].end if self.segments else 0.0)
