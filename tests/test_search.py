"""Search on both databases: real speech, phrases, versions, hostile queries, same hits."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.conftest import POSTGRES_ADMIN_URL, empty_tables
from tests.mediafiles import AUDIO, JFK
from trax.cli import cli
from trax.core import MediaInfo, Segment, Transcript, TranscriptionSettings
from trax.service import TranscriptionService
from trax.store import Database, SqlTranscriptStore
from trax.store.search import (
    MAX_SEGMENT_TOKENS,
    SearchHit,
    index_text,
    parse_query,
    search,
    tokens,
)

DATA = Path(__file__).parent / "data"
REFERENCES = dict(
    line.split("\t", 1)
    for line in (AUDIO / "references.tsv").read_text(encoding="utf-8").splitlines()
    if line.strip()
)
# LJ Speech reference transcripts (public domain), as in the shared corpus.
LJ = [
    REFERENCES["LJ001-0001"],
    "in being comparatively modern.",
    "For although the Chinese took impressions from wood blocks engraved in relief for "
    "centuries before the woodcutters of the Netherlands, by a similar process",
    "produced the block books, which were the immediate predecessors of the true printed book,",
    "the invention of movable metal letters in the middle of the fifteenth century may justly "
    "be considered as the invention of the art of printing.",
    'the earliest book printed with movable types, the Gutenberg, or "forty-two line Bible" '
    "of about fourteen fifty-five,",
    "Printing, then, for our purpose, may be considered as the art of making books by means "
    "of movable types.",
]
# Other languages and scripts, the way Whisper writes them.
WORLD = [
    "Die Straße nach Zürich ist im Winter oft gesperrt.",
    "Le café de la gare ouvre à six heures, même le dimanche.",
    "日本語のテキストには単語の間に空白がありません。",
    "हिन्दी भारत की एक प्रमुख भाषा है।",
    "Мы встретимся в 1080p-формате, не раньше 9:30.",
    "Thanks 🙏 — that's the e-mail from 2024, isn't it?",
]
HOSTILE = [
    '"',
    '""',
    "*",
    "NEAR(",
    "NEAR(a b, 2)",
    "a AND",
    "AND",
    ":",
    "tokens:printing",
    "^printing",
    "-",
    "--",
    "OR",
    "OR OR",
    "(",
    ")(",
    "'; DROP TABLE segments; --",
    "\\",
    "%_",
    "😀",
    "🙏",
    "\x00",
    "\u200b",
    "-printing",
    '-"movable types"',
    'printing -"',
    '"printing',
    "printing*",
    "print* OR",
    "a" * 3000,
]


def clip(name: str) -> MediaInfo:
    sha = hashlib.sha256(name.encode()).hexdigest()
    return MediaInfo(f"/recordings/{name}", 48_000, sha, 60.0, "flac", "flac", 16_000, 1)


def transcript(name: str, sentences: list[str], speakers: tuple[str, ...] = ()) -> Transcript:
    """One segment per sentence, 5 s apart, speakers taking turns if given."""
    segments = tuple(
        Segment(
            start=5.0 * i,
            end=5.0 * i + 4.5,
            text=" " + sentence,
            speaker=speakers[i % len(speakers)] if speakers else None,
        )
        for i, sentence in enumerate(sentences)
    )
    return Transcript(
        media=clip(name),
        segments=segments,
        language="en",
        language_probability=0.99,
        settings=TranscriptionSettings(),
        model_id="tiny.en@sha256:test",
    )


def fill(database: Database) -> dict[str, Transcript]:
    """The same small library in any database: names → saved transcripts."""
    store = SqlTranscriptStore(database)
    jfk = [part.strip() for part in REFERENCES["jfk"].split(",")]
    return {
        "lj": store.save(transcript("lj.wav", LJ)),
        "interview": store.save(
            transcript(
                "interview.wav",
                [REFERENCES["LDC93S1"], REFERENCES["1089-134686-0000"], *LJ[:2]],
                speakers=("SPEAKER_00", "SPEAKER_01"),
            )
        ),
        "jfk": store.save(transcript("jfk-notes.wav", jfk, speakers=("JFK",))),
        "world": store.save(transcript("world.wav", WORLD)),
    }


def segment_count(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM segments")).scalar_one())


def current_ids(database: Database) -> list[int]:
    with database.engine.connect() as conn:
        rows = conn.execute(text("SELECT id FROM transcripts WHERE is_current ORDER BY id"))
        return [r[0] for r in rows]


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A PostgreSQL database of its own (the session's is emptied by other tests)."""
    import psycopg

    name = f"trax_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def key(hit: SearchHit) -> tuple[object, ...]:
    return (hit.transcript_id, hit.position, hit.start, hit.end, hit.text, hit.snippet)


