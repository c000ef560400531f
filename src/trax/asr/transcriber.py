"""Speech to text with faster-whisper (CTranslate2).

The recogniser decodes what voice activity detection marked as speech in a
window (or the whole window when no VAD ran), batched or with Whisper's own
sequential loop. Defaults are chosen against Whisper's known failure modes:
no conditioning on previous text (repetition loops), Whisper's no-speech rule
on batched output, and a temperature schedule for clips re-decoded by the
re-decoding stage (``trax.asr.stages``).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from trax.asr.models import ModelError, ResolvedModel
from trax.core import SAMPLE_RATE, AudioWindow, Segment, Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
CHUNK_S = 30  # Whisper's input length
LANGUAGE_THRESHOLD = 0.5
"""A chunk whose language Whisper detects less surely than this keeps the recording's
language so far: a short or noisy chunk must not switch a whole stretch to another one."""


@dataclass(frozen=True, slots=True)
class RecognitionSettings:
    """Everything that changes what the recogniser writes (the model pinned by its weights)."""

    model_id: str
    language: str | None = None
    beam_size: int = 5
    initial_prompt: str | None = None
    hotwords: str | None = None
    batched: bool = True
    batch_size: int = 8
    word_timestamps: bool = True
    temperatures: tuple[float, ...] = (0.0,)
    condition_on_previous_text: bool = False
    compression_ratio_threshold: float = COMPRESSION_RATIO_THRESHOLD
    log_prob_threshold: float = LOG_PROB_THRESHOLD
    no_speech_threshold: float = NO_SPEECH_THRESHOLD


@dataclass(frozen=True, slots=True)
class WindowResult:
    """What the recogniser made of one audio window (times are file-absolute).

    ``language`` is the language of most of its speech; each segment carries
    its own where it was detected per chunk.
    """

    segments: list[Segment]
    language: str
    language_probability: float


WindowProgress = Callable[[float], None]
"""Called with how far into the window (seconds) recognition has got."""


class Transcriber(Protocol):
    model_id: str

    @property
    def multilingual(self) -> bool:
        """Whether the model knows languages other than English."""
        ...

    def recognise(
        self,
        window: AudioWindow,
        settings: RecognitionSettings,
        language: str | None,
        on_progress: WindowProgress | None = None,
        prior: str | None = None,
    ) -> WindowResult:
        """Recognise the window's speech (all of it when ``window.speech`` is None).

        With no ``language``, a multilingual model detects it per chunk of
        speech; ``prior`` (the recording's language so far) holds for chunks
        whose language it cannot tell surely.
        """
        ...

    def decode_clip(
        self,
        samples: Any,
        settings: RecognitionSettings,
        language: str | None,
        max_new_tokens: int | None = None,
    ) -> list[Segment]:
        """Decode a short clip with the settings' temperature schedule, no VAD (at most
        ``max_new_tokens`` tokens a decode, where given: a loop stops there)."""
        ...


def detect_device() -> str:
    """CUDA where a GPU is visible, else CPU."""
    import ctranslate2

    try:
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except RuntimeError:
        return "cpu"


def default_compute_type(device: str) -> str:
    """float16 on a GPU; int8 on a CPU, where it is fastest at no measurable WER cost."""
    return "float16" if device == "cuda" else "int8"


def majority_language(segments: Iterable[Segment]) -> str | None:
    """The language most of the speech is in, by duration (segments record theirs when
    it was detected per chunk); None when none does."""
    spoken: dict[str, float] = {}
    for segment in segments:
        if segment.language:
            duration = segment.end - segment.start
            spoken[segment.language] = spoken.get(segment.language, 0.0) + duration
    return max(spoken, key=spoken.__getitem__) if spoken else None


def is_silence(avg_logprob: float, no_speech_prob: float) -> bool:
    """Whisper's own rule: likely no speech, and the decoder is not confident either."""
    return no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD


def needs_fallback(segment: Segment) -> bool:
    """The thresholds after which Whisper retries a segment at a higher temperature."""
    return (
        segment.compression_ratio > COMPRESSION_RATIO_THRESHOLD
        or segment.avg_logprob < LOG_PROB_THRESHOLD
    )


