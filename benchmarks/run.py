"""Run every benchmark and write ``results/<date>.json``, ``<date>.md`` and ``latest.md``.

    uv run python -m benchmarks.run [--quick] [--corpus PATH] [--out DIR]

Everything measured runs as a fresh process in a temporary folder with its own
SQLite database, so the user's database and the repository are never touched
(apart from the results written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from benchmarks import environment
from benchmarks.corpus import CorpusError, locate
from benchmarks.enhance import enhancement
from benchmarks.measure import MeasureError
from benchmarks.readability import readability
from benchmarks.reliability import reliability
from benchmarks.report import Results, render
from benchmarks.sections import (
    Bench,
    Memory,
    accuracy,
    batch,
    build,
    cli_response,
    diarization,
    long_memory,
    memory_from_speed,
    search,
    speed,
    stderr_log,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"

SHORT_S = 5 * 60.0
LONG_S = 2 * 3600.0
BATCH_FILES = 100
QUICK_BATCH_FILES = 10
QUICK_MODEL = "tiny.en"
"""Quick mode (CI) measures only the smallest model, to stay within a few minutes."""
ENHANCE_RUNS = 5
ENHANCE_RUNS_QUICK = 3


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark Trax against raw faster-whisper and write a Markdown report.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 run per timing, tiny.en only, 10-file batch, no 2-hour recording (for CI).",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="The shared speech corpus (default: ../shared/corpus from the repository root).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="Folder for <date>.json, <date>.md and latest.md (default: benchmarks/results).",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        corpus = locate(args.corpus)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    trax = Path(sys.executable).with_name("trax")
    if not trax.is_file():
        print(f"error: no trax executable next to {sys.executable}; run `uv sync`", file=sys.stderr)
        return 2
    try:
        results = measure_all(corpus_root=corpus.root, quick=args.quick, trax=trax)
    except (MeasureError, CorpusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    written = write_results(results, args.out)
    print("\n".join(str(p) for p in written))
    return 0


def measure_all(corpus_root: Path, quick: bool, trax: Path) -> Results:
    from trax.asr import BUNDLED
    from trax.pipeline import describe

    corpus = locate(corpus_root)
    env = environment.capture()
    log = stderr_log(time.perf_counter())
    pipelines = [info.name for info in describe() if info.available]
    models = [QUICK_MODEL] if quick else list(BUNDLED)
    log(f"{'quick' if quick else 'full'} run: pipelines {pipelines}, models {models}")

    with tempfile.TemporaryDirectory(prefix="trax-bench-") as tmp:
        workdir = Path(tmp)
        process_env = dict(os.environ)
        # Keep the measured processes off the user's data folder; the model cache
        # (joined weights, checksum stamps) stays shared so no run re-hashes weights.
        process_env["TRAX_DATA_DIR"] = str(workdir / "data")
        process_env.pop("TRAX_DATABASE_URL", None)
        bench = Bench(
            trax=trax,
            python=Path(sys.executable),
            raw_script=REPO_ROOT / "benchmarks" / "raw_faster_whisper.py",
            workdir=workdir,
            database_url=f"sqlite:///{workdir / 'bench.db'}",
            env=process_env,
            pipelines=pipelines,
            quick=quick,
            log=log,
        )
        # Accuracy goes first: it also warms the page cache with every model's weights.
        skipped = [m for m in BUNDLED if m not in models]
        accuracy_result = accuracy(bench, corpus, models, skipped)

        short = workdir / "speakers-5min.wav"
        short_s = build(short, corpus.librispeech_clips(), SHORT_S, log)
        speed_rows = speed(bench, short, short_s, models)
        memory_result = Memory(rows=memory_from_speed(speed_rows))
        if quick:
            memory_result.long_recording = "skipped in quick mode"
        else:
            long = workdir / "speakers-2h.wav"
            long_s = build(long, corpus.librispeech_clips(), LONG_S, log)
            memory_result.rows += long_memory(bench, long, long_s, QUICK_MODEL)
            long.unlink()

        cli_rows = cli_response(bench)
        batch_result = batch(
            bench, corpus, QUICK_BATCH_FILES if quick else BATCH_FILES, QUICK_MODEL
        )
        search_result = search(workdir, corpus.root, 100 if quick else 200, log)
        # Real processes against fresh databases; each check reports its own failures.
        reliability_result = reliability(
            trax, workdir, process_env, corpus.root, quick, log, recording=short
        )
        # Short runs (the 5-minute transcript is the speed section's, reused): quick mode too.
        readability_result = readability(bench, short, short_s, corpus.root)
        # Seconds (the speed section's stored transcript, a scripted local LLM server).
        enhancement_result, enhancement_error = None, None
        try:
            enhancement_result = enhancement(
                short,
                bench.database_url,
                QUICK_MODEL,
                ENHANCE_RUNS_QUICK if quick else ENHANCE_RUNS,
            )
            log(
                f"enhancement: overhead {enhancement_result.overhead_s:.3f} s, "
                f"${enhancement_result.cost_per_hour_off_peak_usd:.4f} / "
                f"${enhancement_result.cost_per_hour_peak_usd:.4f} per hour"
            )
        except Exception as exc:  # noqa: BLE001 - reported in the section; the run goes on
            enhancement_error = f"{type(exc).__name__}: {exc}"
            log(f"enhancement: not measured: {enhancement_error}")

    environment.finish(env)
    return Results(
        mode="quick" if quick else "full",
        corpus=str(corpus.root),
        environment=env,
        accuracy=accuracy_result,
        speed=speed_rows,
        memory=memory_result,
        cli=cli_rows,
        batch=batch_result,
        diarization=diarization(),
        search=search_result,
        reliability=reliability_result,
        readability=readability_result,
        enhancement=enhancement_result,
        enhancement_error=enhancement_error,
    )


def write_results(results: Results, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    date = results.environment.date
    as_json = out / f"{date}.json"
    as_markdown = out / f"{date}.md"
    latest = out / "latest.md"
    as_json.write_text(json.dumps(asdict(results), indent=2, ensure_ascii=False) + "\n")
    as_markdown.write_text(render(results), encoding="utf-8")
    shutil.copyfile(as_markdown, latest)
    return [as_json, as_markdown, latest]


if __name__ == "__main__":
    sys.exit(main())