# --------------------------------------------------------------------------- real speech


def test_phrase_spoken_in_a_recording_is_found_in_its_time_range(
    service: TranscriptionService, database: Database
) -> None:
    first, _ = service.transcribe(JFK, TranscriptionSettings())
    assert first.id is not None
    (hit,) = search(database, '"ask not what your country"')
    assert (hit.transcript_id, hit.path) == (first.id, first.media.path)
    assert 0.0 <= hit.start < hit.end <= first.duration_s <= 11.5
    spoken = first.segments[hit.position]
    assert (hit.start, hit.end, hit.text) == (spoken.start, spoken.end, spoken.text)
    assert "**ask not what your country**" in hit.snippet
    # Hits are in spoken order within the recording, and cover every segment saying it.
    said = [i for i, s in enumerate(first.segments) if "country" in s.text]
    assert sorted(h.position for h in search(database, "country")) == said

    # Transcribing the file again (as --force does) replaces it in search.
    second = SqlTranscriptStore(database).save(replace(first, id=None, created_at=None))
    assert second.id is not None and second.id > first.id
    assert [h.transcript_id for h in search(database, '"ask not"')] == [second.id]
    both = search(database, '"ask not"', all_versions=True)
    assert [h.transcript_id for h in both] == [second.id, first.id]  # newest first on a tie


# --------------------------------------------------------------------------- query syntax


def test_words_phrases_alternatives_and_exclusions(database: Database) -> None:
    saved = fill(database)
    lj, interview = saved["lj"].id, saved["interview"].id

    def found(query: str) -> list[tuple[int | None, int]]:
        return sorted((h.transcript_id, h.position) for h in search(database, query, limit=100))

    assert found("greasy wash") == [(interview, 0)]
    assert found('"wash water"') == [(interview, 0)]
    assert found('"water wash"') == []
    assert found("turnips OR woodcutters") == [(lj, 2), (interview, 1)]
    assert found("turnips | woodcutters") == found("turnips OR woodcutters")
    assert found("turnips or woodcutters") == []  # lower-case "or" is a word
    assert found("movable AND types") == found("movable types") == [(lj, 5), (lj, 6)]
    assert found("movable") == [(lj, 4), (lj, 5), (lj, 6)]
    assert found('movable -"movable types"') == [(lj, 4)]
    assert found("movable -types -letters") == []
    assert found("movable types OR stew") == [(lj, 5), (lj, 6), (interview, 1)]
    assert found("MOVABLE Types") == found("movable types")
    # Words of other scripts, with case and compatibility forms folded.
    world = saved["world"].id
    assert found("ZÜRICH") == [(world, 0)]
    assert found("zurich") == []  # accents count: Zürich is not Zurich
    assert found("strasse") == [(world, 0)]  # ß folds to ss
    assert found("テキスト") == [(world, 2)]  # inside a sentence without spaces
    assert found("हिन्दी") == [(world, 3)]
    assert found("1080p") == [(world, 4)]
    assert found("e-mail") == found('"e mail"') == [(world, 5)]


