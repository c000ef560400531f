"""What a transcript reads like: sentence-sized segments, no words in silence, and
languages as spoken (issue 9), on real recordings."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

import numpy as np
import pytest

from tests.mediafiles import AUDIO, JFK, read_audio, write_media
from trax.asr import FasterWhisperTranscriber
from trax.asr.sentences import SentenceSettings, ends_sentence, sentences
from trax.asr.silence import drop_unspoken
from trax.core import Segment, TranscriptionSettings, Word, render_words
from trax.payload import from_payload, to_payload
from trax.pipeline import build

V1 = TranscriptionSettings()
SPEECH = ("ask not what your country can do for you", "ask what you can do for your country")


@pytest.fixture(scope="module")
def jfk_silence_jfk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JFK, a minute of digital silence, JFK again: Whisper wrote "You" into the silence."""
    jfk = read_audio(JFK, rate=16_000, layout="mono")
    silence = np.zeros((1, 16_000 * 60), dtype=np.float32)
    folder = tmp_path_factory.mktemp("silence")
    joined = np.concatenate([jfk, silence, jfk], axis=1)
    return write_media(folder / "jfk-silence-jfk.wav", joined, rate=16_000)


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [V1, TranscriptionSettings(batched=False), TranscriptionSettings(vad=False)],
    ids=["batched", "sequential", "no-vad"],
)
def test_no_word_is_written_into_silence(
    transcriber: FasterWhisperTranscriber,
    jfk_silence_jfk: Path,
    settings: TranscriptionSettings,
) -> None:
    transcript = build(settings, transcriber).run(jfk_silence_jfk)
    # The silence runs from 11.0 s to 71.0 s; JFK starts speaking ~0.3 s into his clip.
    inside = [w for w in transcript.words if 11.0 < (w.start + w.end) / 2 < 71.0]
    assert inside == []
    text = transcript.text.lower().replace(",", "").replace(".", "")
    for phrase in SPEECH:
        assert text.count(phrase) == 2, text
    assert all(s.end < 11.5 or s.start > 70.5 for s in transcript.segments)


def test_words_outside_detected_speech_are_dropped_and_recorded() -> None:
    spoken = Segment(0.0, 2.0, "", (Word(0.1, 0.5, "Hello", 0.9), Word(0.6, 1.0, "there.", 0.9)))
    # A word mapped into a pause, and a segment Whisper itself rates as silence.
    stray = Segment(
        2.0, 9.0, "", (Word(2.0, 2.4, "So", 0.9), Word(5.0, 6.4, "You", 0.8)), no_speech_prob=0.1
    )
    invented = Segment(20.0, 21.0, "", (Word(20.0, 21.0, "Thanks.", 0.34),), no_speech_prob=0.95)
    sure = Segment(30.0, 31.0, "", (Word(30.0, 31.0, "Yes.", 0.9),), no_speech_prob=0.95)
    speech = [(0.0, 2.5), (19.5, 21.5), (29.5, 31.5)]
    kept, edits = drop_unspoken([spoken, stray, invented, sure], speech, "recognise")
    assert [s.text for s in kept] == ["Hello there.", "So", "Yes."]
    assert kept[1].end == 2.4  # re-timed to the words it kept
    assert [(e.before, e.after, e.kind) for e in edits] == [
        ("So You", "So", "silence"),
        ("Thanks.", "", "silence"),
    ]
    # Without VAD only Whisper's own signals speak: the unsure word in "silence" goes.
    kept, _ = drop_unspoken([spoken, invented, sure], None, "recognise")
    assert [s.text for s in kept] == ["Hello there.", "Yes."]


def words_of(text: str, start: float = 0.0, step: float = 0.4, pause_after: int = -1) -> list[Word]:
    words = []
    t = start
    for i, token in enumerate(text.split()):
        words.append(Word(t, t + step * 0.8, token, 0.9))
        t += step + (2.0 if i == pause_after else 0.0)
    return words


def test_segments_are_split_at_sentence_ends_not_abbreviations() -> None:
    words = words_of("Mr. Smith paid 3.5 dollars, e.g. cash. then more. Really? Yes! Done")
    (segment,) = [Segment(0.0, words[-1].end, "", tuple(words))]
    out = sentences([segment], SentenceSettings())
    assert [s.text for s in out] == [
        "Mr. Smith paid 3.5 dollars, e.g. cash. then more.",
        "Really?",
        "Yes!",
        "Done",
    ]
    assert out[1].start == words[9].start and out[1].end == words[9].end
    assert ends_sentence(Word(0, 1, "said.”", 0.9), Word(1, 2, "Then", 0.9))


