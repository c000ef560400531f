"""Run a pipeline over one file: probe → dedup → decode windows → ASR → store.

Nothing of a failed or interrupted file is stored: the transcript is saved in
one transaction, only after recognition finished. Batches of files, exports
and crash recovery are the job runner's (``trax.jobs``).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from trax.asr import FasterWhisperTranscriber, Transcriber, resolve_model
from trax.core import AudioWindow, MediaInfo, Segment, Transcript, TranscriptionSettings
from trax.failpoints import failpoint
from trax.media import MediaDecoder, PyAVDecoder, is_media_path, probe
from trax.payload import segment_from_dict, segment_to_dict
from trax.pipeline.versions import get_pipeline
from trax.store import TranscriptStore
from trax.store.cache import StageCache

ProgressCallback = Callable[[float, float | None], None]
"""Called with how far into the file recognition has got and the file's duration (seconds)."""


@dataclass(frozen=True, slots=True)
class MediaInput:
    """A file to transcribe and the base path (without extension) of its exports."""

    path: Path
    export_base: Path


def collect_inputs(
    paths: Iterable[Path], output_dir: Path
) -> tuple[list[MediaInput], list[tuple[Path, str]]]:
    """Expand files and directories (recursively) into inputs, plus (folder, problem) pairs.

    Files named directly are always tried, whatever their extension or even
    existence (a missing one fails as a job, with its reason); inside
    directories only known media extensions are taken and hidden files skipped.
    Exports mirror the layout under a directory so equal names can't collide.
    """
    inputs: list[MediaInput] = []
    problems: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and is_media_path(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                problems.append((path, "no media files found in folder"))
            for file in found:
                relative = file.relative_to(path)
                inputs.append(MediaInput(file, output_dir / relative.parent / file.stem))
        else:
            inputs.append(MediaInput(path, output_dir / path.stem))
    return _disambiguate(inputs), problems


def _disambiguate(inputs: list[MediaInput]) -> list[MediaInput]:
    """``talk.wav`` and ``talk.mp3`` in one folder export as ``talk.wav.srt``, ``talk.mp3.srt``."""
    counts: dict[Path, int] = {}
    for item in inputs:
        counts[item.export_base] = counts.get(item.export_base, 0) + 1
    return [
        MediaInput(i.path, i.export_base.with_name(i.path.name)) if counts[i.export_base] > 1 else i
        for i in inputs
    ]


class Pipeline:
    """One configured pipeline: settings, store, decoder and a recogniser loaded once."""

    def __init__(
        self,
        settings: TranscriptionSettings,
        store: TranscriptStore,
        decoder: MediaDecoder | None = None,
        transcriber: Transcriber | None = None,
        device: str = "auto",
        cache: StageCache | None = None,
    ) -> None:
        self.version = get_pipeline(settings.pipeline)
        self.settings = settings
        self.store = store
        self.cache = cache
        self.decoder = decoder or PyAVDecoder()
        self._transcriber = transcriber
        self.device = device

    @property
    def transcriber(self) -> Transcriber:
        if self._transcriber is None:
            self._transcriber = FasterWhisperTranscriber(
                resolve_model(self.settings.model), device=self.device
            )
        return self._transcriber

    def transcribe(
        self,
        path: Path,
        force: bool = False,
        on_progress: ProgressCallback | None = None,
        *,
        since: datetime | None = None,
        should_stop: Callable[[], bool] | None = None,
        prepared: PreparedMedia | None = None,
    ) -> tuple[Transcript, bool]:
        """Transcribe and store one file; return (transcript, reused_from_store).

        ``force`` ignores stored transcripts made before ``since`` (all of them
        when ``since`` is None). ``should_stop`` is polled as recognition goes;
        when it turns true, ``Interrupted`` is raised and nothing is stored.
        ``prepared`` is the same file already probed and partly decoded by
        ``prepare`` (in another thread, while the previous file was recognised).
        """
        started = time.perf_counter()
        prepared = prepared or self.prepare(path, decode_ahead=False)
        media = prepared.media
        try:
            if not force or since is not None:
                key = self.settings.cache_key()
                cached = self.store.find(media.sha256, key, created_after=since if force else None)
                if cached is not None:
                    return cached, True
            recognised = self._cached_recognition(media) if not force else None
            if recognised is None:
                recognised = self._recognise(prepared, on_progress, should_stop)
            if self.cache is not None:
                self.cache.put("asr", self._asr_key(media), recognised.to_cache())
        finally:
            prepared.close()
        transcript = Transcript(
            # What was decoded is the truth; container headers can be wrong.
            media=replace(media, duration_s=round(recognised.decoded_s, 3)),
            segments=tuple(recognised.segments),
            language=recognised.language,
            language_probability=recognised.language_probability,
            settings=self.settings,
            model_id=self.transcriber.model_id,
            stage_versions=dict(self.version.stages),
            timings={
                "probe_s": prepared.probe_s,
                "decode_s": prepared.decode_s + recognised.decode_s,
                "asr_s": recognised.asr_s,
                "total_s": time.perf_counter() - started,
            },
        )
        return self.store.save(transcript), False

    def prepare(self, path: Path, decode_ahead: bool = True) -> PreparedMedia:
        """Probe (and hash) a file, and decode its first window unless told not to."""
        started = time.perf_counter()
        media = probe(path)
        probed = time.perf_counter()
        source = iter(self.decoder.windows(Path(media.path), media.duration_s))
        windows: Iterator[AudioWindow] = source
        if decode_ahead:
            first = next(source, None)
            windows = itertools.chain([first] if first is not None else [], source)
        decoded = time.perf_counter()
        return PreparedMedia(media, windows, source, probed - started, decoded - probed)

    def _asr_key(self, media: MediaInfo) -> str:
        """Content, exact weights and every decoding setting: what fixes the ASR result."""
        decoding = replace(self.settings, pipeline="").cache_key()
        identity = f"{media.sha256}|{self.transcriber.model_id}|{self.version.stages['asr']}"
        return hashlib.sha256(f"{identity}|{decoding}".encode()).hexdigest()

    def _cached_recognition(self, media: MediaInfo) -> _Recognition | None:
        if self.cache is None:
            return None
        value = self.cache.get("asr", self._asr_key(media))
        return _Recognition.from_cache(value) if value is not None else None

    def _recognise(
        self,
        prepared: PreparedMedia,
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> _Recognition:
        """Decode window by window and recognise each; one window is in memory at a time."""
        if should_stop is not None:
            on_progress = _stoppable(on_progress, should_stop)
        media = prepared.media
        result = _Recognition(language=self.settings.language or "")
        windows = prepared.windows
        while True:
            tick = time.perf_counter()
            window = next(windows, None)
            tock = time.perf_counter()
            result.decode_s += tock - tick
            if window is None:
                break
            # The first window's language holds for the rest of the file, so a
            # long recording isn't re-detected (and sometimes flipped) per window.
            recognised = self.transcriber.transcribe_window(
                window, self.settings, result.language or None, _offset(on_progress, window, media)
            )
            result.asr_s += time.perf_counter() - tock
            failpoint("asr")
            if not result.language:
                result.language = recognised.language
                result.language_probability = recognised.language_probability
            result.segments.extend(recognised.segments)
            result.decoded_s += window.duration_s
            if on_progress is not None:
                on_progress(window.end_s, media.duration_s)
        result.language = result.language or "en"
        return result


@dataclass(slots=True)
class PreparedMedia:
    """A file probed and, optionally, its first window decoded, ready for recognition."""

    media: MediaInfo
    windows: Iterator[AudioWindow]
    source: Iterator[AudioWindow]  # the decoder itself, to close
    probe_s: float
    decode_s: float

    def close(self) -> None:
        """Release the decoder (and its open file) if recognition never finished it."""
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


class Interrupted(Exception):  # noqa: N818 - reads as what happened, like KeyboardInterrupt
    """Recognition was asked to stop (Ctrl-C, a cancelled job); nothing was stored."""


def _stoppable(
    on_progress: ProgressCallback | None, should_stop: Callable[[], bool]
) -> ProgressCallback:
    """Report progress, then give up at this point if asked to stop."""

    def report(position: float, duration: float | None) -> None:
        if on_progress is not None:
            on_progress(position, duration)
        if should_stop():
            raise Interrupted

    return report


def _offset(
    on_progress: ProgressCallback | None, window: AudioWindow, media: MediaInfo
) -> Callable[[float], None] | None:
    """Turn a position inside ``window`` into a position in the file."""
    if on_progress is None:
        return None
    return lambda seconds: on_progress(window.start_s + seconds, media.duration_s)


@dataclass(slots=True)
class _Recognition:
    language: str
    language_probability: float = 1.0
    segments: list[Segment] = field(default_factory=list)
    decoded_s: float = 0.0
    decode_s: float = 0.0
    asr_s: float = 0.0

    def to_cache(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "language_probability": self.language_probability,
            "decoded_s": self.decoded_s,
            "segments": [segment_to_dict(s) for s in self.segments],
        }

    @classmethod
    def from_cache(cls, value: dict[str, Any]) -> _Recognition:
        return cls(
            language=value["language"],
            language_probability=value["language_probability"],
            segments=[segment_from_dict(s) for s in value["segments"]],
            decoded_s=value["decoded_s"],
        )
