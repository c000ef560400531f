"""Raw faster-whisper, used the way its README shows: the baseline Trax is measured against.

Nothing of Trax is imported here (no VAD, no batching, no windowing), so the
process's time and peak memory are faster-whisper's own. The model is loaded
once and every file is transcribed in turn, which makes the same script the
sequential baseline for a batch.

    python benchmarks/raw_faster_whisper.py --model-dir DIR FILE [FILE ...]

Prints one JSON line per file and a final summary line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", required=True, help="CTranslate2 Whisper model folder.")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    from faster_whisper import WhisperModel

    model = WhisperModel(args.model_dir, device="cpu", compute_type="int8")
    loaded = time.perf_counter()
    audio_s = 0.0
    for path in args.files:
        segments, info = model.transcribe(path, beam_size=args.beam_size)
        # transcribe() is lazy: the work happens while the segments are consumed.
        words = sum(len(segment.text.split()) for segment in segments)
        audio_s += float(info.duration)
        print(json.dumps({"path": path, "duration_s": info.duration, "words": words}))
    finished = time.perf_counter()
    print(
        json.dumps(
            {
                "files": len(args.files),
                "audio_s": round(audio_s, 3),
                "load_s": round(loaded - started, 3),
                "transcribe_s": round(finished - loaded, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
