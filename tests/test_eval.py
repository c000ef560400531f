"""`trax eval`: WER against references and DER against RTTM, with clear input errors."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.mediafiles import AUDIO, JFK
from trax.cli import cli
from trax.eval import EvalError
from trax.eval.asr import match_audio, read_references, score_file
from trax.eval.diarization import evaluate_diarization, read_rttm, read_uem

DIARIZATION = Path(__file__).parent / "data" / "diarization"


@pytest.fixture
def asr_dir(tmp_path: Path) -> Path:
    """The test clips with their human references, laid out as a user would."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for path in [JFK, *AUDIO.glob("*.flac"), *AUDIO.glob("*.wav")]:
        shutil.copy(path, folder / path.name)
    shutil.copy(AUDIO / "references.tsv", folder / "references.tsv")
    return folder


def test_wer_against_references_with_raw_faster_whisper_baseline(asr_dir: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "asr",
            str(asr_dir),
            "--refs",
            str(asr_dir / "references.tsv"),
            "--baseline",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["normaliser"] == "Whisper's English text normaliser"
    trax, raw = report["systems"]
    assert trax["system"] == "trax v1 (tiny.en, beam 5)"
    assert raw["system"] == "faster-whisper (tiny.en, beam 5)"
    for system in (trax, raw):
        assert [f["name"] for f in system["files"]] == [
            "1089-134686-0000",
            "LDC93S1",
            "LJ001-0001",
            "jfk",
        ]
        assert system["reference_words"] == 88
        assert system["wer"] < 0.12
    jfk = trax["files"][3]
    # Normalised both sides: case and punctuation are not errors.
    assert jfk["wer"] == 0 and jfk["reference"] == jfk["hypothesis"]
    assert jfk["reference"].startswith("and so my fellow americans ask not")


def test_wer_table_for_people(asr_dir: Path) -> None:
    runner = CliRunner()
    args = ["eval", "asr", str(asr_dir), "--refs", str(asr_dir / "references.tsv"), "--baseline"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0
    header, *rows = first.stdout.splitlines()[:5]
    # Column headers in full, each over its numbers.
    assert re.split(r"\s{2,}", header) == [
        "FILE",
        "trax v1 (tiny.en, beam 5)",
        "faster-whisper (tiny.en, beam 5)",
    ]
    assert rows[0].startswith("1089-134686-0000  ") and len(rows[0]) == len(header)
    assert rows[3].split() == ["jfk", "0.0%", "0.0%"]
    assert "trax v1 (tiny.en, beam 5): WER " in first.stdout
    assert "normalised with Whisper's English text normaliser" in first.stderr


def test_eval_uses_a_throwaway_store_and_scores_the_clips_present(
    asr_dir: Path, tmp_path: Path
) -> None:
    library = tmp_path / "library.db"
    assert CliRunner().invoke(cli, ["--db", f"sqlite:///{library}", "db", "upgrade"]).exit_code == 0
    before = library.read_bytes()
    clips = tmp_path / "only-jfk"
    clips.mkdir()
    shutil.copy(asr_dir / "jfk.flac", clips / "jfk.flac")
    refs = str(asr_dir / "references.tsv")
    for db in (["--db", f"sqlite:///{library}"], []):
        result = CliRunner().invoke(cli, [*db, "eval", "asr", str(clips), "--refs", refs, "--json"])
        assert result.exit_code == 0, result.output
        assert result.stderr == (
            f"warning: 3 reference(s) name clips not in {clips}, scored without them: "
            "1089-134686-0000, LDC93S1, LJ001-0001\n"
        )
        (system,) = json.loads(result.stdout)["systems"]
        assert [f["name"] for f in system["files"]] == ["jfk"] and system["wer"] == 0
    assert library.read_bytes() == before  # the user's library: not a byte written
    assert not Path(os.environ["TRAX_DATA_DIR"]).exists()  # nor a default one made


def test_score_file_counts() -> None:
    score = score_file("x", "the cat sat on the mat", "the bat sat on mat")
    assert (score.substitutions, score.deletions, score.insertions) == (1, 1, 0)
    assert score.wer == pytest.approx(2 / 6)
    extra = score_file("x", "sat on the mat", "sat on the mat today")
    assert (extra.insertions, extra.wer) == (1, 0.25)
    empty = score_file("y", "", "uh hello")
    assert (empty.insertions, empty.reference_words, empty.wer) == (2, 0, 1.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("jfk and so my fellow americans\n", "references.tsv:1: expected '<file stem><TAB>"),
        ("jfk\tone\n\njfk\ttwo\n", "references.tsv:3: 'jfk' appears twice"),
        ("# only a comment\n", "holds no references"),
        ("jfk\t   \n", "references.tsv:1: expected"),
    ],
)
def test_malformed_references(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "references.tsv"
    path.write_text(content)
    with pytest.raises(EvalError, match=message):
        read_references(path)


def test_reference_audio_present_is_matched(asr_dir: Path, tmp_path: Path) -> None:
    refs = read_references(asr_dir / "references.tsv") | {"missing-clip": "hello"}
    clips, missing = match_audio(asr_dir, refs)
    assert [stem for stem, _ in clips] == ["1089-134686-0000", "LDC93S1", "LJ001-0001", "jfk"]
    assert missing == ["missing-clip"]
    with pytest.raises(EvalError, match=r"none of the 2 reference\(s\) names a clip in"):
        match_audio(asr_dir, {"ghost": "boo", "phantom": "hoo"})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvalError, match="no media files in"):
        match_audio(empty, refs)
    with pytest.raises(EvalError, match="reference file not found"):
        read_references(tmp_path / "nope.tsv")


def test_eval_asr_errors_are_one_line(asr_dir: Path, tmp_path: Path) -> None:
    (asr_dir / "references.tsv").write_text("ghost\tboo\n")
    result = CliRunner().invoke(
        cli, ["eval", "asr", str(asr_dir), "--refs", str(asr_dir / "references.tsv")]
    )
    assert result.exit_code == 2
    assert result.stderr == f"error: none of the 1 reference(s) names a clip in {asr_dir}\n"


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def rttm(uri: str, turns: list[tuple[float, float, str]]) -> list[str]:
    return [f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> {who} <NA> <NA>" for s, e, who in turns]


def test_der_components(tmp_path: Path) -> None:
    shutil.copy(DIARIZATION / "sample.wav", tmp_path / "talk.wav")
    ref = read_rttm(write(tmp_path / "ref.rttm", rttm("talk", [(0, 10, "A"), (10, 20, "B")])))

    def score(turns: list[tuple[float, float, str]], collar: float = 0.0) -> tuple[float, ...]:
        hyp = read_rttm(write(tmp_path / "hyp.rttm", rttm("talk", turns)))
        f = evaluate_diarization(tmp_path, ref, hyp, collar=collar).files[0]
        return (round(f.der, 4), f.missed_s, f.false_alarm_s, f.confusion_s)

    assert score([(0, 10, "x"), (10, 20, "y")]) == (0.0, 0.0, 0.0, 0.0)  # labels are free
    assert score([(0, 20, "x")]) == (0.5, 0.0, 0.0, 10.0)  # one speaker for two
    assert score([(0, 10, "x")]) == (0.5, 10.0, 0.0, 0.0)  # second half missed
    assert score([(0, 10, "x"), (10, 25, "y")]) == (0.25, 0.0, 5.0, 0.0)  # speech that isn't
    assert score([(0, 10.2, "x"), (10.2, 20, "y")])[0] == 0.01  # late turn change
    assert score([(0, 10.2, "x"), (10.2, 20, "y")], collar=0.5)[0] == 0.0  # inside the collar


def test_uem_limits_scoring_and_absent_files_count_as_missed(tmp_path: Path) -> None:
    shutil.copy(DIARIZATION / "sample.wav", tmp_path / "talk.wav")
    ref = read_rttm(write(tmp_path / "ref.rttm", rttm("talk", [(0, 10, "A"), (10, 20, "B")])))
    hyp = read_rttm(write(tmp_path / "hyp.rttm", rttm("talk", [(0, 20, "x")])))
    uem = read_uem(write(tmp_path / "ref.uem", ["talk NA 0.000 10.000"]))
    assert evaluate_diarization(tmp_path, ref, hyp, uem).files[0].der == 0.0
    other = read_rttm(write(tmp_path / "other.rttm", rttm("elsewhere", [(0, 5, "x")])))
    report = evaluate_diarization(tmp_path, ref, other)
    assert report.overall.der == 1.0 and report.overall.missed_s == 20.0


def test_eval_diarization_cli_on_the_real_sample(tmp_path: Path) -> None:
    ref = DIARIZATION / "sample.rttm"
    args = ["eval", "diarization", str(DIARIZATION), "--rttm", str(ref)]
    runner = CliRunner()
    perfect = runner.invoke(cli, [*args, "--hyp", str(ref), "--json"])
    assert perfect.exit_code == 0, perfect.output
    report = json.loads(perfect.stdout)
    assert report["overall"]["der"] == 0.0 and report["overall"]["total_s"] > 20
    # Everyone as one speaker: the second voice becomes confusion, DER > 0.
    lines = ref.read_text().splitlines()
    merged = write(
        tmp_path / "one.rttm", [" ".join([*ln.split()[:7], "X", "<NA>", "<NA>"]) for ln in lines]
    )
    table = runner.invoke(cli, [*args, "--hyp", str(merged), "--collar", "0.5"])
    assert table.exit_code == 0
    overall = table.stdout.splitlines()[-1].split()
    assert overall[0] == "overall" and float(overall[1].rstrip("%")) > 10
    assert "collar 0.5 s (±0.25 s around reference boundaries), overlap scored" in table.stderr


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["SPEAKER talk 1 zero 1.0 <NA> <NA> A <NA> <NA>"], "onset and duration must be numbers"),
        (["LEXEME talk 1 0 1 <NA> <NA> A <NA> <NA>"], "not an RTTM SPEAKER line"),
        (["SPEAKER talk 1 -1 1 <NA> <NA> A <NA> <NA>"], "negative onset or duration"),
    ],
)
def test_malformed_rttm(tmp_path: Path, lines: list[str], message: str) -> None:
    bad = write(tmp_path / "bad.rttm", lines)
    result = CliRunner().invoke(
        cli, ["eval", "diarization", str(DIARIZATION), "--rttm", str(bad), "--hyp", str(bad)]
    )
    assert result.exit_code == 2
    assert result.stderr == f"error: {bad}:1: {message}\n"


def test_eval_diarization_needs_a_hypothesis_until_v4() -> None:
    result = CliRunner().invoke(
        cli, ["eval", "diarization", str(DIARIZATION), "--rttm", str(DIARIZATION / "sample.rttm")]
    )
    assert result.exit_code == 2 and "arrives with pipeline v4" in result.stderr
