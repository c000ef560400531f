"""Trax against another build of itself and raw batched faster-whisper, in one run.

    uv run python -m benchmarks.compare --other PATH/TO/OTHER/trax [--runs 5] [--model tiny.en]

A change that must not slow Trax down is checked here: this checkout's
``trax``, another checkout's (e.g. the commit before, in its own venv) and raw
faster-whisper batched (Silero VAD, batch size 8, word timestamps, beam 5) run
the same 5-minute recording in turn, round after round, so a slow spell on a
shared machine hits all three. Each Trax has its own database; every run is
``--force``. Prints the medians and the ratios raw-batched/Trax.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks.corpus import locate
from benchmarks.measure import median
from benchmarks.run import DEFAULT_CORPUS, REPO_ROOT, SHORT_S
from benchmarks.sections import Bench, build, model_dir, stderr_log


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__)
    parser.add_argument("--other", type=Path, required=True, help="The other build's trax.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)

    corpus = locate(args.corpus)
    log = stderr_log(time.perf_counter())
    with tempfile.TemporaryDirectory(prefix="trax-compare-") as tmp:
        workdir = Path(tmp)
        env = dict(os.environ, TRAX_DATA_DIR=str(workdir / "data"))
        env.pop("TRAX_DATABASE_URL", None)
        this = Bench(
            trax=Path(sys.executable).with_name("trax"),
            python=Path(sys.executable),
            raw_script=REPO_ROOT / "benchmarks" / "raw_faster_whisper.py",
            workdir=workdir,
            database_url=f"sqlite:///{workdir / 'this.db'}",
            env=env,
            pipelines=["v1"],
            quick=False,
            log=log,
        )
        other = replace(this, trax=args.other, database_url=f"sqlite:///{workdir / 'other.db'}")
        recording = workdir / "speakers-5min.wav"
        audio_s = build(recording, corpus.librispeech_clips(), SHORT_S, log)
        this_run = this.transcribe(recording, "v1", args.model, files=1)
        other_run = replace(other.transcribe(recording, "v1", args.model, files=1), name="other")
        raw = this.raw(model_dir(args.model), [recording], batched=True)
        # Bench.alternate measures through one Bench; the other build's runs check
        # their stores against its own database.
        walls: dict[str, list[float]] = {"trax (this)": [], "trax (other)": [], "raw batched": []}
        for round_ in range(1, args.runs + 1):
            for name, bench, command in (
                ("trax (this)", this, this_run),
                ("trax (other)", other, other_run),
                ("raw batched", this, raw),
            ):
                result = bench.alternate([command], 1, f"{name} round {round_}")
                walls[name] += [m.wall_s for m in next(iter(result.values()))]
    print(f"{args.model}, {audio_s / 60:.1f} min of audio, {args.runs} rounds (medians):")
    raw_s = median(walls["raw batched"])
    for name, values in walls.items():
        ratio = f"  raw batched / Trax = {raw_s / median(values):.2f}×" if "trax" in name else ""
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {name:13} {median(values):6.1f} s  [{runs}]{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
