"""Batches that survive crashes: real processes, killed for real, resumed for real."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from tests.mediafiles import AUDIO, JFK, write_media
from trax.asr import FasterWhisperTranscriber
from trax.core import SAMPLE_RATE, TranscriptionSettings
from trax.jobs import SqlJobStore
from trax.jobs.runner import LocalRunner
from trax.media import PyAVDecoder
from trax.payload import SCHEMA_VERSION
from trax.pipeline import collect_inputs
from trax.service import TranscriptionService
from trax.store import Database, SqlTranscriptStore

TRAX = Path(sys.executable).with_name("trax")
CLIPS = [JFK, AUDIO / "LDC93S1.wav", AUDIO / "LJ001-0001.wav"]


def trax(
    *args: str, env: dict[str, str], timeout: float = 300, check: bool = False
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(TRAX), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def counts(url: str) -> dict[str, int]:
    database = Database(url)
    with database.engine.connect() as conn:
        out = {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("media_files", "transcripts", "jobs")
        }
    database.dispose()
    return out


def statuses(url: str) -> dict[str, str]:
    database = Database(url)
    jobs = SqlJobStore(database)
    out: dict[str, str] = {Path(j.path).name: j.status for j in jobs.jobs()}
    database.dispose()
    return out


def assert_exports_complete(out: Path, stems: list[str]) -> None:
    names = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("json", "txt"))
    for path in out.rglob("*.json"):
        assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION  # whole


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {"TRAX_DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}"}


@pytest.fixture
def three_clips(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for clip in CLIPS:
        shutil.copy(clip, folder / clip.name)
    return folder


# ---------------------------------------------------------------- the runner in-process


def test_runner_records_every_outcome(
    database: Database,
    transcriber: FasterWhisperTranscriber,
    bad_inputs: dict[str, Path],
    tmp_path: Path,
) -> None:
    store, jobs = SqlTranscriptStore(database), SqlJobStore(database)
    service = TranscriptionService(store, transcriber=transcriber)
    inputs, _ = collect_inputs([JFK, *bad_inputs.values(), tmp_path / "gone.wav"], tmp_path / "o")
    batch, added = jobs.create_batch(
        "b",
        TranscriptionSettings().to_dict(),
        ["txt"],
        str(tmp_path / "o"),
        False,
        [(str(i.path), str(i.export_base)) for i in inputs],
    )
    assert added == 7
    import threading

    ended: list[tuple[str, str]] = []
    assert LocalRunner(jobs, service, threading.Event()).run(
        batch, on_end=lambda job, outcome: ended.append((Path(job.path).name, outcome))
    )
    assert dict(ended) == {
        "jfk.flac": "done",
        "empty.wav": "failed",
        "notes.mp3": "failed",
        "truncated.mp3": "failed",
        "silent-film.mp4": "failed",
        "blip.wav": "failed",
        "gone.wav": "failed",
    }
    by_name = {Path(j.path).name: j for j in jobs.jobs(batch.id)}
    assert by_name["gone.wav"].error == "file not found"
    assert by_name["jfk.flac"].transcript_id is not None
    assert by_name["jfk.flac"].exports == [str(tmp_path / "o" / "jfk.txt")]
    assert jobs.counts(batch.id) == {
        "queued": 0,
        "running": 0,
        "done": 1,
        "failed": 6,
        "cancelled": 0,
    }
    # The same files again extend nothing; a new file joins the batch.
    _, again = jobs.create_batch("b", {}, [], "", False, [(str(JFK), "x"), ("/new.wav", "y")])
    assert again == 1
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM transcripts")).scalar_one() == 1


def test_claim_is_exclusive_and_orders_by_priority(database: Database) -> None:
    jobs = SqlJobStore(database)
    batch, _ = jobs.create_batch("p", {}, [], "", False, [("/a.wav", "a"), ("/b.wav", "b")])
    urgent, _ = jobs.create_batch("u", {}, [], "", False, [("/c.wav", "c")], priority=5)
    first = jobs.claim()
    assert first is not None and first.path == "/c.wav" and first.attempts == 1
    assert jobs.claim(job_id=first.id) is None  # already running: nobody else gets it
    second = jobs.claim(batch.id)
    assert second is not None and second.path == "/a.wav"
    assert jobs.heartbeat(second.id, 3.0, 10.0, attempt=1) == "go"
    jobs.request_cancel([second.id])
    assert jobs.heartbeat(second.id, 4.0, 10.0, attempt=1) == "cancel"  # the runner sees it
    del urgent


def test_orphans_of_a_dead_process_are_requeued(database: Database) -> None:
    jobs = SqlJobStore(database)
    batch, _ = jobs.create_batch("o", {}, [], "", False, [("/a.wav", "a")])
    job = jobs.claim(batch.id)
    assert job is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    from trax.store.models import JobRow

    with database.session() as session, session.begin():
        row = session.get(JobRow, job.id)
        assert row is not None
        row.worker = f"{os.uname().nodename}:{dead.pid}"
    assert jobs.recover(batch.id) == 1
    assert jobs.counts(batch.id)["queued"] == 1
    again = jobs.claim(batch.id)
    assert again is not None and again.attempts == 2
    assert jobs.recover(batch.id) == 0  # our own process is alive


# ---------------------------------------------------------------- killed for real


@pytest.mark.parametrize(
    "point", ["decode", "asr", "store.commit", "job.before_export", "export", "job.before_done"]
)
def test_kill_at_each_stage_then_resume_gives_one_transcript_per_file(
    point: str, three_clips: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    args = ("transcribe", str(three_clips), "-o", str(out), "-f", "txt,json", "-q")
    killed = trax(*args, env=env | {"TRAX_FAILPOINT": point})
    assert killed.returncode == -signal.SIGKILL
    url = env["TRAX_DATABASE_URL"]
    assert "running" in statuses(url).values()  # as a crash leaves it
    if point in ("asr", "export", "job.before_done"):
        resumed = trax(*args, env=env)  # the same command again…
    else:
        (batch,) = json.loads(trax("jobs", "list", "--json", env=env, check=True).stdout)
        # The file being worked on, and at most one more claimed ahead by the prefetcher.
        assert (
            1 <= batch["running"] <= 2 and batch["running"] + batch["done"] + batch["queued"] == 3
        )
        resumed = trax("jobs", "resume", batch["batch"], env=env)  # …or an explicit resume
    assert resumed.returncode == 0, resumed.stderr
    assert counts(url) == {"media_files": 3, "transcripts": 3, "jobs": 3}
    assert set(statuses(url).values()) == {"done"}
    assert_exports_complete(out, [c.stem for c in CLIPS])


def test_a_batch_resumes_from_any_folder_and_shows_paths_shortened(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Started with relative paths in one folder, killed, resumed from another."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    work = home / "work"
    (work / "in").mkdir(parents=True)
    elsewhere.mkdir()
    for clip in CLIPS[:2]:
        shutil.copy(clip, work / "in" / clip.name)
    env = env | {"HOME": str(home)}

    def run(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TRAX), *args],
            capture_output=True,
            text=True,
            env=env | extra,
            cwd=cwd,
            timeout=300,
        )

    started = run(work, "transcribe", "in", "-o", "out", "-f", "txt", "-q", TRAX_FAILPOINT="asr")
    assert started.returncode == -signal.SIGKILL
    (batch,) = json.loads(run(work, "jobs", "list", "--json").stdout)
    assert batch["done"] == 0

    resumed = run(elsewhere, "jobs", "resume", batch["batch"])
    assert resumed.returncode == 0, resumed.stderr
    assert set(statuses(env["TRAX_DATABASE_URL"]).values()) == {"done"}
    assert sorted(p.name for p in (work / "out").iterdir()) == ["LDC93S1.txt", "jfk.txt"]
    assert not (elsewhere / "out").exists()

    jobs = json.loads(run(elsewhere, "jobs", "show", batch["batch"], "--json").stdout)
    assert sorted(j["path"] for j in jobs) == sorted(str(work / "in" / c.name) for c in CLIPS[:2])
    # Shown relative to the current folder under it, ~/… under home, else in full.
    for cwd, home_dir, prefix in [
        (work, home, ""),
        (elsewhere, home, "~/work/"),
        (elsewhere, elsewhere, f"{work}/"),
    ]:
        shown = run(cwd, "jobs", "show", batch["batch"], HOME=str(home_dir)).stdout
        assert f"→ {prefix}out (txt)" in shown
        assert f"  {prefix}in/jfk.flac  #" in shown


def test_forced_run_killed_after_storing_does_not_store_twice(
    three_clips: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    args = ("transcribe", str(three_clips), "-o", str(tmp_path / "o"), "-f", "txt,json", "-q")
    trax(*args, env=env, check=True)
    killed = trax(*args, "--force", env=env | {"TRAX_FAILPOINT": "job.before_done"})
    assert killed.returncode == -signal.SIGKILL
    trax(*args, "--force", env=env, check=True)
    # Each file once normally and once forced: the killed attempt's transcript was reused.
    assert counts(env["TRAX_DATABASE_URL"])["transcripts"] == 6


def test_retry_reruns_only_failures(three_clips: Path, tmp_path: Path, env: dict[str, str]) -> None:
    (three_clips / "later.wav").write_bytes(b"")
    args = ("transcribe", str(three_clips), "-o", str(tmp_path / "o"), "-f", "txt", "--json")
    first = trax(*args, env=env)
    assert first.returncode == 1
    summary = json.loads(first.stdout)
    assert (summary["done"], summary["failed"]) == (3, 1)
    shutil.copy(AUDIO / "hotwords.mp3", three_clips / "later.wav")  # the user fixes the file
    retried = trax("jobs", "retry", summary["batch"], env=env)
    assert retried.returncode == 0, retried.stderr
    assert "1 job(s) queued again" in retried.stderr
    jobs = json.loads(trax("jobs", "show", summary["batch"], "--json", env=env).stdout)
    attempts = {Path(j["path"]).name: (j["status"], j["attempts"]) for j in jobs}
    assert attempts == {
        "jfk.flac": ("done", 1),
        "LDC93S1.wav": ("done", 1),
        "LJ001-0001.wav": ("done", 1),
        "later.wav": ("done", 2),
    }
    listing = trax("jobs", "list", env=env).stdout
    assert summary["batch"] in listing


def test_rerun_after_completion_is_a_new_cheap_run(
    three_clips: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    args = ("transcribe", str(three_clips), "-o", str(tmp_path / "o"), "-f", "txt", "--json")
    first = json.loads(trax(*args, env=env, check=True).stdout)
    second = json.loads(trax(*args, env=env, check=True).stdout)
    assert second["batch"] == first["batch"] + ".2"
    assert second["cached"] == 3
    assert counts(env["TRAX_DATABASE_URL"])["transcripts"] == 3


def long_recording(path: Path, seconds: float) -> Path:
    """Real speech looped to ``seconds``: the test clips one after another."""
    pieces = [w.samples for clip in CLIPS for w in PyAVDecoder().windows(clip)]
    one = np.concatenate(pieces)
    loops = int(np.ceil(seconds * SAMPLE_RATE / len(one)))
    samples = np.tile(one, loops)[: int(seconds * SAMPLE_RATE)]
    return write_media(path, samples[None, :], rate=SAMPLE_RATE)


def wait_for(predicate: object, timeout: float = 120.0, every: float = 0.2) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def test_cancel_a_running_job_from_another_process(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    long_recording(folder / "a long talk.wav", 600.0)  # ~20 s of work: time to cancel
    shutil.copy(JFK, folder / "zz-after.flac")
    process = subprocess.Popen(
        [
            str(TRAX),
            "transcribe",
            str(folder),
            "-o",
            str(tmp_path / "o"),
            "--json",
            "--batch",
            "talks",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = env["TRAX_DATABASE_URL"]

    def running() -> bool:
        database = Database(url)
        try:
            jobs = SqlJobStore(database).jobs()
            return any(j.status == "running" and j.position_s > 0 for j in jobs)
        finally:
            database.dispose()

    wait_for(running)
    cancelled = trax("jobs", "cancel", "talks", "--job", "1", env=env, check=True)
    assert "1 running job(s) asked to stop" in cancelled.stderr
    stdout, _stderr = process.communicate(timeout=120)
    summary = json.loads(stdout)
    by_name = {Path(f["path"]).name: f["status"] for f in summary["files"]}
    assert by_name == {"a long talk.wav": "cancelled", "zz-after.flac": "done"}
    assert counts(url)["transcripts"] == 1


# ---------------------------------------------------------------- 100 files, 5 kills


def hundred_files(folder: Path) -> None:
    """95 distinct real-speech clips (slices of the test recordings) and 5 broken files."""
    folder.mkdir()
    speech = np.concatenate(
        [
            w.samples
            for clip in [*CLIPS, AUDIO / "multilingual.mp3"]
            for w in PyAVDecoder().windows(clip)
        ]
    )
    step = (len(speech) - 3 * SAMPLE_RATE) // 95
    for i in range(95):
        piece = speech[i * step : i * step + 3 * SAMPLE_RATE]
        write_media(folder / f"clip {i:02d}.wav", piece[None, :], rate=SAMPLE_RATE)
    (folder / "broken 1.wav").write_bytes(b"")
    (folder / "broken 2.mp3").write_text("not audio at all\n")
    (folder / "broken 3.flac").write_bytes(JFK.read_bytes()[:4000])
    write_media(folder / "broken 4.mp4", None, video_seconds=2.0)
    write_media(folder / "broken 5.wav", speech[None, : SAMPLE_RATE // 20], rate=SAMPLE_RATE)


@pytest.mark.slow
def test_hundred_files_five_random_kills(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "archive"
    hundred_files(folder)
    out = tmp_path / "out"
    command = [str(TRAX), "transcribe", str(folder), "-o", str(out), "-f", "txt,json", "-q"]
    rng = random.Random(2026)
    for _ in range(5):
        process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 6.0))
        process.kill()
        process.wait()
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 1  # the five broken files
    url = env["TRAX_DATABASE_URL"]
    states = statuses(url)
    assert list(states.values()).count("done") == 95
    assert sorted(n for n, s in states.items() if s == "failed") == [
        "broken 1.wav",
        "broken 2.mp3",
        "broken 3.flac",
        "broken 4.mp4",
        "broken 5.wav",
    ]
    assert counts(url) == {"media_files": 95, "transcripts": 95, "jobs": 100}
    assert_exports_complete(out, [f"clip {i:02d}" for i in range(95)])


def test_stopping_gives_back_the_job_prepared_ahead(
    database: Database, transcriber: FasterWhisperTranscriber, tmp_path: Path
) -> None:
    import threading

    store, jobs = SqlTranscriptStore(database), SqlJobStore(database)
    service = TranscriptionService(store, transcriber=transcriber)
    batch, _ = jobs.create_batch(
        "s",
        TranscriptionSettings().to_dict(),
        [],
        str(tmp_path),
        False,
        [(str(clip), str(tmp_path / clip.stem)) for clip in CLIPS],
    )
    stop = threading.Event()
    finished = LocalRunner(jobs, service, stop).run(batch, on_end=lambda job, _: stop.set())
    assert finished is False
    # One file done; the one the prefetcher had claimed is queued again, not left running.
    assert jobs.counts(batch.id) == {
        "queued": 2,
        "running": 0,
        "done": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert LocalRunner(jobs, service, threading.Event()).run(batch)
    assert jobs.counts(batch.id)["done"] == 3
