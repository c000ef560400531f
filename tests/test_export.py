from __future__ import annotations

import itertools
import json
import os
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest

from trax.core import MediaInfo, Segment, Transcript, TranscriptionSettings, Word
from trax.export import FORMATS, export_transcript, get_exporter, parse_formats, write_atomic
from trax.export.subtitles import Cue, SubtitleOptions, build_cues, render_srt, render_vtt
from trax.payload import from_payload

MEDIA = MediaInfo(
    path="/recordings/2024/team-interview.mp3",
    size_bytes=1_234_567,
    sha256="ab" * 32,
    duration_s=None,
    container="mp3",
    audio_codec="mp3",
    sample_rate=44_100,
    channels=2,
)

SPEECH = (
    "we should probably look at the numbers again before the meeting because "
    "nobody really understood what happened last quarter and the transcription "
    "of every interview needs careful review internationalisation matters too"
)


def make_transcript(segments: list[Segment], duration_s: float | None = None) -> Transcript:
    media = replace(MEDIA, duration_s=duration_s)
    return Transcript(
        media=media,
        segments=tuple(segments),
        language="en",
        language_probability=0.98,
        settings=TranscriptionSettings(model="small.en"),
        model_id="small.en",
    )


def make_segment(words: list[tuple[float, float, str]], speaker: str | None = None) -> Segment:
    """A segment of these words (its text is rendered from them)."""
    ws = tuple(Word(start, end, text, 0.9) for start, end, text in words)
    return Segment(ws[0].start, ws[-1].end, "", ws, speaker=speaker)


def timed(
    text: str, start: float = 0.0, slot: float = 0.35, gap: float = 0.05
) -> list[tuple[float, float, str]]:
    """Evenly spoken words: each takes ``slot`` seconds followed by ``gap`` of silence."""
    words = []
    t = start
    for word in text.split():
        words.append((round(t, 3), round(t + slot, 3), word))
        t += slot + gap
    return words


def texts(cues: list[Cue]) -> list[str]:
    return [cue.text for cue in cues]


def unlabelled(text: str) -> str:
    return re.sub(r"^\[[^\]]+\] ", "", text)


def words_of(cues: list[Cue]) -> list[str]:
    return " ".join(unlabelled(c.text) for c in cues).split()


def long_speech(seed: int = 7, seconds: float = 180.0) -> list[Segment]:
    """About three minutes at ~2.5 words/s, with punctuation, pauses and ~30 s segments."""
    rng = random.Random(seed)
    vocabulary = SPEECH.split()
    words: list[Word] = []
    t = 0.0
    while t < seconds:
        length = rng.randint(3, 22)
        for k in range(length):
            text = rng.choice(vocabulary)
            if k == length - 1:
                text += rng.choice([".", ".", "?", "!"])
            elif rng.random() < 0.1:
                text += ","
            duration = rng.uniform(0.22, 0.38)
            words.append(Word(round(t, 3), round(t + duration, 3), f" {text}", 0.9))
            t += duration + rng.uniform(0.0, 0.12)
        if rng.random() < 0.3:
            t += rng.uniform(0.8, 2.5)  # a pause between sentences
    segments = []
    for i in range(0, len(words), 70):  # Whisper-like windows that cut sentences anywhere
        chunk = tuple(words[i : i + 70])
        text = "".join(w.text for w in chunk)
        segments.append(Segment(chunk[0].start, chunk[-1].end, text, chunk))
    return segments


def test_long_speech_respects_every_limit() -> None:
    segments = long_speech()
    all_words = [w for s in segments for w in s.words]
    assert all_words[-1].end > 170  # really three minutes
    cues = build_cues(segments)

    assert words_of(cues) == [w.text.strip() for w in all_words]
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2
        assert all(0 < len(line) <= 42 for line in cue.lines)
        assert cue.end - cue.start <= 7.0 + 1e-9
    for cue, following in itertools.pairwise(cues):
        assert cue.start < cue.end
        # Two frames (80 ms) between cues; a cue stays short only where the
        # next one leaves no more room.
        assert following.start - cue.end >= 0.08 - 1e-9
        assert cue.end - cue.start >= 1.0 - 1e-9 or following.start - cue.end == pytest.approx(0.08)
    assert cues[-1].end - cues[-1].start >= 1.0 - 1e-9

    # Walk words and cues together: a cue never spans a pause and is timed by its words.
    position = 0
    for cue in cues:
        count = len(cue.text.split())
        inside = all_words[position : position + count]
        position += count
        # At the word, or at most half a second early for a cue that needs reading time.
        assert inside[0].start - 0.5 - 1e-3 <= cue.start <= inside[0].start + 1e-3
        # Its end yields the gap to the next cue, but never more than that of its words.
        assert cue.end >= inside[-1].end - 0.08 - 1e-3
        for before, after in itertools.pairwise(inside):
            assert after.start - before.end < 0.8
    # Sentences end cues: most cues end on a full stop, not mid-phrase.
    ending = sum(1 for c in cues if c.text.endswith((".", "?", "!", ",")))
    assert ending / len(cues) > 0.6


