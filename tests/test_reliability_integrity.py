"""Integrity and secrets (issue 8, items 3 and 12-15), proven with real ``trax`` processes.

A killed schema upgrade leaves the database as it was; no form of database URL
ever shows its password; a changed model byte is caught even with the mtime put
back; a damaged, foreign, newer or full database is one line, never a traceback;
special files are refused without blocking, and the database is private.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import throwaway_postgres
from tests.mediafiles import JFK
from trax.asr import ModelError
from trax.asr.models import BUNDLED, package_dir, verify_file
from trax.media import MediaError
from trax.media.probe import check_readable
from trax.store import Database
from trax.store.migrate import HEAD_REVISION, alembic_config, upgrade

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

pytestmark = [pytest.mark.reliability]

TRAX = Path(sys.executable).with_name("trax")


def trax(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TRAX), *args],
        capture_output=True,
        text=True,
        env=os.environ | (env or {}),
        timeout=timeout,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    """A failure told in one ``error:`` line that contains each of ``expected``."""
    output = done.stdout + done.stderr
    assert done.returncode not in (0, -signal.SIGKILL), output
    assert "Traceback" not in output, output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for part in expected:
        assert part in lines[0], output
    return lines[0]


# ------------------------------------------------------------ 3. killed schema upgrades


def sqlite_schema(path: Path) -> tuple[frozenset[tuple[str, str]], str | None]:
    """What a SQLite file holds: its schema objects and its Trax schema version."""
    with closing(sqlite3.connect(path)) as conn:
        objects = frozenset(
            conn.execute(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchall()
        )
        try:
            versions = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
        except sqlite3.OperationalError:
            versions = []
    assert len(versions) <= 1
    return objects, versions[0] if versions else None


def upgrade_statements(database: Database) -> int:
    """How many statements ``upgrade`` runs on its connection (the failpoints' range)."""
    from sqlalchemy import event

    from trax.store.database import SQLITE_BEGIN

    count = 0

    def counted(connection: Connection, *_: object) -> None:
        nonlocal count
        if connection.get_execution_options().get(SQLITE_BEGIN) == "IMMEDIATE":
            count += 1

    event.listen(database.engine, "after_cursor_execute", counted)
    upgrade(database)
    event.remove(database.engine, "after_cursor_execute", counted)
    return count


def database_at(url: str, revision: str) -> None:
    """A database at an older ``revision``, as an older Trax left it."""
    from alembic import command

    database = Database(url)
    config = alembic_config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    database.dispose()


@pytest.mark.slow
def test_killed_sqlite_upgrade_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    head_database = Database(f"sqlite:///{reference}")
    fresh_count = upgrade_statements(head_database)
    head_database.dispose()
    complete = sqlite_schema(reference)
    assert complete[1] == HEAD_REVISION
    older = tmp_path / "older.db"  # as an older Trax left it
    database_at(f"sqlite:///{older}", "0003")
    shutil.copy(older, tmp_path / "counting.db")
    older_database = Database(f"sqlite:///{tmp_path / 'counting.db'}")
    older_count = upgrade_statements(older_database)
    older_database.dispose()
    assert fresh_count > 20 and older_count > 5

    rng = random.Random(3)
    # (starting point, command, failpoint or None for a kill after a random delay)
    trials: list[tuple[Path | None, tuple[str, ...], str | None]] = [
        *[
            (None, ("db", "upgrade"), f"migrate.statement.{n}")
            for n in sorted(rng.sample(range(fresh_count), 6))
        ],
        (None, ("db", "upgrade"), "migrate.commit"),
        *[
            (older, ("db", "upgrade"), f"migrate.statement.{n}")
            for n in rng.sample(range(older_count), 2)
        ],
        *[(None, ("db", "upgrade"), None) for _ in range(2)],
    ]
    killed = 0
    for i, (start, command, point) in enumerate(trials):
        path = tmp_path / f"trial{i}.db"
        if start is not None:
            shutil.copy(start, path)
        before = sqlite_schema(path) if start is not None else (frozenset(), None)
        args = [str(TRAX), "--db", f"sqlite:///{path}", *command]
        if point is not None:
            done = subprocess.run(
                args, env=os.environ | {"TRAX_FAILPOINT": point}, capture_output=True, timeout=60
            )
            assert done.returncode == -signal.SIGKILL, (point, done.stderr)
            killed += 1
            assert sqlite_schema(path) == before, point  # nothing half-made, nothing lost
        else:
            process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.2, 1.4))
            process.kill()
            killed += process.wait() == -signal.SIGKILL
            assert sqlite_schema(path) in (before, complete)
        # The next upgrade works and finds (or makes) the whole schema.
        after = trax("--db", f"sqlite:///{path}", "db", "upgrade")
        assert after.returncode == 0, (point, after.stderr)
        assert "Traceback" not in after.stderr
        assert sqlite_schema(path) == complete, point
    assert killed >= 9


