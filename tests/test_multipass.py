"""v3's pass 2 on real recordings: weak spans, decoding only them, combining by confidence."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.mediafiles import AUDIO, JFK
from trax.asr import FasterWhisperTranscriber, resolve_model
from trax.asr.multipass import (
    MultipassSettings,
    MultipassStage,
    align,
    combine,
    find_weak_spans,
    normalised,
    within_budget,
)
from trax.asr.transcriber import RecognitionSettings, WindowProgress, WindowResult
from trax.cli import cli
from trax.core import SAMPLE_RATE, AudioWindow, Segment, Transcript, TranscriptionSettings, Word
from trax.pipeline import build
from trax.pipeline.stages import RunContext

PRINTING = AUDIO / "LJ001-0001.wav"
"""LJ Speech: "Printing, in the only sense with which we are at present concerned, differs
from most if not from all the arts…" (10 s): tiny.en is unsure of two words mid-way."""
DARK_SUIT = AUDIO / "LDC93S1.wav"
"""TIMIT's "She had your dark suit in greasy wash water all year": tiny.en mishears
"dark" (as "dog", unsure of it), a word base gets right."""


class CountingTranscriber(FasterWhisperTranscriber):
    """The real recogniser, counting the audio it is asked to decode (seconds a call)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clips: list[float] = []

    def recognise(
        self,
        window: AudioWindow,
        settings: RecognitionSettings,
        language: str | None,
        on_progress: WindowProgress | None = None,
        prior: str | None = None,
    ) -> WindowResult:
        speech = window.speech
        seconds = window.duration_s if speech is None else sum(b - a for a, b in speech)
        self.clips.append(seconds / SAMPLE_RATE if speech is not None else seconds)
        return super().recognise(window, settings, language, on_progress, prior)

    def decode_clip(
        self,
        samples: Any,
        settings: RecognitionSettings,
        language: str | None,
        max_new_tokens: int | None = None,
    ) -> list[Segment]:
        self.clips.append(len(samples) / SAMPLE_RATE)
        return super().decode_clip(samples, settings, language, max_new_tokens)


@pytest.fixture(scope="module")
def base() -> CountingTranscriber:
    return CountingTranscriber(resolve_model("base"), device="cpu")


def pass_one(
    path: Path, transcriber: FasterWhisperTranscriber
) -> tuple[AudioWindow, Transcript, RunContext]:
    """v1's audio stages (tiny.en) over a one-window file: what pass 2 starts from."""
    pipeline = build(TranscriptionSettings(language="en"), transcriber)
    prepared = pipeline.prepare(path, decode_ahead=False)
    run = RunContext(prepared.source, prepared.media.duration_s)
    transcript = Transcript(prepared.media, (), "en", 1.0, pipeline.settings, pipeline.model_id)
    (window,) = list(prepared.windows)
    for stage in pipeline.stages:
        if stage.kind == "audio":
            window, transcript = stage.process(window, transcript, run)  # type: ignore[attr-defined]
    return window, transcript, run


def settings_for(second: FasterWhisperTranscriber, **changes: Any) -> MultipassSettings:
    return replace(MultipassSettings(second.model_id), **changes)


def test_weak_spans_are_where_pass_one_was_unsure(
    transcriber: FasterWhisperTranscriber,
) -> None:
    window, transcript, _ = pass_one(PRINTING, transcriber)
    words = transcript.words
    settings = MultipassSettings("base")
    unsure = [w for w in words if w.probability < settings.word_probability_below]
    assert unsure, "tiny.en is unsure of some of this recording"
    bounds = (window.start_s, window.end_s)
    spans = find_weak_spans(transcript.segments, settings, bounds)
    assert spans and all(bounds[0] <= s.start < s.end <= bounds[1] for s in spans)
    # Every unsure word lies in a span, with at least one sure word of context beside it.
    for word in unsure:
        span = next(s for s in spans if s.start <= word.start and word.end <= s.end)
        inside = [w for w in words if span.start <= (w.start + w.end) / 2 <= span.end]
        assert len(inside) >= 2 and "p=" in span.reason
    # Sure words far from any unsure one are left alone: pass 2 is not the whole file.
    assert sum(s.duration_s for s in spans) < 0.6 * (words[-1].end - words[0].start)
    # JFK is read clearly: tiny.en is sure of every word and no span is found.
    _, clear, _ = pass_one(JFK, transcriber)
    assert find_weak_spans(clear.segments, settings) == []