def test_cue_limits_follow_parameters() -> None:
    cues = build_cues(
        long_speech(seed=3, seconds=60), SubtitleOptions(max_line_width=30, max_line_count=1)
    )
    assert all(len(c.lines) == 1 and len(c.lines[0]) <= 30 for c in cues)
    assert max(len(c.lines[0]) for c in cues) > 20  # cues still get filled


def test_breaks_after_sentence_end() -> None:
    # Both sentences would fit in one cue; the full stop still separates them.
    cues = build_cues([make_segment(timed("Hello there, my friend. How are you doing today?"))])
    assert texts(cues) == ["Hello there, my friend.", "How are you doing today?"]


def test_breaks_after_clause_once_cue_is_half_full() -> None:
    sentence = "After the long meeting in the office yesterday, we all went home to sleep."
    # The comma comes under 3 s (and just slow enough to read at 20 characters
    # a second): the cue being half full decides.
    cues = build_cues([make_segment(timed(sentence, slot=0.28))])
    assert texts(cues) == [
        "After the long meeting in the office yesterday,",
        "we all went home to sleep.",
    ]


def test_breaks_after_clause_once_cue_is_long() -> None:
    # Few characters, but slow: three seconds in, the comma is a good break.
    cues = build_cues([make_segment(timed("Well then, my friends, let us begin now.", slot=0.75))])
    assert texts(cues) == ["Well then, my friends,", "let us begin now."]


def test_early_comma_does_not_break() -> None:
    cues = build_cues([make_segment(timed("Well, I think we should go home now."))])
    assert texts(cues) == ["Well, I think we should go home now."]


def test_overflowing_cue_is_cut_at_its_last_comma() -> None:
    sentence = (
        "Early in the cold grey morning, we walked along the river past the old mill "
        "and over the bridge to the station"
    )
    cues = build_cues([make_segment(timed(sentence, slot=0.2))])
    assert cues[0].text == "Early in the cold grey morning,"
    assert words_of(cues) == sentence.split()


def test_pause_breaks_cue() -> None:
    first = timed("I was going to say")
    second = timed("something else entirely.", start=first[-1][1] + 1.0)
    cues = build_cues([make_segment(first + second)])
    assert texts(cues) == ["I was going to say", "something else entirely."]
    assert cues[1].start == pytest.approx(second[0][0])

    close = timed("something else entirely.", start=first[-1][1] + 0.5)
    assert texts(build_cues([make_segment(first + close)])) == [
        "I was going to say something else entirely."
    ]


def test_max_duration_splits_slow_speech() -> None:
    slow = timed(
        "one two three four five six seven eight nine ten eleven twelve", slot=0.9, gap=0.1
    )
    cues = build_cues([make_segment(slow)])
    assert len(cues) == 2
    assert all(c.end - c.start <= 7.0 for c in cues)
    assert words_of(cues) == [w for _, _, w in slow]


def test_short_cue_extends_up_to_next_cue_only() -> None:
    yes = [(0.0, 0.1, "Yes.")]
    rest = timed("Next we talk about money.", start=0.95)  # after a 0.85 s pause
    cues = build_cues([make_segment(yes + rest)])
    assert texts(cues) == ["Yes.", "Next we talk about money."]
    # ... less the two frames (80 ms) between cues.
    assert (cues[0].end, cues[1].start) == (0.87, 0.95)

    alone = build_cues([make_segment([(2.0, 2.3, "Yes.")])])
    assert (alone[0].start, alone[0].end) == (2.0, 3.0)


