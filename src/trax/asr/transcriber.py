"""Speech to text with faster-whisper (CTranslate2).

Defaults are chosen against Whisper's known failure modes:
- voice activity detection (Silero, bundled with faster-whisper) so silence
  and music are never decoded into invented words;
- no conditioning on previous text, which causes repetition loops;
- temperature fallback: the batched pipeline decodes greedily/beam at
  temperature 0 only, so segments whose quality signals fail Whisper's own
  thresholds are re-decoded with the sequential decoder and its full
  temperature schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from trax.asr.models import ModelError, ResolvedModel
from trax.core import SAMPLE_RATE, AudioWindow, Segment, TranscriptionSettings, Word

if TYPE_CHECKING:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

log = logging.getLogger(__name__)

TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
REDECODE_PAD_S = 0.2
CHUNK_S = 30  # Whisper's input length


@dataclass(frozen=True, slots=True)
class WindowResult:
    """What the recogniser made of one audio window (times are file-absolute)."""

    segments: list[Segment]
    language: str
    language_probability: float


WindowProgress = Callable[[float], None]
"""Called with how far into the window (seconds) recognition has got."""


class Transcriber(Protocol):
    model_id: str

    def transcribe_window(
        self,
        window: AudioWindow,
        settings: TranscriptionSettings,
        language: str | None,
        on_progress: WindowProgress | None = None,
    ) -> WindowResult: ...


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
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self.model_id = model.model_id
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.batch_size = batch_size
        self._whisper: WhisperModel | None = None
        self._batched: BatchedInferencePipeline | None = None

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
            raise ModelError(f"cannot load model '{self.model.name}': {exc}") from None

    def transcribe_window(
        self,
        window: AudioWindow,
        settings: TranscriptionSettings,
        language: str | None,
        on_progress: WindowProgress | None = None,
    ) -> WindowResult:
        if settings.batched:
            segments, info = self._decode_batched(window, settings, language, on_progress)
        else:
            segments, info = self._decode_sequential(
                window.samples, settings, language, on_progress=on_progress
            )
        shifted = [_shift(s, window.start_s) for s in segments]
        return WindowResult(shifted, info.language, float(info.language_probability))

    def _common_options(
        self, settings: TranscriptionSettings, language: str | None
    ) -> dict[str, Any]:
        return {
            "language": language,
            "beam_size": settings.beam_size,
            "word_timestamps": settings.word_timestamps,
            "initial_prompt": settings.initial_prompt,
            "hotwords": settings.hotwords,
            "condition_on_previous_text": False,
            "compression_ratio_threshold": COMPRESSION_RATIO_THRESHOLD,
            "log_prob_threshold": LOG_PROB_THRESHOLD,
            "no_speech_threshold": NO_SPEECH_THRESHOLD,
        }

    def _decode_sequential(
        self,
        samples: Any,
        settings: TranscriptionSettings,
        language: str | None,
        vad: bool | None = None,
        on_progress: WindowProgress | None = None,
    ) -> tuple[list[Segment], Any]:
        raw, info = self.whisper.transcribe(
            samples,
            temperature=list(TEMPERATURES),
            vad_filter=settings.vad if vad is None else vad,
            **self._common_options(settings, language),
        )
        return list(_reporting(raw, on_progress)), info

    def _decode_batched(
        self,
        window: AudioWindow,
        settings: TranscriptionSettings,
        language: str | None,
        on_progress: WindowProgress | None,
    ) -> tuple[list[Segment], Any]:
        from faster_whisper import BatchedInferencePipeline

        if self._batched is None:
            self._batched = BatchedInferencePipeline(self.whisper)
        # Without VAD the batched decoder still needs chunks: plain 30 s slices (seconds).
        clips = None
        if not settings.vad:
            total = window.duration_s
            starts = range(0, int(total) + 1, CHUNK_S)
            clips = [{"start": s, "end": min(s + CHUNK_S, total)} for s in starts if s < total]
        raw, info = self._batched.transcribe(
            window.samples,
            temperature=TEMPERATURES[0],
            vad_filter=settings.vad,
            clip_timestamps=clips,
            batch_size=self.batch_size,
            **self._common_options(settings, language),
        )
        segments: list[Segment] = []
        for segment in _reporting(raw, on_progress):
            if is_silence(segment.avg_logprob, segment.no_speech_prob):
                continue
            if needs_fallback(segment):
                segments.extend(self._redecode(window, segment, settings, info.language))
            else:
                segments.append(segment)
        return segments, info

    def _redecode(
        self, window: AudioWindow, segment: Segment, settings: TranscriptionSettings, language: str
    ) -> Iterable[Segment]:
        """Decode one weak segment again with the full temperature schedule."""
        start = max(0.0, segment.start - REDECODE_PAD_S)
        end = min(window.duration_s, segment.end + REDECODE_PAD_S)
        clip = window.samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        retried, _ = self._decode_sequential(clip, settings, language, vad=False)
        log.debug("re-decoded %.1f–%.1f s at temperature fallback", segment.start, segment.end)
        return [_shift(s, start) for s in retried]


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
    except Exception as exc:  # noqa: BLE001 - hub client raises many unrelated types
        raise ModelError(
            f"model '{name}' is not bundled and could not be downloaded from the Hugging Face "
            f"Hub (offline?): {type(exc).__name__}; use a bundled model (tiny.en, base) "
            "or a local model directory"
        ) from None


def _reporting(raw: Iterable[Any], on_progress: WindowProgress | None) -> Iterator[Segment]:
    """Convert faster-whisper's lazily decoded segments, reporting each as it arrives."""
    for item in raw:
        segment = _from_faster_whisper(item)
        if on_progress is not None:
            on_progress(segment.end)
        yield segment


def _from_faster_whisper(segment: Any) -> Segment:
    words = tuple(
        Word(start=w.start, end=w.end, text=w.word, probability=w.probability)
        for w in (segment.words or ())
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
