"""The six measurements: accuracy, speed, memory, CLI response, batch and diarization.

Trax is always run as its installed ``trax`` command and compared with raw
faster-whisper (``benchmarks/raw_faster_whisper.py``) on the same model, the
same files and the same machine, in the same session. Speed and memory on the
5-minute recording have two raw baselines: sequential (``WhisperModel``, no VAD)
and batched (``BatchedInferencePipeline`` with Trax v1's settings). Competing
runs are interleaved (trax, raw, raw batched, trax, …) so a slow spell on a
shared machine hits every side rather than one.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.corpus import Corpus, audio_seconds, build_recording, copy_batch
from benchmarks.measure import MeasureError, Measurement, median, run_measured

RAW = "faster-whisper"
"""Raw faster-whisper, sequential: ``WhisperModel.transcribe``, no VAD, no batching."""
RAW_BATCHED = "faster-whisper batched"
"""Raw faster-whisper, batched: ``BatchedInferencePipeline`` with VAD and word timestamps."""
BEAM_SIZE = 5
"""faster-whisper's README value and Trax's default; every side uses it."""
BATCH_SIZE = 8
"""Trax v1's batch size (``Transcriber``'s default) and faster-whisper's: the batched baseline's."""

RSS_TARGET_LONG_MIB = 2048.0
"""A 2-hour recording must stay under 2 GB peak …"""
RSS_TARGET_ANY_MIB = 4096.0
"""… and no run may reach 4 GB."""
CLI_TARGET_S = 1.0

DIARIZATION_PENDING = "pending v4 — Trax has no diarization yet"


@dataclass(slots=True)
class Bench:
    """Where and how the measured processes run."""

    trax: Path  # the venv's console script: what users run, without `uv run` overhead
    python: Path
    raw_script: Path
    workdir: Path  # temporary; every process runs here so nothing lands in the repository
    database_url: str
    env: dict[str, str]
    pipelines: list[str]  # available pipeline versions
    quick: bool
    log: Callable[[str], None]
    runs: int = 0

    def trax_command(self, *args: str) -> list[str]:
        return [str(self.trax), "--db", self.database_url, *args]

    def transcribe(self, target: Path, pipeline: str, model: str, files: int) -> Command:
        """``trax transcribe`` of a file or folder, re-run from scratch each time it is built."""

        def build() -> list[str]:
            # A fresh output folder per run: `trax transcribe` resumes a batch when the same
            # command (files, settings, outputs) is repeated, and then has nothing to do.
            self.runs += 1
            output = self.workdir / "out" / str(self.runs)
            return self.trax_command(
                "transcribe", str(target), "--force", "-f", "none", "-q",
                "-p", pipeline, "-m", model, "-o", str(output),
            )  # fmt: skip

        return Command(f"trax {pipeline}", build, stores=files)

    def raw(self, model_dir: str, files: list[Path], *, batched: bool = False) -> Command:
        """The raw faster-whisper script, sequential or (``batched``) with Trax v1's settings."""
        mode = ["--batched", "--batch-size", str(BATCH_SIZE)] if batched else []
        command = [
            str(self.python), str(self.raw_script), "--model-dir", model_dir,
            "--beam-size", str(BEAM_SIZE), *mode, *map(str, files),
        ]  # fmt: skip
        return Command(RAW_BATCHED if batched else RAW, lambda: command)

    def stored(self) -> int:
        """How many transcripts the benchmark database holds (through the public CLI)."""
        listed = run_measured(
            self.trax_command("list", "--json", "--limit", "1000000"),
            cwd=self.workdir, env=self.env, timeout_s=120,
        )  # fmt: skip
        return len(json.loads(listed.stdout or "[]"))

    def measure(self, command: list[str], timeout_s: float = 3600.0) -> Measurement:
        return run_measured(command, cwd=self.workdir, env=self.env, timeout_s=timeout_s)

    def alternate(
        self, commands: list[Command], runs: int, what: str, timeout_s: float = 3600.0
    ) -> dict[str, list[Measurement]]:
        """``runs`` rounds, each running every command once, in order."""
        results: dict[str, list[Measurement]] = {c.name: [] for c in commands}
        for round_ in range(1, runs + 1):
            for command in commands:
                before = self.stored() if command.stores else 0
                result = self.measure(command.build(), timeout_s)
                if command.stores and self.stored() - before != command.stores:
                    # A run that stored nothing measured nothing: refuse to report it.
                    raise MeasureError(
                        f"{what}: {command.name} stored {self.stored() - before} transcripts, "
                        f"expected {command.stores}"
                    )
                results[command.name].append(result)
                self.log(
                    f"{what}: {command.name} run {round_}/{runs}: {result.wall_s:.1f} s, "
                    f"peak {result.peak_rss_mib:.0f} MiB"
                )
        return results


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    build: Callable[[], list[str]]  # called once per run
    stores: int = 0  # transcripts one run must add to the database


