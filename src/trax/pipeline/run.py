"""Run a pipeline over one file: decode windows once, pass each through the audio
stages, then the whole transcript through the transcript stages.

A run is pure: it returns a ``Transcript`` and touches no database. Storing,
deduplicating and exporting are the service's (``trax.service``); a stage
cache, when one is handed in, only saves work.
"""

from __future__ import annotations

import itertools
import os
import time
import unicodedata
from collections import Counter
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


EXPORT_NAME_BYTES = 200
"""The longest export base name in UTF-8 bytes. File systems allow 255 bytes a
name; the rest is room for an extension (``.json``), a qualifier (`` (2)``) and
the temp file's ``.<name>.<8 hex>.tmp`` that every export is written through."""


@dataclass(frozen=True, slots=True)
class MediaInput:
    """A file to transcribe and the base path (without extension) of its exports.

    Both are absolute (see ``absolute``) and ``export_base`` always lies inside
    the output folder, so a job finds its file and exports to the same place
    whichever folder it is resumed or worked on in, and the base can be
    compared across runs (see ``trax.jobs.batches``).
    """

    path: Path
    export_base: Path


@dataclass(frozen=True, slots=True)
class _Named:
    """An input and the names its export base may take, safe for any file system."""

    path: Path
    folders: tuple[str, ...]  # a folder's layout, mirrored under the output folder
    stem: str
    name: str
    above: tuple[str, ...]  # the folders above it, nearest first, to tell equal names apart

    def candidate(self, level: int) -> tuple[str, ...]:
        """``talk`` → ``talk.wav`` → ``talk.wav (x)`` → ``talk.wav (col-x)`` → …"""
        if level == 0:
            return (*self.folders, self.stem)
        if level == 1:
            return (*self.folders, self.name)
        qualifier = "-".join(reversed(self.above[: level - 1]))
        return (*self.folders, qualify(self.name, qualifier))

    @property
    def top(self) -> int:
        return 1 + len(self.above)


def collect_inputs(
    paths: Iterable[Path], output_dir: Path
) -> tuple[list[MediaInput], list[tuple[Path, str]]]:
    """Expand files and directories (recursively) into inputs, plus (folder, problem) pairs.

    Files named directly are always tried, whatever their extension or even
    existence (a missing one fails as a job, with its reason); inside
    directories only known media extensions are taken and hidden files skipped.
    A file reached twice (named twice, or directly and through its folder) is
    one input. Exports mirror the layout under a directory, files named directly
    export to the output folder itself, and ``_disambiguate`` gives every input
    its own export base.
    """
    named: list[_Named] = []
    seen: set[str] = set()
    problems: list[tuple[Path, str]] = []

    def add(file: Path, folders: tuple[str, ...], above: Path) -> None:
        identity = os.path.realpath(file)
        if identity in seen:
            return
        seen.add(identity)
        # realpath rather than resolve(): a symlink loop must not raise here.
        parents = Path(os.path.realpath(above)).parts[1:]
        named.append(
            _Named(
                path=absolute(file),
                folders=tuple(safe_name(part) or "_" for part in folders),
                stem=safe_name(file.stem) or safe_name(file.name) or "untitled",
                name=safe_name(file.name) or "untitled",
                above=tuple(safe_name(p) or "_" for p in reversed(parents)),
            )
        )

    for path in paths:
        if _is_dir(path):
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
                add(file, file.relative_to(path).parent.parts, path)
        else:
            add(path, (), path.parent)
    return _disambiguate(named, Path(os.path.realpath(output_dir))), problems


def absolute(path: Path) -> Path:
    """``path`` from the root, its folders resolved (links, ``..``) but its own name kept.

    A job records it, so ``trax jobs resume`` finds the file from any folder.
    The name stays as given: a linked file (a git-annex one, say) is still
    shown and exported by the name the user knows, not its target's.
    """
    if path.name in ("", ".", ".."):
        return Path(os.path.realpath(path))
    return Path(os.path.realpath(path.parent)) / path.name