def test_short_fragment_is_merged_into_neighbour() -> None:
    cues = build_cues([make_segment([(0.0, 0.3, "Yes."), *timed("I agree with that.", 0.35)])])
    assert texts(cues) == ["Yes. I agree with that."]

    # A tail left after a clause break joins the cue it continues.
    sentence = "After the long meeting in the office yesterday, we left."
    cues = build_cues([make_segment(timed(sentence))])
    assert len(cues) == 1
    # Lines never end on a short word like "the" when a better break exists.
    assert cues[0].lines == ("After the long meeting", "in the office yesterday, we left.")


def test_single_overlong_word_gets_its_own_line() -> None:
    url = "https://example.com/a/very/long/path/that/never/ends/index.html"
    sentence = f"Please visit {url} today if you can"
    cues = build_cues([make_segment(timed(sentence))])
    assert words_of(cues) == sentence.split()
    lines = [line for c in cues for line in c.lines]
    assert url in lines
    assert all(len(line) <= 42 for line in lines if line != url)
    assert all(len(c.lines) <= 2 for c in cues)


def test_segments_without_words_are_interpolated() -> None:
    text = (
        " The speaker talked about the history of the town, the river that runs through it, "
        "and the people who built the first bridge across the water long ago."
    )
    cues = build_cues([Segment(10.0, 20.0, text)])
    assert words_of(cues) == text.split()
    assert len(cues) >= 2
    assert cues[0].start == 10.0
    assert cues[-1].end == 20.0
    weights = [len(w) + 1 for w in text.split()]  # a word and the space after it
    said = 0
    for cue in cues:
        # Each cue starts where its first word falls by character count.
        assert cue.start == pytest.approx(
            10.0 + 10.0 * sum(weights[:said]) / sum(weights), abs=1e-3
        )
        said += len(cue.text.split())
        assert all(len(line) <= 42 for line in cue.lines)


def test_speakers_are_never_mixed_and_labelled_on_change() -> None:
    a1 = timed("Hello there, how are you doing today?", start=0.0)
    b = timed("Fine.", start=2.9)
    a2 = timed(
        "Good to hear, because we have a lot to cover in this meeting and the agenda "
        "is long enough to fill the whole afternoon.",
        start=3.3,
    )
    nobody = timed("Thanks everyone.", start=15.0)
    cues = build_cues(
        [
            make_segment(a1, speaker="A"),
            make_segment(b, speaker="B"),
            make_segment(a2, speaker="A"),
            make_segment(nobody),
        ]
    )
    assert cues[0].text == "[A] Hello there, how are you doing today?"
    # "Fine." is short and close to its neighbours but belongs to another speaker.
    assert cues[1].text == "[B] Fine."
    assert cues[2].text.startswith("[A] Good to hear,")
    later = cues[3:-1]
    assert later and not any(c.text.startswith("[") for c in later)
    assert cues[-1].text == "Thanks everyone."
    assert all(len(line) <= 42 for c in cues for line in c.lines)
    assert cues[1].end <= cues[2].start


def test_messy_word_timings_still_give_ordered_cues() -> None:
    # Whisper quirks: zero-length words, words starting before the previous
    # one ends, an empty word, segments that overlap.
    first = make_segment(
        [(0.0, 0.0, "So."), (0.0, 0.0, "uh"), (0.3, 0.9, "what"), (0.7, 1.1, "now?")]
    )
    second = Segment(
        1.0,
        2.0,
        " Next bit.",
        (Word(1.0, 1.5, " Next", 0.9), Word(1.5, 1.5, "", 0.1), Word(1.4, 2.0, " bit.", 0.9)),
    )
    cues = build_cues([first, second])
    assert words_of(cues) == ["So.", "uh", "what", "now?", "Next", "bit."]
    for cue, following in itertools.pairwise(cues):
        assert cue.start < cue.end <= following.start
    assert cues[-1].start < cues[-1].end


def test_words_without_spaces_are_joined_in_spaceless_scripts() -> None:
    words = tuple(
        Word(i * 0.5, i * 0.5 + 0.5, t, 0.9, attached=True)
        for i, t in enumerate(("日本", "語", "です。"))
    )
    cues = build_cues([Segment(0.0, 1.5, "日本語です。", words)])
    assert texts(cues) == ["日本語です。"]
    # Latin words missing their leading space are still kept apart.
    latin = (Word(0.0, 0.5, "Hello", 0.9), Word(0.5, 1.2, "world.", 0.9))
    assert texts(build_cues([Segment(0.0, 1.2, "Hello world.", latin)])) == ["Hello world."]