def test_the_budget_keeps_the_weakest_spans(transcriber: FasterWhisperTranscriber) -> None:
    _, transcript, _ = pass_one(DARK_SUIT, transcriber)
    everything = MultipassSettings("base", word_probability_below=1.01)
    spans = find_weak_spans(transcript.segments, everything)
    assert len(spans) == 1  # every word is weak: one span over the whole sentence
    words = transcript.words
    assert spans[0].start <= words[0].start and words[-1].end <= spans[0].end
    weak = find_weak_spans(transcript.segments, MultipassSettings("base", join_gap_s=0.0))
    total = sum(s.duration_s for s in weak)
    kept = within_budget(weak, total / 2)
    assert sum(s.duration_s for s in kept) <= total / 2
    assert [s.start for s in kept] == sorted(s.start for s in kept)
    if len(weak) > 1:
        assert max(s.weakness for s in kept) == max(s.weakness for s in weak)


def test_pass_two_decodes_only_the_weak_spans(
    transcriber: FasterWhisperTranscriber, base: CountingTranscriber
) -> None:
    window, transcript, run = pass_one(PRINTING, transcriber)
    recognition = RecognitionSettings(model_id=transcriber.model_id, language="en")
    for packed in (True, False):
        stage = MultipassStage(settings_for(base, packed=packed), recognition, base)
        base.clips.clear()
        _, after = stage.process(window, transcript, run)
        spans = stage.stats.spans
        assert spans, "tiny.en is unsure of some words of this recording"
        decoded = sum(s.duration_s for s in spans)
        assert stage.stats.decoded_s == pytest.approx(decoded)
        # Packed: all spans in one call; one by one: a call per span. Never more audio.
        assert len(base.clips) == (1 if packed else len(spans))
        assert sum(base.clips) == pytest.approx(decoded, abs=0.01)
        assert decoded < 0.6 * window.duration_s
        # Words outside the spans are pass 1's own, untouched; all are timed, in order.
        words = after.words
        outside = [
            w for w in transcript.words if not any(s.start <= w.start <= s.end for s in spans)
        ]
        assert outside and all(any(w is kept for kept in words) for w in outside)
        assert all(0.0 <= w.start <= w.end <= window.end_s for w in words)
        assert all(a.start <= b.start for a, b in itertools.pairwise(words))


def test_pass_two_hears_the_word_pass_one_missed(
    transcriber: FasterWhisperTranscriber, base: CountingTranscriber
) -> None:
    window, transcript, run = pass_one(DARK_SUIT, transcriber)
    assert "dark" not in transcript.text.lower().split()
    recognition = RecognitionSettings(model_id=transcriber.model_id, language="en")
    stage = MultipassStage(settings_for(base), recognition, base)
    _, after = stage.process(window, transcript, run)
    # base hears "dark" where tiny.en was unsure; the change is recorded with its reason.
    assert "dark" in after.text.lower().split()
    changes = [e for e in after.edits if e.kind == "multipass"]
    accepted = [e for e in changes if e.status == "accepted"]
    assert any(e.after.lower() == "dark" for e in accepted)
    # Where pass 1 was surer (base heard "a" for "your"), pass 1 stays and says why.
    assert any(e.status == "rejected" for e in changes)
    assert all(e.stage == "multipass" and "p=" in e.reason for e in changes)
    dark = next(w for w in after.words if w.text.lower() == "dark")
    dog = next(w for w in transcript.words if w.start == dark.start)
    assert (dark.start, dark.end) == (dog.start, dog.end)  # a substitution keeps pass 1's times