def test_snippets_mark_the_matched_words_in_the_original_text(database: Database) -> None:
    saved = fill(database)
    (hit,) = search(database, "greasy wash")
    assert hit.snippet == "She had your dark suit in **greasy wash** water all year."
    (hit,) = search(database, "zürich STRASSE")
    assert hit.snippet == "Die **Straße** nach **Zürich** ist im Winter oft gesperrt."
    (hit,) = search(database, '"line bible"')
    assert '"forty-two **line Bible**"' in hit.snippet
    assert hit.text == " " + LJ[5]  # the stored text itself is untouched
    assert hit.transcript_id == saved["lj"].id


def test_speaker_filter_and_limit(database: Database) -> None:
    saved = fill(database)
    everyone = search(database, "printing OR modern OR greasy OR stew", limit=100)
    assert {h.speaker for h in everyone} == {None, "SPEAKER_00", "SPEAKER_01"}
    first = search(database, "printing OR modern OR greasy OR stew", speaker="SPEAKER_00")
    assert first and {h.speaker for h in first} == {"SPEAKER_00"}
    assert {h.transcript_id for h in first} == {saved["interview"].id}
    assert search(database, "greasy", speaker="speaker_00") == []  # labels are exact
    assert search(database, "greasy", speaker="SPEAKER_01") == []
    ranked = search(database, "printing OR modern", limit=1000)
    assert len(ranked) == 6
    for limit in (1, 2, 3, 5):  # the order is total, so a limit keeps a prefix
        assert search(database, "printing OR modern", limit=limit) == ranked[:limit]
    assert search(database, "printing", limit=0) == []


def test_only_the_newest_transcript_of_a_file_is_searched(database: Database) -> None:
    store = SqlTranscriptStore(database)
    old = store.save(transcript("talk.wav", [REFERENCES["LDC93S1"]]))
    other = store.save(transcript("other.wav", [REFERENCES["LDC93S1"]]))
    new = store.save(transcript("talk.wav", [REFERENCES["1089-134686-0000"]]))
    assert current_ids(database) == [other.id, new.id]
    assert [h.transcript_id for h in search(database, "greasy")] == [other.id]
    every = search(database, "greasy", all_versions=True)
    assert sorted(h.transcript_id for h in every) == [old.id, other.id]
    assert [h.transcript_id for h in search(database, "turnips")] == [new.id]


def test_deleting_a_file_removes_its_segments_from_search(database: Database) -> None:
    fill(database)
    assert search(database, "greasy")
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM media_files WHERE path = '/recordings/interview.wav'"))
    assert search(database, "greasy", all_versions=True) == []
    assert segment_count(database) == len(LJ) + 3 + len(WORLD)
    if database.dialect == "sqlite":  # the trigger keeps FTS5 in step
        with database.engine.connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM segments_fts")).scalar_one()
        assert rows == segment_count(database)


# --------------------------------------------------------------------------- hostile input


def test_hostile_queries_never_fail_and_find_only_words(database: Database) -> None:
    fill(database)
    before = segment_count(database)
    for query in HOSTILE:
        hits = search(database, query, limit=100)
        assert isinstance(hits, list), query
        if not parse_query(query).branches:
            assert hits == [], query
    assert segment_count(database) == before
    # Punctuation and operators are not words; exclusions alone find nothing.
    for query in ('"', "*", ":", "-", "OR", "😀", "", "   ", "-printing", '-"movable types"'):
        assert search(database, query) == [], query
    # An operator spelled as a word is just that word.
    assert search(database, "NEAR(") == []
    assert [h.position for h in search(database, "print* OR")] == []
    assert len(search(database, "printing*", limit=100)) == 4


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=st.text(st.characters(codec="utf-8"), max_size=500))
def test_any_text_is_a_valid_query(database: Database, query: str) -> None:
    hits = search(database, query)
    assert hits == [] or parse_query(query).branches


