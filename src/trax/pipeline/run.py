"""Run a pipeline over files: probe → dedup → decode windows → ASR → store → export.

Each file is independent: its failure is recorded and the next file goes on.
Nothing of a failed file is stored or exported, because the transcript is
saved in one transaction only after recognition finished, and exports are
written atomically afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from trax.asr import FasterWhisperTranscriber, Transcriber, resolve_model
from trax.asr.models import ModelError
from trax.core import AudioWindow, MediaInfo, Segment, Transcript, TranscriptionSettings
from trax.media import MediaDecoder, MediaError, PyAVDecoder, is_media_path, probe
from trax.pipeline.versions import get_pipeline
from trax.store import TranscriptStore

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float | None], None]
"""Called with how far into the file recognition has got and the file's duration (seconds)."""


@dataclass(frozen=True, slots=True)
class MediaInput:
    """A file to transcribe and the base path (without extension) of its exports."""

    path: Path
    export_base: Path


@dataclass(slots=True)
class FileResult:
    path: Path
    status: Literal["done", "cached", "failed"]
    transcript: Transcript | None = None
    error: str | None = None
    exports: list[Path] = field(default_factory=list)
    elapsed_s: float = 0.0


class InputError(Exception):
    """A path given on the command line that yields no media."""


def collect_inputs(
    paths: Iterable[Path], output_dir: Path
) -> tuple[list[MediaInput], list[FileResult]]:
    """Expand files and directories (recursively) into inputs, plus one failure per bad path.

    Files named directly are always tried, whatever their extension; inside
    directories only known media extensions are taken and hidden files skipped.
    Exports mirror the layout under a directory so equal names can't collide.
    """
    inputs: list[MediaInput] = []
    failures: list[FileResult] = []
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
                failures.append(FileResult(path, "failed", error="no media files found in folder"))
            for file in found:
                relative = file.relative_to(path)
                inputs.append(MediaInput(file, output_dir / relative.parent / file.stem))
        elif path.exists() or path.is_symlink():
            inputs.append(MediaInput(path, output_dir / path.stem))
        else:
            failures.append(FileResult(path, "failed", error="file not found"))
    return _disambiguate(inputs), failures


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
    ) -> None:
        self.version = get_pipeline(settings.pipeline)
        self.settings = settings
        self.store = store
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
        self, path: Path, force: bool = False, on_progress: ProgressCallback | None = None
    ) -> tuple[Transcript, bool]:
        """Transcribe and store one file; return (transcript, reused_from_store)."""
        started = time.perf_counter()
        media = probe(path)
        if not force:
            cached = self.store.find(media.sha256, self.settings.cache_key())
            if cached is not None:
                return cached, True
        probe_s = time.perf_counter() - started
        recognised = self._recognise(media, on_progress)
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
                "probe_s": probe_s,
                "decode_s": recognised.decode_s,
                "asr_s": recognised.asr_s,
                "total_s": time.perf_counter() - started,
            },
        )
        return self.store.save(transcript), False

    def _recognise(self, media: MediaInfo, on_progress: ProgressCallback | None) -> _Recognition:
        """Decode window by window and recognise each; one window is in memory at a time."""
        result = _Recognition(language=self.settings.language or "")
        windows = iter(self.decoder.windows(Path(media.path), media.duration_s))
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
            if not result.language:
                result.language = recognised.language
                result.language_probability = recognised.language_probability
            result.segments.extend(recognised.segments)
            result.decoded_s += window.duration_s
            if on_progress is not None:
                on_progress(window.end_s, media.duration_s)
        result.language = result.language or "en"
        return result


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


def run_files(
    pipeline: Pipeline,
    inputs: Iterable[MediaInput],
    formats: list[str],
    force: bool = False,
    on_progress: ProgressCallback | None = None,
) -> Iterator[FileResult]:
    """Transcribe and export each input; one file's failure never stops the next."""
    from trax.export import export_transcript, get_exporter

    for item in inputs:
        started = time.perf_counter()
        try:
            transcript, cached = pipeline.transcribe(item.path, force, on_progress)
            exports = [
                export_transcript(
                    transcript,
                    fmt,
                    item.export_base.with_name(item.export_base.name + get_exporter(fmt).extension),
                )
                for fmt in formats
            ]
        except ModelError:
            raise  # the same for every file: stop the batch with one clear error
        except MediaError as exc:
            yield FileResult(item.path, "failed", error=str(exc), elapsed_s=_since(started))
            continue
        except OSError as exc:
            reason = exc.strerror or str(exc)
            yield FileResult(item.path, "failed", error=reason, elapsed_s=_since(started))
            continue
        except Exception as exc:
            log.exception("unexpected error on %s", item.path)
            reason = f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0]
            yield FileResult(item.path, "failed", error=reason, elapsed_s=_since(started))
            continue
        status: Literal["done", "cached"] = "cached" if cached else "done"
        yield FileResult(item.path, status, transcript, None, exports, _since(started))


def _since(started: float) -> float:
    return time.perf_counter() - started