def test_long_sentences_split_at_their_best_break() -> None:
    text = " ".join(f"w{i}" + ("," if i == 30 else "") for i in range(60))
    words = words_of(text, pause_after=40)  # 24 s of one sentence, a long pause after w40
    out = sentences([Segment(0.0, 30.0, "", tuple(words))], SentenceSettings(max_duration_s=15))
    assert all(s.end - s.start <= 15 for s in out)
    # First at the long pause after w40, then (still 16 s) at the comma after w30.
    assert [len(s.words) for s in out] == [31, 10, 19]
    assert render_words([w for s in out for w in s.words]) == text


def test_segments_split_where_language_or_speaker_changes_and_at_long_pauses() -> None:
    english = Segment(0.0, 2.0, "", tuple(words_of("so we begin")), language="en")
    german = Segment(2.0, 4.0, "", tuple(words_of("und dann", start=1.2)), language="de")
    pause = Segment(10.0, 12.0, "", tuple(words_of("after the pause", start=10.0)), language="de")
    out = sentences([english, german, pause], SentenceSettings())
    assert [(s.text, s.language) for s in out] == [
        ("so we begin", "en"),
        ("und dann", "de"),
        ("after the pause", "de"),
    ]
    a, b = Word(0, 0.3, "Hi", 0.9, speaker="A"), Word(0.4, 0.7, "hello", 0.9, speaker="B")
    out = sentences([Segment(0, 1, "", (a, b))], SentenceSettings())
    assert [(s.text, s.speaker) for s in out] == [("Hi", "A"), ("hello", "B")]


def test_hyphenated_words_stay_joined_across_a_split() -> None:
    words = (Word(0, 0.4, "flower", 0.9), Word(0.4, 0.8, "-fattened", 0.9, attached=True))
    (segment,) = sentences([Segment(0, 1, "", words)], SentenceSettings())
    assert segment.text == "flower-fattened"
    payload = to_payload_roundtrip(segment)
    assert payload.text == "flower-fattened" and payload.words[1].attached


def to_payload_roundtrip(segment: Segment) -> Segment:
    from trax.payload import segment_from_dict, segment_to_dict

    return segment_from_dict(segment_to_dict(segment))


@pytest.mark.slow
def test_real_read_speech_gives_sentence_sized_segments(
    transcriber: FasterWhisperTranscriber, tmp_path: Path
) -> None:
    # About 50 s of read speech, joined: batched decoding made one segment per 30 s chunk.
    clips = [
        AUDIO / "1089-134686-0000.flac",
        AUDIO / "LJ001-0001.wav",
        JFK,
        AUDIO / "LJ001-0001.wav",
    ]
    joined = np.concatenate([read_audio(c, rate=16_000, layout="mono") for c in clips], axis=1)
    path = write_media(tmp_path / "read.wav", joined, rate=16_000)
    transcript = build(V1, transcriber).run(path)
    durations = [s.end - s.start for s in transcript.segments]
    assert len(durations) >= 4  # one per sentence; batched decoding gave two 30 s chunks
    assert statistics.median(durations) <= 12 and max(durations) <= 30
    ends = [s.text.rstrip("\"')") for s in transcript.segments[:-1]]
    assert sum(e.endswith((".", "?", "!")) for e in ends) >= len(ends) - 1
    assert transcript.stages[-1].name == "sentences"


@pytest.mark.slow
def test_a_recording_that_changes_language_is_transcribed_in_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """English, then German: with a multilingual model each part in its own language."""
    from trax.asr import resolve_model

    base = FasterWhisperTranscriber(resolve_model("base"), device="cpu")
    transcript = build(TranscriptionSettings(model="base"), base).run(AUDIO / "multilingual.mp3")
    english = [s for s in transcript.segments if s.end < 29.5]
    german = [s for s in transcript.segments if s.start > 30.0]
    assert english and german
    assert {s.language for s in english} == {"en"} and {s.language for s in german} == {"de"}
    assert "permission is hereby granted" in " ".join(s.text for s in english).lower()
    german_text = " ".join(s.text for s in german).lower()
    assert "software" in german_text and " die " in german_text and " und " in german_text
    assert transcript.language in ("en", "de")
    stored = from_payload(to_payload(transcript))
    assert [s.language for s in stored.segments] == [s.language for s in transcript.segments]


@pytest.mark.slow
def test_an_english_only_model_says_once_when_speech_is_not_english(
    transcriber: FasterWhisperTranscriber, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="trax"):
        transcript = build(V1, transcriber).run(AUDIO / "multilingual.mp3")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "knows only English" in warnings[0], warnings
    assert "from 0:30" in warnings[0] and "--model base" in warnings[0]
    assert transcript.language == "en"
    with caplog.at_level(logging.WARNING, logger="trax"):
        caplog.clear()
        build(V1, transcriber).run(JFK)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
