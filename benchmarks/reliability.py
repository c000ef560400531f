"""Exactly once under concurrency and faults (issue 8): real ``trax`` processes, real databases.

    uv run python -m benchmarks.reliability [--quick] [--only CHECK ...] [--trials N]

Five checks, each on fresh databases (a new SQLite file per trial; a new
PostgreSQL database per trial on 127.0.0.1:5432, dropped afterwards):

- **concurrent resumes**: one batch of short real clips (three byte-identical
  copies of one among them) made with ``submit_batch``, then N ``trax jobs
  resume BATCH`` at once;
- **simultaneous starts**: N ``trax transcribe DIR`` at once on a database
  nobody has created the schema in;
- **killed worker**: two ``trax worker`` (default settings), a 5-minute
  recording queued, the worker running it SIGKILLed mid-job; seconds from
  the kill until the job is ``done``;
- **paused worker**: the same, but ``kill -STOP`` until the job was given to
  the other worker (attempts 2), then ``kill -CONT``: transcripts stored;
- **connection cuts**: a queued batch served by two workers while every other
  connection to the database is terminated every few seconds: all jobs done,
  duplicates, and whether the jobs table and procrastinate's agree.

Every check reports what it measured, even when Trax fails it; an error
inside one check becomes that row's note, and no check waits forever. Every
process started here is stopped (SIGKILL at last) before its check returns.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, LiteralString

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
TEST_AUDIO = REPO_ROOT / "tests" / "data" / "audio"
JFK = REPO_ROOT / "examples" / "jfk.flac"
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"

PROCESSES = 3
"""How many ``trax`` processes race for one batch."""
COPIES = 3
"""Byte-identical copies of one clip in the race batch."""
RECORDING_S = 5 * 60.0
"""The killed and paused workers' job: a 5-minute recording."""
MID_JOB_S = 15.0
"""A job counts as under way once it reports a position (recognition has begun), or at
the latest this long after its claim."""
HANDOVER_TARGET_S = 60.0
"""A killed worker's job is done within 60 s of the kill (issue 8, item 6)."""
CUT_EVERY_S = 3.0
CUT_CLIPS = 10
CUT_CLIP_S = 60.0
"""Long enough that the cuts land while the workers load, claim, transcribe and save."""
RACE_TIMEOUT_S = 300.0
WAIT_RUNNING_S = 120.0
WAIT_DONE_S = 180.0
WAIT_HANDOVER_S = 120.0
STOP_GRACE_S = 10.0

CHECKS = ("resume", "start", "killed", "paused", "cuts")

Log = Callable[[str], None]


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class ReliabilityRow:
    check: str  # "concurrent resumes", "simultaneous starts", "killed worker", …
    database: str  # "sqlite" or "postgresql"
    trials: int  # trials that ran to the end (measured)
    measured: str  # one line, with the numbers
    target: str
    passed: bool | None  # None: not measured (skipped, or an error before any trial)
    duplicates: int | None = None  # transcripts stored beyond one per distinct content
    median_s: float | None = None
    max_s: float | None = None
    error: str | None = None  # why a trial or the check could not be measured
    trial_data: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Reliability:
    mode: str  # "quick" or "full"
    processes: int
    race_batch: str  # what the racing processes share
    recording_s: float
    took_s: float = 0.0
    rows: list[ReliabilityRow] = field(default_factory=list)


# --------------------------------------------------------------------------- databases


class ReliabilityError(Exception):
    """A check could not be measured (not: Trax failed it); the message is one line."""


@contextlib.contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str | None]:
    """A new, empty database for one trial: a SQLite file, or a PostgreSQL database
    dropped afterwards (``None`` when no PostgreSQL server answers)."""
    if kind == "sqlite":
        path = folder / f"reliability-{uuid.uuid4().hex[:10]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from benchmarks.search import fresh_postgres

    with fresh_postgres(f"{POSTGRES_SERVER}/postgres") as url:
        yield url


def postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect(f"{POSTGRES_SERVER}/postgres", connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def query(url: str, sql: LiteralString) -> list[tuple[Any, ...]]:
    """The rows of one read-only query, on a connection of its own.

    Retried a few times on PostgreSQL: the connection-cut check terminates
    every connection to its database, this one included.
    """
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            return list(conn.execute(sql).fetchall())
    import psycopg

    for attempt in range(10):
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                return list(conn.execute(sql).fetchall())
        except psycopg.OperationalError:
            if attempt == 9:
                raise
            time.sleep(0.3)
    raise AssertionError("unreachable")


def _has_table(url: str, table: str) -> bool:
    if url.startswith("sqlite:///"):
        found = query(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        found = query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return table in {row[0] for row in found}


@dataclass(frozen=True, slots=True)
class JobState:
    id: int
    status: str
    attempts: int
    position_s: float
    worker: str | None


def jobs(url: str) -> list[JobState]:
    if not _has_table(url, "jobs"):  # a race that failed before the schema existed
        return []
    rows = query(url, "SELECT id, status, attempts, position_s, worker FROM jobs ORDER BY id")
    return [JobState(int(r[0]), str(r[1]), int(r[2]), float(r[3] or 0.0), r[4]) for r in rows]


def transcripts(url: str) -> int:
    if not _has_table(url, "transcripts"):
        return 0
    return int(query(url, "SELECT count(*) FROM transcripts")[0][0])


def queue_state(url: str) -> dict[str, Any]:
    """Whether the jobs table and procrastinate's agree: no delivery left waiting or
    running, and every done job with a succeeded delivery."""
    live = query(
        url,
        "SELECT count(*) FROM procrastinate_jobs"
        " WHERE args ? 'job_id' AND status IN ('todo', 'doing')",
    )[0][0]
    unsettled = query(
        url,
        "SELECT count(*) FROM jobs j WHERE j.status = 'done' AND NOT EXISTS ("
        " SELECT 1 FROM procrastinate_jobs p"
        "  WHERE p.args->>'job_id' = j.id::text AND p.status = 'succeeded')",
    )[0][0]
    statuses = query(
        url,
        "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1 ORDER BY 1",
    )
    return {
        "consistent": live == 0 and unsettled == 0,
        "deliveries_todo_or_doing": int(live),
        "done_without_succeeded_delivery": int(unsettled),
        "deliveries": {str(s): int(n) for s, n in statuses},
    }


# --------------------------------------------------------------------------- processes


@dataclass(slots=True)
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def problem(self) -> str | None:
        """Why this (finished or running) process counts as failed: an exit status
        other than 0, or a traceback in its output."""
        text = self.output()
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1].strip()[:200] if lines else ""
        code = self.popen.poll()
        if code not in (None, 0):
            return f"{self.name} exited {code}: {last}"
        if "Traceback" in text:
            return f"{self.name} printed a traceback: {last}"
        return None


class Processes:
    """The ``trax`` processes of one trial: each stopped (SIGKILL at last) on exit."""

    def __init__(self, trax: Path, env: dict[str, str], logs: Path) -> None:
        self.trax, self.env, self.logs = trax, env, logs
        self.started: list[Proc] = []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str, database_url: str) -> Proc:
        log = self.logs / f"{name}-{uuid.uuid4().hex[:6]}.log"
        env = self.env | {"TRAX_DATABASE_URL": database_url}
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(self.trax), *args], env=env, cwd=self.logs,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped with whatever it started
            )  # fmt: skip
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self.started:
            stop(proc)


