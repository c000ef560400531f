"""Raw faster-whisper, used the way its README shows: the baselines Trax is measured against.

Nothing of Trax is imported here, so the process's time and peak memory are
faster-whisper's own. The same script is either baseline:

- sequential (default): ``WhisperModel.transcribe(path, beam_size=5)``, no VAD,
  no batching, the README's first example;
- ``--batched``: ``BatchedInferencePipeline(model).transcribe(path,
  batch_size=8, vad_filter=True, word_timestamps=True, beam_size=5)``, the
  README's batched example with the settings Trax v1 uses, so what remains is
  Trax's own overhead (and its work on top: storage, re-decoding weak segments).

Either way the model (int8 on CPU) is loaded once and every file is
transcribed in turn, which makes the script the sequential loop for a batch.

    python benchmarks/raw_faster_whisper.py --model-dir DIR [--batched] FILE [FILE ...]

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
    parser.add_argument(
        "--batched",
        action="store_true",
        help="BatchedInferencePipeline with Silero VAD and word timestamps (Trax v1's settings).",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="Batch size with --batched (default: 8)."
    )
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(args.model_dir, device="cpu", compute_type="int8")
    batched = BatchedInferencePipeline(model) if args.batched else None
    loaded = time.perf_counter()
    audio_s = 0.0
    for path in args.files:
        if batched is not None:
            segments, info = batched.transcribe(
                path,
                batch_size=args.batch_size,
                vad_filter=True,
                word_timestamps=True,
                beam_size=args.beam_size,
            )
        else:
            segments, info = model.transcribe(path, beam_size=args.beam_size)
        # transcribe() is lazy: the decoding happens while the segments are consumed.
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
