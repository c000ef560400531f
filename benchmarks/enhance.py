"""Benchmark section v2: what LLM enhancement adds, per 5-minute transcript and per hour.

    uv run python -m benchmarks.enhance [--corpus PATH] [--model tiny.en] [--runs 5] [--out FILE]

Also section 10 of ``benchmarks.run`` (quick mode too: it takes seconds), on
the speed section's 5-minute recording and its stored v1 transcript.

A 5-minute recording is built from the corpus (LibriSpeech clips, as the
speed section does) and transcribed once with v1. Its transcript then goes
through the enhancement stage against a scripted chat-completions server on
127.0.0.1 (``tests/llm_server``) that replays fixed edits for every chunk
(a capital, a full stop and one word edit per segment, so the guardrails
have work), and reports usage the way DeepSeek does, with the system
prompt answered from its prefix cache after the first request.

Measured:

- **overhead**: the stage's wall time with one chunk at a time, minus the
  time the server spent answering (target < 1 s per 5-minute transcript);
  the wall time at the configured concurrency, and a re-run answered from
  the stage cache, are shown too;
- **tokens and cost per hour of audio**: the tokens of every request,
  counted with Whisper's GPT-2 BPE tokenizer (DeepSeek's is not available
  offline; its larger vocabulary needs fewer tokens, so this errs high),
  priced from Trax's price table at off-peak and peak rates (target < $0.01).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.corpus import CorpusError, build_recording, locate

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
RECORDING_S = 300.0
OVERHEAD_TARGET_S = 1.0
COST_TARGET_USD = 0.01
OFF_PEAK = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PEAK = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
CACHE_BLOCK = 64
"""DeepSeek's prefix cache answers whole 64-token blocks of a repeated prefix."""


@dataclass(frozen=True, slots=True)
class Result:
    audio_s: float
    words: int
    segments: int
    chunks: int
    requests: int
    accepted: int
    rejected: int
    wall_s: float
    server_s: float
    overhead_s: float
    concurrent_wall_s: float
    cached_wall_s: float
    prompt_tokens: int
    cache_hit_tokens: int
    output_tokens: int
    cost_off_peak_usd: float
    cost_peak_usd: float

    hour_s: float
    hour_chunks: int
    prompt: str = ""
    """The prompt version measured (``trax.llm.prompt.PROMPT_VERSION``)."""
    runs: int = 0
    """Timed runs behind each median."""

    @property
    def per_hour(self) -> float:
        """Token and cost figures are measured on ``hour_s`` of audio."""
        return 3600.0 / self.hour_s

    @property
    def tokens_per_hour(self) -> float:
        return (self.prompt_tokens + self.output_tokens) * self.per_hour

    @property
    def cost_per_hour_off_peak_usd(self) -> float:
        return self.cost_off_peak_usd * self.per_hour

    @property
    def cost_per_hour_peak_usd(self) -> float:
        return self.cost_peak_usd * self.per_hour

    def markdown(self) -> str:
        from benchmarks.report import enhancement_section

        return "\n".join(enhancement_section(self))


class ScriptedServer:
    """The test server, answering every chunk with fixed edits and DeepSeek-style usage."""

    def __init__(self, tokenizer_path: Path) -> None:
        from tokenizers import Tokenizer

        from tests.llm_server import LLMServer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.server = LLMServer()
        self.server.default = self.answer
        self.server_s = 0.0
        self.seen_prefix = False
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text).ids)

    def answer(self, request: Any) -> Any:
        from tests.llm_server import Reply, completion

        tick = time.perf_counter()
        edits: list[list[Any]] = []
        for segment in request.editable():
            words, s = segment["w"], segment["s"]
            if not words:
                continue
            last = len(words) - 1
            # Only edits that change something, in the format the prompt's example shows
            # (tokens count): [segment, first word, "words replaced", "replacement"].
            if words[0][:1].islower():
                edits.append([s, 0, words[0], words[0].capitalize()])
            if not words[last].endswith((".", "?", "!")):
                edits.append([s, last, words[last], words[last] + "."])
            for position in segment.get("low", [])[:1]:
                word = words[position]
                edits.append([s, position, word, word + "e"])
        content = json.dumps({"e": edits}, ensure_ascii=False, separators=(",", ":"))
        system = self.count(request.body["messages"][0]["content"])
        prompt = system + sum(self.count(m["content"]) for m in request.body["messages"][1:])
        with self._lock:
            hit = (system // CACHE_BLOCK) * CACHE_BLOCK if self.seen_prefix else 0
            self.seen_prefix = True
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": self.count(content),
            "prompt_cache_hit_tokens": hit,
            "prompt_cache_miss_tokens": prompt - hit,
            "total_tokens": prompt + self.count(content),
        }
        reply = Reply(body=completion(content, usage))
        with self._lock:
            self.server_s += time.perf_counter() - tick
        return reply