def test_a_half_made_schema_of_an_older_trax_is_made_again_or_refused(tmp_path: Path) -> None:
    # What an older Trax left when killed mid-upgrade: its tables, no version row.
    empty = tmp_path / "empty.db"
    database_at(f"sqlite:///{empty}", "0004")
    with closing(sqlite3.connect(empty)) as conn:
        conn.execute("DROP TABLE alembic_version")
        conn.commit()
    reference = tmp_path / "reference.db"
    Database(f"sqlite:///{reference}").ensure_schema()
    listed = trax("--db", f"sqlite:///{empty}", "list")
    assert listed.returncode == 0, listed.stderr
    assert sqlite_schema(empty) == sqlite_schema(reference)

    with_data = tmp_path / "data.db"
    database_at(f"sqlite:///{with_data}", "0002")
    with closing(sqlite3.connect(with_data)) as conn:
        conn.execute("DROP TABLE alembic_version")
        conn.execute(
            "INSERT INTO media_files (sha256, path, size_bytes, container, audio_codec, "
            "sample_rate, channels, created_at) VALUES ('ab', 'talk.wav', 1, 'wav', 'pcm', "
            "16000, 1, '2026-01-01')"
        )
        conn.commit()
    before = sqlite_schema(with_data)
    assert_one_line_error(
        trax("--db", f"sqlite:///{with_data}", "list"),
        f"{with_data} holds part of a Trax schema, with data, but no schema version",
    )
    assert sqlite_schema(with_data) == before


@pytest.fixture
def scratch_postgres() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    with throwaway_postgres("trax_integrity") as url:
        yield url


def postgres_tables(url: str) -> set[str]:
    from sqlalchemy import inspect

    database = Database(url)
    try:
        return set(inspect(database.engine).get_table_names())
    finally:
        database.dispose()


@pytest.mark.slow
def test_killed_postgres_upgrade_leaves_nothing_and_a_newer_schema_is_refused(
    scratch_postgres: str,
) -> None:
    from sqlalchemy import text

    counting = Database(scratch_postgres)
    count = upgrade_statements(counting)
    complete = postgres_tables(scratch_postgres)
    with counting.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    counting.dispose()
    assert postgres_tables(scratch_postgres) == set()

    for n in random.Random(5).sample(range(1, count), 3):
        point = f"migrate.statement.{n}"
        done = trax("--db", scratch_postgres, "db", "upgrade", env={"TRAX_FAILPOINT": point})
        assert done.returncode == -signal.SIGKILL, (point, done.stderr)
        assert postgres_tables(scratch_postgres) == set(), point
    assert trax("--db", scratch_postgres, "db", "upgrade").returncode == 0
    assert postgres_tables(scratch_postgres) == complete

    with Database(scratch_postgres).engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    assert_one_line_error(
        trax("--db", scratch_postgres, "list"),
        "was created by a newer Trax (schema 9999; this Trax knows up to "
        f"{HEAD_REVISION}): upgrade Trax",
    )


# ------------------------------------------------------------ 12. no secret ever printed

# Each password is made of distinctive pieces: none of them may appear anywhere.
SECRET_FORMS = {
    "url": ("postgresql://trax:{}@127.0.0.1:1/trax", "Xq7vZr9kWm2p"),
    "url-at": ("postgresql://trax:{}@127.0.0.1:1/trax", "Xq7v@Zr9k@Wm2p"),
    "url-colon-slash-percent": ("postgresql://trax:{}@127.0.0.1:1/trax", "Xq7v:Zr9k/Wm2p%zz"),
    "url-everything": ("postgres://trax:{}@127.0.0.1:1/trax", "Xq7v@Zr9k:Wm2p/Ty5n%41?Qe4j"),
    "dsn": ("host=127.0.0.1 port=1 user=trax password={} dbname=trax", "Xq7vZr9kWm2p"),
    "dsn-quoted": ("host=127.0.0.1 port=1 user=trax password='{}' dbname=trax", "Xq7v Zr9k\\'Wm2p"),
    "dsn-spaced": ("host = 127.0.0.1 port = 1 password = {} dbname = trax", "Xq7vZr9kWm2p"),
    "dsn-unquoted-space": ("host=127.0.0.1 password={} dbname=trax", "Xq7v Zr9k Wm2p"),
    "query": ("postgresql://trax@127.0.0.1:1/trax?password={}", "Xq7v&Zr9k@Wm2p"),
    "sslpassword": ("postgresql://trax@127.0.0.1:1/trax?sslpassword={}&sslmode=require", "Xq7v"),
    "malformed": (":: not a URL {} at all", "Xq7vZr9kWm2p"),
    "malformed-scheme": ("postgresql:/trax:{}@127.0.0.1/trax", "Xq7vZr9kWm2p"),
}
PIECES = ("Xq7v", "Zr9k", "Wm2p", "Ty5n", "Qe4j")


