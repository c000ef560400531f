"""The Markdown report: one header and one table per measurement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.enhance import COST_TARGET_USD, OVERHEAD_TARGET_S
from benchmarks.enhance import Result as Enhancement
from benchmarks.environment import Environment
from benchmarks.readability import (
    CPS_LIMIT,
    CPS_SHARE_TARGET,
    MIN_GAP_TARGET_S,
    SEGMENT_MAX_TARGET_S,
    SEGMENT_MEDIAN_TARGET_S,
    Readability,
)
from benchmarks.reliability import HANDOVER_TARGET_S, Reliability
from benchmarks.sections import (
    BATCH_SIZE,
    CLI_TARGET_S,
    RAW,
    RAW_BATCHED,
    Accuracy,
    Batch,
    CliRow,
    Diarization,
    Memory,
    SpeedRow,
)


@dataclass(slots=True)
class Results:
    mode: str  # "full" or "quick"
    corpus: str
    environment: Environment
    accuracy: Accuracy
    speed: list[SpeedRow]
    memory: Memory
    cli: list[CliRow]
    batch: Batch
    diarization: Diarization
    search: list[dict[str, Any]] = field(default_factory=list)
    """One entry per database: ``benchmarks.search.search_latency``'s result, or a skip note."""
    reliability: Reliability | None = None
    """Exactly once under concurrency and faults (``benchmarks.reliability``)."""
    readability: Readability | None = None
    """Segments, subtitles, silence and languages (``benchmarks.readability``)."""
    enhancement: Enhancement | None = None
    """v2's LLM enhancement against a scripted local server (``benchmarks.enhance``)."""
    enhancement_error: str | None = None
    """Why ``enhancement`` is missing, when it failed."""


