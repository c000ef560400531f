"""The library as a user manages it: database URLs, read-only commands, delete, list
filters, export formats, public errors and what the default install imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from tests.conftest import throwaway_postgres
from tests.mediafiles import JFK
from tests.test_store import make_transcript
from trax.asr import FasterWhisperTranscriber
from trax.cli import cli
from trax.core import MediaInfo, TranscriptionSettings
from trax.service import TranscriptionService
from trax.store import Database, SqlTranscriptStore
from trax.store.cache import SqlStageCache
from trax.store.models import BatchRow, JobRow
from trax.store.search import search

ROOT = Path(__file__).parent.parent


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line_error(result: Result, message: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def count(database: Database, sql: str) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


# --------------------------------------------------------------------------- 1. database URLs


@pytest.mark.parametrize(
    "url", ["postgresql://", "postgresql://postgres:pw-s3cret@127.0.0.1:5432", "host=127.0.0.1"]
)
def test_a_postgresql_url_must_name_its_database(url: str) -> None:
    for command in (("list",), ("db", "upgrade"), ("transcribe", str(JFK), "-f", "none")):
        result = run("--db", url, *command)
        one_line_error(result, "no database named in ")
        assert "name the database in the URL, e.g. postgresql://user@host/trax" in result.stderr
        assert "pw-s3cret" not in result.output


def test_an_explicit_sqlite_folder_is_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    for command in (("list",), ("db", "upgrade"), ("transcribe", str(JFK), "-f", "none")):
        result = run("--db", f"sqlite:///{missing / 'trax.db'}", *command)
        one_line_error(result, f"the database folder {missing} does not exist")
    assert not (tmp_path / "nonexistent").exists()


def test_the_default_sqlite_folder_is_still_created() -> None:
    data = Path(os.environ["TRAX_DATA_DIR"])  # set per test by conftest, not there yet
    assert not data.exists()
    assert run("db", "upgrade").exit_code == 0
    assert (data / "trax.db").is_file()
    assert data.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    "url", ["mysql://me:hunter22@db.example/trax", "foo://", "postgresql+psycopg2://h/trax"]
)
def test_unsupported_databases_name_the_supported_ones(url: str) -> None:
    result = run("--db", url, "list")
    one_line_error(result, "unsupported database URL ")
    assert "Trax supports SQLite (sqlite:///path/trax.db) and PostgreSQL" in result.stderr
    assert "hunter22" not in result.output


# --------------------------------------------------------------------------- 2. read-only


READS = [
    (("list",), "no transcripts yet", 0),
    (("list", "--json"), "", 0),
    (("show", "1"), "error: no transcript with id 1", 2),
    (("export", "1", "-f", "srt"), "error: no transcript with id 1", 2),
    (("search", "fellow"), "no matches", 0),
    (("jobs", "list"), "no batches yet", 0),
    (("jobs", "show", "nightly"), "error: no batch named 'nightly'", 2),
    (("cache", "stats"), "entries expire after", 0),
    (("delete", "1"), "error: no transcript with id 1", 1),
]


def test_read_only_commands_create_no_file() -> None:
    data = Path(os.environ["TRAX_DATA_DIR"])
    for args, message, code in READS:
        result = run(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert not data.exists(), args
    assert json.loads(run("list", "--json").stdout) == []


def test_read_only_commands_create_no_tables_on_postgresql() -> None:
    with throwaway_postgres("trax_readonly") as url:
        for args, message, code in READS:
            result = run("--db", url, *args)
            assert result.exit_code == code, (args, result.output)
            assert message in result.stderr, (args, result.stderr)
        database = Database(url)
        tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        assert count(database, tables) == 0
        database.dispose()


def test_read_only_commands_read_an_existing_library(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    database = Database(url)
    saved = SqlTranscriptStore(database).save(make_transcript())
    database.dispose()
    listed = run("--db", url, "list", "--json")
    assert [row["id"] for row in json.loads(listed.stdout)] == [saved.id]
    assert "Hello there." in run("--db", url, "show", str(saved.id)).stdout


# --------------------------------------------------------------------------- 3. delete


def test_delete_by_id_and_by_media(
    database: Database, transcriber: FasterWhisperTranscriber, tmp_path: Path
) -> None:
    url = database.url
    talk = tmp_path / "talk.flac"
    shutil.copy(JFK, talk)
    store = SqlTranscriptStore(database)
    cache = SqlStageCache(database)
    service = TranscriptionService(store, cache, transcriber=transcriber)
    first, _ = service.transcribe(talk, TranscriptionSettings())
    second, _ = service.transcribe(talk, TranscriptionSettings(), force=True)
    other = store.save(make_transcript(sha="e" * 64))
    cache.put("asr", "f" * 64, {"unrelated": True})
    jfk_entries = count(database, "SELECT count(*) FROM cache_entries") - 1
    assert jfk_entries > 0  # the pipeline cached its stage results for this content
    with database.transaction() as session:
        batch = BatchRow(name="b", settings={}, formats=[], output_dir=str(tmp_path))
        session.add(JobRow(batch=batch, path=str(talk), export_base="talk", pipeline="v1"))
        session.flush()
        session.execute(text("UPDATE jobs SET transcript_id = :t"), {"t": first.id})
    assert first.id and second.id and other.id

    result = run("--db", url, "delete", str(second.id), "999")
    assert result.exit_code == 1
    assert result.stdout == f"deleted #{second.id}  {talk}\n"
    assert "error: no transcript with id 999\n" in result.stderr
    # The newest remaining version becomes the one search covers.
    assert [h.transcript_id for h in search(database, "fellow americans")] == [first.id]
    assert count(database, "SELECT count(*) FROM cache_entries") == jfk_entries + 1
    versions = run("--db", url, "list", "--json").stdout
    assert [(r["id"], r["versions"]) for r in json.loads(versions)] == [
        (other.id, 1),
        (first.id, 1),
    ]

    result = run("--db", url, "delete", "--media", str(talk), "--media", str(tmp_path / "no.wav"))
    assert result.exit_code == 1
    assert result.stdout == f"deleted #{first.id}  {talk}\n"
    assert f"error: no transcripts of {tmp_path / 'no.wav'}\n" in result.stderr
    assert f"forgot 1 media file(s) and {jfk_entries} cache entries" in result.stderr
    assert search(database, "fellow americans", all_versions=True) == []
    assert count(database, f"SELECT count(*) FROM segments WHERE transcript_id <> {other.id}") == 0
    if database.dialect == "sqlite":  # the FTS rows went with their segments
        assert count(database, "SELECT count(*) FROM segments_fts") == count(
            database, "SELECT count(*) FROM segments"
        )
    assert count(database, "SELECT count(*) FROM media_files") == 1
    assert count(database, "SELECT count(*) FROM cache_entries") == 1  # only the unrelated one
    # The job keeps its record, without a link to a transcript that is gone.
    assert count(database, "SELECT count(*) FROM jobs WHERE transcript_id IS NULL") == 1
    assert SqlTranscriptStore(database).get(other.id) is not None


def test_delete_needs_something_to_delete(tmp_path: Path) -> None:
    one_line_error(run("--db", f"sqlite:///{tmp_path / 'x.db'}", "delete"), "name the transcripts")


# --------------------------------------------------------------------------- 4. list filters


def saved(store: SqlTranscriptStore, path: str, sha: str) -> int:
    media = MediaInfo(path, 1, sha, 2.0, "wav", "pcm_s16le", 16000, 1)
    result = store.save(replace(make_transcript(sha=sha), media=media))
    assert result.id is not None
    return result.id


def test_list_filters_and_versions(database: Database) -> None:
    store = SqlTranscriptStore(database)
    old = saved(store, "/recordings/Zürich/Talk.wav", "1" * 64)
    v2 = saved(store, "/recordings/Zürich/Talk.wav", "1" * 64)
    v3 = saved(store, "/recordings/Zürich/Talk.wav", "1" * 64)
    notes = saved(store, "/recordings/notes.wav", "2" * 64)
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    with database.engine.begin() as conn:
        conn.execute(
            text("UPDATE transcripts SET created_at = :at WHERE id = :id"),
            {"at": three_days_ago, "id": old},
        )

    def ids(*args: str) -> list[tuple[int, str]]:
        result = run("--db", database.url, "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [(r["id"], f"v{r['version']}/{r['versions']}") for r in json.loads(result.stdout)]

    assert ids() == [(notes, "v1/1"), (v3, "v3/3"), (v2, "v2/3"), (old, "v1/3")]
    assert ids("--path", "zÜRICH/talk") == [(v3, "v3/3"), (v2, "v2/3"), (old, "v1/3")]
    assert ids("--path", "%") == []  # a substring, not a pattern
    assert ids("--since", "2d") == [(notes, "v1/1"), (v3, "v3/3"), (v2, "v2/3")]
    assert ids("--since", "30m", "--path", "talk", "-n", "1") == [(v3, "v3/3")]
    day = (datetime.now() - timedelta(days=1)).date().isoformat()
    assert [i for i, _ in ids("--since", day)] == [notes, v3, v2]
    assert ids("--since", "2099-01-01T00:00+00:00") == []

    table = run("--db", database.url, "list").stdout.splitlines()
    assert table[0].split() == ["ID", "CREATED", "AUDIO", "PIPE", "WORDS", "VER", "PATH"]
    assert table[2].split()[-2:] == ["v3/3", "/recordings/Zürich/Talk.wav"]
    assert table[1].split()[-1] == "/recordings/notes.wav" and "v1/1" not in table[1]
    empty = run("--db", database.url, "list", "--path", "nothing")
    assert empty.stderr == "no transcripts match\n"


def test_list_since_rejects_what_it_cannot_read(tmp_path: Path) -> None:
    result = run("--db", f"sqlite:///{tmp_path / 'x.db'}", "list", "--since", "yesterday")
    one_line_error(result, "--since 'yesterday': expected a date or time")


# --------------------------------------------------------------------------- 6. export


@pytest.fixture
def stored(tmp_path: Path) -> tuple[str, int]:
    url = f"sqlite:///{tmp_path / 'lib.db'}"
    database = Database(url)
    transcript_id = SqlTranscriptStore(database).save(make_transcript()).id
    database.dispose()
    assert transcript_id is not None
    return url, transcript_id


def test_export_all_formats_into_a_folder(stored: tuple[str, int], tmp_path: Path) -> None:
    url, transcript_id = stored
    out = tmp_path / "out"
    result = run("--db", url, "export", str(transcript_id), "-f", "all", "-o", f"{out}/")
    assert result.exit_code == 0, result.output
    names = ["hello.txt", "hello.srt", "hello.vtt", "hello.json", "hello.tsv", "hello.md"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert result.stderr.splitlines() == [f"wrote {out / name}" for name in names]
    assert "Hello there." in (out / "hello.txt").read_text()
    # An existing folder needs no slash, whatever the number of formats.
    again = run("--db", url, "export", str(transcript_id), "-f", "json", "-o", str(out))
    assert again.stderr == f"wrote {out / 'hello.json'}\n"


def test_export_several_formats_to_a_base_name(stored: tuple[str, int], tmp_path: Path) -> None:
    url, transcript_id = stored
    base = tmp_path / "subs" / "talk"
    result = run("--db", url, "export", str(transcript_id), "-f", "srt, VTT", "-o", str(base))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in base.parent.iterdir()) == ["talk.srt", "talk.vtt"]
    assert (base.parent / "talk.vtt").read_text().startswith("WEBVTT")
    one = run("--db", url, "export", str(transcript_id), "-f", "srt", "-o", str(base))
    assert one.exit_code == 0 and base.read_text() == (base.parent / "talk.srt").read_text()


def test_export_several_formats_need_somewhere_to_go(stored: tuple[str, int]) -> None:
    url, transcript_id = stored
    result = run("--db", url, "export", str(transcript_id), "-f", "srt,vtt")
    one_line_error(result, "2 formats need -o: a folder, or a base name")
    one_line_error(run("--db", url, "export", str(transcript_id), "-f", "doc"), "unknown export")
    plain = run("--db", url, "export", str(transcript_id), "-f", "txt")
    assert plain.exit_code == 0 and plain.stdout.strip() == "Hello there."
    assert "all" in run("export", "--help").stdout


# --------------------------------------------------------------------------- 7. errors


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ | (env or {}),
        timeout=300,
        check=False,
    )


def test_public_errors_come_from_trax_lazily() -> None:
    names = [
        "TraxError",
        "MediaError",
        "ModelError",
        "LanguageError",
        "DatabaseError",
        "PipelineError",
        "ConfigError",
        "EvalError",
        "ExportError",
        "PayloadError",
        "QueueError",
    ]
    done = python(
        "import sys, trax\n"
        "print(sorted(m for m in sys.modules if m.startswith('trax')))\n"
        f"from trax import {', '.join(names)}\n"
        f"print(all(issubclass(e, trax.TraxError) for e in ({', '.join(names)},)))\n"
        f"print(set({names!r}) <= set(trax.__all__))\n"
        "import trax.media\n"
        "print(trax.MediaError is trax.media.MediaError)\n"
    )
    assert done.stdout.splitlines() == ["['trax']", "True", "True", "True"], done.stderr
    with pytest.raises(AttributeError, match="no attribute 'NoSuchError'"):
        import trax

        trax.NoSuchError  # noqa: B018


# --------------------------------------------------------------------------- 8. dependencies


def test_evaluation_packages_are_an_extra() -> None:
    from importlib.metadata import requires

    requirements = requires("trax") or []
    for package in ("jiwer", "pyannote-metrics", "whisper-normalizer"):
        (line,) = [r for r in requirements if r.startswith(package)]
        assert 'extra == "eval"' in line.replace("'", '"'), line


@pytest.mark.parametrize(
    ("blocked", "args", "named"),
    [
        ("jiwer", ["asr", "tests/data", "--refs", "refs.tsv"], "jiwer"),
        ("pyannote.metrics", ["diarization", "tests/data", "--rttm", "r.rttm"], "pyannote-metrics"),
    ],
)
def test_eval_without_its_extra_says_how_to_install_it(
    blocked: str, args: list[str], named: str
) -> None:
    # A module set to None in sys.modules cannot be imported: as if not installed.
    done = python(
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"sys.argv = ['trax', 'eval', *{args!r}]\n"
        "from trax.cli import main\n"
        "main()\n"
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"error: trax eval needs {named}, which the default install leaves out: "
        "pip install 'trax[eval]' (or, in a checkout, uv sync --extra eval)\n"
    )


@pytest.mark.slow
def test_transcribe_imports_no_evaluation_packages(tmp_path: Path) -> None:
    done = python(
        "import sys\n"
        "from trax.cli import main\n"
        f"sys.argv = ['trax', 'transcribe', {str(JFK)!r}, '-f', 'none', '-q']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "heavy = ('pandas', 'scipy', 'sklearn', 'pyannote', 'jiwer', 'whisper_normalizer')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n",
        env={"TRAX_DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert (tmp_path / "data" / "trax.db").is_file()  # it did transcribe and store
