"""Exports under faults (issue 8, items 9–11): equal names, hostile names, failed writes.

Every input of a batch gets its own export path, an export never replaces
another file's, no file name can put an export outside the output folder, and
a failed export leaves nothing of itself behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.mediafiles import AUDIO
from trax.cli import cli
from trax.core import MediaInfo, Segment, Transcript, TranscriptionSettings, Word
from trax.export import ExportError, export_beside
from trax.pipeline import collect_inputs
from trax.pipeline.run import EXPORT_NAME_BYTES

pytestmark = [pytest.mark.reliability]

TRAX = Path(sys.executable).with_name("trax")
SHORT = AUDIO / "LDC93S1.wav"  # "She had your dark suit in greasy wash water all year", 3 s
OTHER = AUDIO / "1089-134686-0000.flac"  # another speaker, another sentence


def transcribe(db: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    """``trax transcribe … --json`` in this process; its result and parsed summary."""
    result = CliRunner().invoke(
        cli, ["--db", f"sqlite:///{db}", "transcribe", *args, "--json"], catch_exceptions=False
    )
    return result, json.loads(result.stdout)


def files_under(folder: Path) -> set[Path]:
    """Every file below ``folder``, but the test database's own."""
    return {p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("t.db")}


def make_transcript(words: int) -> Transcript:
    """A transcript of ``words`` words: its JSON export is far larger than its text."""
    spoken = tuple(Word(i * 0.4, i * 0.4 + 0.3, f" word{i}", 0.9) for i in range(words))
    segments = tuple(
        Segment(chunk[0].start, chunk[-1].end, "".join(w.text for w in chunk), chunk)
        for chunk in (spoken[i : i + 20] for i in range(0, words, 20))
    )
    media = MediaInfo(
        path="/in/talk.wav",
        size_bytes=1,
        sha256="ab" * 32,
        duration_s=words * 0.4,
        container="wav",
        audio_codec="pcm_s16le",
        sample_rate=16_000,
        channels=1,
    )
    return Transcript(
        media=media,
        segments=segments,
        language="en",
        language_probability=0.99,
        settings=TranscriptionSettings(),
        model_id="tiny.en",
    )


# ------------------------------------------------------------ 9: equal names


def test_every_input_gets_its_own_readable_export_base(tmp_path: Path) -> None:
    col = tmp_path / "col"
    for name in ("x/talk.wav", "y/talk.wav", "z/Talk.wav", "talk.wav", "talk.wav.mp3"):
        (col / name).parent.mkdir(parents=True, exist_ok=True)
        (col / name).write_bytes(b"x")
    out = tmp_path / "out"
    named = [col / "x/talk.wav", col / "y/talk.wav", col / "z/Talk.wav"]
    # The same file twice, and again through its folder: still one input.
    paths = [*named, col / "talk.wav", col / "talk.wav.mp3", col / "x/talk.wav", col / "x"]
    inputs, problems = collect_inputs(paths, out)
    assert problems == []
    bases = {str(i.path.relative_to(col)): i.export_base for i in inputs}
    assert bases == {
        "x/talk.wav": out / "talk.wav (x)",
        "y/talk.wav": out / "talk.wav (y)",
        "z/Talk.wav": out / "Talk.wav (z)",  # case-insensitive file systems: told apart too
        "talk.wav": out / "talk.wav (col)",
        "talk.wav.mp3": out / "talk.wav.mp3",
    }
    assert collect_inputs(paths, out)[0] == inputs  # deterministic
    # Nothing a folder can tell apart: numbered, first come first served.
    again, _ = collect_inputs([col / "x/talk.wav", col / "x/TALK.wav"], out)
    assert [i.export_base.name for i in again] == ["talk.wav", "TALK.wav (2)"]