def stop(proc: Proc) -> None:
    """SIGCONT (it may be paused) and SIGTERM, then SIGKILL to its group after a grace."""
    if proc.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)
            proc.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(STOP_GRACE_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.popen.wait()


def wait_until(check: Callable[[], bool], timeout_s: float, every_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


def _seconds(value: float) -> float:
    return round(value, 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the bench


@dataclass(slots=True)
class Context:
    trax: Path
    workdir: Path
    env: dict[str, str]
    corpus: Path
    quick: bool
    log: Log
    postgres: bool = False
    rng: random.Random = field(default_factory=lambda: random.Random(8))

    def processes(self, what: str) -> Processes:
        return Processes(self.trax, self.env, self.workdir / "logs" / what)

    def databases(self) -> list[str]:
        return ["sqlite", "postgresql"]

    def speech(self) -> list[Path]:
        """Real speech to build recordings from: LibriSpeech clips, or the test clips."""
        librispeech = sorted((self.corpus / "speakers-librispeech").glob("*.flac"))
        return librispeech or [JFK, *(self.clip(n) for n in RACE_OTHERS)]

    def clip(self, name: str) -> Path:
        """A clip of the corpus's asr-dev, or the test suite's copy of it."""
        for folder in (self.corpus / "asr-dev", TEST_AUDIO):
            if (folder / name).is_file():
                return folder / name
        raise ReliabilityError(f"no clip {name} in {self.corpus / 'asr-dev'} or {TEST_AUDIO}")


RACE_OTHERS = ("LDC93S1.wav", "1089-134686-0000.flac", "LJ001-0001.wav")


def race_folder(ctx: Context) -> tuple[Path, int, str]:
    """The racing processes' files: copies of one clip and a few others; distinct contents."""
    folder = ctx.workdir / "race"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for n in range(1, COPIES + 1):
        shutil.copyfile(JFK, folder / f"jfk-copy{n}.flac")
    for name in RACE_OTHERS:
        shutil.copyfile(ctx.clip(name), folder / name)
    files = sorted(folder.iterdir())
    distinct = len({sha256(p) for p in files})
    described = (
        f"{len(files)} files: {COPIES} byte-identical copies of examples/jfk.flac + "
        f"{', '.join(RACE_OTHERS)} ({distinct} distinct contents)"
    )
    return folder, distinct, described


def make_batch(url: str, folder: Path, name: str, output: Path) -> int:
    """A batch of ``folder``'s files with every job queued, as `trax transcribe` makes it."""
    from trax.core import TranscriptionSettings
    from trax.jobs.batches import submit_batch
    from trax.store import Database

    database = Database(url)
    try:
        submitted = submit_batch(database, [folder], TranscriptionSettings(), [], output, name=name)
    finally:
        database.dispose()
    if submitted.batch is None or submitted.problems:
        raise ReliabilityError(f"could not make the batch: {submitted.problems}")
    return len(jobs(url))


def race_trial(ctx: Context, kind: str, how: str, folder: Path, distinct: int) -> dict[str, Any]:
    """N processes at once on one batch (``resume``) or one folder on a fresh database
    (``start``); what they stored."""
    with fresh_database(kind, ctx.workdir) as url:
        if url is None:
            raise ReliabilityError("no PostgreSQL server on 127.0.0.1:5432")
        name = f"race-{uuid.uuid4().hex[:8]}"
        output = ctx.workdir / "out" / name
        if how == "resume":
            make_batch(url, folder, name, output)
            args = ["jobs", "resume", name]
        else:
            args = ["transcribe", str(folder), "-f", "none", "-o", str(output)]
        with ctx.processes(f"{how}-{kind}") as procs:
            started = time.monotonic()
            runs = [procs.start(f"{how}{i}", *args, database_url=url) for i in range(PROCESSES)]
            hung = []
            for run in runs:
                remaining = max(0.1, started + RACE_TIMEOUT_S - time.monotonic())
                try:
                    run.popen.wait(remaining)
                except subprocess.TimeoutExpired:
                    hung.append(f"{run.name} still running after {RACE_TIMEOUT_S:.0f} s")
            wall = time.monotonic() - started
            problems = hung + [p for run in runs if (p := run.problem()) is not None]
        state = jobs(url)
        stored = transcripts(url)
    return {
        "wall_s": _seconds(wall),
        "jobs": len(state),
        "done": sum(j.status == "done" for j in state),
        "stored": stored,
        "distinct": distinct,
        "duplicates": max(0, stored - distinct),
        "missing": max(0, distinct - stored),
        "double_claims": sum(j.attempts > 1 for j in state),
        "problems": problems,
    }


def race_row(
    check: str, kind: str, trials: list[dict[str, Any]], error: str | None
) -> ReliabilityRow:
    target = "0 duplicates, 0 double claims, every process exits 0"
    if not trials:
        return ReliabilityRow(check, kind, 0, "not measured", target, None, error=error)
    total = {k: sum(t[k] for t in trials) for k in ("jobs", "done", "stored", "distinct")}
    duplicates = sum(t["duplicates"] for t in trials)
    missing = sum(t["missing"] for t in trials)
    claims = sum(t["double_claims"] for t in trials)
    problems = [p for t in trials for p in t["problems"]]
    walls = [t["wall_s"] for t in trials]
    with_dups = sum(t["duplicates"] > 0 for t in trials)
    measured = (
        f"{total['done']}/{total['jobs']} jobs done; {total['stored']} transcripts for "
        f"{total['distinct']} distinct contents: **{duplicates} duplicates** "
        f"({with_dups} of {len(trials)} trials)"
        + (f", {missing} missing" if missing else "")
        + f"; {claims} jobs claimed twice; {len(problems)} processes failed; "
        f"wall median {statistics.median(walls):.1f} s, max {max(walls):.1f} s"
    )
    passed = (
        error is None
        and duplicates == 0
        and missing == 0
        and claims == 0
        and not problems
        and total["done"] == total["jobs"]
    )
    if problems:
        error = "; ".join([*([error] if error else []), *sorted(set(problems))[:3]])
    return ReliabilityRow(
        check, kind, len(trials), measured, target, passed,
        duplicates=duplicates, median_s=_seconds(statistics.median(walls)),
        max_s=_seconds(max(walls)), error=error, trial_data=trials,
    )  # fmt: skip


def races(ctx: Context, how: str, count: int) -> list[ReliabilityRow]:
    check = {"resume": "concurrent resumes", "start": "simultaneous starts"}[how]
    check = f"{PROCESSES} {check}"
    folder, distinct, _ = race_folder(ctx)
    rows = []
    for kind in ctx.databases():
        if kind == "postgresql" and not ctx.postgres:
            rows.append(race_row(check, kind, [], "skipped: no PostgreSQL on 127.0.0.1:5432"))
            continue
        trials: list[dict[str, Any]] = []
        error = None
        for n in range(1, count + 1):
            try:
                trial = race_trial(ctx, kind, how, folder, distinct)
            except Exception as exc:  # noqa: BLE001 - reported in the row; the run goes on
                error = f"trial {n}: {_first_line(exc)}"
                ctx.log(f"reliability {check} {kind}: {error}")
                break
            trials.append(trial)
            ctx.log(
                f"reliability {check} {kind} {n}/{count}: {trial['done']}/{trial['jobs']} done, "
                f"{trial['stored']} stored for {distinct} contents, "
                f"{trial['double_claims']} double claims, {len(trial['problems'])} failed "
                f"({trial['wall_s']:.1f} s)"
            )
        rows.append(race_row(check, kind, trials, error))
    return rows


def worker_id(job: JobState, workers: Sequence[Proc]) -> Proc | None:
    """The worker process named on the job (``trax@host:pid``)."""
    pid = (job.worker or "").rsplit(":", 1)[-1]
    return next((w for w in workers if pid.isdigit() and w.pid == int(pid)), None)


def enqueue(ctx: Context, url: str, target: Path, what: str) -> None:
    with ctx.processes(what) as procs:
        run = procs.start(
            "enqueue", "transcribe", str(target), "--queue", "-f", "none", "-q",
            "-o", str(ctx.workdir / "out" / uuid.uuid4().hex[:8]), database_url=url,
        )  # fmt: skip
        try:
            run.popen.wait(120)
        except subprocess.TimeoutExpired:
            raise ReliabilityError("`trax transcribe --queue` still running after 120 s") from None
        if (problem := run.problem()) is not None:
            raise ReliabilityError(f"could not enqueue: {problem}")


def worker_trial(ctx: Context, recording: Path, pause: bool) -> dict[str, Any]:
    """Two default workers; the one running the job is SIGKILLed (or SIGSTOPped until
    its job went to the other, then SIGCONTed) mid-job."""
    what = "paused" if pause else "killed"
    with fresh_database("postgresql", ctx.workdir) as url:
        if url is None:
            raise ReliabilityError("no PostgreSQL server on 127.0.0.1:5432")
        with ctx.processes(what) as procs:
            workers = [procs.start(f"worker{n}", "worker", database_url=url) for n in (1, 2)]
            enqueue(ctx, url, recording, what)

            claimed: list[float] = []

            def under_way() -> bool:
                [job] = jobs(url)
                if job.status != "running":
                    return job.status != "queued"  # over already: reported below
                claimed[:] = claimed or [time.monotonic()]
                return job.position_s > 0 or time.monotonic() - claimed[0] >= MID_JOB_S

            if not wait_until(under_way, WAIT_RUNNING_S):
                raise ReliabilityError(
                    f"the job was not running after {WAIT_RUNNING_S:.0f} s: {jobs(url)}; "
                    + "; ".join(p for w in workers if (p := w.problem()) is not None)
                )
            time.sleep(ctx.rng.uniform(0.0, 2.0))  # somewhere in the middle of the job
            [job] = jobs(url)
            victim = worker_id(job, workers)
            if job.status != "running" or victim is None:
                raise ReliabilityError(f"no worker of ours runs the job now: {job}")
            other = next(w for w in workers if w is not victim)
            position = job.position_s
            os.kill(victim.pid, signal.SIGSTOP if pause else signal.SIGKILL)
            hit = time.monotonic()
            after_claim = hit - claimed[0] if claimed else None

            def handed_over() -> bool:
                return any(j.attempts >= 2 for j in jobs(url))

            def done() -> bool:
                return all(j.status == "done" for j in jobs(url))

            given = wait_until(handed_over, WAIT_HANDOVER_S if pause else WAIT_DONE_S)
            given_s = time.monotonic() - hit if given else None
            if pause:
                os.kill(victim.pid, signal.SIGCONT)
            finished = wait_until(done, max(1.0, hit + WAIT_DONE_S - time.monotonic()))
            done_s = time.monotonic() - hit if finished else None
            noticed = None
            if pause:
                # Its own copy of the job: let it find out (heartbeat or save) and drop it.
                noticed = wait_until(
                    lambda: "given to another worker" in victim.output() or not victim.alive(),
                    30.0,
                    every_s=0.5,
                )
                noticed = noticed and "given to another worker" in victim.output()
            [job] = jobs(url)
            stored = transcripts(url)
            survivors = [w for w in workers if w is not victim or pause]
            result = {
                "position_at_signal_s": _seconds(position),
                "signal_after_claim_s": None if after_claim is None else _seconds(after_claim),
                "handed_over_s": None if given_s is None else _seconds(given_s),
                "done_s": None if done_s is None else _seconds(done_s),
                "status": job.status,
                "attempts": job.attempts,
                "stored": stored,
                "duplicates": max(0, stored - 1),
                "finished_by_other": worker_id(job, workers) is other,
                "workers_alive": sum(w.alive() for w in survivors),
                "workers_expected": len(survivors),
                "problems": [p for w in survivors if (p := w.problem()) is not None],
            }
            if pause:
                result["paused_worker_logged_discard"] = noticed
    return result


def worker_rows(ctx: Context, recording: Path, pause: bool, count: int) -> ReliabilityRow:
    check = "paused worker" if pause else "killed worker"
    target = "0 duplicates" if pause else f"done ≤ {HANDOVER_TARGET_S:.0f} s after the kill, 0 dup."
    if not ctx.postgres:
        return ReliabilityRow(check, "postgresql", 0, "not measured", target, None,
                              error="skipped: no PostgreSQL on 127.0.0.1:5432")  # fmt: skip
    trials: list[dict[str, Any]] = []
    error = None
    for n in range(1, count + 1):
        try:
            trial = worker_trial(ctx, recording, pause)
        except Exception as exc:  # noqa: BLE001 - reported in the row; the run goes on
            error = f"trial {n}: {_first_line(exc)}"
            ctx.log(f"reliability {check}: {error}")
            break
        trials.append(trial)
        ctx.log(f"reliability {check} {n}/{count}: {json.dumps(trial)}")
    if not trials:
        return ReliabilityRow(check, "postgresql", 0, "not measured", target, None, error=error)
    duplicates = sum(t["duplicates"] for t in trials)
    not_done = sum(t["done_s"] is None for t in trials)
    problems = [p for t in trials for p in t["problems"]]
    alive = sum(t["workers_alive"] for t in trials)
    expected = sum(t["workers_expected"] for t in trials)
    handed = [t["handed_over_s"] for t in trials if t["handed_over_s"] is not None]
    took = [t["done_s"] for t in trials if t["done_s"] is not None]
    parts = []
    if pause:
        at = ", ".join(f"{t['position_at_signal_s']:.0f}" for t in trials)
        parts.append(
            f"paused at {at} s of {RECORDING_S / 60:.0f}:00; given to the other worker after "
            + (f"median {statistics.median(handed):.1f} s" if handed else "—")
        )
        parts.append(f"transcripts stored per job: {', '.join(str(t['stored']) for t in trials)}")
        parts.append(f"**{duplicates} duplicates**")
        logged = sum(bool(t.get("paused_worker_logged_discard")) for t in trials)
        parts.append(f"paused worker logged the discard in {logged}/{len(trials)}")
    else:
        if took:
            parts.append(
                f"kill → done: **median {statistics.median(took):.1f} s, max {max(took):.1f} s**"
            )
        if not_done:
            parts.append(f"**{not_done} not done within {WAIT_DONE_S:.0f} s**")
        parts.append(
            "kill → given to the other worker: "
            + (f"median {statistics.median(handed):.1f} s" if handed else "never")
        )
        parts.append(f"{duplicates} duplicates")
    parts.append(f"workers alive {alive}/{expected}")
    if problems:
        parts.append(f"{len(problems)} worker problems")
    passed = error is None and duplicates == 0 and not_done == 0 and alive == expected
    if not pause:
        passed = passed and bool(took) and max(took) <= HANDOVER_TARGET_S
    if problems:
        error = "; ".join([*([error] if error else []), *sorted(set(problems))[:3]])
    return ReliabilityRow(
        check, "postgresql", len(trials), "; ".join(parts), target, passed,
        duplicates=duplicates,
        median_s=_seconds(statistics.median(took)) if took else None,
        max_s=_seconds(max(took)) if took else None,
        error=error, trial_data=trials,
    )  # fmt: skip


class Terminator(threading.Thread):
    """Every ``every_s``: terminate every other connection to the database."""

    def __init__(self, url: str, every_s: float) -> None:
        super().__init__(name="connection-cutter", daemon=True)
        self.url, self.every_s = url, every_s
        self.halt = threading.Event()
        self.rounds = self.terminated = self.errors = 0

    def run(self) -> None:
        import psycopg

        conn: psycopg.Connection[tuple[Any, ...]] | None = None
        while not self.halt.wait(self.every_s):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                cut = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                self.rounds += 1
                self.terminated += sum(1 for (ok,) in cut if ok)
            except psycopg.Error:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


def cuts_trial(ctx: Context, timeout_s: float) -> dict[str, Any]:
    """A queued batch served by two workers while connections are cut every few seconds."""
    from benchmarks.corpus import build_recording

    folder = ctx.workdir / "cuts"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    pool = ctx.speech()
    for n in range(CUT_CLIPS):
        at = n * 5 % len(pool)
        # Each a different length too: distinct contents even from a small pool.
        build_recording(pool[at:] + pool[:at], CUT_CLIP_S + n, folder / f"clip-{n:02d}.wav")
    distinct = len({sha256(p) for p in folder.iterdir()})
    with fresh_database("postgresql", ctx.workdir) as url:
        if url is None:
            raise ReliabilityError("no PostgreSQL server on 127.0.0.1:5432")
        with ctx.processes("cuts") as procs:
            enqueue(ctx, url, folder, "cuts")
            total = len(jobs(url))
            workers = [procs.start(f"worker{n}", "worker", database_url=url) for n in (1, 2)]
            cutter = Terminator(url, CUT_EVERY_S)
            started = time.monotonic()
            cutter.start()
            try:
                finished = wait_until(
                    lambda: sum(j.status == "done" for j in jobs(url)) == total, timeout_s, 1.0
                )
            finally:
                cutter.stop()
            took = time.monotonic() - started
            # The cuts have stopped: the tables must agree now, or after a reconciliation pass.
            calm = time.monotonic()
            agreed = wait_until(lambda: bool(queue_state(url)["consistent"]), 30.0, 0.5)
            agreed_s = time.monotonic() - calm
            state = queue_state(url)
            final = jobs(url)
            stored = transcripts(url)
            statuses: dict[str, int] = {}
            for job in final:
                statuses[job.status] = statuses.get(job.status, 0) + 1
            result = {
                "jobs": total,
                "done": statuses.get("done", 0),
                "statuses": statuses,
                "all_done": finished,
                "done_s": _seconds(took) if finished else None,
                "timeout_s": timeout_s,
                "stored": stored,
                "distinct": distinct,
                "duplicates": max(0, stored - distinct),
                "consistent": agreed,
                "consistent_after_s": _seconds(agreed_s) if agreed else None,
                "queue": state,
                "cut_rounds": cutter.rounds,
                "connections_cut": cutter.terminated,
                "claimed_again": sum(j.attempts > 1 for j in final),
                "workers_alive": sum(w.alive() for w in workers),
                "problems": [p for w in workers if (p := w.problem()) is not None],
            }
    return result


def cuts_row(ctx: Context) -> ReliabilityRow:
    check = f"connection cuts every {CUT_EVERY_S:.0f} s"
    target = "all done, 0 duplicates, tables consistent, workers alive"
    if not ctx.postgres:
        return ReliabilityRow(check, "postgresql", 0, "not measured", target, None,
                              error="skipped: no PostgreSQL on 127.0.0.1:5432")  # fmt: skip
    timeout_s = 180.0 if ctx.quick else 300.0
    try:
        t = cuts_trial(ctx, timeout_s)
    except Exception as exc:  # noqa: BLE001 - reported in the row; the run goes on
        error = _first_line(exc)
        ctx.log(f"reliability {check}: {error}")
        return ReliabilityRow(check, "postgresql", 0, "not measured", target, None, error=error)
    ctx.log(f"reliability {check}: {json.dumps(t)}")
    done = (
        f"all {t['jobs']} jobs done in {t['done_s']:.0f} s"
        if t["all_done"]
        else f"**not all done after {t['timeout_s']:.0f} s**: {t['statuses']}"
    )
    queue = t["queue"]
    consistent = (
        f"tables consistent ({t['consistent_after_s']:.1f} s after the cuts stopped)"
        if t["consistent"]
        else f"**tables inconsistent**: {queue['deliveries_todo_or_doing']} deliveries "
        f"todo/doing, {queue['done_without_succeeded_delivery']} done jobs without a "
        "succeeded delivery"
    )
    measured = (
        f"{done}; **{t['duplicates']} duplicates** ({t['stored']} transcripts for "
        f"{t['distinct']} contents); {consistent}; {t['connections_cut']} connections cut in "
        f"{t['cut_rounds']} rounds; {t['claimed_again']} jobs run again; "
        f"workers alive {t['workers_alive']}/2"
    )
    problems = sorted(set(t["problems"]))
    if problems:  # noted, not failed: a worker that reconnects may log what it survived
        measured += f"; {len(problems)} workers printed a traceback or exited non-zero"
    passed = t["all_done"] and t["duplicates"] == 0 and t["consistent"] and t["workers_alive"] == 2
    return ReliabilityRow(
        check, "postgresql", 1, measured, target, passed,
        duplicates=t["duplicates"], median_s=t["done_s"], max_s=t["done_s"],
        error="; ".join(problems[:3]) or None, trial_data=[t],
    )  # fmt: skip


# --------------------------------------------------------------------------- entry points


def trials_for(quick: bool) -> dict[str, int]:
    if quick:
        return {"resume": 3, "start": 1, "killed": 1, "paused": 1, "cuts": 1}
    return {"resume": 20, "start": 10, "killed": 5, "paused": 3, "cuts": 1}


def reliability(
    trax: Path,
    workdir: Path,
    env: dict[str, str],
    corpus: Path,
    quick: bool,
    log: Log,
    recording: Path | None = None,
    only: Sequence[str] = CHECKS,
    trials: dict[str, int] | None = None,
) -> Reliability:
    """Every check in ``only``; ``recording`` is a 5-minute recording (built if None)."""
    from benchmarks.corpus import build_recording

    started = time.monotonic()
    counts = trials_for(quick) | (trials or {})
    env = {k: v for k, v in env.items() if k not in ("TRAX_DATABASE_URL", "TRAX_FAILPOINT")}
    ctx = Context(trax, workdir, env, corpus, quick, log, postgres=postgres_available())
    result = Reliability(
        mode="quick" if quick else "full",
        processes=PROCESSES,
        race_batch=race_folder(ctx)[2],
        recording_s=RECORDING_S,
    )
    if "resume" in only:
        result.rows += races(ctx, "resume", counts["resume"])
    if "start" in only:
        result.rows += races(ctx, "start", counts["start"])
    if {"killed", "paused"} & set(only) and recording is None:
        recording = workdir / "reliability-5min.wav"
        result.recording_s = build_recording(ctx.speech(), RECORDING_S, recording)
    if "killed" in only and recording is not None:
        result.rows.append(worker_rows(ctx, recording, pause=False, count=counts["killed"]))
    if "paused" in only and recording is not None:
        result.rows.append(worker_rows(ctx, recording, pause=True, count=counts["paused"]))
    if "cuts" in only:
        result.rows.append(cuts_row(ctx))
    result.took_s = _seconds(time.monotonic() - started)
    log(f"reliability: {result.took_s:.0f} s")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.report import reliability_section
    from benchmarks.sections import stderr_log

    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Fewer trials (CI).")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    parser.add_argument("--trials", type=int, help="Trials of each race, per database.")
    parser.add_argument("--worker-trials", type=int, help="Trials of the killed/paused worker.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args(argv)

    trax = Path(sys.executable).with_name("trax")
    if not trax.is_file():
        print(f"error: no trax executable next to {sys.executable}; run `uv sync`", file=sys.stderr)
        return 2
    trials: dict[str, int] = {}
    if args.trials:
        trials |= {"resume": args.trials, "start": args.trials}
    if args.worker_trials:
        trials |= {"killed": args.worker_trials, "paused": args.worker_trials}
    log = stderr_log(time.perf_counter())
    with tempfile.TemporaryDirectory(prefix="trax-reliability-") as tmp:
        workdir = Path(tmp)
        env = dict(os.environ, TRAX_DATA_DIR=str(workdir / "data"))
        result = reliability(
            trax, workdir, env, args.corpus.resolve(), args.quick, log,
            only=args.only, trials=trials,
        )  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2, ensure_ascii=False) + "\n")
    print("\n".join(reliability_section(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
