"""The audio stages of v1: voice activity → recognition → re-decoding of weak segments.

Each is a ``trax.pipeline.stages.AudioStage``: it sees every decoded window
in turn and adds to the window (speech regions) or to the transcript
(segments, better segments). All three share one loaded model.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

from trax.asr.silence import drop_unspoken, speech_spans
from trax.asr.transcriber import (
    TEMPERATURES,
    RecognitionSettings,
    Transcriber,
    majority_language,
    needs_fallback,
)
from trax.core import SAMPLE_RATE, AudioWindow, Edit, Segment, Transcript

if TYPE_CHECKING:
    from trax.pipeline.stages import RunContext

REDECODE_PAD_S = 0.2
"""Audio kept either side of a weak segment when it is decoded again."""

UNREADABLE_S = 10.0
"""Seconds of speech an English-only model reads poorly before Trax says it may not be
English (a short stretch is more likely noise or a name)."""

UNREADABLE_LOGPROB = -0.45
UNREADABLE_WORDS = 0.7

logger = logging.getLogger(__name__)


def _unreadable(segment: Segment) -> bool:
    """Decoded with little confidence in the text and in its words.

    Measured on tiny.en: German speech read at avg log-prob -0.55 and mean word
    probability 0.64; clean English at -0.3 / 0.75 or better.
    """
    words = segment.words
    mean = sum(w.probability for w in words) / len(words) if words else 0.0
    return segment.avg_logprob < UNREADABLE_LOGPROB and mean < UNREADABLE_WORDS


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


@dataclass(frozen=True, slots=True)
class VadSettings:
    """Silero VAD's options (faster-whisper's ``VadOptions``); None is no limit."""

    threshold: float = 0.5
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float | None = None
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400

    @classmethod
    def for_batched(cls) -> VadSettings:
        """What faster-whisper's batched pipeline uses: speech cut into ≤ 30 s chunks at
        short pauses, so each chunk fills one Whisper input."""
        return cls(max_speech_duration_s=30.0, min_silence_duration_ms=160)


class VoiceActivityStage:
    """Silero VAD (bundled with faster-whisper, run on onnxruntime): marks the speech,
    so silence and music are never decoded into invented words."""

    name = "vad"
    version = "silero-vad-v6/1"
    kind: Final = "audio"
    adds = "speech regions (Silero VAD); silence and music are not decoded"
    cached = False
    optional = False

    def __init__(self, settings: VadSettings) -> None:
        self.settings = settings

    def unavailable(self) -> str | None:
        return None

    def process(
        self, window: AudioWindow, transcript: Transcript, run: RunContext
    ) -> tuple[AudioWindow, Transcript]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        limit = self.settings.max_speech_duration_s
        options = VadOptions(
            threshold=self.settings.threshold,
            min_speech_duration_ms=self.settings.min_speech_duration_ms,
            max_speech_duration_s=float("inf") if limit is None else limit,
            min_silence_duration_ms=self.settings.min_silence_duration_ms,
            speech_pad_ms=self.settings.speech_pad_ms,
        )
        regions = get_speech_timestamps(window.samples, options)
        speech = tuple((int(r["start"]), int(r["end"])) for r in regions)
        return replace(window, speech=speech), transcript


class RecognitionStage:
    """Whisper (faster-whisper on CTranslate2): segments with word timestamps and the
    decoder's quality signals; the first window's language holds for the file."""

    name = "recognise"
    version = "faster-whisper/3"
    kind: Final = "audio"
    adds = "segments and words with timestamps (faster-whisper); none in silence"
    cached = True
    optional = False

    def __init__(self, settings: RecognitionSettings, transcriber: Transcriber) -> None:
        self.settings = settings
        self.transcriber = transcriber
        self._warned: set[str] = set()  # files already warned about, by content hash

    def unavailable(self) -> str | None:
        return None

    def _warn_if_not_english(self, segments: list[Segment], transcript: Transcript) -> None:
        """An English-only model cannot tell another language: it writes English-sounding
        nonsense, unsure of its words. Say so once per file when a long stretch reads so."""
        unreadable = [s for s in segments if _unreadable(s)]
        seconds = sum(s.end - s.start for s in unreadable)
        if seconds < UNREADABLE_S or transcript.media.sha256 in self._warned:
            return
        self._warned.add(transcript.media.sha256)
        logger.warning(
            "%s: %.0f s of speech from %s reads poorly for %s, which knows only English; "
            "if it is another language, use a multilingual model such as --model base",
            Path(transcript.media.path).name,
            seconds,
            _clock(unreadable[0].start),
            self.transcriber.model_id.split("@")[0],
        )

    def process(
        self, window: AudioWindow, transcript: Transcript, run: RunContext
    ) -> tuple[AudioWindow, Transcript]:
        def progress(seconds: float) -> None:
            run.report(window.start_s + seconds)

        # Without a language given, a multilingual model detects it per chunk of speech;
        # the recording's language so far holds where a chunk's is unsure.
        result = self.transcriber.recognise(
            window, self.settings, self.settings.language, progress, transcript.language or None
        )
        segments, edits = drop_unspoken(result.segments, speech_spans(window), self.name)
        transcript = replace(
            transcript,
            segments=transcript.segments + tuple(segments),
            edits=transcript.edits + tuple(edits),
        )
        if not self.transcriber.multilingual:
            self._warn_if_not_english(segments, transcript)
        language = majority_language(transcript.segments) or transcript.language or result.language
        if language != transcript.language:
            probability = result.language_probability if language == result.language else 0.0
            transcript = replace(transcript, language=language, language_probability=probability)
        return window, transcript


@dataclass(frozen=True, slots=True)
class RedecodeSettings:
    """Which segments are weak (Whisper's own thresholds) and how they are decoded again."""

    compression_ratio_above: float
    avg_logprob_below: float
    temperatures: tuple[float, ...] = TEMPERATURES
    pad_s: float = REDECODE_PAD_S


class RedecodeStage:
    """Batched decoding has no temperature fallback: segments whose quality signals fail
    Whisper's thresholds are decoded again, alone, with the full temperature schedule."""

    name = "redecode"
    version = "temperature-fallback/2"
    kind: Final = "audio"
    adds = "weak segments re-decoded with temperature fallback"
    cached = True
    optional = False

    def __init__(
        self,
        settings: RedecodeSettings,
        recognition: RecognitionSettings,
        transcriber: Transcriber,
    ) -> None:
        self.settings = settings
        self.recognition = replace(recognition, temperatures=settings.temperatures)
        self.transcriber = transcriber

    def unavailable(self) -> str | None:
        return None

    def process(
        self, window: AudioWindow, transcript: Transcript, run: RunContext
    ) -> tuple[AudioWindow, Transcript]:
        # Only this window's segments: they were appended last, and start inside it.
        segments = list(transcript.segments)
        first = bisect.bisect_left([s.start for s in segments], window.start_s)
        kept: list[Segment] = segments[:first]
        edits = list(transcript.edits)
        for segment in segments[first:]:
            if not needs_fallback(segment):
                kept.append(segment)
                continue
            retried = self._redecode(window, segment, segment.language or transcript.language)
            retried, _ = drop_unspoken(retried, speech_spans(window), self.name)
            kept.extend(retried)
            after = " ".join(s.text for s in retried)
            if after != segment.text:
                edits.append(
                    Edit(self.name, segment.start, segment.end, segment.text, after, "redecode")
                )
        return window, replace(transcript, segments=tuple(kept), edits=tuple(edits))

    def _redecode(self, window: AudioWindow, segment: Segment, language: str) -> list[Segment]:
        start = max(0.0, segment.start - window.start_s - self.settings.pad_s)
        end = min(window.duration_s, segment.end - window.start_s + self.settings.pad_s)
        clip = window.samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        offset = window.start_s + start
        return [
            replace(_shifted(s, offset), language=segment.language)
            for s in self.transcriber.decode_clip(clip, self.recognition, language or None)
        ]


def _shifted(segment: Segment, offset: float) -> Segment:
    return replace(
        segment,
        start=segment.start + offset,
        end=segment.end + offset,
        words=tuple(replace(w, start=w.start + offset, end=w.end + offset) for w in segment.words),
    )