# --------------------------------------------------------------------------- both engines


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[list[Database]]:
    """The same library in a SQLite file and in a PostgreSQL database of its own."""
    sqlite = Database(f"sqlite:///{tmp_path_factory.mktemp('twins') / 'trax.db'}")
    with fresh_postgres() as url:
        postgres = Database(url)
        for database in (sqlite, postgres):
            fill(database)
            store = SqlTranscriptStore(database)
            store.save(transcript("lj.wav", LJ[::-1]))  # a newer version of lj.wav
        yield [sqlite, postgres]
        postgres.dispose()
    sqlite.dispose()


def library_queries() -> list[str]:
    texts = LJ + WORLD + list(REFERENCES.values())
    words = sorted({w for t in texts for w in t.split()})
    pairs = [" ".join(t.split()[i : i + 2]) for t in texts for i in range(0, len(t.split()), 3)]
    return [
        *words,
        *(f'"{p}"' for p in pairs),
        *(f"{a} OR {b}" for a, b in zip(words[::7], words[3::7], strict=False)),
        *(f"{a} -{b}" for a, b in zip(words[::5], words[1::5], strict=False)),
        *HOSTILE,
    ]


def test_same_hits_on_sqlite_and_postgresql(twins: list[Database]) -> None:
    sqlite, postgres = twins
    queries = library_queries()
    found = 0
    for all_versions in (False, True):
        for query in queries:
            a = search(sqlite, query, limit=1000, all_versions=all_versions)
            b = search(postgres, query, limit=1000, all_versions=all_versions)
            assert sorted(map(key, a)) == sorted(map(key, b)), query
            found += len(a)
    assert found > len(queries)  # the comparison is over real hits, not empty lists


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.lists(
        st.sampled_from(["printing", "movable", "art", "the", "of", "OR", "-", '"', "zürich"])
        | st.text(st.characters(codec="utf-8"), max_size=8),
        max_size=8,
    ).map(" ".join)
)
def test_same_hits_for_any_query(twins: list[Database], query: str) -> None:
    sqlite, postgres = twins
    a, b = search(sqlite, query, limit=1000), search(postgres, query, limit=1000)
    assert sorted(map(key, a)) == sorted(map(key, b))


def test_both_engines_index_exactly_the_python_tokens(twins: list[Database]) -> None:
    sqlite, postgres = twins
    with sqlite.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, text FROM segments")).all()
        texts: dict[int, str] = {rowid: segment for rowid, segment in rows}
        conn.execute(
            text("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, segments_fts, instance)")
        )
        fts5: dict[int, list[tuple[int, str]]] = {}
        for rowid, term, offset in conn.execute(text("SELECT doc, term, offset FROM vocab")):
            fts5.setdefault(rowid, []).append((offset, term))
    with postgres.engine.connect() as conn:
        lexemes: dict[int, list[tuple[int, str]]] = {}
        for rowid, lexeme, positions in conn.execute(
            text("SELECT s.id, u.lexeme, u.positions FROM segments s, unnest(s.tsv) u")
        ):
            lexemes.setdefault(rowid, []).extend((p - 1, lexeme) for p in positions)
    assert len(texts) == len(LJ) * 2 + 4 + 3 + len(WORLD)
    for rowid, segment in texts.items():
        expected = tokens(segment)[:MAX_SEGMENT_TOKENS]
        assert [t for _, t in sorted(fts5.get(rowid, []))] == expected, segment
        assert [t for _, t in sorted(lexemes.get(rowid, []))] == expected, segment


@pytest.fixture(scope="module")
def postgres_engine(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    yield database
    database.dispose()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sample=st.text(st.characters(codec="utf-8"), max_size=300))