class FasterWhisperTranscriber:
    """The faster-whisper recogniser; the model is loaded once, on first use."""

    def __init__(
        self,
        model: ResolvedModel,
        device: str = "auto",
        compute_type: str = "default",
        cpu_threads: int = 0,
    ) -> None:
        self.model = model
        self.model_id = model.model_id
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self._whisper: WhisperModel | None = None
        self._batched: Any = None  # faster-whisper's batched pipeline, made on first use

    @property
    def whisper(self) -> WhisperModel:
        if self._whisper is None:
            self._whisper = self._load()
        return self._whisper

    def _load(self) -> WhisperModel:
        from faster_whisper import WhisperModel

        device = detect_device() if self.device == "auto" else self.device
        compute_type = self.compute_type
        if compute_type == "default":
            compute_type = default_compute_type(device)
        try:
            if self.model.source == "hub":
                return _load_from_hub(self.model.location, device, compute_type, self.cpu_threads)
            return WhisperModel(
                self.model.location,
                device=device,
                compute_type=compute_type,
                cpu_threads=self.cpu_threads,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"cannot load model '{self.model.name}': {exc}") from exc

    def recognise(
        self,
        window: AudioWindow,
        settings: RecognitionSettings,
        language: str | None,
        on_progress: WindowProgress | None = None,
        prior: str | None = None,
    ) -> WindowResult:
        if window.speech is not None and not window.speech:
            # VAD found no speech: nothing to decode
            return WindowResult([], language or prior or "", 0.0)
        chooser = self._chooser
        chooser.start(active=language is None and self.multilingual, prior=prior)
        if chooser.active:
            # Any language will do for the prompt: each chunk's own detection replaces it
            # (and a given one spares faster-whisper a detection pass of its own).
            language = prior or "en"
        if settings.batched:
            segments, info = self._decode_batched(window, settings, language, on_progress)
        else:
            segments, info = self._decode_sequential(window, settings, language, on_progress)
        shifted = [_shift(s, window.start_s) for s in segments]
        if not chooser.active:
            return WindowResult(shifted, info.language, float(info.language_probability))
        spoken = majority_language(shifted) or info.language
        return WindowResult(shifted, spoken, chooser.probability(spoken))

    @property
    def multilingual(self) -> bool:
        """Whether the model knows languages other than English (loads it)."""
        return bool(self.whisper.model.is_multilingual)

    @property
    def _chooser(self) -> _LanguageChooser:
        model = self.whisper.model
        if not isinstance(model, _LanguageChooser):
            model = self.whisper.model = _LanguageChooser(model)
        return model

    def decode_clip(
        self,
        samples: Any,
        settings: RecognitionSettings,
        language: str | None,
        max_new_tokens: int | None = None,
    ) -> list[Segment]:
        self._chooser.start(active=False)
        raw, _ = self.whisper.transcribe(
            samples,
            temperature=list(settings.temperatures),
            vad_filter=False,
            max_new_tokens=max_new_tokens,
            **self._common_options(settings, language),
        )
        return list(_reporting(raw, None))

    def _common_options(
        self, settings: RecognitionSettings, language: str | None
    ) -> dict[str, Any]:
        return {
            "language": language,
            # Per chunk of speech (batched) or per 30 s window (sequential); the
            # chooser below records each chunk's language and vets unsure ones.
            "multilingual": self._chooser.active,
            "beam_size": settings.beam_size,
            "word_timestamps": settings.word_timestamps,
            "initial_prompt": settings.initial_prompt,
            "hotwords": settings.hotwords,
            "condition_on_previous_text": settings.condition_on_previous_text,
            "compression_ratio_threshold": settings.compression_ratio_threshold,
            "log_prob_threshold": settings.log_prob_threshold,
            "no_speech_threshold": settings.no_speech_threshold,
        }

    def _decode_sequential(
        self,
        window: AudioWindow,
        settings: RecognitionSettings,
        language: str | None,
        on_progress: WindowProgress | None,
    ) -> tuple[list[Segment], Any]:
        """Whisper's own loop over the window: all of its speech, joined, as faster-whisper's
        VAD filter would hand it over."""
        audio, speech = _speech_only(window, max_chunk_s=None)
        raw, info = self.whisper.transcribe(
            audio,
            temperature=list(settings.temperatures),
            vad_filter=False,
            **self._common_options(settings, language),
        )
        if speech is not None:
            raw = _restore_times(raw, speech)
        # Whisper's loop detects a window's language just before decoding it and yields
        # its segments lazily, so the latest detection is each segment's language.
        chooser = self._chooser
        latest = (lambda _: chooser.chosen[-1][0]) if chooser.active else None
        return list(_reporting(raw, on_progress, latest)), info

    def _decode_batched(
        self,
        window: AudioWindow,
        settings: RecognitionSettings,
        language: str | None,
        on_progress: WindowProgress | None,
    ) -> tuple[list[Segment], Any]:
        if self._batched is None:
            from faster_whisper import BatchedInferencePipeline

            self._batched = BatchedInferencePipeline(self.whisper)
        # The speech is packed into chunks of at most 30 s (Whisper's input), exactly
        # as faster-whisper's VAD filter does; without VAD, plain 30 s slices.
        audio, speech = _speech_only(window, max_chunk_s=CHUNK_S)
        if speech is None:
            total = window.duration_s
            starts = range(0, int(total) + 1, CHUNK_S)
            clips = [{"start": s, "end": min(s + CHUNK_S, total)} for s in starts if s < total]
        else:
            clips = _packed_clips(speech)
        raw, info = self._batched.transcribe(
            audio,
            temperature=settings.temperatures[0],
            vad_filter=False,
            clip_timestamps=clips,
            batch_size=settings.batch_size,
            **self._common_options(settings, language),
        )
        if speech is not None:
            raw = _restore_times(raw, speech)
        chooser = self._chooser
        of_chunk = None
        if chooser.active:
            # A segment's seek is its chunk's offset in frames (100 a second); chunks
            # were detected in order. One frame of slack for rounding.
            seeks = [round(clip["start"] * 100) for clip in clips]

            def of_chunk(item: Any) -> str:
                return chooser.chosen[max(bisect.bisect_right(seeks, item.seek + 1) - 1, 0)][0]

        segments = [
            s
            for s in _reporting(raw, on_progress, of_chunk)
            if not is_silence(s.avg_logprob, s.no_speech_prob)
        ]
        return segments, info


