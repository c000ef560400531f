"""The distributed queue under faults: killed workers, cut connections, enqueueing twice.

Real ``trax worker`` processes on the real PostgreSQL; every fault is real (a
SIGKILL, ``pg_terminate_backend``, a dropped database).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.mediafiles import AUDIO, JFK
from tests.test_jobs import TRAX, counts, long_recording, trax, wait_for
from tests.test_queue import jobs_of, pg_environment
from trax.jobs import Job
from trax.store import Database

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


@pytest.fixture
def pg_env(postgres_url: str) -> Iterator[dict[str, str]]:
    yield pg_environment(postgres_url)


def libpq(url: str) -> str:
    return url.replace("+psycopg", "")


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description is not None else []


def deliveries(url: str) -> list[tuple[int, str, int]]:
    """(delivery id, status, Trax job id) of every transcription delivery."""
    rows = sql(
        url,
        "SELECT id, status::text, (args->>'job_id')::bigint FROM procrastinate_jobs"
        " WHERE task_name = 'trax.transcribe' ORDER BY id",
    )
    return [(int(i), str(s), int(j)) for i, s, j in rows]


def registered(url: str, workers: int) -> bool:
    """True once ``workers`` workers have registered with the queue (which they create)."""
    try:
        return len(sql(url, "SELECT id FROM procrastinate_workers")) == workers
    except psycopg.Error:
        return False


def worker(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen[bytes]:
    """``trax worker`` with the given options (none: the defaults)."""
    return subprocess.Popen(
        [str(TRAX), "worker", *options], env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )


def stop(*workers: subprocess.Popen[bytes]) -> list[int | None]:
    codes: list[int | None] = []
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process in workers:
        try:
            codes.append(process.wait(timeout=60))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(None)
    return codes


def pid_of(job: Job) -> int:
    """The process a running or finished job was (last) claimed by (``host:pid``)."""
    assert job.worker is not None
    return int(job.worker.split(":")[1])


def enqueue(env: dict[str, str], *paths: Path, out: Path) -> subprocess.CompletedProcess[str]:
    done = trax("transcribe", *map(str, paths), "--queue", "-o", str(out), "--json", env=env)
    assert done.returncode == 0, done.stderr
    return done


def test_a_killed_workers_job_is_finished_by_another_within_a_minute_by_default(
    pg_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 8, item 6: no overrides — the default heartbeat, stall and recovery settings."""
    url = pg_env["TRAX_DATABASE_URL"]
    long_recording(tmp_path / "talk.wav", 240.0)  # ~7 s of work: still running when killed
    enqueue(pg_env, tmp_path / "talk.wav", out=tmp_path / "out")
    workers = [worker(pg_env, tmp_path / f"w{n}.log") for n in (1, 2)]
    try:
        wait_for(lambda: [j.status for j in jobs_of(url)] == ["running"], timeout=90)
        time.sleep(2.0)  # into recognition (the model is loaded by then)
        [job] = jobs_of(url)
        assert job.status == "running"
        [victim] = [w for w in workers if w.pid == pid_of(job)]
        [survivor] = [w for w in workers if w is not victim]
        victim.send_signal(signal.SIGKILL)  # mid-job: no goodbye, no cleanup
        killed = time.monotonic()
        victim.wait()
        wait_for(lambda: [j.status for j in jobs_of(url)] == ["done"], timeout=90, every=0.5)
        took = time.monotonic() - killed
    finally:
        stop(*workers)
    print(f"killed worker's job finished {took:.1f} s after the kill")
    assert took < 60.0
    [job] = jobs_of(url)
    assert job.attempts == 2
    assert pid_of(job) == survivor.pid
    assert counts(url)["transcripts"] == 1
    # One delivery, put back once and finished by the survivor; nothing piled up.
    assert [(status, job_id) for _, status, job_id in deliveries(url)] == [("succeeded", job.id)]
    assert (
        "its worker stopped; queued again"
        in (tmp_path / f"w{workers.index(survivor) + 1}.log").read_text()
    )


