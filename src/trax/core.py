"""Typed core objects that every stage of Trax speaks.

Data flows one way: media (``MediaInfo``) → audio windows (``AudioWindow``,
with the speech found in them) → segments with words and quality signals
(``Segment``/``Word``) → a stored, versioned ``Transcript`` that records the
stages that made it → exports. Each stage reads the previous object and adds
to it; none reaches back.

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
    """A bounded stretch of decoded audio; ``start_s`` is its offset in the file.

    ``speech`` is what voice activity detection found in it: (start, end)
    sample indices relative to the window, or ``None`` when no VAD ran (then
    the whole window is decoded).
    """

    start_s: float
    samples: npt.NDArray[np.float32]
    speech: tuple[tuple[int, int], ...] | None = None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word.

    ``text`` is the word alone, without surrounding spaces. ``attached`` says
    that no space separates it from the word before: the second half of a
    hyphenated word ("-fattened"), or any word of a script written without
    spaces (Chinese, Japanese, Thai). A leading space given in ``text`` (as
    Whisper writes " country") is taken off and means "not attached".
    """

    start: float
    end: float
    text: str
    probability: float
    speaker: str | None = None
    attached: bool = False

    def __post_init__(self) -> None:
        if self.text != self.text.strip():
            object.__setattr__(self, "text", self.text.strip())

    @classmethod
    def from_whisper(cls, start: float, end: float, raw: str, probability: float) -> Word:
        """A word as Whisper writes it: a leading space separates it from the word before."""
        return cls(start, end, raw, probability, attached=bool(raw) and not raw[0].isspace())


def render_words(words: tuple[Word, ...] | list[Word]) -> str:
    """The text of a run of words: what every export shows for them."""
    parts: list[str] = []
    for word in words:
        if not word.text:
            continue
        if parts and not word.attached:
            parts.append(" ")
        parts.append(word.text)
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of recognised speech with the decoder's quality signals.

    When a segment has words, its text is rendered from them (enforced here),
    so txt, srt and json can never disagree: a stage that changes what was
    said changes the words. ``avg_logprob``, ``compression_ratio`` and
    ``no_speech_prob`` are kept so later passes can find weak spans.
    ``speaker`` stays ``None`` until a diarization stage fills it;
    ``language`` is the language it was recognised in, where it was detected
    per stretch of speech (a recording can change language).
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
    language: str | None = None

    def __post_init__(self) -> None:
        if self.words:
            object.__setattr__(self, "text", render_words(self.words))


@dataclass(frozen=True, slots=True)
class TranscriptionSettings:
    """What a user asks for: the options of ``trax transcribe`` (and of a batch).

    The pipeline turns them into each stage's own settings; those, not these,
    make the dedup and cache keys.
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
    glossary: tuple[str, ...] = ()
    """Names and terms for the LLM stage (``--glossary FILE``): the terms themselves,
    so a worker on another machine needs no copy of the file."""

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self)
        if not self.glossary:
            # Left out when empty: settings stored before it existed keep their digest.
            del settings["glossary"]
        else:
            settings["glossary"] = list(self.glossary)
        return settings

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscriptionSettings:
        """Rebuild stored settings; keys this version doesn't know are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "glossary" in values:
            values["glossary"] = tuple(values["glossary"])
        return cls(**values)

    def fingerprint(self) -> str:
        """A digest of the request (names a batch; not a cache key)."""
        return digest(self.to_dict())


def digest(value: Any) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys, no spaces)."""
    import hashlib
    import json

    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StageRecord:
    """A stage that ran: its name, version and the settings it ran with."""

    name: str
    version: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SkippedStage:
    """A stage of the pipeline that did not run, and why (e.g. "needs an API key")."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Edit:
    """A change a stage made to what an earlier stage produced, kept for review.

    A stage that checks proposed changes (LLM enhancement) also keeps those it
    refused: ``status`` "rejected", with the ``reason``; only "accepted" edits
    are in the text.
    """

    stage: str
    start: float
    end: float
    before: str
    after: str
    kind: str
    status: str = "accepted"
    reason: str = ""


def records_key(records: tuple[StageRecord, ...] | list[StageRecord]) -> str:
    """The identity of a pipeline run: every stage's name, version and settings.

    With the content hash it is the dedup key of a transcript; the model's
    weights id is part of the recognition stage's settings.
    """
    return digest([[r.name, r.version, r.settings] for r in records])


@dataclass(frozen=True, slots=True)
class Transcript:
    """The result of one pipeline run over one media file.

    ``stages`` are the stages that actually ran, in order; ``skipped`` those of
    the pipeline that did not, with the reason; ``edits`` what later stages
    changed of earlier stages' output; ``usage`` what paid services cost for
    it (LLM tokens and US dollars, e.g. ``llm_cost_usd``), empty when none ran.
    """

    media: MediaInfo
    segments: tuple[Segment, ...]
    language: str
    language_probability: float
    settings: TranscriptionSettings
    model_id: str
    stages: tuple[StageRecord, ...] = ()
    skipped: tuple[SkippedStage, ...] = ()
    edits: tuple[Edit, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    id: int | None = None
    created_at: datetime | None = None
    usage: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def no_speech(self) -> bool:
        """Nothing was recognised: a silent file, music, or speech the recogniser missed."""
        return not self.text

    @property
    def duration_s(self) -> float:
        return self.media.duration_s or (self.segments[-1].end if self.segments else 0.0)

    @property
    def key(self) -> str:
        """The dedup key of what produced this transcript (see ``records_key``)."""
        return records_key(self.stages)