class _LanguageChooser:
    """Stands in for CTranslate2's Whisper model to see, and vet, each chunk's language.

    Asked to (``multilingual``), faster-whisper detects the language of every
    chunk of speech and decodes each in its own, but reports none of them.
    This records each detection in order, and lets a chunk whose language is
    unsure keep the recording's language so far. All else is the model's own.
    """

    def __init__(self, model: Any) -> None:
        self._model = model
        self.active = False
        self.prior: str | None = None
        self.chosen: list[tuple[str, float]] = []  # (language, probability) per chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def start(self, active: bool, prior: str | None = None) -> None:
        self.active, self.prior, self.chosen = active, prior, []

    def detect_language(self, features: Any, *args: Any, **kwargs: Any) -> Any:
        results = self._model.detect_language(features, *args, **kwargs)
        if not self.active:
            return results
        for ranked in results:  # per item: [(token like "<|de|>", probability), ...] best first
            usual = self.prior or self.majority_chosen()
            if ranked[0][1] < LANGUAGE_THRESHOLD and usual is not None:
                wanted = f"<|{usual}|>"
                ranked.sort(key=lambda item: item[0] != wanted)  # stable: the rest keep order
            token, probability = ranked[0]
            self.chosen.append((token[2:-2], float(probability)))
        return results

    def majority_chosen(self) -> str | None:
        if not self.chosen:
            return None
        languages = [language for language, _ in self.chosen]
        return max(languages, key=languages.count)

    def probability(self, language: str) -> float:
        """How surely the chunks in ``language`` were detected (their mean)."""
        found = [p for chosen, p in self.chosen if chosen == language]
        return sum(found) / len(found) if found else 0.0