class ConnectionCutter(threading.Thread):
    """Cuts every connection to the database every ``every`` s (``pg_terminate_backend``).

    Once, after ``outage_after`` s, the server also refuses new connections for
    ``outage_s`` s — a restart, as the workers see it.
    """

    def __init__(self, url: str, every: float, outage_after: float, outage_s: float) -> None:
        super().__init__(daemon=True)
        server = make_url(url)
        self.name_ = str(server.database)
        self.admin = libpq(server.set(database="postgres").render_as_string(hide_password=False))
        self.every, self.outage_after, self.outage_s = every, outage_after, outage_s
        self.done = threading.Event()
        self.cut = 0

    def terminate(self, conn: psycopg.Connection[Any]) -> None:
        self.cut += len(
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (self.name_,),
            ).fetchall()
        )

    def run(self) -> None:
        started = time.monotonic()
        outage = True
        with psycopg.connect(self.admin, autocommit=True) as conn:
            while not self.done.wait(self.every):
                if outage and time.monotonic() - started > self.outage_after:
                    outage = False
                    conn.execute(f'ALTER DATABASE "{self.name_}" ALLOW_CONNECTIONS false')
                    try:
                        self.terminate(conn)
                        self.done.wait(self.outage_s)
                    finally:
                        conn.execute(f'ALTER DATABASE "{self.name_}" ALLOW_CONNECTIONS true')
                self.terminate(conn)


def settled(url: str, jobs: int) -> bool:
    """All jobs done, each with one delivery that succeeded — or False, also on a cut connection."""
    try:
        rows = jobs_of(url)
        live = [d for d in deliveries(url) if d[1] in ("todo", "doing")]
    except Exception:  # noqa: BLE001 - the cutter also cuts this test's connections
        return False
    return len(rows) == jobs and all(j.status == "done" for j in rows) and not live


