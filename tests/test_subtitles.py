"""Subtitle timing: reading speed, gaps between cues, orphans, options (issue 9).

The reading-speed checks run on the word timings Whisper gives for the
recordings in the repository, not only on evenly spoken synthetic words:
real speech speeds up and slows down within a sentence, and that is where a
cue gets too fast to read.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest

from tests.mediafiles import AUDIO, JFK, read_audio, write_media
from tests.test_export import make_segment as segment
from tests.test_export import texts, timed
from trax.asr import FasterWhisperTranscriber
from trax.core import MediaInfo, Segment, Transcript, TranscriptionSettings, Word, render_words
from trax.export import get_exporter
from trax.export.formats import SrtExporter, VttExporter
from trax.export.subtitles import (
    Cue,
    ReadingSpeed,
    SubtitleOptions,
    build_cues,
    cue_cps,
    reading_speed,
)

DEFAULT = SubtitleOptions()
NO_LIMIT = SubtitleOptions(max_cps=math.inf)
# The English recordings in the repository, and the English half of the
# multilingual one (a licence read out briskly: the hardest for reading speed).
RECORDINGS = [
    JFK,
    AUDIO / "LJ001-0001.wav",
    AUDIO / "1089-134686-0000.flac",
    AUDIO / "LDC93S1.wav",
    AUDIO / "hotwords.mp3",
]
MULTILINGUAL_ENGLISH_S = 30.0


def words_of(cues: list[Cue]) -> list[str]:
    return " ".join(re.sub(r"^\[[^\]]+\] ", "", c.text) for c in cues).split()


def transcript_of(segments: list[Segment]) -> Transcript:
    media = MediaInfo("/talk.wav", 1, "ab" * 32, None, "wav", "pcm_s16le", 16_000, 1)
    return Transcript(
        media=media,
        segments=tuple(segments),
        language="en",
        language_probability=1.0,
        settings=TranscriptionSettings(),
        model_id="tiny.en",
    )


# -- real recordings ------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(
    transcriber: FasterWhisperTranscriber, tmp_path_factory: pytest.TempPathFactory
) -> list[Segment]:
    """Whisper's segments and word timings for the English recordings, played one after another.

    One recording of about 75 s, as a user would give a long file: cues meet
    where one clip runs into the next.
    """
    import numpy as np

    from trax.pipeline import build

    rate = 16_000
    pause = np.zeros((1, rate // 2), dtype=np.float32)
    clips = [read_audio(path, rate, "mono") for path in RECORDINGS]
    english = read_audio(AUDIO / "multilingual.mp3", rate, "mono")
    clips.append(english[:, : int(MULTILINGUAL_ENGLISH_S * rate)])
    joined = np.concatenate([part for clip in clips for part in (clip, pause)], axis=1)
    path = write_media(tmp_path_factory.mktemp("speech") / "english.wav", joined, rate)
    return list(build(TranscriptionSettings(), transcriber).run(path).segments)


def test_real_speech_reads_within_20_cps_where_it_allows(recorded: list[Segment]) -> None:
    before = reading_speed(build_cues(recorded, NO_LIMIT))
    cues = build_cues(recorded)
    after = reading_speed(cues)
    assert after.cues >= 15
    assert after.within >= 0.95, after
    assert after.within > before.within, before  # the limit did the work, not the material
    assert after.fastest <= before.fastest
    # A cue left too fast had no more room: it stays until the next cue (less
    # the gap) or for the longest time a cue may.
    for cue, following in itertools.pairwise(cues):
        if cue_cps(cue) > 20:
            room = following.start - DEFAULT.min_gap
            assert cue.end == pytest.approx(room) or cue.end - cue.start == pytest.approx(7.0)
    assert cue_cps(cues[-1]) <= 20  # the last cue can always stay longer


def test_real_speech_keeps_words_gaps_and_limits(recorded: list[Segment]) -> None:
    cues = build_cues(recorded)
    assert words_of(cues) == render_words([w for s in recorded for w in s.words]).split()
    for cue in cues:
        assert 0 < cue.end - cue.start <= DEFAULT.max_cue_duration + 1e-9
        assert 1 <= len(cue.lines) <= 2
        assert all(len(line) <= 42 for line in cue.lines)
    for cue, following in itertools.pairwise(cues):
        assert following.start - cue.end >= DEFAULT.min_gap - 1e-9
    # No word of this speech is set apart by pauses, so none is left alone.
    assert [c.text for c in cues if len(c.text.split()) == 1] == []


# -- reading speed --------------------------------------------------------------


def test_fast_cue_stays_into_the_silence_after_it() -> None:
    words = timed("Everybody understood the consequences immediately.", slot=0.25, gap=0.0)
    (cue,) = build_cues([segment(words)])
    # 50 characters spoken in 1.25 s: on screen for 2.5 s, read at 20 a second.
    assert (cue.start, cue.end) == (0.0, 2.5)
    assert cue_cps(cue) == 20.0

    later = timed("Then we left.", start=2.1)  # after a pause: a cue of its own
    first, second = build_cues([segment(words + later)])
    assert first.end == pytest.approx(2.1 - 0.08)  # up to the next cue, less the gap
    assert second.start == 2.1

    # Never longer than the longest cue, however much there is to read.
    long_text = "Antidisestablishmentarianism notwithstanding, incomprehensibilities."
    (cue,) = build_cues(
        [segment(timed(long_text, slot=0.2))], SubtitleOptions(max_cue_duration=3.0)
    )
    assert cue.end - cue.start == pytest.approx(3.0)


def test_fast_cue_merges_with_a_slow_neighbour() -> None:
    fast = timed("After the long meeting in the office yesterday,", slot=0.25, gap=0.0)
    slow = timed("we all went home.", start=fast[-1][1], slot=0.5, gap=0.1)
    # Without a limit the comma ends a cue read at 24.5 characters a second.
    assert [round(cue_cps(c), 1) for c in build_cues([segment(fast + slow)], NO_LIMIT)] == [
        24.5,
        7.4,
    ]
    cues = build_cues([segment(fast + slow)])
    assert texts(cues) == ["After the long meeting in the office yesterday, we all went home."]
    assert cue_cps(cues[0]) <= 20


def test_fast_cue_is_recut_with_its_neighbour_when_merging_does_not_fit() -> None:
    fast = timed("Nobody in the room expected such an answer.", slot=0.24, gap=0.0)
    slow = timed("Then, slowly, the old man stood up and left.", start=fast[-1][1], slot=0.6)
    assert texts(build_cues([segment(fast + slow)], NO_LIMIT)) == [
        "Nobody in the room expected such an answer.",
        "Then, slowly, the old man stood up and left.",
    ]
    cues = build_cues([segment(fast + slow)])
    # Too long for one cue: the first takes a slow word from the second.
    assert texts(cues) == [
        "Nobody in the room expected such an answer. Then,",
        "slowly, the old man stood up and left.",
    ]
    assert all(cue_cps(c) <= 20 for c in cues)


def test_speech_simply_too_fast_keeps_its_cues() -> None:
    text = (
        "the quick brown foxes were jumping over all the lazy dogs again and again "
        "while the farmer watched them closely from his porch, laughing."
    )
    words = timed(text, slot=0.22, gap=0.0)
    cues = build_cues([segment(words)])
    assert texts(cues) == texts(build_cues([segment(words)], NO_LIMIT))
    assert words_of(cues) == text.split()
    # The first cue has no room at all; the last one stays until it is read.
    assert cue_cps(cues[0]) > 20
    assert cue_cps(cues[-1]) == pytest.approx(20.0)


def test_a_fast_cue_may_appear_early_out_of_silence() -> None:
    before = timed("Right.", start=0.0)
    fast = timed(
        "The girl who came into the world on that night when Jesse ran through the fields",
        start=3.0,
        slot=0.2,
        gap=0.02,
    )
    after = timed("crying to God.", start=fast[-1][1] + 0.05)
    cues = build_cues([segment(before + fast + after)])
    assert cues[1].text.startswith("The girl")
    assert cues[1].start == pytest.approx(3.0 - 0.5)
    strict = build_cues([segment(before + fast + after)], SubtitleOptions(max_lead_in=0.0))
    assert strict[1].start == 3.0
    assert cue_cps(cues[1]) < cue_cps(strict[1])


# -- gaps between cues ----------------------------------------------------------


def test_contiguous_cues_get_two_frames_between_them() -> None:
    first = timed("We were talking about the weather.", slot=0.3, gap=0.0)
    second = timed("It was cold.", start=first[-1][1], slot=0.4, gap=0.0)
    cues = build_cues([segment(first + second)])
    assert texts(cues) == ["We were talking about the weather.", "It was cold."]
    # The gap comes off the end of the first cue; the second starts with its speech.
    assert cues[0].end == pytest.approx(first[-1][1] - 0.08)
    assert cues[1].start == first[-1][1]

    gapless = build_cues([segment(first + second)], SubtitleOptions(min_gap=0.0))
    assert gapless[0].end == gapless[1].start


def test_gap_delays_the_next_cue_rather_than_flashing_a_short_one() -> None:
    # Three turns with no silence between them: "Fine." takes 0.3 s to say.
    a = timed("So how was the trip to the mountains?", slot=0.3)
    b = timed("Fine.", start=a[-1][1], slot=0.3)
    a2 = timed("Good to hear, because we have a lot to cover.", start=b[-1][1], slot=0.3)
    cues = build_cues([segment(a, "A"), segment(b, "B"), segment(a2, "A")])
    assert texts(cues)[1] == "[B] Fine."
    # The first cue gives up two frames of its end. "Fine." would be cut to
    # 0.22 s that way, so it keeps its 0.3 s and the next cue waits instead.
    assert cues[0].end == pytest.approx(b[0][0] - 0.08)
    assert (cues[1].start, cues[1].end) == pytest.approx(b[0][:2])
    assert cues[2].start == pytest.approx(cues[1].end + 0.08)
    assert cues[2].start - a2[0][0] == pytest.approx(0.08)


# -- orphans --------------------------------------------------------------------


def test_single_word_last_cue_joins_the_one_before() -> None:
    words = [*timed("That is all for today.", slot=0.3), (2.3, 3.5, "Goodbye.")]
    # "Goodbye." is long enough to stand alone, but a lone word reads badly.
    assert texts(build_cues([segment(words)])) == ["That is all for today. Goodbye."]


def test_single_word_left_by_a_full_cue_is_recut() -> None:
    sentence = (
        "produced the block books, which were the immediate predecessors of the true printed book."
    )
    cues = build_cues([segment(timed(sentence, slot=0.3))])
    assert texts(cues) == [
        "produced the block books,",
        "which were the immediate predecessors of the true printed book.",
    ]
    assert words_of(cues) == sentence.split()


def test_word_alone_between_pauses_stays_alone() -> None:
    words = [(0.0, 0.4, "Okay,"), *timed("so let us begin with the budget.", start=2.0)]
    assert texts(build_cues([segment(words)])) == ["Okay,", "so let us begin with the budget."]


# -- words --------------------------------------------------------------------


def test_hyphenated_word_is_one_word_in_srt_vtt_and_txt() -> None:
    words = (
        Word(0.0, 0.3, "peppered,", 0.9),
        Word(0.35, 0.7, "flower", 0.9),
        Word(0.7, 1.2, "-fattened", 0.9, attached=True),
        Word(1.25, 1.7, "sauce.", 0.9),
    )
    transcript = transcript_of([Segment(0.0, 1.7, "", words)])
    for fmt in ("srt", "vtt", "txt"):
        rendered = get_exporter(fmt).render(transcript)
        assert "peppered, flower-fattened sauce." in rendered, fmt
        assert "flower -fattened" not in rendered
    # Lines and cues never break between the halves, however narrow.
    narrow = SubtitleOptions(max_line_width=8, max_line_count=1)
    assert "flower-fattened" in texts(build_cues(transcript.segments, narrow))


def test_spaceless_scripts_still_break_between_words() -> None:
    words = tuple(
        Word(i * 0.3, i * 0.3 + 0.3, text, 0.9, attached=True)
        for i, text in enumerate(
            ["今日は", "天気が", "良いので", "公園へ", "散歩に", "行きました。"]
        )
    )
    cues = build_cues([Segment(0.0, 1.8, "", words)], SubtitleOptions(max_line_width=8))
    lines = [line for c in cues for line in c.lines]
    assert len(lines) > 2 and all(len(line) <= 9 for line in lines)
    assert "".join(lines) == "今日は天気が良いので公園へ散歩に行きました。"


# -- options --------------------------------------------------------------------


def test_options_defaults() -> None:
    assert SubtitleOptions(42, 2, 7.0, 1.0, 20.0, 0.08, 0.8, 0.5) == DEFAULT


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_line_width", 0),
        ("max_line_width", 4.5),
        ("max_line_width", True),
        ("max_line_count", -1),
        ("max_cue_duration", 0.0),
        ("max_cue_duration", math.inf),
        ("max_cue_duration", math.nan),
        ("min_cue_duration", -0.5),
        ("min_cue_duration", 8.0),
        ("max_cps", 0),
        ("max_cps", "fast"),
        ("min_gap", -0.04),
        ("min_gap", 7.0),
        ("pause_break", 0.0),
        ("max_lead_in", -1.0),
    ],
)
def test_options_reject_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be .*got {re.escape(repr(value))}$"):
        SubtitleOptions(**{field: value})  # type: ignore[arg-type]


def test_options_shape_the_cues_and_the_exporters() -> None:
    text = "Printing, in the only sense with which we are at present concerned, differs."
    segments = [segment(timed(text, slot=0.3))]
    narrow = SubtitleOptions(max_line_width=20, max_line_count=1, max_cue_duration=2.0)
    cues = build_cues(segments, narrow)
    assert all(len(c.lines) == 1 and len(c.lines[0]) <= 20 for c in cues)
    assert all(c.end - c.start <= 2.0 for c in cues)
    assert words_of(cues) == text.split()

    transcript = transcript_of(segments)
    for exporter in (SrtExporter(narrow), VttExporter(narrow)):
        rendered = exporter.render(transcript)
        lines = [line for line in rendered.splitlines() if re.search("[a-z]", line)]
        assert len(lines) == len(cues) and all(len(line) <= 20 for line in lines)
    assert SrtExporter().render(transcript) == get_exporter("srt").render(transcript)
    assert SrtExporter().options == DEFAULT


# -- the metric -----------------------------------------------------------------


def test_reading_speed_metric() -> None:
    cues = [
        Cue(0.0, 1.0, ("Ten chars.",)),  # 10 cps
        Cue(1.0, 2.0, ("Twenty characters,", "ok")),  # 21 characters (a break reads as a space)
        Cue(2.0, 2.5, ("Four",)),
    ]
    assert cue_cps(cues[1]) == 21.0
    assert reading_speed(cues) == ReadingSpeed(cues=3, limit=20.0, within=2 / 3, fastest=21.0)
    assert reading_speed(cues, limit=25.0).within == 1.0
    assert reading_speed([]) == ReadingSpeed(cues=0, limit=20.0, within=1.0, fastest=0.0)


def test_no_words_no_cues(tmp_path: Path) -> None:
    assert build_cues([]) == []
    assert build_cues([Segment(0.0, 1.0, "   ")]) == []


def _srt_cues(text: str) -> list[tuple[float, float, list[str]]]:
    cues = []
    for block in text.strip().split("\n\n"):
        _, timing, *lines = block.split("\n")
        start, end = (
            sum(
                float(part) * scale
                for part, scale in zip(t.replace(",", ".").split(":"), (3600, 60, 1), strict=True)
            )
            for t in timing.split(" --> ")
        )
        cues.append((start, end, lines))
    return cues


def test_subtitle_layout_flags_shape_transcribe_and_export(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trax.cli import cli

    db = f"sqlite:///{tmp_path / 't.db'}"
    flags = ["--max-line-width", "20", "--max-line-count", "1", "--max-cue-duration", "2.5"]
    out = tmp_path / "out"
    done = CliRunner().invoke(
        cli, ["--db", db, "transcribe", str(JFK), "-f", "srt", "-o", str(out), *flags]
    )
    assert done.exit_code == 0, done.output
    cues = _srt_cues((out / "jfk.srt").read_text())
    assert len(cues) >= 6
    assert all(len(lines) == 1 and len(lines[0]) <= 20 for _, _, lines in cues)
    assert all(end - start <= 2.5 + 1e-3 for start, end, _ in cues)
    # `export` takes the same flags; without them, the defaults (42 characters, 2 lines).
    wide = CliRunner().invoke(cli, ["--db", db, "export", "1", "-f", "srt"])
    assert any(len(lines) == 2 or len(lines[0]) > 20 for _, _, lines in _srt_cues(wide.stdout))
    narrow = CliRunner().invoke(
        cli, ["--db", db, "export", "1", "-f", "srt", "--max-line-width", "12"]
    )
    assert all(len(line) <= 12 for _, _, lines in _srt_cues(narrow.stdout) for line in lines)


def test_a_bad_subtitle_layout_is_refused_before_any_work(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trax.cli import cli

    db = tmp_path / "t.db"
    args = ["--db", f"sqlite:///{db}", "transcribe", str(JFK), "-o", str(tmp_path / "o")]
    refused = CliRunner().invoke(cli, [*args, "--max-cue-duration", "0"])
    assert refused.exit_code == 2
    assert (
        "max_cue_duration must be" in refused.output
        and len(refused.output.strip().splitlines()) == 1
    )
    assert not db.exists() and not (tmp_path / "o").exists()
