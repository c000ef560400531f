"""Shared fixtures: real recordings, real databases, one loaded model per session."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.mediafiles import AUDIO, JFK, read_audio, write_media
from trax.asr import FasterWhisperTranscriber, resolve_model
from trax.service import TranscriptionService
from trax.store import Database, SqlTranscriptStore

POSTGRES_ADMIN_URL = os.environ.get(
    "TRAX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(autouse=True)
def isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep each test's database and caches out of the user's real folders."""
    base = tmp_path_factory.mktemp("trax-home")
    monkeypatch.setenv("TRAX_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("TRAX_CACHE_DIR", str(base / "cache"))
    monkeypatch.delenv("TRAX_DATABASE_URL", raising=False)


def _postgres_available() -> str | None:
    """None if the server answers, else the reason it does not."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    import psycopg

    reason = _postgres_available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {reason}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {reason}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    with throwaway_postgres("trax_test") as url:
        yield url


def empty_tables(database: Database) -> None:
    """Each PostgreSQL test starts from empty tables in the session's database."""
    from sqlalchemy import text

    database.ensure_schema()
    with database.engine.begin() as conn:
        tables = "cache_entries, jobs, batches, segments, transcripts, media_files"
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None:
            conn.execute(text("TRUNCATE procrastinate_jobs, procrastinate_workers CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same tests against the embedded SQLite file and the real PostgreSQL."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'trax.db'}")
        yield db
        db.dispose()
        return
    db = Database(request.getfixturevalue("postgres_url"))
    empty_tables(db)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for the CLI: a fresh SQLite file, or the emptied PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cli.db'}"
    url: str = request.getfixturevalue("postgres_url")
    database = Database(url)
    empty_tables(database)
    database.dispose()
    return url


@pytest.fixture
def store(database: Database) -> SqlTranscriptStore:
    return SqlTranscriptStore(database)


@pytest.fixture(scope="session")
def transcriber() -> FasterWhisperTranscriber:
    """tiny.en loaded once for the whole session (the bundled default model)."""
    return FasterWhisperTranscriber(resolve_model("tiny.en"), device="cpu")


@pytest.fixture
def service(
    store: SqlTranscriptStore, transcriber: FasterWhisperTranscriber
) -> TranscriptionService:
    """The service on the test database, sharing the session's loaded model (no stage cache)."""
    return TranscriptionService(store, transcriber=transcriber)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """JFK in every container/codec we promise, plus the bad inputs, made once."""
    directory = tmp_path_factory.mktemp("media")
    jfk = read_audio(JFK)
    for ext in ("wav", "mp3", "m4a", "ogg", "opus", "webm", "mp4", "mkv", "mov"):
        video = 11.0 if ext in {"webm", "mp4", "mkv", "mov"} else 0.0
        write_media(directory / f"jfk.{ext}", jfk, video_seconds=video)
    return directory


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    """One file per kind of bad input, each made from real material."""
    import numpy as np

    jfk = read_audio(JFK)
    files = {
        "zero_bytes": tmp_path / "empty.wav",
        "text_as_mp3": tmp_path / "notes.mp3",
        "truncated": tmp_path / "truncated.mp3",
        "video_only": tmp_path / "silent-film.mp4",
        "too_short": tmp_path / "blip.wav",
    }
    files["zero_bytes"].write_bytes(b"")
    files["text_as_mp3"].write_text("These are my meeting notes, not audio.\n")
    full = write_media(tmp_path / "full.mp3", jfk)
    files["truncated"].write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    full.unlink()
    write_media(files["video_only"], None, video_seconds=3.0)
    write_media(files["too_short"], np.ascontiguousarray(jfk[:, : int(0.1 * 48_000)]))
    return files


@pytest.fixture
def clip_dir(tmp_path: Path) -> Path:
    """A folder of real clips, named with spaces and non-ASCII characters."""
    folder = tmp_path / "Interviews 2026"
    (folder / "Zürich").mkdir(parents=True)
    shutil.copy(JFK, folder / "Präsident Kennedy.flac")
    shutil.copy(AUDIO / "LDC93S1.wav", folder / "Zürich" / "greasy wash.wav")
    (folder / "notes.txt").write_text("not media")
    return folder