def model_dir(name: str) -> str:
    """The folder faster-whisper loads for a bundled model (joined and verified by Trax)."""
    from trax.asr import resolve_model

    return resolve_model(name).location


# --------------------------------------------------------------------------- 1. accuracy


@dataclass(slots=True)
class FileWer:
    name: str
    wer: float
    errors: int
    reference_words: int


@dataclass(slots=True)
class AccuracyRow:
    system: str  # "trax" or RAW
    label: str  # the system name `trax eval asr` reports
    pipeline: str | None
    model: str
    wer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    audio_s: float
    elapsed_s: float
    delta_points: float | None  # Trax WER minus raw WER, percentage points; < 0: Trax better
    files: list[FileWer]


@dataclass(slots=True)
class Accuracy:
    corpus: str
    clips: int
    normaliser: str
    rows: list[AccuracyRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _accuracy_row(
    system: dict[str, object], kind: str, pipeline: str | None, model: str
) -> AccuracyRow:
    files = system["files"]
    assert isinstance(files, list)
    return AccuracyRow(
        system=kind,
        label=str(system["system"]),
        pipeline=pipeline,
        model=model,
        wer=float(str(system["wer"])),
        substitutions=int(str(system["substitutions"])),
        deletions=int(str(system["deletions"])),
        insertions=int(str(system["insertions"])),
        reference_words=int(str(system["reference_words"])),
        audio_s=float(str(system["audio_s"])),
        elapsed_s=float(str(system["elapsed_s"])),
        delta_points=None,
        files=[
            FileWer(
                name=str(f["name"]),
                wer=float(f["wer"]),
                errors=int(f["substitutions"]) + int(f["deletions"]) + int(f["insertions"]),
                reference_words=int(f["reference_words"]),
            )
            for f in files
        ],
    )


def accuracy(bench: Bench, corpus: Corpus, models: list[str], skipped: list[str]) -> Accuracy:
    """WER of every pipeline × model on asr-dev, with one raw faster-whisper row per model."""
    result = Accuracy(corpus="asr-dev", clips=len(corpus.asr_clips()), normaliser="")
    result.skipped = [f"{m}: skipped in quick mode" for m in skipped]
    for model in models:
        raw: AccuracyRow | None = None
        trax_rows: list[AccuracyRow] = []
        for index, pipeline in enumerate(bench.pipelines):
            # The raw baseline does not depend on the pipeline: score it once per model.
            baseline = ["--baseline"] if index == 0 else []
            command = bench.trax_command(
                "eval",
                "asr",
                str(corpus.asr_dir),
                "--refs",
                str(corpus.references),
                "--pipeline",
                pipeline,
                "--model",
                model,
                "--beam-size",
                str(BEAM_SIZE),
                *baseline,
                "--json",
                "--force",
            )
            started = time.perf_counter()
            payload = json.loads(bench.measure(command).stdout)
            result.normaliser = str(payload["normaliser"])
            systems = payload["systems"]
            trax_rows.append(_accuracy_row(systems[0], "trax", pipeline, model))
            if len(systems) > 1:
                raw = _accuracy_row(systems[1], RAW, None, model)
            bench.log(
                f"accuracy {pipeline} {model}: WER {trax_rows[-1].wer:.2%}"
                + (f", raw {raw.wer:.2%}" if raw and index == 0 else "")
                + f" ({time.perf_counter() - started:.0f} s)"
            )
        for row in trax_rows:
            if raw is not None:
                row.delta_points = round((row.wer - raw.wer) * 100, 2)
        result.rows.extend(trax_rows)
        if raw is not None:
            result.rows.append(raw)
    return result


# --------------------------------------------------------------------------- 2./3. speed, memory


@dataclass(slots=True)
class SpeedRow:
    pipeline: str
    model: str
    audio_s: float
    runs: int
    trax_wall_s: list[float]
    raw_wall_s: list[float]
    trax_peak_rss_mib: list[float]
    raw_peak_rss_mib: list[float]
    trax_median_s: float
    raw_median_s: float
    ratio: float  # raw (sequential) median / Trax median: > 1 means Trax is faster
    trax_rtf: float  # real-time factor, wall / audio: < 1 is faster than real time
    raw_rtf: float
    # The batched baseline came later: defaults let rows of older results load without it.
    raw_batched_wall_s: list[float] = field(default_factory=list)
    raw_batched_peak_rss_mib: list[float] = field(default_factory=list)
    raw_batched_median_s: float | None = None
    batched_ratio: float | None = None  # raw batched median / Trax median: > 1: Trax faster
    raw_batched_rtf: float | None = None


def speed(bench: Bench, recording: Path, audio_s: float, models: list[str]) -> list[SpeedRow]:
    """Fresh-process wall time (and peak RSS) of Trax and both raw baselines on one file."""
    runs = 1 if bench.quick else 3
    rows = []
    for model in models:
        location = model_dir(model)
        commands = [bench.transcribe(recording, p, model, files=1) for p in bench.pipelines]
        commands.append(bench.raw(location, [recording]))
        commands.append(bench.raw(location, [recording], batched=True))
        measured = bench.alternate(commands, runs, f"speed {model}")
        raw_wall = [m.wall_s for m in measured[RAW]]
        batched_wall = [m.wall_s for m in measured[RAW_BATCHED]]
        batched_median = median(batched_wall)
        for pipeline in bench.pipelines:
            trax_wall = [m.wall_s for m in measured[f"trax {pipeline}"]]
            trax_median, raw_median = median(trax_wall), median(raw_wall)
            rows.append(
                SpeedRow(
                    pipeline=pipeline,
                    model=model,
                    audio_s=audio_s,
                    runs=runs,
                    trax_wall_s=_rounded(trax_wall),
                    raw_wall_s=_rounded(raw_wall),
                    trax_peak_rss_mib=_rounded(
                        [m.peak_rss_mib for m in measured[f"trax {pipeline}"]]
                    ),
                    raw_peak_rss_mib=_rounded([m.peak_rss_mib for m in measured[RAW]]),
                    trax_median_s=round(trax_median, 3),
                    raw_median_s=round(raw_median, 3),
                    ratio=round(raw_median / trax_median, 3),
                    trax_rtf=round(trax_median / audio_s, 4),
                    raw_rtf=round(raw_median / audio_s, 4),
                    raw_batched_wall_s=_rounded(batched_wall),
                    raw_batched_peak_rss_mib=_rounded(
                        [m.peak_rss_mib for m in measured[RAW_BATCHED]]
                    ),
                    raw_batched_median_s=round(batched_median, 3),
                    batched_ratio=round(batched_median / trax_median, 3),
                    raw_batched_rtf=round(batched_median / audio_s, 4),
                )
            )
    return rows


@dataclass(slots=True)
class MemoryRow:
    recording: str  # "5 min" or "2 h"
    audio_s: float
    system: str  # "trax", RAW or RAW_BATCHED
    pipeline: str | None
    model: str
    runs: int
    peak_rss_mib: float  # the highest peak over the runs: a bound, not a typical value
    wall_s: float  # median
    target_mib: float | None  # only Trax is held to a target
    within_target: bool | None


@dataclass(slots=True)
class Memory:
    rows: list[MemoryRow] = field(default_factory=list)
    long_recording: str = ""  # why the 2-hour rows are missing, when they are


def _memory_row(
    recording: str,
    audio_s: float,
    system: str,
    pipeline: str | None,
    model: str,
    measured: list[Measurement],
) -> MemoryRow:
    peak = max(m.peak_rss_mib for m in measured)
    target: float | None = None
    if system == "trax":
        target = RSS_TARGET_LONG_MIB if audio_s >= 3600 else RSS_TARGET_ANY_MIB
    return MemoryRow(
        recording=recording,
        audio_s=audio_s,
        system=system,
        pipeline=pipeline,
        model=model,
        runs=len(measured),
        peak_rss_mib=round(peak, 1),
        wall_s=round(median([m.wall_s for m in measured]), 3),
        target_mib=target,
        within_target=None if target is None else peak < target,
    )


def memory_from_speed(rows: list[SpeedRow]) -> list[MemoryRow]:
    """The 5-minute rows: the peaks of the speed runs themselves."""
    out: list[MemoryRow] = []
    seen_raw: set[str] = set()
    for row in rows:
        trax = _remeasured(row.trax_wall_s, row.trax_peak_rss_mib)
        out.append(_memory_row("5 min", row.audio_s, "trax", row.pipeline, row.model, trax))
        # The raw runs are shared by every pipeline's row: one row each per model.
        if row.model not in seen_raw:
            seen_raw.add(row.model)
            raw = _remeasured(row.raw_wall_s, row.raw_peak_rss_mib)
            out.append(_memory_row("5 min", row.audio_s, RAW, None, row.model, raw))
            if row.raw_batched_wall_s:  # absent from results older than the batched baseline
                batched = _remeasured(row.raw_batched_wall_s, row.raw_batched_peak_rss_mib)
                out.append(_memory_row("5 min", row.audio_s, RAW_BATCHED, None, row.model, batched))
    return out


def _remeasured(wall_s: list[float], peak_rss_mib: list[float]) -> list[Measurement]:
    return [Measurement(w, r, "") for w, r in zip(wall_s, peak_rss_mib, strict=True)]


def long_memory(bench: Bench, recording: Path, audio_s: float, model: str) -> list[MemoryRow]:
    """One run each of Trax (per pipeline) and raw faster-whisper on the 2-hour file."""
    commands = [bench.transcribe(recording, p, model, files=1) for p in bench.pipelines]
    commands.append(bench.raw(model_dir(model), [recording]))
    measured = bench.alternate(commands, 1, f"memory 2 h {model}", timeout_s=4 * audio_s)
    rows = [
        _memory_row("2 h", audio_s, "trax", p, model, measured[f"trax {p}"])
        for p in bench.pipelines
    ]
    rows.append(_memory_row("2 h", audio_s, RAW, None, model, measured[RAW]))
    return rows


# --------------------------------------------------------------------------- 4. CLI response


@dataclass(slots=True)
class CliRow:
    command: str
    runs: int
    wall_s: list[float]
    median_s: float
    max_s: float
    within_target: bool  # median under CLI_TARGET_S


def cli_response(bench: Bench) -> list[CliRow]:
    runs = 3 if bench.quick else 5
    commands = [
        Command("trax --help", lambda: [str(bench.trax), "--help"]),
        Command("trax list", lambda: bench.trax_command("list")),
        Command("trax pipelines", lambda: [str(bench.trax), "pipelines"]),
    ]
    measured = bench.alternate(commands, runs, "cli", timeout_s=60)
    rows = []
    for name, results in measured.items():
        wall = [m.wall_s for m in results]
        rows.append(
            CliRow(
                command=name,
                runs=runs,
                wall_s=_rounded(wall),
                median_s=round(median(wall), 3),
                max_s=round(max(wall), 3),
                within_target=median(wall) < CLI_TARGET_S,
            )
        )
    return rows


# --------------------------------------------------------------------------- 5. batch


@dataclass(slots=True)
class BatchRow:
    system: str  # "trax" or RAW
    pipeline: str | None
    model: str
    runs: int
    wall_s: list[float]
    median_s: float
    files_per_min: float
    ratio: float | None  # raw median / Trax median, on Trax rows: > 1 means Trax is faster


@dataclass(slots=True)
class Batch:
    files: int
    audio_s: float
    composition: str
    rows: list[BatchRow] = field(default_factory=list)


def batch(bench: Bench, corpus: Corpus, files: int, model: str) -> Batch:
    """Many short real clips in one command vs the sequential raw loop (model loaded once)."""
    asr = corpus.asr_clips()
    librispeech = corpus.librispeech_clips()[: max(0, files - len(asr))]
    chosen = (asr + librispeech)[:files]
    folder = bench.workdir / "batch"
    copied = copy_batch(chosen, folder)
    from_asr = sum(1 for c in chosen if c.parent == corpus.asr_dir)
    result = Batch(
        files=len(copied),
        audio_s=round(sum(audio_seconds(p) for p in copied), 3),
        composition=f"{from_asr} asr-dev + {len(copied) - from_asr} speakers-librispeech clips",
    )
    runs = 1 if bench.quick else 3
    commands = [bench.transcribe(folder, p, model, files=len(copied)) for p in bench.pipelines]
    commands.append(bench.raw(model_dir(model), copied))
    measured = bench.alternate(commands, runs, f"batch {len(copied)} files")
    raw_median = median([m.wall_s for m in measured[RAW]])
    for name, results in measured.items():
        wall = [m.wall_s for m in results]
        is_raw = name == RAW
        result.rows.append(
            BatchRow(
                system=RAW if is_raw else "trax",
                pipeline=None if is_raw else name.removeprefix("trax "),
                model=model,
                runs=runs,
                wall_s=_rounded(wall),
                median_s=round(median(wall), 3),
                files_per_min=round(len(copied) / median(wall) * 60, 2),
                ratio=None if is_raw else round(raw_median / median(wall), 3),
            )
        )
    return result


# --------------------------------------------------------------------------- 6. diarization


@dataclass(slots=True)
class Diarization:
    status: str
    note: str


def diarization() -> Diarization:
    from trax.pipeline import PIPELINES

    if "v4" in PIPELINES:
        # v4 exists but measuring it (DER on diarization-dev) is the v4 work's to add here.
        return Diarization("pending", "pending — v4 is available; its DER is not measured yet")
    return Diarization("pending", DIARIZATION_PENDING)


def search(
    workdir: Path, corpus_root: Path, queries: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Query latency over 1,000 stored transcripts, on SQLite and on PostgreSQL."""
    from benchmarks.search import SEARCH_TRANSCRIPTS, fresh_postgres, load_texts, search_latency

    texts = load_texts(corpus_root)
    results = [
        search_latency(
            f"sqlite:///{workdir / 'search.db'}", texts, SEARCH_TRANSCRIPTS, queries, log
        )
    ]
    with fresh_postgres() as url:
        if url is None:
            results.append({"database": "postgresql", "skipped": "no server on 127.0.0.1:5432"})
        else:
            results.append(search_latency(url, texts, SEARCH_TRANSCRIPTS, queries, log))
    return results


# --------------------------------------------------------------------------- helpers


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 3) for v in values]


def build(target: Path, clips: list[Path], seconds: float, log: Callable[[str], None]) -> float:
    started = time.perf_counter()
    written = build_recording(clips, seconds, target)
    size = target.stat().st_size / 1e6
    took = time.perf_counter() - started
    log(f"built {target.name}: {written:.0f} s of audio, {size:.0f} MB ({took:.0f} s)")
    return written


def stderr_log(started: float) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)

    return log