def test_equal_names_in_one_batch_both_survive(tmp_path: Path) -> None:
    for folder, clip in (("x", SHORT), ("y", OTHER)):
        (tmp_path / folder).mkdir()
        shutil.copy(clip, tmp_path / folder / "talk.wav")
    out = tmp_path / "out"
    args = [str(tmp_path / "x/talk.wav"), str(tmp_path / "y/talk.wav"), "-o", str(out), "-f", "txt"]
    result, summary = transcribe(tmp_path / "t.db", *args)
    assert result.exit_code == 0, result.output
    files = summary["files"]
    assert len(files) == 2
    written = {Path(f["exports"][0]).name: f["text"] for f in files}
    assert set(written) == {"talk.wav (x).txt", "talk.wav (y).txt"}
    assert files_under(out) == {out / name for name in written}
    assert "greasy wash water" in (out / "talk.wav (x).txt").read_text()
    assert "greasy wash water" not in (out / "talk.wav (y).txt").read_text()


def test_an_export_never_replaces_another_files(tmp_path: Path) -> None:
    for folder, clip in (("x", SHORT), ("y", OTHER)):
        (tmp_path / folder).mkdir()
        shutil.copy(clip, tmp_path / folder / "talk.wav")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("my own notes\n")  # a file Trax never wrote
    shutil.copy(SHORT, tmp_path / "notes.wav")  # same content as x: no second transcription
    db = tmp_path / "t.db"
    x = ("-o", str(out), "-f", "txt")
    first, _ = transcribe(db, str(tmp_path / "x/talk.wav"), *x)
    assert first.exit_code == 0, first.output
    mine = (out / "talk.txt").read_text()
    second, summary = transcribe(db, str(tmp_path / "y/talk.wav"), str(tmp_path / "notes.wav"), *x)
    assert second.exit_code == 0, second.output
    exports = [f["exports"] for f in summary["files"]]
    assert exports == [[str(out / "talk (2).txt")], [str(out / "notes (2).txt")]]
    assert (out / "talk.txt").read_text() == mine
    assert (out / "notes.txt").read_text() == "my own notes\n"
    # The same files again (a rerun, a forced one): each keeps its own export path.
    for path in ("x/talk.wav", "y/talk.wav"):
        again, summary = transcribe(db, str(tmp_path / path), *x, "--force")
        assert again.exit_code == 0, again.output
        expected = "talk.txt" if path.startswith("x") else "talk (2).txt"
        assert summary["files"][0]["exports"] == [str(out / expected)]
    assert sorted(p.name for p in out.iterdir()) == [
        "notes (2).txt",
        "notes.txt",
        "talk (2).txt",
        "talk.txt",
    ]


# ------------------------------------------------------------ 10: hostile names


NASTY = ["..wav", ".wav", "...", "new\nline.wav", "tab\there.wav", "ä" * 123 + ".wav"]


@pytest.mark.parametrize("name", [*NASTY, "ä" * 200 + ".wav", "../up.wav", "a/../../b.wav"])
def test_export_bases_stay_in_the_output_folder(tmp_path: Path, name: str) -> None:
    out = tmp_path / "o" / "sub"
    inputs, _ = collect_inputs([tmp_path / "in" / name], out)
    (base,) = (i.export_base for i in inputs)
    assert base.parent == out.resolve()
    assert not base.name.startswith(".") and "\n" not in base.name
    assert 0 < len(base.name.encode()) <= EXPORT_NAME_BYTES