def small_transcript() -> Transcript:
    first = make_segment(
        [
            (0.0, 0.5, "Hello"),
            (0.6, 1.2, "there."),
            (1.3, 1.6, "This"),
            (1.65, 1.8, "is"),
            (1.85, 1.9, "a"),
            (1.95, 2.3, "short"),
            (2.35, 2.7, "test"),
            (2.75, 2.85, "of"),
            (2.9, 3.0, "the"),
            (3.05, 3.5, "subtitle"),
            (3.55, 4.2, "exporter."),
        ]
    )
    second = make_segment([(5.7, 6.0, "Yes."), (6.9, 7.2, "Q&A"), (7.25, 7.5, "now.")])
    return make_transcript([first, second])


def test_srt_exact() -> None:
    expected = (
        "1\n00:00:00,000 --> 00:00:01,200\nHello there.\n\n"
        "2\n00:00:01,300 --> 00:00:04,200\nThis is a short test\nof the subtitle exporter.\n\n"
        "3\n00:00:05,700 --> 00:00:06,700\nYes.\n\n"
        "4\n00:00:06,900 --> 00:00:07,900\nQ&A now.\n"
    )
    assert get_exporter("srt").render(small_transcript()) == expected


def test_vtt_exact() -> None:
    expected = (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.200\nHello there.\n\n"
        "00:00:01.300 --> 00:00:04.200\nThis is a short test\nof the subtitle exporter.\n\n"
        "00:00:05.700 --> 00:00:06.700\nYes.\n\n"
        "00:00:06.900 --> 00:00:07.900\nQ&amp;A now.\n"
    )
    assert get_exporter("vtt").render(small_transcript()) == expected


def test_timestamps_past_an_hour() -> None:
    cue = Cue(3723.456, 3725.0, ("late",))
    assert render_srt([cue]) == "1\n01:02:03,456 --> 01:02:05,000\nlate\n"
    assert render_vtt([cue]) == "WEBVTT\n\n01:02:03.456 --> 01:02:05.000\nlate\n"
    assert render_srt([]) == ""


def test_json_round_trips_through_payload(tmp_path: Path) -> None:
    words = (Word(0.0, 0.42, " Grüße", 0.8125), Word(0.5, 0.9, " everyone.", 0.97))
    segments = [
        Segment(0.0, 0.9, " Grüße everyone.", words, -0.25, 1.5, 0.0125, 0.0, "A"),
        Segment(1.5, 2.0, " No words here.", avg_logprob=-0.5),
    ]
    transcript = make_transcript(segments, duration_s=2.5)
    path = export_transcript(transcript, "json", tmp_path / "out.json")
    raw = path.read_text(encoding="utf-8")
    assert "Grüße" in raw  # ensure_ascii=False keeps the text readable
    assert raw.endswith("}\n")
    loaded = from_payload(json.loads(raw))
    assert loaded.segments == transcript.segments
    assert loaded.media == transcript.media
    assert (loaded.language, loaded.model_id) == ("en", "small.en")


def test_tsv_content(tmp_path: Path) -> None:
    segments = [
        Segment(0.0, 1.2345, " Hello\tworld."),
        Segment(61.5, 63.0, " Second\nline here. "),
    ]
    path = export_transcript(make_transcript(segments), "tsv", tmp_path / "out.tsv")
    assert path.read_text(encoding="utf-8") == (
        "start\tend\ttext\n0\t1234\tHello world.\n61500\t63000\tSecond line here.\n"
    )


def test_txt_content(tmp_path: Path) -> None:
    segments = [
        Segment(0.0, 1.0, " First line. "),
        Segment(1.0, 2.0, " "),
        Segment(2.0, 3.0, "Next"),
    ]
    path = export_transcript(make_transcript(segments), "txt", tmp_path / "out.txt")
    assert path.read_text(encoding="utf-8") == "First line.\nNext\n"


def test_markdown_content(tmp_path: Path) -> None:
    segments = [
        Segment(5.4, 9.0, " Welcome to the show."),
        Segment(65.0, 70.0, " Thanks for having me.", speaker="Guest"),
        Segment(3725.9, 3730.0, " That was the last question."),
    ]
    transcript = make_transcript(segments, duration_s=3731.0)
    path = export_transcript(transcript, "md", tmp_path / "out.md")
    assert path.read_text(encoding="utf-8") == (
        "# team-interview.mp3\n\n"
        "- Duration: 1:02:11\n- Language: en\n- Model: small.en\n- Pipeline: v1\n\n"
        "**[00:05]** Welcome to the show.\n\n"
        "**[01:05]** **Guest:** Thanks for having me.\n\n"
        "**[1:02:05]** That was the last question.\n"
    )