def repeated(transcript: Any, times: int) -> Any:
    """``times`` copies of a transcript one after the other: an hour made of 5 minutes."""
    from trax.core import Segment, Word

    span = transcript.duration_s
    segments = []
    for k in range(times):
        shift = k * span
        for seg in transcript.segments:
            words = tuple(
                Word(w.start + shift, w.end + shift, w.text, w.probability, w.speaker, w.attached)
                for w in seg.words
            )
            segments.append(Segment(seg.start + shift, seg.end + shift, seg.text, words))
    media = replace(transcript.media, duration_s=span * times)
    return replace(transcript, segments=tuple(segments), media=media)


def five_minute_transcript(corpus_root: Path, model: str, workdir: Path) -> Any:
    """The v1 transcript of a 5-minute recording built from the corpus (made once)."""
    from trax import transcribe
    from trax.payload import from_payload, to_payload

    saved = workdir / f"enhance-5min-{model}.json"
    if saved.is_file():
        return from_payload(json.loads(saved.read_text()))
    corpus = locate(corpus_root)
    recording = workdir / "enhance-5min.wav"
    build_recording(corpus.librispeech_clips(), RECORDING_S, recording)
    print(f"transcribing {RECORDING_S:.0f} s with {model} (once)…", file=sys.stderr, flush=True)
    transcript = transcribe(recording, model=model, device="cpu")
    saved.write_text(json.dumps(to_payload(transcript)))
    return transcript