def _is_dir(path: Path) -> bool:
    """Whether ``path`` is a folder; one that can't even be looked at (a name too
    long, a loop of links) is not, and fails later as a job, with its reason."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _disambiguate(named: list[_Named], output_dir: Path) -> list[MediaInput]:
    """Give every input its own export base under ``output_dir``, deterministically.

    Each input starts at its stem (``talk``). Inputs whose names collide move
    on together, the least qualified first: to the file name (``talk.wav``,
    ``talk.mp3``), then to the name qualified by the folders above it, nearest
    first (``talk.wav (x)``, ``talk.wav (col-x)``). What still collides gets a
    number on its file name (``talk.wav (2)``), in input order. Names are compared case- and
    normalisation-insensitively, as macOS and Windows file systems do.
    """
    levels = [0] * len(named)
    moved = True
    while moved:  # each pass raises some level, and levels are bounded: it ends
        moved = False
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, item in enumerate(named):
            groups.setdefault(_key(item.candidate(levels[index])), []).append(index)
        for members in groups.values():
            movable = [i for i in members if levels[i] < named[i].top] if len(members) > 1 else []
            if movable:
                lowest = min(levels[i] for i in movable)
                for i in movable:
                    if levels[i] == lowest:
                        levels[i] += 1
                        moved = True
    chosen = [item.candidate(level) for item, level in zip(named, levels, strict=True)]
    # Names that no folder tells apart (``Talk.wav`` and ``talk.wav`` side by side)
    # take a number on the plain file name, not on a qualifier that says nothing.
    shared = Counter(_key(parts) for parts in chosen)
    chosen = [
        item.candidate(min(level, 1)) if shared[_key(parts)] > 1 else parts
        for item, level, parts in zip(named, levels, chosen, strict=True)
    ]
    wanted = {_key(parts) for parts in chosen}
    used: set[tuple[str, ...]] = set()
    inputs: list[MediaInput] = []
    for item, parts in zip(named, chosen, strict=True):
        number = 1
        candidate = parts
        while _key(candidate) in used:
            number += 1
            candidate = (*parts[:-1], qualify(parts[-1], str(number)))
            if _key(candidate) in wanted:
                candidate = parts  # another input's own name: keep counting
        used.add(_key(candidate))
        inputs.append(MediaInput(item.path, output_dir.joinpath(*candidate)))
    return inputs


def _key(parts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(unicodedata.normalize("NFC", part).casefold() for part in parts)


def export_key(base: Path) -> str:
    """What two export bases are compared by: equal keys are one file on macOS or Windows."""
    return unicodedata.normalize("NFC", str(base)).casefold()


def safe_name(text: str) -> str:
    """``text`` as one path component that stays where it is put, or ``""``.

    Control characters (a newline in a file name) and separators become ``_``;
    leading dots go, so no name is ``.``, ``..`` or hidden (our temp files are
    the hidden ones); bytes that are not UTF-8 become U+FFFD; the result fits
    ``EXPORT_NAME_BYTES``.
    """
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = "".join("_" if ord(c) < 32 or c in "\x7f/\\" else c for c in text)
    return _truncate(text.strip().lstrip(".").strip(), EXPORT_NAME_BYTES)


def qualify(name: str, qualifier: str) -> str:
    """``name (qualifier)``, shortening the name (and a long qualifier) to fit."""
    qualifier = _truncate(qualifier, EXPORT_NAME_BYTES // 2, keep_end=True)
    suffix = f" ({qualifier})"
    return _truncate(name, EXPORT_NAME_BYTES - len(suffix.encode())) + suffix


def numbered_base(base: Path, number: int) -> Path:
    """``out/talk`` → ``out/talk (2)``: the same export base, told apart by a number."""
    return base.with_name(qualify(base.name, str(number)))


def _truncate(text: str, limit: int, keep_end: bool = False) -> str:
    """At most ``limit`` UTF-8 bytes of ``text``, never cutting a character in two."""
    data = text.encode()
    if len(data) <= limit:
        return text
    cut = data[-limit:] if keep_end else data[:limit]
    return cut.decode("utf-8", "ignore").strip()


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
            prepared.source,
            info.duration_s,
            _progress(on_progress, should_stop, info),
            cache=None if refresh else cache,
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
