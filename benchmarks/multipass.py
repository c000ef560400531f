"""Ablation of v3's pass 2 on asr-dev: WER and time of each ingredient, on and off.

Pass 1 (v1's audio stages with the fast model) runs once per clip; every
variant of pass 2 then runs on the same pass-1 output, with the second model's
decodes of a span kept (a decode depends only on the clip, the settings and the
language), so rule variants cost nothing to try and each variant is charged
the decode time of the spans it asks for. Run it alone (2 cores are shared):

    uv run python -m benchmarks.multipass /work/shared/corpus/asr-dev --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trax.asr import FasterWhisperTranscriber, resolve_model
from trax.asr.multipass import MultipassSettings, MultipassStage
from trax.asr.sentences import SentenceSettings, SentenceStage
from trax.asr.transcriber import TEMPERATURES, RecognitionSettings, WindowResult
from trax.core import AudioWindow, Segment, Transcript, TranscriptionSettings
from trax.eval.asr import match_audio, normaliser, read_references, score_file
from trax.pipeline import build
from trax.pipeline.stages import RunContext


class KeptDecodes:
    """A pass-2 recogniser that decodes each (clip, settings, language) once and
    remembers how long it took, so every variant is charged its own decodes."""

    def __init__(self, inner: FasterWhisperTranscriber) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.kept: dict[str, tuple[list[Segment], float]] = {}
        self.kept_windows: dict[str, tuple[WindowResult, float]] = {}
        self.used: set[str] = set()

    @property
    def multilingual(self) -> bool:
        return self.inner.multilingual

    def recognise(
        self,
        window: AudioWindow,
        settings: RecognitionSettings,
        language: str | None,
        on_progress: Any = None,
        prior: str | None = None,
    ) -> WindowResult:
        key = hashlib.sha256(
            window.samples.tobytes() + repr((window.speech, settings, language)).encode()
        ).hexdigest()
        if key not in self.kept_windows:
            started = time.perf_counter()
            result = self.inner.recognise(window, settings, language, on_progress, prior)
            self.kept_windows[key] = (result, time.perf_counter() - started)
        self.used.add(key)
        return self.kept_windows[key][0]

    def decode_clip(
        self,
        samples: Any,
        settings: RecognitionSettings,
        language: str | None,
        max_new_tokens: int | None = None,
    ) -> list[Segment]:
        key = hashlib.sha256(
            samples.tobytes() + repr((settings, language, max_new_tokens)).encode()
        ).hexdigest()
        if key not in self.kept:
            started = time.perf_counter()
            segments = self.inner.decode_clip(samples, settings, language, max_new_tokens)
            self.kept[key] = (segments, time.perf_counter() - started)
        self.used.add(key)
        return self.kept[key][0]

    def charge(self) -> float:
        times = {k: v[1] for k, v in self.kept.items()} | {
            k: v[1] for k, v in self.kept_windows.items()
        }
        seconds = sum(times[k] for k in self.used)
        self.used = set()
        return seconds


@dataclass(slots=True)
class Clip:
    stem: str
    reference: str
    window: AudioWindow
    pass1: Transcript
    pass1_s: float


@dataclass(slots=True)
class Result:
    name: str
    errors: int = 0
    words: int = 0
    decoded_s: float = 0.0
    speech_s: float = 0.0
    pass2_s: float = 0.0
    spans: int = 0
    accepted: int = 0
    rejected: int = 0
    per_clip: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "variant": self.name,
            "wer": round(self.errors / self.words, 5) if self.words else 0.0,
            "errors": self.errors,
            "spans": self.spans,
            "decoded_share": round(self.decoded_s / self.speech_s, 3) if self.speech_s else 0,
            "pass2_s": round(self.pass2_s, 2),
            "accepted": self.accepted,
            "rejected": self.rejected,
        }


def pass_one(folder: Path, refs: Path, model: str) -> list[Clip]:
    references = read_references(refs)
    clips, _ = match_audio(folder, references)
    pipeline = build(TranscriptionSettings(model=model, language="en"))
    audio = [s for s in pipeline.stages if s.kind == "audio"]
    out = []
    for stem, path in clips:
        prepared = pipeline.prepare(path, decode_ahead=False)
        run = RunContext(prepared.source, prepared.media.duration_s)
        transcript = Transcript(prepared.media, (), "en", 1.0, pipeline.settings, pipeline.model_id)
        started = time.perf_counter()
        windows = list(prepared.windows)
        assert len(windows) == 1, "asr-dev clips are one window each"
        window = windows[0]
        for stage in audio:
            window, transcript = stage.process(window, transcript, run)  # type: ignore[attr-defined]
        out.append(Clip(stem, references[stem], window, transcript, time.perf_counter() - started))
        prepared.close()
    return out


def text_of(transcript: Transcript) -> str:
    return SentenceStage(SentenceSettings()).process(transcript, None).text  # type: ignore[arg-type]


def score(name: str, clips: list[Clip], transcripts: list[Transcript]) -> Result:
    normalise = normaliser("en")
    result = Result(name)
    for clip, transcript in zip(clips, transcripts, strict=True):
        scored = score_file(clip.stem, normalise(clip.reference), normalise(text_of(transcript)))
        result.errors += scored.errors
        result.words += scored.reference_words
        result.per_clip[clip.stem] = scored.errors
    return result


def variant(
    name: str, clips: list[Clip], second: KeptDecodes, settings: MultipassSettings
) -> Result:
    recognition = RecognitionSettings(model_id="pass1", language="en")
    stage = MultipassStage(settings, recognition, second)
    transcripts = []
    for clip in clips:
        run = RunContext(None, None)  # type: ignore[arg-type]
        _, transcript = stage.process(clip.window, clip.pass1, run)
        transcripts.append(transcript)
    result = score(name, clips, transcripts)
    result.decoded_s = stage.stats.decoded_s
    result.speech_s = stage.stats.speech_s
    result.spans = len(stage.stats.spans)
    result.pass2_s = second.charge()  # the decodes are the cost
    mine = [e for t in transcripts for e in t.edits if e.kind == "multipass"]
    result.accepted = sum(e.status == "accepted" for e in mine)
    result.rejected = len(mine) - result.accepted
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--refs", type=Path)
    parser.add_argument("--first", default="tiny.en")
    parser.add_argument("--second", default="base")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    refs = args.refs or args.folder / "references.tsv"
    started = time.perf_counter()
    clips = pass_one(args.folder, refs, args.first)
    pass1_s = sum(c.pass1_s for c in clips)
    print(f"pass 1 ({args.first}): {pass1_s:.1f} s over {len(clips)} clips", flush=True)
    second = KeptDecodes(FasterWhisperTranscriber(resolve_model(args.second)))
    base = MultipassSettings(second.model_id)
    packed = replace(base, packed=True)
    everything = replace(base, word_probability_below=1.01, max_share=9.0)
    variants: list[tuple[str, MultipassSettings]] = [
        ("default (one by one, prompt, beam 5, word by word, bias 0)", base),
        ("pass 2 wins every disagreement", replace(base, rule="pass2")),
        ("whole disagreements, not word by word", replace(base, rule="region")),
        ("bias -0.1", replace(base, pass2_bias=-0.1)),
        ("bias +0.1", replace(base, pass2_bias=0.1)),
        ("words < 0.3", replace(base, word_probability_below=0.3)),
        ("words < 0.7", replace(base, word_probability_below=0.7)),
        ("no budget floor, 30%", replace(base, min_budget_s=0.0)),
        ("no budget floor, 50%", replace(base, min_budget_s=0.0, max_share=0.5)),
        ("pass 2 beam 1", replace(base, beam_size=1)),
        ("packed (one batch, no prompt)", packed),
        ("no prompt", replace(base, prompt_words=0)),
        ("temperature fallback", replace(base, temperatures=TEMPERATURES)),
        ("everything, confidence", everything),
        ("everything, pass 2 wins", replace(everything, rule="pass2")),
    ]
    if args.quick:
        variants = variants[:2]
    rows = [{**score("pass 1 only", clips, [c.pass1 for c in clips]).row(), "pass2_s": 0.0}]
    print(rows[0], flush=True)
    results = {}
    for name, settings in variants:
        result = variant(name, clips, second, settings)
        results[name] = result
        rows.append(result.row())
        print(rows[-1], flush=True)
    payload = {
        "pass1_s": round(pass1_s, 2),
        "clips": len(clips),
        "rows": rows,
        "total_s": round(time.perf_counter() - started, 1),
        "per_clip": {n: r.per_clip for n, r in results.items()},
    }
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