@example(sample="1e5x 2E9a 0x1f 3.5e7b 12abc")  # PostgreSQL's parser reads "1e5" as a number
@example(sample="हिन्दी ไทย 日本語 ½ ﬁ ①")
def test_engines_split_any_text_only_where_python_does(
    postgres_engine: Database, sample: str
) -> None:
    expected = tokens(sample)[:MAX_SEGMENT_TOKENS]
    line = index_text(sample)
    memory = sqlite3.connect(":memory:")
    memory.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='unicode61 remove_diacritics 0')")
    memory.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
    memory.execute("INSERT INTO t (x) VALUES (?)", (line,))
    assert [r[0] for r in memory.execute("SELECT term FROM v ORDER BY offset")] == expected
    memory.close()
    with postgres_engine.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT lexeme, positions FROM unnest(to_tsvector('simple', :line))"),
            {"line": line},
        ).all()
    assert [t for _, t in sorted((p, t) for t, ps in rows for p in ps)] == expected


# --------------------------------------------------------------------------- concurrency


def test_concurrent_saves_of_one_file_leave_the_newest_current(postgres_url: str) -> None:
    database = Database(postgres_url)
    empty_tables(database)
    store = SqlTranscriptStore(database)
    store.save(transcript("meeting.wav", [REFERENCES["LDC93S1"]]))
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def save_three() -> None:
        try:
            start.wait()
            for _ in range(3):
                store.save(transcript("meeting.wav", [REFERENCES["LDC93S1"]]))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save_three) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.engine.connect() as conn:
        newest = conn.execute(text("SELECT max(id) FROM transcripts")).scalar_one()
    assert current_ids(database) == [newest] and newest == 25
    assert [h.transcript_id for h in search(database, "greasy")] == [newest]
    database.dispose()


# --------------------------------------------------------------------------- migration


def _old_database(kind: str, tmp_path: Path) -> Iterator[Database]:
    if kind == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'old.db'}")
        yield database
        database.dispose()
        return
    with fresh_postgres() as url:
        database = Database(url)
        yield database
        database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database that nothing has upgraded yet."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")  # skips when PostgreSQL is not there
    yield from _old_database(request.param, tmp_path)


