"""Workers on many machines: procrastinate on the real PostgreSQL, real worker processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import empty_tables
from tests.mediafiles import AUDIO, JFK
from tests.test_jobs import TRAX, counts, long_recording, wait_for
from trax.cli import cli
from trax.jobs import Job, SqlJobStore
from trax.store import Database


def pg_environment(postgres_url: str) -> dict[str, str]:
    """The environment for ``trax`` processes on the session's PostgreSQL, tables emptied."""
    database = Database(postgres_url)
    empty_tables(database)
    database.dispose()
    return os.environ | {"TRAX_DATABASE_URL": postgres_url}


@pytest.fixture
def pg_env(postgres_url: str) -> Iterator[dict[str, str]]:
    yield pg_environment(postgres_url)


def jobs_of(url: str) -> list[Job]:
    database = Database(url)
    try:
        return SqlJobStore(database).jobs()
    finally:
        database.dispose()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(TRAX),
            "worker",
            "--stalled-after",
            "3",
            "--heartbeat",
            "0.5",
            "--recovery-every",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def test_queue_needs_postgresql(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--db", f"sqlite:///{tmp_path / 'q.db'}", "transcribe", str(JFK), "--queue"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: the distributed queue needs PostgreSQL: set TRAX_DATABASE_URL=postgresql://…\n"
    )


def test_two_workers_share_a_batch_and_survive_one_being_killed(
    pg_env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "shared media"
    folder.mkdir()
    long_recording(folder / "00 long.wav", 400.0)
    for clip in (JFK, AUDIO / "LDC93S1.wav", AUDIO / "LJ001-0001.wav", AUDIO / "hotwords.mp3"):
        shutil.copy(clip, folder / clip.name)
    enqueued = subprocess.run(
        [str(TRAX), "transcribe", str(folder), "--queue", "-o", str(tmp_path / "out"), "--json"],
        env=pg_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert enqueued.returncode == 0, enqueued.stderr
    batch = json.loads(enqueued.stdout)
    assert batch["enqueued"] == 5
    url = pg_env["TRAX_DATABASE_URL"]
    assert {j.status for j in jobs_of(url)} == {"queued"}  # enqueueing transcribes nothing

    first = start_worker(pg_env, tmp_path / "w1.log")
    try:

        def long_job_running() -> bool:
            return any(
                j.path.endswith("00 long.wav") and j.status == "running" and j.position_s > 0
                for j in jobs_of(url)
            )

        wait_for(long_job_running, timeout=120)
        time.sleep(1.0)  # let it get into recognition
        second = start_worker(pg_env, tmp_path / "w2.log")
        try:
            first.send_signal(signal.SIGKILL)  # mid-job: no goodbye, no cleanup
            first.wait()
            wait_for(lambda: {j.status for j in jobs_of(url)} == {"done"}, timeout=240)
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    finished = {Path(j.path).name: j for j in jobs_of(url)}
    long_job = finished["00 long.wav"]
    assert long_job.attempts == 2
    assert long_job.worker is not None and str(first.pid) not in long_job.worker
    assert counts(url)["transcripts"] == 5  # nothing stored twice
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{Path(n).stem}.{ext}" for n in finished for ext in ("srt", "txt")
    )
    shown = CliRunner().invoke(cli, ["--db", url, "jobs", "show", batch["batch"]])
    assert shown.stdout.count(" done ") == 5


def test_cancelled_queued_jobs_never_run(pg_env: dict[str, str], tmp_path: Path) -> None:
    url = pg_env["TRAX_DATABASE_URL"]
    runner = CliRunner()
    enqueued = runner.invoke(
        cli, ["--db", url, "transcribe", str(JFK), "--queue", "--json", "--batch", "later"]
    )
    assert enqueued.exit_code == 0, enqueued.output
    cancelled = runner.invoke(cli, ["--db", url, "jobs", "cancel", "later"])
    assert "1 cancelled" in cancelled.stderr
    worker = start_worker(pg_env, tmp_path / "w.log")
    try:
        time.sleep(4)  # time enough to pick it up, were it still queued
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=60)
    assert [j.status for j in jobs_of(url)] == ["cancelled"]
    assert counts(url)["transcripts"] == 0


def test_queue_refusal_leaves_no_batch_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    CliRunner().invoke(cli, ["--db", url, "transcribe", str(JFK), "--queue"])
    listed = CliRunner().invoke(cli, ["--db", url, "jobs", "list", "--json"])
    assert json.loads(listed.stdout) == []
