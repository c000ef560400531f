"""Run a pipeline over one file: decode windows once, pass each through the audio
stages, then the whole transcript through the transcript stages.

A run is pure: it returns a ``Transcript`` and touches no database. Storing,
deduplicating and exporting are the service's (``trax.service``); a stage
cache, when one is handed in, only saves work.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from trax.core import (
    SAMPLE_RATE,
    AudioWindow,
    Edit,
    MediaInfo,
    SkippedStage,
    StageRecord,
    Transcript,
    TranscriptionSettings,
    records_key,
)
from trax.failpoints import failpoint
from trax.media import AudioSource, PyAVDecoder, is_media_path, probe
from trax.payload import edits_to_list, segment_from_dict, segment_to_dict
from trax.pipeline.stages import AudioStage, RunContext, Stage, TranscriptStage, record, stage_key
from trax.pipeline.versions import PipelineError
from trax.store.cache import StageCache

if TYPE_CHECKING:
    from trax.asr import Transcriber

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


@dataclass(slots=True)
class PreparedMedia:
    """A file probed and, optionally, its first window decoded, ready for a run."""

    media: MediaInfo
    source: AudioSource
    windows: Iterator[AudioWindow]
    stream: Iterator[AudioWindow]  # the decoder's own generator, to close
    probe_s: float
    decode_s: float

    def close(self) -> None:
        """Release the decoder (and its open file) if the run never finished it."""
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


def prepare(path: Path, decoder: PyAVDecoder, decode_ahead: bool = True) -> PreparedMedia:
    """Probe (and hash) a file, and decode its first window unless told not to."""
    started = time.perf_counter()
    media = probe(path)
    probed = time.perf_counter()
    source = AudioSource(Path(media.path), decoder, media.duration_s)
    stream = iter(source.windows())
    windows: Iterator[AudioWindow] = stream
    if decode_ahead:
        first = next(stream, None)
        windows = itertools.chain([first] if first is not None else [], stream)
    decoded = time.perf_counter()
    return PreparedMedia(media, source, windows, stream, probed - started, decoded - probed)


def decoder_record(decoder: PyAVDecoder) -> StageRecord:
    """The decoder heads every record: its windows bound what recognition sees at once."""
    settings = {"sample_rate": SAMPLE_RATE, "window_s": decoder.window_s}
    return StageRecord("decode", "pyav-decode/1", settings)


def build(
    settings: TranscriptionSettings,
    transcriber: Transcriber | None = None,
    device: str = "auto",
    decoder: PyAVDecoder | None = None,
) -> Pipeline:
    """The one place a pipeline is built: the version's stages for these settings.

    ``transcriber`` shares an already loaded model; otherwise the model is
    resolved (and verified) now and loaded on first use.
    """
    from trax.asr import FasterWhisperTranscriber, resolve_model
    from trax.pipeline.versions import get_pipeline

    version = get_pipeline(settings.pipeline)
    if transcriber is None:
        transcriber = FasterWhisperTranscriber(resolve_model(settings.model), device=device)
    stages = version.build(settings, transcriber)
    return Pipeline(settings, transcriber.model_id, stages, decoder)


class Interrupted(Exception):  # noqa: N818 - reads as what happened, like KeyboardInterrupt
    """The run was asked to stop (Ctrl-C, a cancelled job); nothing was kept."""


class Pipeline:
    """A pipeline version built for one set of settings: a decoder and ordered stages.

    Build it with ``trax.pipeline.build`` (one place for every caller).
    """

    def __init__(
        self,
        settings: TranscriptionSettings,
        model_id: str,
        stages: Sequence[Stage],
        decoder: PyAVDecoder | None = None,
    ) -> None:
        self.settings = settings
        self.model_id = model_id
        self.stages = list(stages)
        self.decoder = decoder or PyAVDecoder()

    def records(self) -> list[StageRecord]:
        """What a run records when every stage can run: the decoder, then each stage."""
        return [decoder_record(self.decoder), *(record(s) for s in self.stages)]

    @property
    def key(self) -> str:
        """The dedup key (with a content hash): model weights, stage versions and settings."""
        return records_key(self.records())

    def prepare(self, path: Path, decode_ahead: bool = True) -> PreparedMedia:
        return prepare(path, self.decoder, decode_ahead)

    def runnable(self) -> tuple[list[Stage], list[SkippedStage]]:
        """The stages that can run now, and the optional ones that can't (with why).

        A required stage that cannot run stops the run before any work.
        """
        ready: list[Stage] = []
        skipped: list[SkippedStage] = []
        for stage in self.stages:
            reason = stage.unavailable()
            if reason is None:
                ready.append(stage)
            elif stage.optional:
                skipped.append(SkippedStage(stage.name, reason))
            else:
                raise PipelineError(f"stage {stage.name} cannot run: {reason}")
        return ready, skipped

    def run(
        self,
        media: Path | PreparedMedia,
        *,
        cache: StageCache | None = None,
        refresh: bool = False,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Transcript:
        """Run every stage that can run over one file and return the transcript.

        With a ``cache``, stage outputs found there are reused and new ones are
        kept; ``refresh`` computes everything again (and replaces what was kept).

        ``should_stop`` is polled as recognition goes; when it turns true,
        ``Interrupted`` is raised and nothing is returned or cached.
        """
        started = time.perf_counter()
        stages, skipped = self.runnable()
        prepared = media if isinstance(media, PreparedMedia) else self.prepare(media, False)
        info = prepared.media
        timings: dict[str, float] = {"probe_s": prepared.probe_s}
        transcript = Transcript(
            media=info,
            segments=(),
            language=self.settings.language or "",
            language_probability=1.0,
            settings=self.settings,
            model_id=self.model_id,
            skipped=tuple(skipped),
        )
        audio_stages = [cast(AudioStage, s) for s in stages if s.kind == "audio"]
        later = [cast(TranscriptStage, s) for s in stages if s.kind == "transcript"]
        key = stage_key(info.sha256, decoder_record(self.decoder))
        for stage in audio_stages:
            key = stage_key(key, stage)
        run = RunContext(
            prepared.source, info.duration_s, _progress(on_progress, should_stop, info)
        )
        try:
            reuse = cache is not None and not refresh and bool(audio_stages)
            cached = cache.get(audio_stages[-1].name, key) if cache and reuse else None
            if cached is not None:
                transcript = _from_cache(transcript, cached)
                timings["decode_s"] = prepared.decode_s
            else:
                transcript = self._audio_pass(prepared, audio_stages, transcript, run, timings)
                if cache is not None and any(s.cached for s in audio_stages):
                    cache.put(audio_stages[-1].name, key, _to_cache(transcript))
        finally:
            prepared.close()
        transcript = self._transcript_pass(later, transcript, run, key, cache, refresh, timings)
        timings["total_s"] = time.perf_counter() - started
        return replace(
            transcript,
            language=transcript.language or "en",
            stages=(decoder_record(self.decoder), *(record(s) for s in stages)),
            timings=timings,
        )

    def _transcript_pass(
        self,
        stages: list[TranscriptStage],
        transcript: Transcript,
        run: RunContext,
        key: str,
        cache: StageCache | None,
        refresh: bool,
        timings: dict[str, float],
    ) -> Transcript:
        """Each transcript stage in turn, its output kept in the cache when worth it."""
        for stage in stages:
            key = stage_key(key, stage)
            value = cache.get(stage.name, key) if cache and stage.cached and not refresh else None
            if value is not None:
                transcript = _from_cache(transcript, value)
                continue
            tick = time.perf_counter()
            transcript = stage.process(transcript, run)
            timings[f"{stage.name}_s"] = time.perf_counter() - tick
            if cache is not None and stage.cached:
                cache.put(stage.name, key, _to_cache(transcript))
        return transcript

    def _audio_pass(
        self,
        prepared: PreparedMedia,
        stages: list[AudioStage],
        transcript: Transcript,
        run: RunContext,
        timings: dict[str, float],
    ) -> Transcript:
        """Decode once; every window goes through each audio stage in order."""
        spent = dict.fromkeys((f"{s.name}_s" for s in stages), 0.0)
        decode_s = prepared.decode_s
        decoded = 0.0
        windows = prepared.windows
        while True:
            tick = time.perf_counter()
            window = next(windows, None)
            decode_s += time.perf_counter() - tick
            if window is None:
                break
            for stage in stages:
                tick = time.perf_counter()
                window, transcript = stage.process(window, transcript, run)
                spent[f"{stage.name}_s"] += time.perf_counter() - tick
            failpoint("asr")
            decoded += window.duration_s
            run.report(window.end_s)
        timings["decode_s"] = decode_s
        timings |= spent
        # What was decoded is the truth; container headers can be wrong.
        return replace(transcript, media=replace(transcript.media, duration_s=round(decoded, 3)))


def _progress(
    on_progress: ProgressCallback | None,
    should_stop: Callable[[], bool] | None,
    media: MediaInfo,
) -> Callable[[float], None] | None:
    """Report a position in the file, then give up there if asked to stop."""
    if on_progress is None and should_stop is None:
        return None

    def report(position: float) -> None:
        if on_progress is not None:
            on_progress(position, media.duration_s)
        if should_stop is not None and should_stop():
            raise Interrupted

    return report


def _to_cache(transcript: Transcript) -> dict[str, Any]:
    return {
        "duration_s": transcript.media.duration_s,
        "language": transcript.language,
        "language_probability": transcript.language_probability,
        "segments": [segment_to_dict(s) for s in transcript.segments],
        "edits": edits_to_list(transcript.edits),
    }


def _from_cache(transcript: Transcript, value: dict[str, Any]) -> Transcript:
    return replace(
        transcript,
        media=replace(transcript.media, duration_s=value["duration_s"]),
        language=value["language"],
        language_probability=value["language_probability"],
        segments=tuple(segment_from_dict(s) for s in value["segments"]),
        edits=tuple(Edit(**e) for e in value["edits"]),
    )