def _migrate(database: Database, revision: str, down: bool = False) -> None:
    from alembic import command

    from trax.store.migrate import alembic_config

    config = alembic_config(database)
    with database.engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_upgrade_indexes_transcripts_stored_before_search(old_database: Database) -> None:
    database = old_database
    _migrate(database, "0003")
    payload = json.loads((DATA / "payload_v1.json").read_text())
    media = payload["media"]
    jsonb = "CAST(:{} AS jsonb)" if database.dialect == "postgresql" else ":{}"
    documents = ("settings", "stage_versions", "segments", "metrics", "timings")
    columns = (
        "media_id, schema_version, pipeline, model_id, settings_key, language, "
        "language_probability, text, created_at, " + ", ".join(documents)
    )
    values = ":media_id, 1, 'v1', :model_id, :key, 'en', 1.0, :text, :created_at, " + ", ".join(
        jsonb.format(d) for d in documents
    )
    older = [{**payload["segments"][0], "text": " " + REFERENCES["LDC93S1"]}]
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO media_files (sha256, path, size_bytes, duration_s, container, "
                "audio_codec, sample_rate, channels, created_at) VALUES (:sha256, :path, "
                ":size_bytes, :duration_s, :container, :audio_codec, :sample_rate, :channels, "
                ":created_at)"
            ),
            [
                media | {"created_at": payload["created_at"]},
                media
                | {"sha256": "b" * 64, "path": "/old/other.flac"}
                | {"created_at": payload["created_at"]},
            ],
        )
        for media_id, segments in ((1, older), (2, older), (1, payload["segments"])):
            conn.execute(
                text(f"INSERT INTO transcripts ({columns}) VALUES ({values})"),
                {
                    "media_id": media_id,
                    "model_id": payload["model_id"],
                    "key": "k" * 64,
                    "text": " ".join(s["text"] for s in segments),
                    "created_at": payload["created_at"],
                    "settings": json.dumps(payload["settings"]),
                    "stage_versions": json.dumps(payload["stage_versions"]),
                    "segments": json.dumps(segments),
                    "metrics": json.dumps({}),
                    "timings": json.dumps(payload["timings"]),
                },
            )

    database.ensure_schema()  # what the first command after an upgrade of Trax does
    old = SqlTranscriptStore(database).get(3)  # a schema-1 row reads as schema 2
    assert old is not None and old.text.startswith("And so my fellow Americans")
    # (as a set: JSONB keeps no key order, so a schema-1 map read from PostgreSQL has none)
    assert {r.name: r.version for r in old.stages} == payload["stage_versions"]
    assert old.skipped == () and old.edits == ()
    (hit,) = search(database, '"ask not what your country"')
    assert (hit.transcript_id, hit.path, hit.position) == (3, media["path"], 0)
    assert (hit.start, hit.end) == (0.0, 10.49)
    assert current_ids(database) == [2, 3]
    assert sorted(h.transcript_id for h in search(database, "greasy", all_versions=True)) == [
        1,
        2,
    ]
    assert [h.transcript_id for h in search(database, "greasy")] == [2]
    assert segment_count(database) == 3
    if database.dialect == "postgresql":  # no pending list for every search to read
        with database.engine.connect() as conn:
            options = conn.execute(
                text("SELECT reloptions FROM pg_class WHERE relname = 'ix_segments_tsv'")
            ).scalar_one()
        assert options == ["fastupdate=off"]

    # And back: nothing of search is left, and it can come again.
    _migrate(database, "0003", down=True)
    with database.engine.connect() as conn:
        columns_left = conn.execute(text("SELECT * FROM transcripts")).keys()
        assert "is_current" not in columns_left
        for table in ("segments", "segments_fts"):
            with pytest.raises(DBAPIError, match=table):
                conn.execute(text(f"SELECT * FROM {table}"))
            conn.rollback()
    _migrate(database, "0004")
    assert [h.transcript_id for h in search(database, "greasy")] == [2]


# --------------------------------------------------------------------------- CLI


def run(db_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", db_url, "search", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_prints_hits_and_json(db_url: str) -> None:
    database = Database(db_url)
    saved = fill(database)
    database.dispose()
    code, out, err = run(db_url, '"greasy wash"')
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines == [
        f"/recordings/interview.wav  [0:00 → 0:04]  SPEAKER_00  #{saved['interview'].id}",
        "    She had your dark suit in **greasy wash** water all year.",
    ]

    code, out, _ = run(db_url, "printing", "OR", "modern", "--json", "--limit", "2")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2
    assert {"transcript_id", "path", "start", "end", "speaker", "text", "snippet"} <= set(rows[0])
    assert all("**" in r["snippet"] for r in rows)

    code, out, _ = run(db_url, "modern", "--speaker", "SPEAKER_01", "--json")
    assert [(r["path"], r["speaker"]) for r in json.loads(out)] == [
        ("/recordings/interview.wav", "SPEAKER_01")
    ]

    code, out, err = run(db_url, "--", "-printing")
    assert (code, out, err.strip()) == (0, "", "no matches")
    code, out, err = run(db_url, "'; DROP TABLE segments; --")
    assert (code, out, err.strip()) == (0, "", "no matches")


def test_cli_searches_older_versions_on_request(db_url: str) -> None:
    database = Database(db_url)
    store = SqlTranscriptStore(database)
    old = store.save(transcript("talk.wav", [REFERENCES["LDC93S1"]]))
    store.save(transcript("talk.wav", [REFERENCES["jfk"]]))
    database.dispose()
    assert run(db_url, "greasy")[1] == ""
    code, out, _ = run(db_url, "greasy", "--all-versions")
    assert code == 0 and out.splitlines()[0].endswith(f"#{old.id}")