def _speech_only(
    window: AudioWindow, max_chunk_s: int | None
) -> tuple[Any, list[list[tuple[int, int]]] | None]:
    """The window's speech joined end to end, and the chunks it was packed into.

    Returns the samples to decode and, per chunk of at most ``max_chunk_s`` of
    speech, the speech regions in it (``None`` when no VAD ran). Regions are
    packed in order, a new chunk starting when the next region would overflow
    the current one, as faster-whisper's VAD filter packs them.
    """
    import numpy as np

    if window.speech is None:
        return window.samples, None
    limit = math.inf if max_chunk_s is None else max_chunk_s * SAMPLE_RATE
    chunks: list[list[tuple[int, int]]] = [[]]
    size = 0
    for region in window.speech:
        for start, end in _at_most(region, limit):
            if chunks[-1] and size + end - start > limit:
                chunks.append([])
                size = 0
            chunks[-1].append((start, end))
            size += end - start
    pieces = [window.samples[start:end] for chunk in chunks for start, end in chunk]
    return np.concatenate(pieces), chunks


def _at_most(region: tuple[int, int], length: float) -> list[tuple[int, int]]:
    """``region`` cut into equal parts of at most ``length`` samples.

    VAD limits speech regions to 30 s but pads them afterwards, so one can run
    a little over a Whisper input (which would cut it at 30 s).
    """
    start, end = region
    parts = max(1, math.ceil((end - start) / length)) if math.isfinite(length) else 1
    bounds = [start + (end - start) * i // parts for i in range(parts + 1)]
    return list(itertools.pairwise(bounds))


def _packed_clips(speech: list[list[tuple[int, int]]]) -> list[dict[str, float]]:
    """Each packed chunk's place (seconds) in the joined speech."""
    clips = []
    offset = 0
    for regions in speech:
        length = sum(end - start for start, end in regions)
        clips.append({"start": offset / SAMPLE_RATE, "end": (offset + length) / SAMPLE_RATE})
        offset += length
    return clips


def _restore_times(raw: Iterable[Any], speech: list[list[tuple[int, int]]]) -> Iterable[Any]:
    """Map times in the joined speech back to times in the window."""
    from faster_whisper.transcribe import restore_speech_timestamps

    regions = [{"start": start, "end": end} for chunk in speech for start, end in chunk]
    restored: Iterable[Any] = restore_speech_timestamps(raw, regions, SAMPLE_RATE)
    return restored


def _load_from_hub(name: str, device: str, compute_type: str, cpu_threads: int) -> WhisperModel:
    """Use a cached hub download, else download; offline, fail with one clear line."""
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(
            name,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
    except Exception:  # noqa: BLE001 - any cache miss means: try the network
        pass
    try:
        return WhisperModel(name, device=device, compute_type=compute_type, cpu_threads=cpu_threads)
    except Exception as exc:
        raise ModelError(
            f"model '{name}' is not bundled and could not be downloaded from the Hugging Face "
            f"Hub (offline?): {type(exc).__name__}; use a bundled model (tiny.en, base) "
            "or a local model directory"
        ) from exc


def _reporting(
    raw: Iterable[Any],
    on_progress: WindowProgress | None,
    language_of: Callable[[Any], str] | None = None,
) -> Iterator[Segment]:
    """Convert faster-whisper's lazily decoded segments, reporting each as it arrives."""
    for item in raw:
        segment = _from_faster_whisper(item)
        if language_of is not None:
            segment = replace(segment, language=language_of(item))
        if on_progress is not None:
            on_progress(segment.end)
        yield segment


def _from_faster_whisper(segment: Any) -> Segment:
    words = tuple(
        Word.from_whisper(w.start, w.end, w.word, w.probability) for w in (segment.words or ())
    )
    return Segment(
        start=segment.start,
        end=segment.end,
        text=segment.text.strip(),
        words=words,
        avg_logprob=segment.avg_logprob,
        compression_ratio=segment.compression_ratio,
        no_speech_prob=segment.no_speech_prob,
        temperature=segment.temperature or 0.0,
    )


def _shift(segment: Segment, offset: float) -> Segment:
    if not offset:
        return segment
    return replace(
        segment,
        start=segment.start + offset,
        end=segment.end + offset,
        words=tuple(replace(w, start=w.start + offset, end=w.end + offset) for w in segment.words),
    )