def test_combining_keeps_the_surer_words_with_times() -> None:
    def words(text: str, probabilities: list[float], start: float = 0.0) -> list[Word]:
        return [
            Word(start + i * 0.5, start + i * 0.5 + 0.4, t, p)
            for i, (t, p) in enumerate(zip(text.split(), probabilities, strict=True))
        ]

    settings = MultipassSettings("base")
    ours = words("she had your dog suit", [0.9, 0.9, 0.8, 0.3, 0.9])
    theirs = words("She had your dark suit", [0.9, 0.9, 0.8, 0.7, 0.9], start=0.05)
    combined, choices = combine(ours, theirs, settings)
    assert [w.text for w in combined] == ["she", "had", "your", "dark", "suit"]
    (choice,) = choices
    assert choice.take and [w.text for w in choice.ours] == ["dog"]
    dark = combined[3]
    # a word for a word: pass 2's text and probability at pass 1's times
    assert (dark.start, dark.end, dark.probability) == (ours[3].start, ours[3].end, 0.7)
    assert combined[2] is ours[2] and combined[4] is ours[4]

    # A word only pass 2 heard gets its own time, held between its neighbours.
    more = words("she had your dark old suit", [0.9, 0.9, 0.8, 0.7, 0.9, 0.9], start=0.3)
    added, _ = combine(ours, more, settings)
    assert [w.text for w in added] == ["she", "had", "your", "dark", "old", "suit"]
    old = added[4]
    assert added[3].end <= old.start <= old.end <= added[5].start == ours[4].start

    # Settled as whole runs (the ablation's arm), "your dog" against "a dark" stays.
    pair = words("she had a dark suit", [0.9, 0.9, 0.2, 0.4, 0.9])
    mixed = words("she had your dog suit", [0.9, 0.9, 0.7, 0.3, 0.9])
    by_word = [w.text for w in combine(mixed, pair, settings)[0]]
    by_run = [w.text for w in combine(mixed, pair, replace(settings, rule="region"))[0]]
    assert by_word == ["she", "had", "your", "dark", "suit"]
    assert by_run == ["she", "had", "your", "dog", "suit"]

    # Pass 1 surer: its word stays, and the refused alternative is kept as a choice.
    sure = words("she had your dog suit", [0.9, 0.9, 0.8, 0.95, 0.9])
    kept, refused = combine(sure, theirs, settings)
    assert [w.text for w in kept] == ["she", "had", "your", "dog", "suit"]
    assert [c.take for c in refused] == [False]

    # A disagreement at a span's edge (no agreed word beyond it) is not settled: pass 1 stays.
    edge = words("had your dog", [0.9, 0.8, 0.1])
    other = words("had your dark", [0.9, 0.8, 0.9])
    assert [w.text for w in combine(edge, other, settings)[0]] == ["had", "your", "dog"]
    assert [w.text for w in combine(edge, other, settings, open_end=True)[0]][-1] == "dark"

    # Deletions and insertions weigh the lone side against keep_below.
    extra = words("she had the your suit", [0.9, 0.9, 0.2, 0.9, 0.9])
    plain = words("she had your suit", [0.9, 0.9, 0.9, 0.9])
    assert [w.text for w in combine(extra, plain, settings)[0]] == ["she", "had", "your", "suit"]
    assert [w.text for w in combine(plain, extra, settings)[0]] == ["she", "had", "your", "suit"]
    sure_extra = words("she had the your suit", [0.9, 0.9, 0.8, 0.9, 0.9])
    assert [w.text for w in combine(plain, sure_extra, settings)[0]][2] == "the"
    assert [w.text for w in combine(sure_extra, plain, settings)[0]][2] == "the"


def test_alignment_pairs_equal_words() -> None:
    a = ["a", "b", "c", "d"]
    b = ["a", "x", "c", "d", "e"]
    assert align(a, b) == [(0, 0), (1, 1), (2, 2), (3, 3), (None, 4)]
    assert align([], ["a"]) == [(None, 0)]
    assert normalised("Dark,") == "dark" and normalised("'tis") == "tis"


def test_v3_runs_end_to_end_from_the_cli(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'v3.db'}"
    runner = CliRunner()
    done = runner.invoke(
        cli,
        ["--db", db, "transcribe", str(DARK_SUIT), "-p", "v3", "-f", "json", "-o", str(tmp_path)],
    )
    assert done.exit_code == 0, done.output
    assert "dark suit" in done.stdout.lower()
    payload = json.loads(runner.invoke(cli, ["--db", db, "show", "1", "--json"]).stdout)
    stages = [s["name"] for s in payload["stages"]]
    assert stages == ["decode", "vad", "recognise", "redecode", "multipass", "sentences"]
    multipass = payload["stages"][4]
    assert multipass["settings"]["model_id"] == resolve_model("base").model_id
    assert [s["name"] for s in payload["skipped"]] == ["enhance"]  # no API key in tests
    assert any(e["kind"] == "multipass" for e in payload["edits"])
    exported = json.loads((tmp_path / "LDC93S1.json").read_text())
    assert [s["name"] for s in exported["stages"]] == stages
    assert all(w["start"] <= w["end"] for s in exported["segments"] for w in s["words"])
    changes = runner.invoke(cli, ["--db", db, "show", "1", "--changes"]).stdout
    assert "multipass/multipass" in changes and "'dark'" in changes


def test_v3_keeps_sentences_last_and_shares_one_model_for_both_passes(
    transcriber: FasterWhisperTranscriber,
) -> None:
    pipeline = build(TranscriptionSettings(pipeline="v3"), transcriber)
    names = [s.name for s in pipeline.stages]
    assert names == ["vad", "recognise", "redecode", "multipass", "enhance", "sentences"]
    second = pipeline.stages[3]
    assert isinstance(second, MultipassStage) and second.transcriber is not transcriber
    # A second build loads nothing new: pass 2's model is kept for the process.
    again = build(TranscriptionSettings(pipeline="v3"), transcriber).stages[3]
    assert isinstance(again, MultipassStage) and again.transcriber is second.transcriber
    # With base for pass 1 as well, both passes share it.
    same = build(TranscriptionSettings(pipeline="v3", model="base"), second.transcriber)
    shared = same.stages[3]
    assert isinstance(shared, MultipassStage) and shared.transcriber is second.transcriber
    # No word timestamps, nothing to weigh: no pass 2.
    plain = build(TranscriptionSettings(pipeline="v3", word_timestamps=False), transcriber)
    assert "multipass" not in [s.name for s in plain.stages]
