"""Readability of what Trax writes (issue 9): segments, subtitles, silence, languages.

    uv run python -m benchmarks.readability [--corpus PATH] [--json PATH]

Three parts, each run through the installed ``trax`` command (``Bench.trax_command``):

- **segments and subtitles**: the 5-minute recording of the speed section,
  ``trax transcribe -f json,srt`` (v1, tiny.en; a transcript the speed section
  stored is reused, not made again): segment count, median and longest segment
  from the JSON export; from the SRT file Trax wrote, parsed back, the share of
  cues read at ≤ 20 characters a second, the fastest cue and the smallest gap
  between consecutive cues. Characters a second are counted as Trax counts
  them (``trax.export.subtitles.cue_cps`` on the parsed cues: the cue's lines
  joined by one space, over its time on screen in whole milliseconds).
- **silence**: JFK, 60 s of digital silence, JFK again (16 kHz mono WAV),
  ``-f json`` by default, ``--sequential`` and ``--no-vad``: the words whose
  midpoint lies inside the silence (there must be none).
- **languages**: ``misc/multilingual.mp3`` (English, then German) with
  ``--model base``: the per-segment languages as runs, the transcript's
  language and the start of the German part; with ``tiny.en``, how many times
  the "knows only English" warning is printed on stderr (once is right).

Every part reports what it measured even when Trax fails its target; an error
inside a part becomes that part's note and the others go on.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.corpus import SAMPLE_RATE, SAMPLE_WIDTH, decode_pcm16
from benchmarks.sections import Bench

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
JFK = REPO_ROOT / "examples" / "jfk.flac"
MULTILINGUAL = Path("misc") / "multilingual.mp3"  # in the corpus

PIPELINE = "v1"
MODEL = "tiny.en"
LANGUAGE_MODEL = "base"
"""The smallest bundled multilingual model."""

SEGMENT_MEDIAN_TARGET_S = 12.0
SEGMENT_MAX_TARGET_S = 30.0
CPS_LIMIT = 20.0
CPS_SHARE_TARGET = 0.95
MIN_GAP_TARGET_S = 0.08
"""Two frames at 25 fps (``SubtitleOptions.min_gap``'s default)."""
SILENCE_S = 60.0
SILENCE_MODES: dict[str, tuple[str, ...]] = {
    "default": (),
    "--sequential": ("--sequential",),
    "--no-vad": ("--no-vad",),
}
ENGLISH_ONLY_WARNING = "knows only English"
GERMAN_WORDS = frozenset(
    {
        "der", "die", "das", "und", "ist", "nicht", "ich", "du", "wir", "sie", "es", "ein",
        "eine", "einen", "dem", "den", "des", "mit", "zu", "von", "für", "auf", "dies", "diese",
        "dieser", "diesen", "umfasst", "insbesondere", "recht", "unter",
    }
)  # fmt: skip
"""Common German words: the German part must read as German, not as an English rendering."""
FIRST_WORDS = 10

TRANSCRIBE_TIMEOUT_S = 900.0
SHORT_TIMEOUT_S = 300.0


class ReadabilityError(Exception):
    """A part could not be measured (not: Trax failed it); the message is one line."""


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Segmentation:
    """Segments and subtitle cues of the 5-minute recording."""

    recording: str
    audio_s: float
    pipeline: str = PIPELINE
    model: str = MODEL
    segments: int = 0
    median_s: float | None = None
    max_s: float | None = None
    over_max: int = 0  # segments longer than SEGMENT_MAX_TARGET_S
    reused: bool | None = None  # the stored transcript (the speed section's) was exported
    cues: int = 0
    cps_limit: float = CPS_LIMIT
    cps_within: float | None = None  # share of cues at ≤ cps_limit
    cps_max: float | None = None
    min_gap_s: float | None = None  # smallest start-minus-previous-end between cues
    gaps_under: int = 0  # consecutive cues closer than MIN_GAP_TARGET_S
    took_s: float = 0.0
    error: str | None = None

    @property
    def segments_passed(self) -> bool | None:
        if self.median_s is None or self.max_s is None:
            return None
        return self.median_s <= SEGMENT_MEDIAN_TARGET_S and self.max_s <= SEGMENT_MAX_TARGET_S

    @property
    def cps_passed(self) -> bool | None:
        return None if self.cps_within is None else self.cps_within >= CPS_SHARE_TARGET

    @property
    def gap_passed(self) -> bool | None:
        if self.cues < 2 or self.min_gap_s is None:
            return None
        return self.gaps_under == 0


@dataclass(slots=True)
class SilenceRun:
    mode: str  # "default", "--sequential" or "--no-vad"
    words: int = 0
    in_silence: list[str] = field(default_factory=list)  # "You 0:58.2–0:58.9 (p 0.12)"
    took_s: float = 0.0
    error: str | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.error is not None else not self.in_silence


@dataclass(slots=True)
class Silence:
    """JFK + digital silence + JFK."""

    model: str = MODEL
    audio_s: float = 0.0
    silence_start_s: float = 0.0
    silence_end_s: float = 0.0
    runs: list[SilenceRun] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class LanguageRun:
    language: str | None
    start_s: float
    end_s: float
    segments: int


@dataclass(slots=True)
class Languages:
    """``misc/multilingual.mp3``: English, then German."""

    recording: str = str(MULTILINGUAL)
    model: str = LANGUAGE_MODEL
    language: str | None = None  # the transcript's
    majority: str | None = None  # the language with the most segment time
    runs: list[LanguageRun] = field(default_factory=list)
    german_start: str = ""  # the first words of the first German segment
    german_words: int = 0  # common German words in the German segments
    took_s: float = 0.0
    error: str | None = None
    english_only_model: str = MODEL
    warnings: int | None = None  # "knows only English" lines on stderr
    warning_took_s: float = 0.0
    warning_error: str | None = None

    @property
    def passed(self) -> bool | None:
        if self.error is not None:
            return None
        order = [r.language for r in self.runs]
        return order == ["en", "de"] and self.german_words >= 3

    @property
    def warning_passed(self) -> bool | None:
        return None if self.warnings is None else self.warnings == 1


@dataclass(slots=True)
class Readability:
    segmentation: Segmentation
    silence: Silence
    languages: Languages
    took_s: float = 0.0


# --------------------------------------------------------------------------- SRT


@dataclass(frozen=True, slots=True)
class SrtCue:
    start: float
    end: float
    lines: tuple[str, ...]


_SRT_TIME = re.compile(r"(\d+):(\d{2}):(\d{2})[,.](\d{3})\s*-->\s*(\d+):(\d{2}):(\d{2})[,.](\d{3})")


def parse_srt(text: str) -> list[SrtCue]:
    """The cues of an SRT file, in file order; a block without a time line is refused."""
    cues = []
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    for block in blocks:
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        timing_at = 1 if lines[0].strip().isdigit() else 0
        match = _SRT_TIME.fullmatch(lines[timing_at].strip()) if len(lines) > timing_at else None
        if match is None:
            raise ReadabilityError(f"not an SRT cue: {block[:80]!r}")
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in match.groups())
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        cues.append(SrtCue(start, end, tuple(lines[timing_at + 1 :])))
    return cues