@pytest.mark.slow
@pytest.mark.parametrize("form", SECRET_FORMS)
def test_no_form_of_database_url_ever_prints_its_password(form: str) -> None:
    template, password = SECRET_FORMS[form]
    url = template.format(password)
    commands = [
        (["-v", "list"], {"TRAX_DATABASE_URL": url}),
        (["config"], {"TRAX_DATABASE_URL": url}),
        (["--db", url, "-vv", "db", "upgrade"], {}),
    ]
    processes = [  # side by side: each is mostly the interpreter starting
        subprocess.Popen(
            [str(TRAX), *args],
            env=os.environ | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args, env in commands
    ]
    runs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        runs.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    for done in runs:
        output = done.stdout + done.stderr
        assert not [piece for piece in PIECES if piece in output], output
        assert "Traceback" not in output, output
    listed, shown, upgraded = runs
    assert listed.returncode != 0 and upgraded.returncode != 0  # nothing listens on port 1
    for done in (listed, upgraded):
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, done.stderr
    assert shown.returncode == 0
    assert "database_url" in shown.stdout and "[env TRAX_DATABASE_URL]" in shown.stdout


@pytest.mark.slow
def test_key_value_settings_and_unencoded_at_sign_reach_the_real_server(
    scratch_postgres: str,
) -> None:
    from sqlalchemy.engine import make_url

    server = make_url(scratch_postgres)
    # The test server trusts local connections: any password gets in, so these
    # prove the settings are understood, and that their passwords stay unseen.
    dsn = (
        f"host={server.host} port={server.port} user={server.username} "
        f"password='Xq7v Zr9k' dbname={server.database}"
    )
    done = trax("-v", "db", "upgrade", env={"TRAX_DATABASE_URL": dsn})
    assert done.returncode == 0, done.stderr
    assert f"upgraded empty → {HEAD_REVISION}" in done.stdout
    url = f"postgresql://{server.username}:Xq7v@Zr9k@{server.host}:{server.port}/{server.database}"
    listed = trax("-v", "list", env={"TRAX_DATABASE_URL": url})
    assert listed.returncode == 0, listed.stderr
    for output in (done.stdout + done.stderr, listed.stdout + listed.stderr):
        assert "Xq7v" not in output and "Zr9k" not in output


# ------------------------------------------------------------ 13. model checksum bypass


def flip_byte_keeping_mtime(path: Path, offset: int) -> None:
    status = path.stat()
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert path.stat().st_mtime_ns == status.st_mtime_ns
    assert path.stat().st_size == status.st_size


def test_a_changed_byte_with_its_mtime_restored_is_caught(tmp_path: Path) -> None:
    file = BUNDLED["tiny.en"].files["config.json"]
    source = package_dir(file.package)
    assert source is not None
    copy = tmp_path / "config.json"
    shutil.copy(source / file.relative_path, copy)
    verify_file(copy, file.sha256)  # hashed, and remembered as verified
    verify_file(copy, file.sha256)
    flip_byte_keeping_mtime(copy, 100)
    with pytest.raises(ModelError, match="failed its SHA-256 check") as caught:
        verify_file(copy, file.sha256)
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_a_tampered_bundled_model_is_refused_by_the_cli(tmp_path: Path) -> None:
    package = BUNDLED["tiny.en"].files["model.bin"].package
    installed = package_dir(package)
    assert installed is not None
    site = tmp_path / "site"
    # A copy of the model's package, found first on the path: the real one is never touched.
    shutil.copytree(installed, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(site)}
    first = trax("transcribe", str(JFK), "-f", "none", "-q", env=env)
    assert first.returncode == 0, first.stderr
    weights = site / package / BUNDLED["tiny.en"].files["model.bin"].relative_path
    flip_byte_keeping_mtime(weights, 1_000_000)
    again = trax("transcribe", str(JFK), "-f", "none", "--force", env=env)
    assert_one_line_error(again, str(weights), "failed its SHA-256 check")


# ------------------------------------------------------------ 14. damaged, foreign, newer, full


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    for command in (("list",), ("db", "upgrade")):
        assert_one_line_error(
            trax("--db", f"sqlite:///{path}", *command),
            f"{path} is not a Trax database (file is not a database)",
        )
    assert path.read_bytes() == b"these are my notes, not a database\n" * 200


def test_a_damaged_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "trax.db"
    assert trax("--db", f"sqlite:///{path}", "db", "upgrade").returncode == 0
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'transcripts'"
        ).fetchone()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    data[(root - 1) * page_size : root * page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(data))
    # The schema is intact, so the damage shows only when the table is read.
    assert_one_line_error(
        trax("--db", f"sqlite:///{path}", "list"),
        f"database {path} is damaged (database disk image is malformed)",
    )
    data[page_size:] = b"\xa5" * (len(data) - page_size)  # and now the schema too
    path.write_bytes(bytes(data))
    assert_one_line_error(
        trax("--db", f"sqlite:///{path}", "db", "upgrade"),
        f"database {path} is damaged (database disk image is malformed)",
    )