def clock(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def mib(value: float) -> str:
    return f"{value / 1024:.2f} GiB" if value >= 1024 else f"{value:.0f} MiB"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _system(system: str, pipeline: str | None) -> str:
    if system == "trax":
        return f"Trax {pipeline}"
    return f"raw {RAW_BATCHED}" if system == RAW_BATCHED else f"raw {RAW}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"**{value:.2f}×**"


def _source(env: Environment) -> str:
    if env.source_end and env.source_end != env.source:
        return f"{env.source} at the start, {env.source_end} at the end (code changed mid-run)"
    return env.source or "unknown"


def header(results: Results) -> list[str]:
    env = results.environment
    versions = ", ".join(f"{name} {version}" for name, version in env.packages.items())
    load_start = " / ".join(f"{x:.2f}" for x in env.load_average_start)
    load_end = " / ".join(f"{x:.2f}" for x in env.load_average_end)
    quick = " --quick" if results.mode == "quick" else ""
    return [
        f"# Trax benchmarks — {env.date}",
        "",
        f"- **Mode:** {results.mode} (`uv run python -m benchmarks.run{quick}`), "
        f"started {env.started_at}, finished {env.finished_at}",
        f"- **Machine:** {env.cpu_model}, {env.cores} cores; {env.platform}",
        f"- **Python** {env.python}; {versions}",
        f"- **Source:** git {_source(env)}",
        f"- **Corpus:** `{results.corpus}` (real speech only)",
        f"- **Load average** (1/5/15 min) at start {load_start}, at end {load_end}",
        "- **Times are medians** over the stated number of runs, each a fresh process "
        "(start-up, imports and model loading included), wall clock. Competing commands "
        "alternate (Trax, raw, raw batched, Trax, …). Raw faster-whisper is "
        '`WhisperModel(dir, device="cpu", compute_type="int8")` + '
        "`transcribe(path, beam_size=5)`: no VAD, no batching, whole file in memory. "
        "Raw faster-whisper batched (speed and 5-minute memory only) is the same model + "
        f"`BatchedInferencePipeline(model).transcribe(path, batch_size={BATCH_SIZE}, "
        "vad_filter=True, word_timestamps=True, beam_size=5)`, Trax v1's settings.",
        "",
    ]


def accuracy_section(accuracy: Accuracy) -> list[str]:
    rows = [
        [
            _system(r.system, r.pipeline),
            r.model,
            f"{r.wer:.2%}".replace("%", " %"),
            str(r.substitutions),
            str(r.deletions),
            str(r.insertions),
            str(r.reference_words),
            "—" if r.delta_points is None else f"{r.delta_points:+.2f}",
        ]
        for r in accuracy.rows
    ]
    audio = accuracy.rows[0].audio_s if accuracy.rows else 0.0
    lines = [
        "## 1. Accuracy",
        "",
        f"Word error rate on {accuracy.corpus} ({accuracy.clips} clips, {clock(audio)} of speech), "
        f"both sides normalised with {accuracy.normaliser}; beam 5. "
        "Δ is Trax minus raw in percentage points (negative: Trax is more accurate).",
        "",
        *table(["system", "model", "WER", "S", "D", "I", "ref. words", "Δ vs raw"], rows),
    ]
    lines += ["", *(f"- {note}" for note in accuracy.skipped)] if accuracy.skipped else []
    return [*lines, ""]


def speed_section(speed: list[SpeedRow]) -> list[str]:
    audio = speed[0].audio_s if speed else 0.0
    rows = [
        [
            f"Trax {r.pipeline}",
            r.model,
            str(r.runs),
            f"{r.trax_median_s:.1f} s",
            f"{r.raw_median_s:.1f} s",
            _seconds(r.raw_batched_median_s),  # "—" in results older than this baseline
            _ratio(r.ratio),
            _ratio(r.batched_ratio),
            f"{r.trax_rtf:.3f}",
        ]
        for r in speed
    ]
    header = [
        "system", "model", "runs", "Trax", "raw seq.", "raw batched",
        "seq./Trax", "batched/Trax", "Trax RTF",
    ]  # fmt: skip
    return [
        "## 2. Speed",
        "",
        f"A {clock(audio)} recording (LibriSpeech speakers concatenated, 16 kHz mono WAV), "
        "`trax transcribe FILE --force -f none -q -p vN -m M` vs the raw script, sequential "
        "and `--batched`. A ratio > 1 means Trax is faster; RTF = wall time / audio time "
        "(the raw sides' RTFs are in the JSON).",
        "",
        *table(header, rows),
        "",
    ]


def memory_section(memory: Memory) -> list[str]:
    rows = []
    for r in memory.rows:
        target = "—"
        if r.target_mib is not None:
            mark = "✓" if r.within_target else "✗ over"
            target = f"< {r.target_mib / 1024:.0f} GB {mark}"
        rows.append(
            [
                r.recording,
                _system(r.system, r.pipeline),
                r.model,
                str(r.runs),
                f"**{mib(r.peak_rss_mib)}**",
                f"{r.wall_s:.1f} s",
                target,
            ]
        )
    lines = [
        "## 3. Memory",
        "",
        "Peak resident set size of the whole process (`wait4` rusage), the highest over "
        "its runs. Target for Trax: a 2-hour recording under 2 GB, any run under 4 GB.",
        "",
        *table(["recording", "system", "model", "runs", "peak RSS", "wall", "target"], rows),
    ]
    if memory.long_recording:
        lines += ["", f"- 2-hour recording: {memory.long_recording}"]
    return [*lines, ""]


def cli_section(cli: list[CliRow]) -> list[str]:
    rows = [
        [
            f"`{r.command}`",
            str(r.runs),
            f"**{r.median_s:.2f} s**",
            f"{r.max_s:.2f} s",
            "✓" if r.within_target else "✗ over",
        ]
        for r in cli
    ]
    return [
        "## 4. CLI response",
        "",
        "The venv's `trax` executable run directly (not through `uv run`), "
        f"fresh process each time; target < {CLI_TARGET_S:.0f} s.",
        "",
        *table(["command", "runs", "median", "max", f"< {CLI_TARGET_S:.0f} s"], rows),
        "",
    ]


def batch_section(batch: Batch) -> list[str]:
    rows = [
        [
            _system(r.system, r.pipeline),
            r.model,
            str(r.runs),
            f"{r.median_s:.1f} s",
            f"**{r.files_per_min:.1f}**",
            "—" if r.ratio is None else f"{r.ratio:.2f}×",
        ]
        for r in batch.rows
    ]
    return [
        "## 5. Batch",
        "",
        f"{batch.files} real clips ({batch.composition}, {clock(batch.audio_s)} in all) in one "
        "folder: `trax transcribe DIR -f none -q --force` vs the raw script looping over "
        "the same files with the model loaded once.",
        "",
        *table(["system", "model", "runs", "wall", "files/min", "raw/Trax"], rows),
        "",
    ]


def search_section(search: list[dict[str, Any]]) -> list[str]:
    from benchmarks.search import TARGET_P95_MS

    lines = [
        "## 6. Search",
        "",
        "`trax search` latency (`trax.store.search.search`, in process, warm) over stored "
        "transcripts built from the corpus's reference sentences; a mix of queries: common "
        "and rare words, two words, phrases, OR, exclusions, no-hit words, punctuation.",
        "",
    ]
    if not search:
        return [*lines, "Not measured in this run.", ""]
    rows = []
    for entry in search:
        if "skipped" in entry:
            rows.append([entry["database"], "—", "—", "—", "—", "—", entry["skipped"]])
            continue
        ok = "✓" if entry["p95_ms"] < TARGET_P95_MS else "✗"
        rows.append(
            [
                entry["database"],
                f"{entry['transcripts']:,} / {entry['segments']:,}",
                str(entry["n"]),
                f"{entry['median_ms']:.1f} ms",
                f"{entry['p95_ms']:.1f} ms",
                f"{entry['max_ms']:.1f} ms",
                f"p95 < {TARGET_P95_MS:.0f} ms {ok}",
            ]
        )
    header = ["database", "transcripts / segments", "queries", "median", "p95", "max", "target"]
    lines += table(header, rows)
    kinds = sorted({k for entry in search for k in entry.get("kinds", {})})
    if kinds:
        lines += ["", "p95 per kind of query:", ""]
        measured = [e for e in search if "kinds" in e]
        rows = [
            [kind, *(f"{e['kinds'][kind]['p95_ms']:.1f} ms" for e in measured)] for kind in kinds
        ]
        lines += table(["query", *(e["database"] for e in measured)], rows)
    return [*lines, ""]


def diarization_section(diarization: Diarization) -> list[str]:
    return ["## 7. Diarization", "", f"{diarization.note[0].upper()}{diarization.note[1:]}.", ""]


def reliability_section(reliability: Reliability | None) -> list[str]:
    lines = ["## 8. Reliability", ""]
    if reliability is None:
        return [*lines, "Not measured in this run.", ""]
    lines += [
        "Real `trax` processes on real databases, a fresh one per trial (a SQLite file; a "
        "PostgreSQL database on 127.0.0.1:5432). **Races:** "
        f"{reliability.processes} `trax jobs resume BATCH` at once on one batch "
        f"(made with `submit_batch`), or {reliability.processes} `trax transcribe DIR` at once "
        f"on a database without a schema; the batch: {reliability.race_batch}. A duplicate is "
        "a transcript stored beyond one per distinct content; a double claim a job with more "
        "than one attempt (nothing was killed). **Workers** (`trax worker`, default settings, "
        "two per trial) serve a "
        f"{clock(reliability.recording_s)} recording queued with `--queue`; the one running "
        "it gets SIGKILL (time from the kill until the job is `done`, re-transcription by the "
        "other worker included) or SIGSTOP until the job's attempts reach 2, then SIGCONT. "
        "**Connection cuts:** `pg_terminate_backend` on every other connection to the "
        "database while two workers serve a queued batch; consistent tables: no "
        "procrastinate delivery left `todo`/`doing` and every `done` job has a `succeeded` "
        f"one. The section took {clock(reliability.took_s)}.",
        "",
    ]
    rows = []
    for r in reliability.rows:
        verdict = "—" if r.passed is None else "✓" if r.passed else "✗"
        rows.append([r.check, r.database, str(r.trials), r.measured, r.target, verdict])
    lines += table(["check", "database", "trials", "measured", "target", "met"], rows)
    notes = [f"- {r.check} ({r.database}): {r.error}" for r in reliability.rows if r.error]
    if notes:
        lines += ["", *notes]
    lines += [
        "",
        f"Target for a killed worker (issue 8): its job done within {HANDOVER_TARGET_S:.0f} s "
        "of the kill, with default worker settings.",
    ]
    return [*lines, ""]


def _met(passed: bool | None) -> str:
    return "—" if passed is None else "✓" if passed else "✗"


def _span(start: float, end: float) -> str:
    return f"{clock(start)}–{clock(end)}"


def _reuse(reused: bool | None) -> str:
    if reused is None:
        return ""
    return " (section 2's stored transcript, exported)" if reused else " (transcribed here)"


def readability_section(readability: Readability | None) -> list[str]:
    lines = ["## 9. Readability", ""]
    if readability is None:
        return [*lines, "Not measured in this run.", ""]
    seg, sil, lang = readability.segmentation, readability.silence, readability.languages
    lines += [
        f"What Trax writes, read back from its own exports (issue 9). **Segments and subtitles:** "
        f"the {clock(seg.audio_s)} recording of section 2, `trax transcribe -p {seg.pipeline} "
        f"-m {seg.model} -f json,srt`{_reuse(seg.reused)}; segment lengths from the "
        "JSON, reading speed and gaps from the SRT file parsed back (characters a second as "
        "Trax counts them, `trax.export.subtitles.cue_cps`: the cue's lines joined by a space "
        "over its time on screen). **Silence:** JFK + "
        f"{sil.silence_end_s - sil.silence_start_s:.0f} s of digital silence + JFK "
        f"({sil.model}, 16 kHz WAV; silence {sil.silence_start_s:.1f}–{sil.silence_end_s:.1f} s), "
        "a word counts when its midpoint lies in the silence. **Languages:** "
        f"`{lang.recording}` (English, then German) with `--model {lang.model}`, no "
        f'`--language`; and with `{lang.english_only_model}`, the "knows only English" '
        f"warnings on stderr. The section took {clock(readability.took_s)}.",
        "",
    ]
    rows: list[list[str]] = []
    if seg.median_s is not None and seg.max_s is not None:
        measured = (
            f"{seg.segments} segments, median **{seg.median_s:.1f} s**, "
            f"max **{seg.max_s:.1f} s** ({seg.over_max} over {SEGMENT_MAX_TARGET_S:.0f} s)"
        )
    else:
        measured = "not measured" if seg.error else f"{seg.segments} segments"
    target = f"median ≤ {SEGMENT_MEDIAN_TARGET_S:.0f} s, none > {SEGMENT_MAX_TARGET_S:.0f} s"
    rows.append(["segment length", measured, target, _met(seg.segments_passed)])
    if seg.cps_within is not None and seg.cps_max is not None:
        measured = (
            f"**{seg.cps_within:.1%}** of {seg.cues} cues ≤ {seg.cps_limit:.0f} cps, "
            f"fastest {seg.cps_max:.1f} cps"
        ).replace("%", " %")
    else:
        measured = "not measured"
    target = f"≥ {CPS_SHARE_TARGET:.0%} ≤ {CPS_LIMIT:.0f} cps".replace("%", " %")
    rows.append(["subtitle reading speed", measured, target, _met(seg.cps_passed)])
    if seg.min_gap_s is not None:
        measured = f"min **{seg.min_gap_s * 1000:.0f} ms**; {seg.gaps_under} gaps shorter"
    else:
        measured = "not measured"
    target = f"≥ {MIN_GAP_TARGET_S * 1000:.0f} ms (2 frames)"
    rows.append(["gap between cues", measured, target, _met(seg.gap_passed)])
    for run in sil.runs:
        if run.error is not None:
            measured = "not measured"
        else:
            found = "; ".join(run.in_silence[:3]) + (" …" if len(run.in_silence) > 3 else "")
            measured = f"**{len(run.in_silence)}** of {run.words} words" + (
                f": {found}" if found else ""
            )
        rows.append([f"words in silence ({run.mode})", measured, "0", _met(run.passed)])
    if lang.error is None:
        runs = ", ".join(f"{r.language or '?'} {_span(r.start_s, r.end_s)}" for r in lang.runs)
        measured = (
            f"segments: **{runs or 'none'}**; transcript `{lang.language}` (most segment "
            f"time: `{lang.majority}`); German part: "
            f"“{lang.german_start}” ({lang.german_words} common German words)"
        )
    else:
        measured = "not measured"
    rows.append(
        [
            f"languages ({lang.model})",
            measured,
            "English, then German text, a language per segment",
            _met(lang.passed),
        ]
    )
    measured = "not measured" if lang.warnings is None else f"printed **{lang.warnings}×**"
    rows.append(
        [
            f"English-only warning ({lang.english_only_model})",
            measured,
            "exactly once",
            _met(lang.warning_passed),
        ]
    )
    lines += table(["check", "measured", "target", "met"], rows)
    notes = [f"- segments and subtitles: {seg.error}"] if seg.error else []
    notes += [f"- silence: {sil.error}"] if sil.error else []
    notes += [f"- silence ({r.mode}): {r.error}" for r in sil.runs if r.error]
    notes += [f"- languages ({lang.model}): {lang.error}"] if lang.error else []
    if lang.warning_error:
        notes.append(f"- languages ({lang.english_only_model}): {lang.warning_error}")
    if notes:
        lines += ["", *notes]
    return [*lines, ""]


def enhancement_section(result: Enhancement | None, error: str | None = None) -> list[str]:
    lines = ["## 10. v2: LLM enhancement", ""]
    if result is None:
        return [*lines, f"Not measured in this run{f': {error}' if error else ''}.", ""]
    hour = result.per_hour
    lines += [
        f"The {clock(result.audio_s)} v1 transcript ({result.words} words, {result.segments} "
        f"segments) through the `enhance` stage (prompt `{result.prompt or '?'}`), in "
        f"{result.chunks} chunk(s), against a scripted chat-completions server on 127.0.0.1 "
        "(`tests/llm_server`) replaying fixed edits for every chunk: a capital where one is "
        "missing, a full stop where one is missing, one word edit per segment with an unsure "
        "word, in the answer format the prompt asks for. Overhead: the stage's wall time with "
        "one chunk at a time minus the time the server spent answering, median of "
        f"{result.runs} runs. Tokens and cost: "
        f"{clock(result.hour_s)} of audio (the transcript {round(result.hour_s / result.audio_s)}"
        f" times back to back) in {result.hour_chunks} chunks, usage reported the way "
        "DeepSeek does (the system prompt from its prefix cache after the first request, "
        "in whole 64-token blocks), tokens counted with Whisper's GPT-2 BPE tokenizer "
        "(DeepSeek's own is not available offline and needs fewer tokens for the same text, "
        "so this errs high), priced from Trax's price table for the configured model.",
        "",
    ]
    tokens = (
        f"{result.tokens_per_hour:,.0f} ({result.prompt_tokens * hour:,.0f} prompt, of them "
        f"{result.cache_hit_tokens * hour:,.0f} from the prefix cache, + "
        f"{result.output_tokens * hour:,.0f} output)"
    )
    off, peak = result.cost_per_hour_off_peak_usd, result.cost_per_hour_peak_usd
    rows = [
        [
            "stage overhead per 5-minute transcript (1 chunk at a time, minus server time)",
            f"**{result.overhead_s:.3f} s**",
            f"< {OVERHEAD_TARGET_S:g} s",
            _met(result.overhead_s < OVERHEAD_TARGET_S),
        ],
        [
            "stage wall time, 1 chunk at a time / concurrent; re-run from the stage cache",
            f"{result.wall_s:.3f} s / {result.concurrent_wall_s:.3f} s; "
            f"{result.cached_wall_s:.3f} s, $0",
            "",
            "",
        ],
        [
            "edits accepted / rejected (5 minutes)",
            f"{result.accepted} / {result.rejected}",
            "",
            "",
        ],
        ["tokens per hour of audio", tokens, "", ""],
        [
            "cost per hour of audio, off-peak",
            f"**${off:.4f}**",
            f"< ${COST_TARGET_USD:g}",
            _met(off < COST_TARGET_USD),
        ],
        [
            "cost per hour of audio, peak (01–04, 06–10 UTC: double prices)",
            f"**${peak:.4f}**",
            f"< ${COST_TARGET_USD:g}",
            _met(peak < COST_TARGET_USD),
        ],
    ]
    lines += table(["measure", "measured", "target", "met"], rows)
    return [*lines, ""]


def render(results: Results) -> str:
    lines = [
        *header(results),
        *accuracy_section(results.accuracy),
        *speed_section(results.speed),
        *memory_section(results.memory),
        *cli_section(results.cli),
        *batch_section(results.batch),
        *search_section(results.search),
        *diarization_section(results.diarization),
        *reliability_section(results.reliability),
        *readability_section(results.readability),
        *enhancement_section(results.enhancement, results.enhancement_error),
    ]
    return "\n".join(lines).rstrip() + "\n"