def cue_speeds(cues: Sequence[SrtCue]) -> list[float]:
    """Characters a second of each cue, as Trax counts them (``cue_cps``)."""
    from trax.export.subtitles import Cue, cue_cps

    return [cue_cps(Cue(c.start, c.end, c.lines)) for c in cues]


def gaps(cues: Sequence[SrtCue]) -> list[float]:
    """Seconds between each cue's end and the next one's start (negative: overlap)."""
    return [round(b.start - a.end, 3) for a, b in itertools.pairwise(cues)]


# --------------------------------------------------------------------------- helpers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _clock(seconds: float, tenths: bool = False) -> str:
    if tenths:
        minutes, secs = divmod(round(seconds, 1), 60)
        return f"{int(minutes)}:{secs:04.1f}"
    minutes, whole = divmod(round(seconds), 60)
    return f"{minutes}:{whole:02d}"


def run_trax(
    bench: Bench, args: Sequence[str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """One ``trax`` process in the bench folder; its stdout and stderr (a failure raises)."""
    command = bench.trax_command(*args)
    try:
        done = subprocess.run(
            command, cwd=bench.workdir, env=bench.env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ReadabilityError(
            f"timed out after {timeout_s:.0f} s: trax {' '.join(args)}"
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise ReadabilityError(f"trax {' '.join(args)} failed ({done.returncode}): {reason[:300]}")
    return done


def transcribe(
    bench: Bench,
    media: Path,
    name: str,
    formats: str,
    extra: Sequence[str] = (),
    *,
    model: str = MODEL,
    force: bool = True,
    timeout_s: float = SHORT_TIMEOUT_S,
) -> tuple[dict[str, Path], subprocess.CompletedProcess[str], float]:
    """``trax transcribe`` into a fresh folder: the exports by format, the process, seconds."""
    output = bench.workdir / "readability" / name
    output.mkdir(parents=True, exist_ok=False)
    args = [
        "transcribe", str(media), "-p", PIPELINE, "-m", model,
        "-f", formats, "-o", str(output), *(["--force"] if force else []), *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    done = run_trax(bench, args, timeout_s)
    took = time.perf_counter() - started
    exports: dict[str, Path] = {}
    for fmt in formats.split(","):
        found = sorted(output.glob(f"*.{fmt}"))
        if len(found) != 1:
            raise ReadabilityError(f"expected one .{fmt} export in {output}, found {len(found)}")
        exports[fmt] = found[0]
    return exports, done, round(took, 3)


def _segments(payload: dict[str, Any]) -> list[dict[str, Any]]:
    segments = payload.get("segments")
    if not isinstance(segments, list):
        raise ReadabilityError("the JSON export has no segments")
    return segments


# --------------------------------------------------------------------------- 1. segments


def segmentation(bench: Bench, recording: Path, audio_s: float) -> Segmentation:
    """Segment sizes and subtitle reading speed on the 5-minute recording."""
    result = Segmentation(recording=recording.name, audio_s=round(audio_s, 3))
    try:
        # No --force: a transcript of the same bytes and settings (the speed section's)
        # is reused and only exported; on its own this transcribes the recording once.
        exports, done, result.took_s = transcribe(
            bench, recording, "segments", "json,srt", ["--json"], force=False,
            timeout_s=TRANSCRIBE_TIMEOUT_S,
        )  # fmt: skip
        with contextlib.suppress(ValueError, LookupError, TypeError):
            result.reused = bool(json.loads(done.stdout)["files"][0]["cached"])
        payload = json.loads(exports["json"].read_text(encoding="utf-8"))
        durations = [float(s["end"]) - float(s["start"]) for s in _segments(payload)]
        result.segments = len(durations)
        if durations:
            result.median_s = round(statistics.median(durations), 3)
            result.max_s = round(max(durations), 3)
            result.over_max = sum(d > SEGMENT_MAX_TARGET_S for d in durations)
        cues = parse_srt(exports["srt"].read_text(encoding="utf-8"))
        result.cues = len(cues)
        speeds = cue_speeds(cues)
        if speeds:
            result.cps_within = round(sum(s <= CPS_LIMIT for s in speeds) / len(speeds), 4)
            result.cps_max = round(max(speeds), 2)
        between = gaps(cues)
        if between:
            result.min_gap_s = min(between)
            # Cue times are whole milliseconds: 0.0795 s is not a shortfall.
            result.gaps_under = sum(g < MIN_GAP_TARGET_S - 0.0005 for g in between)
    except Exception as exc:  # noqa: BLE001 - reported in the section; the run goes on
        result.error = _first_line(exc)
    bench.log(f"readability segments: {json.dumps(asdict(result))}")
    return result


# --------------------------------------------------------------------------- 2. silence


def build_silence_file(target: Path, silence_s: float = SILENCE_S) -> tuple[float, float, float]:
    """JFK + ``silence_s`` of digital silence + JFK as 16 kHz mono 16-bit WAV.

    Returns (total seconds, silence start, silence end).
    """
    speech = decode_pcm16(JFK)
    silence = bytes(round(silence_s * SAMPLE_RATE) * SAMPLE_WIDTH)
    target.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(speech + silence + speech)
    speech_s = len(speech) / SAMPLE_WIDTH / SAMPLE_RATE
    total = (2 * len(speech) + len(silence)) / SAMPLE_WIDTH / SAMPLE_RATE
    return total, speech_s, speech_s + len(silence) / SAMPLE_WIDTH / SAMPLE_RATE


def words_inside(payload: dict[str, Any], start_s: float, end_s: float) -> tuple[int, list[str]]:
    """How many words the transcript has, and those whose midpoint lies in [start_s, end_s]."""
    count, inside = 0, []
    for segment in _segments(payload):
        for word in segment.get("words") or []:
            count += 1
            w_start, w_end = float(word["start"]), float(word["end"])
            if start_s <= (w_start + w_end) / 2 <= end_s:
                text = str(word["text"]).strip()
                p = word.get("probability")
                shown = f"{text} {_clock(w_start, True)}–{_clock(w_end, True)}"
                inside.append(shown + (f" (p {float(p):.2f})" if p is not None else ""))
    return count, inside


def silence(bench: Bench) -> Silence:
    """No word inside 60 s of digital silence, in every decoding mode."""
    result = Silence()
    try:
        media = bench.workdir / "readability" / "jfk-silence-jfk.wav"
        total, start, end = build_silence_file(media)
        result.audio_s, result.silence_start_s, result.silence_end_s = (
            round(total, 3), round(start, 3), round(end, 3),
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - reported in the section; the run goes on
        result.error = _first_line(exc)
        return result
    for n, (mode, extra) in enumerate(SILENCE_MODES.items()):
        run = SilenceRun(mode=mode)
        try:
            exports, _, run.took_s = transcribe(
                bench, media, f"silence-{n}", "json", [*extra, "-q"]
            )
            payload = json.loads(exports["json"].read_text(encoding="utf-8"))
            run.words, run.in_silence = words_inside(payload, start, end)
        except Exception as exc:  # noqa: BLE001 - reported in the section; the run goes on
            run.error = _first_line(exc)
        bench.log(f"readability silence {mode}: {json.dumps(asdict(run))}")
        result.runs.append(run)
    return result


# --------------------------------------------------------------------------- 3. languages


def language_runs(segments: list[dict[str, Any]]) -> list[LanguageRun]:
    """Consecutive segments of one language, merged."""
    runs: list[LanguageRun] = []
    for segment in segments:
        language = segment.get("language")
        start, end = float(segment["start"]), float(segment["end"])
        if runs and runs[-1].language == language:
            runs[-1].end_s = round(end, 3)
            runs[-1].segments += 1
        else:
            runs.append(LanguageRun(language, round(start, 3), round(end, 3), 1))
    return runs


def languages(bench: Bench, corpus_root: Path) -> Languages:
    """Per-segment languages with a multilingual model; the English-only model's warning."""
    result = Languages()
    media = corpus_root / MULTILINGUAL
    try:
        if not media.is_file():
            raise ReadabilityError(f"{media} not found")
        exports, _, result.took_s = transcribe(
            bench, media, "languages", "json", ["-q"], model=LANGUAGE_MODEL
        )
        payload = json.loads(exports["json"].read_text(encoding="utf-8"))
        segments = _segments(payload)
        result.language = payload.get("language")
        result.runs = language_runs(segments)
        seconds: dict[str, float] = {}
        for segment in segments:
            key = str(segment.get("language"))
            seconds[key] = seconds.get(key, 0.0) + float(segment["end"]) - float(segment["start"])
        result.majority = max(seconds, key=lambda k: seconds[k]) if seconds else None
        german = [str(s.get("text", "")) for s in segments if s.get("language") == "de"]
        words = " ".join(german).split()
        result.german_start = " ".join(words[:FIRST_WORDS]) + (
            " …" if len(words) > FIRST_WORDS else ""
        )
        result.german_words = sum(w.strip(".,;:!?\"'").lower() in GERMAN_WORDS for w in words)
    except Exception as exc:  # noqa: BLE001 - reported in the section; the run goes on
        result.error = _first_line(exc)
    bench.log(
        f"readability languages {LANGUAGE_MODEL}: language {result.language} (most segment "
        f"time: {result.majority}), runs "
        f"{[asdict(r) for r in result.runs]}, German {result.german_start!r}, error {result.error}"
    )
    try:
        if not media.is_file():
            raise ReadabilityError(f"{media} not found")
        # Not quiet: the warning is what is counted.
        _, done, result.warning_took_s = transcribe(
            bench, media, "languages-english-only", "json", model=MODEL
        )
        result.warnings = sum(ENGLISH_ONLY_WARNING in line for line in done.stderr.splitlines())
    except Exception as exc:  # noqa: BLE001 - reported in the section; the run goes on
        result.warning_error = _first_line(exc)
    bench.log(f"readability languages {MODEL}: {result.warnings} warnings ({result.warning_error})")
    return result


# --------------------------------------------------------------------------- entry points


def readability(bench: Bench, recording: Path, audio_s: float, corpus_root: Path) -> Readability:
    """All three parts; ``recording`` is the 5-minute recording of the speed section."""
    started = time.perf_counter()
    result = Readability(
        segmentation=segmentation(bench, recording, audio_s),
        silence=silence(bench),
        languages=languages(bench, corpus_root),
    )
    result.took_s = round(time.perf_counter() - started, 1)
    bench.log(f"readability: {result.took_s:.0f} s")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.corpus import CorpusError, locate
    from benchmarks.report import readability_section
    from benchmarks.run import SHORT_S
    from benchmarks.sections import build, stderr_log

    parser = argparse.ArgumentParser(prog="python -m benchmarks.readability", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args(argv)

    try:
        corpus = locate(args.corpus)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trax = Path(sys.executable).with_name("trax")
    if not trax.is_file():
        print(f"error: no trax executable next to {sys.executable}; run `uv sync`", file=sys.stderr)
        return 2
    log = stderr_log(time.perf_counter())
    with tempfile.TemporaryDirectory(prefix="trax-readability-") as tmp:
        workdir = Path(tmp)
        env = dict(os.environ, TRAX_DATA_DIR=str(workdir / "data"))
        env.pop("TRAX_DATABASE_URL", None)
        bench = Bench(
            trax=trax,
            python=Path(sys.executable),
            raw_script=REPO_ROOT / "benchmarks" / "raw_faster_whisper.py",
            workdir=workdir,
            database_url=f"sqlite:///{workdir / 'bench.db'}",
            env=env,
            pipelines=[PIPELINE],
            quick=True,
            log=log,
        )
        recording = workdir / "speakers-5min.wav"
        audio_s = build(recording, corpus.librispeech_clips(), SHORT_S, log)
        result = readability(bench, recording, audio_s, corpus.root)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2, ensure_ascii=False) + "\n")
    print("\n".join(readability_section(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