def test_every_format_exports_to_a_file(tmp_path: Path) -> None:
    transcript = small_transcript()
    for fmt in FORMATS:
        exporter = get_exporter(fmt)
        assert exporter.name == fmt
        assert exporter.extension == f".{fmt}"
        target = tmp_path / "exports" / f"talk{exporter.extension}"
        assert export_transcript(transcript, fmt, target) == target
        content = target.read_text(encoding="utf-8")
        assert content == exporter.render(transcript)
        assert content.endswith("\n")
        assert "exporter" in content
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == sorted(
        f"talk.{fmt}" for fmt in FORMATS
    )


def test_get_exporter_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match=r"'docx'.*txt, srt, vtt, json, tsv, md"):
        get_exporter("docx")
    assert get_exporter("SRT").name == "srt"


def test_parse_formats() -> None:
    assert parse_formats("txt,srt") == ["txt", "srt"]
    assert parse_formats(" TXT, srt,txt,SRT ") == ["txt", "srt"]
    assert parse_formats("all") == list(FORMATS)
    assert parse_formats("vtt,all") == ["vtt", "txt", "srt", "json", "tsv", "md"]
    assert parse_formats("md,") == ["md"]
    with pytest.raises(ValueError, match="'docx'"):
        parse_formats("txt,docx")
    with pytest.raises(ValueError, match="no export format"):
        parse_formats(" , ")


def test_write_atomic_writes_utf8_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "out.txt"
    write_atomic(target, "naïve — 日本語\nline two\n")
    assert target.read_bytes() == "naïve — 日本語\nline two\n".encode()
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_write_atomic_honours_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "out.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644


def test_write_atomic_temp_file_is_hidden_and_beside_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(Path(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_atomic(tmp_path / "out.srt", "1\n")
    assert len(seen) == 1
    assert seen[0].parent == tmp_path
    assert seen[0].name.startswith(".") and seen[0].name.endswith(".tmp")
    assert (tmp_path / "out.srt").read_text() == "1\n"


def test_write_atomic_failure_mid_write_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old content\n", encoding="utf-8")
    with pytest.raises(TypeError):
        write_atomic(target, object())  # type: ignore[arg-type]
    assert target.read_text(encoding="utf-8") == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_atomic_failed_replace_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old content\n", encoding="utf-8")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        write_atomic(target, "new content\n")
    assert target.read_text(encoding="utf-8") == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_atomic_cleans_up_on_keyboard_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "out.txt", "never lands\n")
    assert list(tmp_path.iterdir()) == []


def test_overflow_without_punctuation_cuts_at_the_longest_pause() -> None:
    # JFK as the batched decoder hears it: no comma after "Americans", but a
    # 0.32 s breath there; "you," only ends after the 7 s limit.
    timings = [
        (0.0, 0.76, " And"),
        (0.76, 1.06, " so"),
        (1.06, 1.46, " my"),
        (1.46, 1.76, " fellow"),
        (1.76, 2.26, " Americans"),
        (2.58, 3.88, " ask"),
        (3.88, 4.56, " not"),
        (4.85, 5.71, " what"),
        (5.71, 6.05, " your"),
        (6.05, 6.35, " country"),
        (6.35, 6.75, " can"),
        (6.75, 7.01, " do"),
        (7.01, 7.27, " for"),
        (7.27, 8.27, " you,"),
        (8.33, 8.67, " ask"),
        (8.67, 8.95, " what"),
        (8.95, 9.29, " you"),
        (9.29, 9.49, " can"),
        (9.49, 9.73, " do"),
        (9.73, 9.93, " for"),
        (9.93, 10.23, " your"),
        (10.23, 10.49, " country."),
    ]
    words = tuple(Word(a, b, t, 0.9) for a, b, t in timings)
    segment = Segment(0.0, 10.49, "".join(t for *_, t in timings).strip(), words)
    texts = [" ".join(c.lines) for c in build_cues([segment])]
    assert texts == [
        "And so my fellow Americans",
        "ask not what your country can do for you,",
        "ask what you can do for your country.",
    ]