def measure(transcript: Any, tokenizer: Path, runs: int) -> Result:
    from trax.config import PRICES_PER_MILLION, Secret, load_config
    from trax.llm.client import ClientSettings
    from trax.llm.stage import EnhanceRuntime, EnhanceSettings, EnhanceStage, plan_chunks
    from trax.media import AudioSource
    from trax.pipeline.stages import RunContext
    from trax.store.cache import SqlStageCache
    from trax.store.database import Database

    config = load_config()
    model = config.llm_model  # the configured model, priced from the configured table
    prices = config.llm_prices if model in config.llm_prices else PRICES_PER_MILLION
    model = model if model in config.llm_prices else next(iter(PRICES_PER_MILLION))
    scripted = ScriptedServer(tokenizer)
    context = RunContext(AudioSource(Path(transcript.media.path)), transcript.duration_s)
    settings = EnhanceSettings(model=model)

    def stage(concurrency: int, now: datetime, cache: Any = None) -> EnhanceStage:
        client = ClientSettings(scripted.server.url, Secret("sk-benchmark"), model)
        runtime = EnhanceRuntime(client, budget_usd=1.0, concurrency=concurrency, prices=prices)
        return EnhanceStage(settings, runtime, cache, now=lambda: now)

    with scripted.server:
        walls, server_times, concurrent = [], [], []
        out = transcript
        for _ in range(runs):
            scripted.server_s, scripted.seen_prefix = 0.0, False
            tick = time.perf_counter()
            out = stage(1, OFF_PEAK).process(transcript, context)
            walls.append(time.perf_counter() - tick)
            server_times.append(scripted.server_s)
        for _ in range(runs):
            tick = time.perf_counter()
            stage(config.llm_concurrency, OFF_PEAK).process(transcript, context)
            concurrent.append(time.perf_counter() - tick)
        # Cost on a real hour (12 transcripts back to back): chunking and the prefix
        # cache then behave as they would, rather than one request times twelve.
        hour = repeated(transcript, round(3600 / transcript.duration_s))
        hour_context = RunContext(context.audio, hour.duration_s)
        scripted.seen_prefix = False
        off_peak = stage(config.llm_concurrency, OFF_PEAK).process(hour, hour_context)
        scripted.seen_prefix = False
        peak = stage(config.llm_concurrency, PEAK).process(hour, hour_context)
        with tempfile.TemporaryDirectory() as folder:
            database = Database(f"sqlite:///{Path(folder) / 'cache.db'}")
            database.ensure_schema()
            cache = SqlStageCache(database)
            stage(1, OFF_PEAK, cache).process(transcript, context)
            tick = time.perf_counter()
            rerun = stage(1, OFF_PEAK, cache).process(transcript, context)
            cached_wall = time.perf_counter() - tick
            assert rerun.usage["llm_cost_usd"] == 0
            database.dispose()
    overheads = [w - s for w, s in zip(walls, server_times, strict=True)]
    usage = off_peak.usage
    mine = [e for e in out.edits if e.stage == "enhance"]
    return Result(
        audio_s=transcript.duration_s,
        words=len(transcript.words),
        segments=len(transcript.segments),
        chunks=len(plan_chunks(transcript.segments, settings)),
        requests=int(usage["llm_requests"]),
        accepted=sum(e.status == "accepted" for e in mine),
        rejected=sum(e.status == "rejected" for e in mine),
        wall_s=statistics.median(walls),
        server_s=statistics.median(server_times),
        overhead_s=statistics.median(overheads),
        concurrent_wall_s=statistics.median(concurrent),
        cached_wall_s=cached_wall,
        prompt_tokens=int(usage["llm_prompt_tokens"]),
        cache_hit_tokens=int(usage["llm_cache_hit_tokens"]),
        output_tokens=int(usage["llm_output_tokens"]),
        cost_off_peak_usd=usage["llm_cost_usd"],
        cost_peak_usd=peak.usage["llm_cost_usd"],
        hour_s=off_peak.duration_s,
        hour_chunks=int(usage["llm_chunks"]),
        prompt=settings.prompt,
        runs=runs,
    )


def tokenizer_path() -> Path:
    from trax.asr import resolve_model

    return Path(resolve_model("tiny.en").location) / "tokenizer.json"


def enhancement(recording: Path, database_url: str, model: str, runs: int) -> Result:
    """Section 10 of ``benchmarks.run``: the v1 transcript of ``recording`` stored in
    ``database_url`` (the speed section's, reused; transcribed only if there is none)
    through the stage against the scripted server."""
    from trax import transcribe

    transcript = transcribe(
        recording, store=True, database_url=database_url, model=model, device="cpu"
    )
    return measure(transcript, tokenizer_path(), runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.enhance", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--model", default="tiny.en", help="Whisper model for the v1 transcript.")
    parser.add_argument("--runs", type=int, default=5, help="Timed runs (the median is shown).")
    parser.add_argument("--workdir", type=Path, help="Keep the recording and its transcript here.")
    parser.add_argument("--out", type=Path, help="Also write the figures as JSON here.")
    args = parser.parse_args(argv)
    tokenizer = tokenizer_path()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            transcript = five_minute_transcript(args.corpus, args.model, workdir)
        except CorpusError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        result = measure(transcript, tokenizer, args.runs)
    print(result.markdown())
    if args.out:
        figures = {
            **asdict(result),
            "per_hour_tokens": result.tokens_per_hour,
            "per_hour_cost_off_peak_usd": result.cost_per_hour_off_peak_usd,
            "per_hour_cost_peak_usd": result.cost_per_hour_peak_usd,
        }
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    ok = result.overhead_s < OVERHEAD_TARGET_S and (result.cost_per_hour_peak_usd < COST_TARGET_USD)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