def test_workers_ride_out_connections_cut_every_few_seconds(
    pg_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 8, item 7: a queued batch finishes while connections are cut every 2.5 s."""
    url = pg_env["TRAX_DATABASE_URL"]
    folder = tmp_path / "media"
    folder.mkdir()
    for clip in (JFK, AUDIO / "LDC93S1.wav", AUDIO / "LJ001-0001.wav", AUDIO / "hotwords.mp3"):
        shutil.copy(clip, folder / clip.name)
    long_recording(folder / "talk 1.wav", 150.0)  # jobs of several seconds: cut mid-way
    long_recording(folder / "talk 2.wav", 240.0)
    enqueue(pg_env, folder, out=tmp_path / "out")
    fast = ("--stalled-after", "6", "--heartbeat", "1", "--recovery-every", "1")
    workers = [worker(pg_env, tmp_path / f"w{n}.log", *fast) for n in (1, 2)]
    cutter = ConnectionCutter(url, every=2.5, outage_after=4.0, outage_s=4.0)
    try:
        wait_for(lambda: registered(url, 2), timeout=60)
        cutter.start()
        wait_for(lambda: settled(url, 6) or any(w.poll() is not None for w in workers), 150, 1)
        cutter.done.set()
        cutter.join()
        alive = [w.poll() is None for w in workers]
        if all(alive):  # once the cuts stop, a reconciliation pass leaves nothing half-done
            wait_for(lambda: settled(url, 6), timeout=30, every=0.5)
    finally:
        cutter.done.set()
        codes = stop(*workers)
    logs = [(tmp_path / f"w{n}.log").read_text() for n in (1, 2)]
    assert alive == [True, True], logs[0][-3000:] + logs[1][-3000:]
    assert codes == [0, 0]
    assert cutter.cut >= 10  # connections of the workers, cut again and again
    assert counts(url)["transcripts"] == 6  # nothing stored twice
    # The tables agree: each job done, pointing at a delivery of its own that succeeded;
    # no delivery left waiting or running, and nothing else piled up in the queue.
    found = {i: (status, job_id) for i, status, job_id in deliveries(url)}
    assert {j.status for j in jobs_of(url)} == {"done"}
    assert all(found[j.queue_job_id or 0] == ("succeeded", j.id) for j in jobs_of(url))
    assert not [d for d in found.values() if d[0] in ("todo", "doing")]
    assert sql(url, "SELECT DISTINCT task_name FROM procrastinate_jobs") == [("trax.transcribe",)]


def test_a_save_cut_mid_transaction_gives_the_job_back_instead_of_failing_it(
    pg_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 8, item 7: the connection of a job's save is killed while the save waits."""
    url = pg_env["TRAX_DATABASE_URL"]
    enqueue(pg_env, JFK, out=tmp_path / "out")
    fast = ("--stalled-after", "3", "--heartbeat", "1", "--recovery-every", "1")
    process = worker(pg_env, tmp_path / "w.log", *fast)
    try:
        with psycopg.connect(libpq(url)) as blocker:
            # Saves wait on this lock (reads do not): the save is in flight when cut.
            blocker.execute("LOCK TABLE transcripts IN EXCLUSIVE MODE")
            waiting = (
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%%transcripts%%'"
            )
            wait_for(lambda: bool(sql(url, waiting)), timeout=60)
            [(pid,)] = sql(url, waiting)
            assert sql(url, "SELECT pg_terminate_backend(%s)", pid) == [(True,)]
            blocker.rollback()
        wait_for(lambda: [j.status for j in jobs_of(url)] == ["done"], timeout=60)
    finally:
        stop(process)
    [job] = jobs_of(url)
    assert job.attempts == 2 and job.error is None  # given back, then done; never "failed"
    assert counts(url)["transcripts"] == 1
    assert [status for _, status, _ in deliveries(url)] == ["succeeded"]  # the same delivery
    assert process.returncode == 0


def test_a_worker_reconciles_the_queue_with_the_jobs_table(
    pg_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 8, item 7: each disagreement crashes and cuts leave between the tables is repaired."""
    url = pg_env["TRAX_DATABASE_URL"]
    folder = tmp_path / "media"
    folder.mkdir()
    clips = [JFK, *(AUDIO / n for n in ("LDC93S1.wav", "LJ001-0001.wav", "hotwords.mp3"))]
    for clip in [*clips, AUDIO / "1089-134686-0000.flac"]:
        shutil.copy(clip, folder / clip.name)
    enqueue(pg_env, folder, out=tmp_path / "out")
    ended, lost, orphan, cancelled, twice = (j.id for j in jobs_of(url))
    by_job = "(args->>'job_id')::bigint = %s"
    # Done, while its delivery stayed 'doing' (the worker's last write was cut).
    sql(url, "UPDATE jobs SET status = 'done', finished_at = now() - interval '1 hour'"
        " WHERE id = %s", ended)  # fmt: skip
    sql(url, f"UPDATE procrastinate_jobs SET status = 'doing' WHERE {by_job}", ended)
    # Queued, while its delivery had ended.
    sql(url, f"UPDATE procrastinate_jobs SET status = 'succeeded' WHERE {by_job}", lost)
    # Running on a worker that is gone, with no delivery running it.
    sql(url, "UPDATE jobs SET status = 'running', attempts = 1, worker = 'elsewhere:1',"
        " heartbeat_at = now() - interval '1 hour' WHERE id = %s", orphan)  # fmt: skip
    sql(url, f"UPDATE procrastinate_jobs SET status = 'failed' WHERE {by_job}", orphan)
    # Cancelled, while its delivery still waits; and a second delivery of one job.
    sql(url, "UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE id = %s", cancelled)
    sql(url, "INSERT INTO procrastinate_jobs (queue_name, task_name, args)"
        " VALUES ('trax-transcribe', 'trax.transcribe', jsonb_build_object('job_id', %s::int))",
        twice)  # fmt: skip

    fast = ("--stalled-after", "3", "--heartbeat", "1", "--recovery-every", "1")
    process = worker(pg_env, tmp_path / "w.log", *fast)
    try:

        def agreed() -> bool:
            status = {j.id: j.status for j in jobs_of(url)}
            live = [d for d in deliveries(url) if d[1] in ("todo", "doing")]
            return not live and status == {
                ended: "done", lost: "done", orphan: "done", cancelled: "cancelled", twice: "done"
            }  # fmt: skip

        wait_for(agreed, timeout=60, every=0.5)
    finally:
        stop(process)
    rows = {j.id: j for j in jobs_of(url)}
    assert [rows[j].attempts for j in (lost, orphan, twice)] == [1, 2, 1]
    assert counts(url)["transcripts"] == 3  # each transcribed once, the duplicate delivery idle
    found = deliveries(url)
    assert [s for _, s, j in found if j == ended] == ["succeeded"]  # closed, not run
    assert rows[lost].queue_job_id in {i for i, s, j in found if j == lost and s == "succeeded"}


@pytest.fixture
def doomed_url(postgres_url: str) -> Iterator[str]:
    """A database of its own, which the test drops under a running worker."""
    server = make_url(postgres_url)
    name = f"trax_doomed_{uuid.uuid4().hex[:10]}"
    admin = libpq(server.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_worker_that_cannot_go_on_says_why_in_one_line(doomed_url: str, tmp_path: Path) -> None:
    """Issue 8, item 7: the database is gone for good; the worker exits 1 with the reason."""
    database = Database(doomed_url)
    database.ensure_schema()
    database.dispose()
    env = os.environ | {"TRAX_DATABASE_URL": doomed_url}
    log = tmp_path / "w.log"
    process = worker(env, log, "--give-up-after", "3", "--recovery-every", "1")
    try:
        wait_for(lambda: registered(doomed_url, 1), timeout=60)
        name = make_url(doomed_url).database
        server = make_url(doomed_url).set(database="postgres")
        admin = libpq(server.render_as_string(hide_password=False))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = log.read_text()
    assert code == 1, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: worker stopped: the database was unreachable for 3 s ("), last


def test_enqueueing_twice_delivers_each_job_once_and_cancel_finds_lost_ids(
    pg_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 8, item 8: ``--queue`` again delivers nothing twice; a lost queue id is recovered."""
    url = pg_env["TRAX_DATABASE_URL"]
    folder = tmp_path / "media"
    folder.mkdir()
    for clip in (JFK, AUDIO / "LDC93S1.wav", AUDIO / "LJ001-0001.wav"):
        shutil.copy(clip, folder / clip.name)
    first = enqueue(pg_env, folder, out=tmp_path / "out")
    second = enqueue(pg_env, folder, out=tmp_path / "out")
    assert first.stdout == second.stdout  # same batch, the same 3 queued jobs
    jobs = jobs_of(url)

    def one_delivery_each(rows: list[Job]) -> None:
        found = deliveries(url)
        assert sorted(job_id for _, _, job_id in found) == sorted(j.id for j in rows)
        assert {j.id: j.queue_job_id for j in rows} == {job_id: i for i, _, job_id in found}
        assert {status for _, status, _ in found} == {"todo"}

    one_delivery_each(jobs)
    # A kill between delivering and recording the id (as before): the id is lost.
    sql(url, "UPDATE jobs SET queue_job_id = NULL WHERE id IN (%s, %s)", jobs[0].id, jobs[1].id)
    enqueue(pg_env, folder, out=tmp_path / "out")  # finds the delivery, records its id again
    one_delivery_each(jobs_of(url))

    sql(url, "UPDATE jobs SET queue_job_id = NULL WHERE id = %s", jobs[2].id)
    batch = json.loads(first.stdout)["batch"]
    cancelled = trax("jobs", "cancel", batch, "--job", str(jobs[2].id), env=pg_env)
    assert cancelled.returncode == 0, cancelled.stderr
    status = {job_id: s for _, s, job_id in deliveries(url)}
    assert status == {jobs[0].id: "todo", jobs[1].id: "todo", jobs[2].id: "cancelled"}
    assert [j.status for j in jobs_of(url)] == ["queued", "queued", "cancelled"]