def _nasty_files(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = [folder / name for name in NASTY]
    for path in paths:
        shutil.copy(SHORT, path)  # one content: transcribed once, the rest are stored hits
    return paths


def test_hostile_file_names_export_inside_the_output_folder(tmp_path: Path) -> None:
    paths = _nasty_files(tmp_path / "in")
    too_long = tmp_path / "in" / ("ö" * 150 + ".wav")  # 300 bytes: no file system has it
    out = tmp_path / "out" / "sub"
    args = [*map(str, paths), str(too_long), "-o", str(out), "-f", "txt,json"]
    result, summary = transcribe(tmp_path / "t.db", *args)
    before = files_under(tmp_path / "in")
    files = {f["path"]: f for f in summary["files"]}
    assert [files[str(p)]["status"] for p in paths] == ["done"] * len(paths), result.output
    failed = files[str(too_long)]
    assert failed["status"] == "failed" and "\n" not in failed["error"]
    assert result.exit_code == 1 and "Traceback" not in result.output
    exports = [Path(e) for p in paths for e in files[str(p)]["exports"]]
    assert len(set(exports)) == 2 * len(paths)  # each file its own txt and json
    assert files_under(tmp_path) - before == set(exports)
    assert all(e.parent == out.resolve() for e in exports)
    assert all("greasy wash" in e.read_text() for e in exports)


@pytest.mark.slow
def test_dot_names_with_output_dot_stay_in_the_current_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    paths = _nasty_files(work)
    env = os.environ | {"TRAX_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}"}
    names = [p.name for p in paths]
    done = subprocess.run(
        [str(TRAX), "transcribe", *names, "-o", ".", "-f", "txt", "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    exports = {Path(e) for f in summary["files"] for e in f["exports"]}
    assert len(exports) == len(names) and all(e.parent == work.resolve() for e in exports)
    outside = {p for p in tmp_path.iterdir() if p.name != "work" and not p.name.startswith("t.db")}
    assert outside == set() and files_under(work) == set(paths) | exports


# ------------------------------------------------------------ 11: failed exports


def test_output_folder_that_cannot_be_made_fails_with_path_and_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n")
    with pytest.raises(ExportError) as raised:
        export_beside(make_transcript(40), ["txt", "json"], blocker / "out" / "talk")
    assert str(raised.value) == f"{blocker / 'out'}: not a directory"
    assert isinstance(raised.value.__cause__, OSError)
    assert files_under(tmp_path) == {blocker}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk (needs root, and mount allowed here)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_leaves_the_previous_exports_and_no_new_ones(small_disk: Path) -> None:
    transcript = make_transcript(2000)  # txt fits in 64 KiB, json does not
    base = small_disk / "talk"
    old = {base.with_suffix(".txt"): "old text\n", base.with_suffix(".json"): "{}\n"}
    for path, text in old.items():
        path.write_text(text)
    with pytest.raises(ExportError) as raised:
        export_beside(transcript, ["txt", "json"], base)
    assert str(raised.value) == f"{base}.json: no space left on device"
    assert isinstance(raised.value.__cause__, OSError)
    assert {p: p.read_text() for p in small_disk.iterdir()} == old  # no temp file either
    # Room again: everything is written, as one set.
    base.with_suffix(".json").unlink()
    written = export_beside(make_transcript(40), ["txt", "json"], base)
    assert sorted(p.name for p in small_disk.iterdir()) == ["talk.json", "talk.txt"]
    assert written == [base.with_suffix(".txt"), base.with_suffix(".json")]
    assert "word39" in base.with_suffix(".txt").read_text()


def test_read_only_folder_fails_with_path_and_reason(small_disk: Path) -> None:
    (small_disk / "talk.txt").write_text("old text\n")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        with pytest.raises(ExportError, match=r"talk\.srt: read-only file system$"):
            export_beside(make_transcript(40), ["srt", "txt"], small_disk / "talk")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert [p.name for p in small_disk.iterdir()] == ["talk.txt"]
    assert (small_disk / "talk.txt").read_text() == "old text\n"


def test_failed_rename_takes_back_what_this_export_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "talk"
    base.with_suffix(".json").write_text("{}\n")  # the previous json stays
    real_replace = os.replace
    calls: list[str] = []

    def second_fails(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(ExportError, match=r"talk\.json: input/output error$"):
        export_beside(make_transcript(40), ["txt", "json"], base)
    assert calls == [str(base.with_suffix(".txt")), str(base.with_suffix(".json"))]
    assert [p.name for p in tmp_path.iterdir()] == ["talk.json"]
    assert base.with_suffix(".json").read_text() == "{}\n"


def test_interrupted_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def interrupted_on_second(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted_on_second)
    with pytest.raises(KeyboardInterrupt):
        export_beside(make_transcript(40), ["txt", "srt", "json"], tmp_path / "talk")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_folder_stops_the_command_before_any_work(tmp_path: Path) -> None:
    """Checked up front: one line naming the folder, exit 2, nothing transcribed or stored."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n")
    out = blocker / "out"
    db = tmp_path / "t.db"
    result = CliRunner().invoke(
        cli, ["--db", f"sqlite:///{db}", "transcribe", str(SHORT), "-o", str(out), "-f", "txt"]
    )
    assert result.exit_code == 2
    assert result.output == f"error: cannot write exports to {out}: not a directory\n"
    assert not db.exists()  # no database made, let alone a transcript
    assert files_under(tmp_path) == {blocker}
    # Without exports the folder is never used, so never checked.
    unused = CliRunner().invoke(
        cli, ["--db", f"sqlite:///{db}", "transcribe", str(SHORT), "-o", str(out), "-f", "none"]
    )
    assert unused.exit_code == 0, unused.output
    # A folder that can be written is made, and the check leaves nothing in it…
    fresh = tmp_path / "new" / "out"
    made, _ = transcribe(db, str(SHORT), "-o", str(fresh), "-f", "txt")
    assert made.exit_code == 0, made.output
    assert [p.name for p in fresh.iterdir()] == ["LDC93S1.txt"]
    # …nor anywhere when the command stops later for another reason.
    unmade = tmp_path / "unmade" / "out"
    bad_model = CliRunner().invoke(
        cli, ["--db", f"sqlite:///{db}", "transcribe", str(SHORT), "-o", str(unmade), "-m", "no"]
    )
    assert bad_model.exit_code == 2 and not (tmp_path / "unmade").exists()


# ------------------------------------------------------------ exports across runs


def test_another_recordings_export_is_kept_unless_overwrite_is_asked(
    media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """video.mp4, then video.mkv into the same folder: the second is numbered and says so."""
    monkeypatch.chdir(tmp_path)  # paths in messages read relative to here
    (tmp_path / "src").mkdir()
    for ext in ("mp4", "mkv"):
        shutil.copy(media_dir / f"jfk.{ext}", tmp_path / "src" / f"video.{ext}")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("my own notes\n")  # a file Trax never wrote
    shutil.copy(SHORT, tmp_path / "src" / "notes.wav")
    db = f"sqlite:///{tmp_path / 't.db'}"

    def run(*args: str) -> Result:
        result = CliRunner().invoke(cli, ["--db", db, "transcribe", *args, "-o", "out"])
        assert result.exit_code == 0, result.output
        return result

    def made_from(name: str) -> str:
        return str(Path(json.loads((out / name).read_text())["media"]["path"]).name)

    run("src/video.mp4", "-f", "txt,json")
    second = run("src/video.mkv", "-f", "txt,json")
    assert (
        "out/video.txt is src/video.mp4's export; wrote out/video (2).txt "
        "(--overwrite to replace it)\n"
    ) in second.stderr
    assert (made_from("video.json"), made_from("video (2).json")) == ("video.mp4", "video.mkv")
    foreign = run("src/notes.wav", "-f", "txt")
    assert "out/notes.txt was not written by Trax; wrote out/notes (2).txt" in foreign.stderr
    assert (out / "notes.txt").read_text() == "my own notes\n"

    # The same media again refreshes its own exports, and says nothing.
    before = (out / "video.txt").stat().st_mtime_ns
    again = run("src/video.mp4", "-f", "txt,json", "--force")
    assert "export;" not in again.stderr and (out / "video.txt").stat().st_mtime_ns > before
    # Asked to, the mkv replaces the mp4's export, and owns it from then on.
    replaced = run("src/video.mkv", "-f", "txt,json", "--overwrite")
    assert "export;" not in replaced.stderr and made_from("video.json") == "video.mkv"
    mine = run("src/video.mkv", "-f", "txt,json", "--force")
    assert "export;" not in mine.stderr and made_from("video.json") == "video.mkv"
    run("src/notes.wav", "-f", "txt", "--overwrite")
    assert "greasy wash water" in (out / "notes.txt").read_text()
    assert sorted(p.name for p in out.iterdir()) == [
        "notes (2).txt",
        "notes.txt",
        "video (2).json",
        "video (2).txt",
        "video.json",
        "video.txt",
    ]