def test_a_database_of_a_newer_trax_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "trax.db"
    assert trax("--db", f"sqlite:///{path}", "db", "upgrade").returncode == 0
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
        conn.commit()
    for command in (("list",), ("db", "upgrade")):
        assert_one_line_error(
            trax("--db", f"sqlite:///{path}", *command),
            f"database {path} was created by a newer Trax (schema 9999; "
            f"this Trax knows up to {HEAD_REVISION}): upgrade Trax",
        )
    assert sqlite_schema(path)[1] == "9999"


def test_a_sqlite_file_of_another_program_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "contacts.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO people (name) VALUES ('Ada')")
        conn.commit()
    before = sqlite_schema(path)
    for command in (("list",), ("db", "upgrade")):
        assert_one_line_error(
            trax("--db", f"sqlite:///{path}", *command),
            f"{path} is not a Trax database (it holds other tables: people",
        )
    assert sqlite_schema(path) == before  # none of Trax's tables added
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT name FROM people").fetchall() == [("Ada",)]


@pytest.mark.slow
def test_a_full_disk_is_one_line(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs util-linux unshare to mount a small tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    path = small / "trax.db"
    # A private mount namespace: the 48 KiB filesystem vanishes with the process,
    # and is too small for the schema, so the upgrade fills it mid-write.
    script = f'mount -t tmpfs -o size=48k tmpfs "{small}" && exec "$0" "$@"'
    command = [unshare, "--mount", "--map-root-user", "sh", "-c", script, str(TRAX)]
    done = subprocess.run(
        [*command, "--db", f"sqlite:///{path}", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "mount" in done.stderr or "unshare" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert_one_line_error(
        done, f"cannot write to database {path}: database or disk is full (free some space"
    )


# ------------------------------------------------------------ 15. special files, private files


def test_special_files_are_refused_without_reading_them(tmp_path: Path) -> None:
    fifo = tmp_path / "talk.wav"
    os.mkfifo(fifo)
    with pytest.raises(MediaError, match=r"^not a regular file \(a FIFO\)$"):
        check_readable(fifo)  # returns at once: nothing opens the FIFO
    with pytest.raises(MediaError, match=r"^not a regular file \(a character device\)$"):
        check_readable(Path("/dev/zero"))


@pytest.mark.slow
def test_special_files_through_the_cli_do_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "talk.wav"
    os.mkfifo(fifo)
    started = time.monotonic()
    done = trax("transcribe", str(fifo), "/dev/zero", "-f", "none", timeout=60)
    assert time.monotonic() - started < 30
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert f"{fifo}: not a regular file (a FIFO)" in done.stderr
    assert "/dev/zero: not a regular file (a character device)" in done.stderr
    assert "empty file" not in done.stderr


@pytest.mark.slow
def test_the_database_and_its_folder_are_private(tmp_path: Path) -> None:
    data = tmp_path / "home" / "data"
    env = os.environ | {"TRAX_DATA_DIR": str(data), "TRAX_FAILPOINT": "migrate.commit"}
    # Killed just before the upgrade commits, so the -wal and -shm files stay behind.
    done = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" db upgrade', str(TRAX)], env=env, capture_output=True
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert data.stat().st_mode & 0o777 == 0o700
    files = {p.name: p.stat().st_mode & 0o777 for p in data.iterdir()}
    assert files == {"trax.db": 0o600, "trax.db-wal": 0o600, "trax.db-shm": 0o600}
    env.pop("TRAX_FAILPOINT")
    done = subprocess.run(
        ["sh", "-c", 'umask 022 && exec "$0" db upgrade', str(TRAX)], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert (data / "trax.db").stat().st_mode & 0o777 == 0o600
