"""Exactly once under concurrency: processes racing for the same jobs, files and schema.

Every test here runs real processes against real databases (a fresh SQLite
file, or a fresh PostgreSQL database) and counts what was stored.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import empty_tables, throwaway_postgres
from tests.mediafiles import AUDIO, JFK
from tests.test_jobs import TRAX, counts, long_recording, trax, wait_for
from tests.test_queue import jobs_of, start_worker
from trax.core import TranscriptionSettings
from trax.jobs import SqlJobStore
from trax.jobs.store import ClaimLost
from trax.store import Database, SqlTranscriptStore

pytestmark = [pytest.mark.reliability]


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database nobody has created the schema in yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with throwaway_postgres("trax_fresh") as url:
        yield url


CLAIMER = """
import sys, time
from trax.jobs import SqlJobStore
from trax.store import Database

jobs = SqlJobStore(Database(sys.argv[1]))
sys.stdin.readline()  # start together
while (job := jobs.claim()) is not None:
    print(job.id, flush=True)
    time.sleep(0.002)  # as a worker would, so both processes keep claiming side by side
"""


def test_two_processes_claiming_at_once_never_take_the_same_job(fresh_url: str) -> None:
    database = Database(fresh_url)
    jobs = SqlJobStore(database)
    batch, added = jobs.create_batch(
        "race", {}, [], "", False, [(f"/{n}.wav", str(n)) for n in range(400)]
    )
    assert added == 400
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, fresh_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(1.5)  # both imported and waiting
    for claimer in claimers:
        assert claimer.stdin is not None
        claimer.stdin.write("go\n")
        claimer.stdin.flush()
    claimed = [claimer.communicate(timeout=120)[0].split() for claimer in claimers]
    assert all(c.returncode == 0 for c in claimers)
    assert min(len(c) for c in claimed) > 50, "both processes claimed side by side"
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 400
    assert {j.attempts for j in jobs.jobs(batch.id)} == {1}
    database.dispose()


def test_simultaneous_starts_share_one_batch_and_store_each_content_once(
    fresh_url: str, tmp_path: Path
) -> None:
    """Two `trax transcribe DIR` at once on a fresh database: the schema is made once,
    one batch is shared, and three copies of one recording are transcribed once."""
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(3):
        shutil.copy(JFK, folder / f"copy{n}.flac")
    shutil.copy(AUDIO / "LDC93S1.wav", folder / "other.wav")
    env = os.environ | {"TRAX_DATABASE_URL": fresh_url}
    command = [str(TRAX), "transcribe", str(folder), "-o", str(tmp_path / "out"), "-f", "txt"]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()
        assert b"Traceback" not in err
    stored = counts(fresh_url)
    assert stored == {"media_files": 2, "transcripts": 2, "jobs": 4}
    assert {j.status for j in jobs_of(fresh_url)} == {"done"}
    assert {j.attempts for j in jobs_of(fresh_url)} == {1}
    copies = [(tmp_path / "out" / f"copy{n}.txt").read_text() for n in range(3)]
    assert len(set(copies)) == 1 and "ask not" in copies[0]


def test_a_claim_that_lost_its_job_changes_nothing(database: Database, tmp_path: Path) -> None:
    """The fence: once a job went to another worker, the first one's heartbeat says
    so, its save is rolled back and its outcome is ignored."""
    from trax.service import TranscriptionService

    jobs = SqlJobStore(database)
    batch, _ = jobs.create_batch("fence", {}, ["txt"], str(tmp_path), False, [(str(JFK), "j")])
    stale = jobs.claim(batch.id)
    assert stale is not None
    # Its worker looks dead (no heartbeat since): the job goes back and to another claim.
    assert jobs.recover(batch.id, stale_after=timedelta(0)) == 1
    current = jobs.claim(batch.id)
    assert current is not None and current.attempts == stale.attempts + 1

    assert jobs.heartbeat(stale.id, 1.0, 11.0, attempt=stale.attempts) == "lost"
    assert jobs.heartbeat(current.id, 1.0, 11.0, attempt=current.attempts) == "go"
    service = TranscriptionService.open(database)
    with pytest.raises(ClaimLost):
        service.transcribe(JFK, TranscriptionSettings(), checks=[jobs.fence(stale)])
    assert SqlTranscriptStore(database).summaries() == []  # rolled back: nothing stored
    assert not jobs.finish(stale.id, 1, False, [], 11.0, attempt=stale.attempts)
    assert not jobs.fail(stale.id, "late", attempt=stale.attempts)
    assert not jobs.release(stale.id, attempt=stale.attempts)
    job = jobs.get(current.id)
    assert job is not None and (job.status, job.attempts, job.error) == ("running", 2, None)

    transcript, reused = service.transcribe(
        JFK, TranscriptionSettings(), checks=[jobs.fence(current)]
    )
    assert not reused
    job = jobs.get(current.id)
    assert job is not None and job.transcript_id == transcript.id  # recorded in the save


@pytest.mark.slow
def test_a_paused_worker_does_not_store_a_job_another_worker_took(
    postgres_url: str, tmp_path: Path
) -> None:
    """kill -STOP a worker mid-job until its job is given to another, then -CONT it."""
    database = Database(postgres_url)
    empty_tables(database)
    database.dispose()
    env = os.environ | {"TRAX_DATABASE_URL": postgres_url}
    long_recording(tmp_path / "long.wav", 300.0)  # long enough to be caught mid-job
    enqueued = trax(
        "transcribe", str(tmp_path / "long.wav"), "--queue", "-o", str(tmp_path / "out"), env=env
    )
    assert enqueued.returncode == 0, enqueued.stderr
    first = start_worker(env, tmp_path / "w1.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(
            lambda: any(j.status == "running" and j.position_s > 0 for j in jobs_of(postgres_url)),
            timeout=120,
        )
        first.send_signal(signal.SIGSTOP)
        second = start_worker(env, tmp_path / "w2.log")
        wait_for(lambda: any(j.attempts == 2 for j in jobs_of(postgres_url)), timeout=60)
        time.sleep(2.0)
        first.send_signal(signal.SIGCONT)
        wait_for(lambda: {j.status for j in jobs_of(postgres_url)} == {"done"}, timeout=240)
        time.sleep(2.0)  # the paused worker has had time to try to save
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGCONT)
                worker.send_signal(signal.SIGINT)
                worker.wait(timeout=60)
    [job] = jobs_of(postgres_url)
    assert job.attempts == 2 and job.worker is not None and str(first.pid) not in job.worker
    assert counts(postgres_url)["transcripts"] == 1
    log = (tmp_path / "w1.log").read_text()
    assert "given to another worker" in log, log[-2000:]


def test_a_failed_export_keeps_the_transcript_and_a_retry_only_exports(
    tmp_path: Path,
) -> None:
    env = os.environ | {"TRAX_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    (tmp_path / "in" / "talks").mkdir(parents=True)
    shutil.copy(JFK, tmp_path / "in" / "talks" / "jfk.flac")
    out = tmp_path / "out"
    out.mkdir()
    # The output folder passes the check made before any work; the folder the
    # export mirrors inside it is a regular file, so the export fails after
    # the transcript was stored.
    blocker = out / "talks"
    blocker.write_text("a file where the export's folder should be")
    first = trax("transcribe", str(tmp_path / "in"), "-o", str(out), "-f", "txt,srt", env=env)
    assert first.returncode != 0
    assert "stored as #1, export failed: " in first.stdout + first.stderr
    assert str(blocker) in first.stdout + first.stderr
    assert counts(env["TRAX_DATABASE_URL"]) == {"media_files": 1, "transcripts": 1, "jobs": 1}

    blocker.unlink()
    [job] = jobs_of(env["TRAX_DATABASE_URL"])
    retried = trax("jobs", "retry", str(job.batch_id), env=env)  # runs them, too
    assert retried.returncode == 0, retried.stderr
    assert counts(env["TRAX_DATABASE_URL"])["transcripts"] == 1  # no second version
    assert sorted(p.name for p in blocker.iterdir()) == ["jfk.srt", "jfk.txt"]
    [job] = jobs_of(env["TRAX_DATABASE_URL"])
    assert (job.status, job.transcript_id, job.attempts) == ("done", 1, 2)


def test_a_batch_name_of_any_length(db_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from trax.cli import cli

    name = "a-very-long-batch-name-" * 12
    result = CliRunner().invoke(
        cli,
        ["--db", db_url, "transcribe", str(JFK), "--batch", name, "-f", "none", "-q"],
    )
    assert result.exit_code == 0, result.output
    database = Database(db_url)
    assert SqlJobStore(database).get_batch(name) is not None
    database.dispose()


def test_a_content_lease_has_one_holder_until_given_back_or_run_out(database: Database) -> None:
    from sqlalchemy import update

    from trax.store.leases import LeaseLost, SqlLeases
    from trax.store.models import LeaseRow

    leases = SqlLeases(database)
    first = leases.acquire("content")
    assert first is not None
    assert leases.acquire("content") is None  # held, alive, not run out
    assert leases.acquire("other content") is not None
    first.close()
    second = leases.acquire("content")
    assert second is not None  # given back: the next one gets it at once

    # The holder is paused past its lease: another process takes over, and the
    # paused one's save (its check in the save's transaction) fails.
    with database.transaction() as session:
        session.execute(
            update(LeaseRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    third = leases.acquire("content")
    assert third is not None
    with pytest.raises(LeaseLost), database.transaction() as session:
        second.check(session)
    with database.transaction() as session:
        third.check(session)  # the new holder's is fine
    second.close()  # giving back a lost lease leaves the new holder's alone
    assert leases.acquire("content") is None
    third.close()


def test_a_lease_held_by_a_dead_process_on_this_host_is_taken_over_at_once(
    database: Database,
) -> None:
    from sqlalchemy import update

    from trax.store.leases import SqlLeases
    from trax.store.models import LeaseRow

    leases = SqlLeases(database)
    held = leases.acquire("content")
    assert held is not None
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = held.holder.split(":")[0]
    with database.transaction() as session:
        session.execute(update(LeaseRow).values(holder=f"{host}:{dead.stdout.strip()}:x"))
    assert leases.acquire("content") is not None


@pytest.mark.slow
def test_a_database_that_fills_up_during_a_batch_stops_it_in_one_line(tmp_path: Path) -> None:
    """The first write of the batch, a claim in the prefetch thread, finds the disk full."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs util-linux unshare to mount a small tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    db = f"sqlite:///{small / 'trax.db'}"
    # A private 1 MiB filesystem: the schema is made, then a filler takes every
    # byte left before the batch runs.
    script = (
        f'mount -t tmpfs -o size=1m tmpfs "{small}" && "$0" --db {db} db upgrade >/dev/null'
        f' && {{ cat /dev/zero > "{small}/filler" 2>/dev/null; exec "$0" "$@"; }}'
    )
    done = subprocess.run(
        [
            unshare,
            "--mount",
            "--map-root-user",
            "sh",
            "-c",
            script,
            str(TRAX),
            "--db",
            db,
            "transcribe",
            str(JFK),
            str(AUDIO / "LDC93S1.wav"),
            "-f",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "mount" in done.stderr or "unshare" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode != 0
    # One line. SQLite says "database or disk is full", or "disk I/O error" when
    # the full disk is met growing its shared-memory index first.
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot ") and str(small / "trax.db") in line
    assert "database or disk is full" in line or line.endswith("disk I/O error")
