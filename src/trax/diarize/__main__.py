"""``python -m trax.diarize FILE… [--speakers N]``: RTTM of Trax's diarization on stdout.

For measuring (``trax eval diarization DIR --rttm REF --hyp HYP``); the
file's stem is the RTTM uri.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from trax.diarize.reconstruct import rttm
from trax.diarize.run import DiarizationRuntime, DiarizationSettings, Diarizer
from trax.media import AudioSource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trax.diarize")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--speakers", type=int)
    parser.add_argument("--min-speakers", type=int)
    parser.add_argument("--max-speakers", type=int)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    settings = DiarizationSettings(args.speakers, args.min_speakers, args.max_speakers)
    diarizer = Diarizer(settings, DiarizationRuntime(threads=args.threads))
    for path in args.files:
        started = time.perf_counter()
        result = diarizer(AudioSource(path).windows())
        sys.stdout.write(rttm(result, path.stem))
        print(
            f"{path.name}: {len(result.speakers)} speakers, {time.perf_counter() - started:.2f} s",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
