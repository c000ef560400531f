"""Storage on both databases: dedup keys, JSONB, versions, migrations, old payloads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from trax.core import MediaInfo, Segment, StageRecord, Transcript, TranscriptionSettings, Word
from trax.payload import SCHEMA_VERSION, PayloadError, from_payload, to_payload
from trax.store import Database, DatabaseError, SqlTranscriptStore, transcript_metrics
from trax.store.migrate import HEAD_REVISION, current_revision, head_revision, upgrade

DATA = Path(__file__).parent / "data"


def make_transcript(sha: str = "a" * 64, text: str = "Hello there.") -> Transcript:
    words = (Word(0.5, 0.9, " Hello", 0.93), Word(0.9, 1.4, " there.", 0.81))
    media = MediaInfo("/audio/hello.wav", 1234, sha, 2.0, "wav", "pcm_s16le", 16000, 1)
    segment = Segment(0.5, 1.4, text, words, avg_logprob=-0.25, compression_ratio=0.9)
    return Transcript(
        media=media,
        segments=(segment,),
        language="en",
        language_probability=0.98,
        settings=TranscriptionSettings(),
        model_id="tiny.en@sha256:test",
        stages=(StageRecord("recognise", "x/1", {"model_id": "tiny.en@sha256:test"}),),
        timings={"total_s": 0.5},
    )


def test_save_then_find_and_get_round_trip(store: SqlTranscriptStore) -> None:
    original = make_transcript()
    saved = store.save(original)
    assert saved.id is not None and saved.created_at is not None
    found = store.find(original.media.sha256, original.key)
    assert found is not None and found.id == saved.id
    assert found.stages == original.stages
    assert found.segments == original.segments
    assert found.media == original.media
    assert (found.language, found.model_id, found.settings) == (
        "en",
        "tiny.en@sha256:test",
        original.settings,
    )
    assert store.get(saved.id) == found
    assert store.get(saved.id + 1000) is None


def test_other_stages_are_not_a_cache_hit(store: SqlTranscriptStore) -> None:
    original = make_transcript()
    store.save(original)
    other_model = StageRecord("recognise", "x/1", {"model_id": "tiny.en@sha256:other"})
    other_version = StageRecord("recognise", "x/2", {"model_id": "tiny.en@sha256:test"})
    for stages in ((other_model,), (other_version,), (*original.stages, other_version)):
        assert store.find(original.media.sha256, replace(original, stages=stages).key) is None
    assert store.find("b" * 64, original.key) is None


def test_same_content_shares_one_media_row_and_keeps_versions(
    store: SqlTranscriptStore, database: Database
) -> None:
    first = store.save(make_transcript(text="First take."))
    moved = replace(first.media, path="/elsewhere/renamed.wav")
    second = store.save(replace(make_transcript(text="Second take."), media=moved))
    with database.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM media_files")).scalar_one() == 1
        assert conn.execute(text("SELECT path FROM media_files")).scalar_one() == moved.path
    found = store.find(first.media.sha256, first.key)
    assert found is not None and found.id == second.id  # newest version wins
    assert [s.id for s in store.summaries()] == [second.id, first.id]


def test_summaries(store: SqlTranscriptStore) -> None:
    store.save(make_transcript())
    (summary,) = store.summaries()
    assert summary.words == 2 and summary.preview == "Hello there."
    assert summary.path == "/audio/hello.wav" and summary.pipeline == "v1"


def test_structured_columns_are_jsonb_on_postgresql(postgres_url: str) -> None:
    database = Database(postgres_url)
    SqlTranscriptStore(database).save(make_transcript(sha="c" * 64))
    with database.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT jsonb_typeof(segments), jsonb_typeof(metrics), "
                "segments->0->'words'->1->>'text', (metrics->>'words')::int "
                "FROM transcripts JOIN media_files m ON m.id = media_id "
                "WHERE m.sha256 = :sha"
            ),
            {"sha": "c" * 64},
        ).one()
    database.dispose()
    assert tuple(row) == ("array", "object", "there.", 2)


def test_metrics() -> None:
    metrics = transcript_metrics(make_transcript())
    assert metrics["words"] == 2 and metrics["segments"] == 1
    assert metrics["mean_word_probability"] == pytest.approx(0.87)
    assert metrics["speech_s"] == pytest.approx(0.9)


def test_migrations_head_matches_constant(database: Database) -> None:
    assert head_revision(database) == HEAD_REVISION
    database.ensure_schema()
    assert current_revision(database) == HEAD_REVISION
    assert upgrade(database) == (HEAD_REVISION, HEAD_REVISION)  # idempotent


def test_fresh_database_is_created_on_first_use(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'new.db'}"
    with pytest.raises(DatabaseError, match=r"database folder .*deep does not exist"):
        Database(url)  # a folder named in a URL is never made: it is likely a typo
    db = Database(url, create_folder=True)  # as the default location is
    assert not (tmp_path / "deep").exists()  # nothing until it is used
    assert SqlTranscriptStore(db).summaries() == []
    assert current_revision(db) == HEAD_REVISION
    assert (tmp_path / "deep" / "new.db").stat().st_mode & 0o777 == 0o600
    db.dispose()


def test_has_library_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "trax.db"
    db = Database(f"sqlite:///{path}")
    assert not db.has_library() and not path.exists()
    path.touch()  # an empty file is an empty library
    assert not db.has_library() and path.stat().st_size == 0
    SqlTranscriptStore(db).save(make_transcript())
    assert db.has_library()
    db.dispose()


def test_unreachable_database_is_one_line() -> None:
    db = Database("postgresql://nobody:secret@127.0.0.1:1/trax")
    with pytest.raises(DatabaseError) as caught:
        db.ensure_schema()
    message = str(caught.value)
    assert message.startswith("cannot open database postgresql+psycopg://nobody:***@127.0.0.1:1")
    assert "secret" not in message and "\n" not in message


def test_stored_v1_payload_fixture_still_loads() -> None:
    # A payload exactly as Trax wrote it at schema 1. Raising SCHEMA_VERSION
    # must come with an upgrade step that keeps this loading.
    payload = json.loads((DATA / "payload_v1.json").read_text())
    assert payload["schema_version"] == 1
    transcript = from_payload(payload)
    assert transcript.text.startswith("And so my fellow Americans")
    assert len(transcript.words) == 22 and transcript.words[0].speaker is None
    assert transcript.media.sha256 == payload["media"]["sha256"]
    # Schema 1 declared stage versions without settings; schema 2 keeps them as records.
    assert [(r.name, r.version, r.settings) for r in transcript.stages] == [
        ("media", "pyav-decode/1", {}),
        ("vad", "silero-vad-v6/1", {}),
        ("asr", "faster-whisper-batched+fallback/1", {}),
    ]
    assert transcript.skipped == () and transcript.edits == ()
    upgraded = to_payload(transcript)
    assert upgraded["schema_version"] == SCHEMA_VERSION == 3
    assert "stage_versions" not in upgraded
    assert upgraded["segments"][0]["words"][0]["speaker"] is None
    assert from_payload(json.loads(json.dumps(upgraded))) == transcript


def test_stored_v2_payload_fixture_still_loads() -> None:
    # Schema 2 kept Whisper's leading space in each word; schema 3 stores the word
    # alone and marks words written with no space before them as attached.
    payload = json.loads((DATA / "payload_v2.json").read_text())
    assert payload["schema_version"] == 2
    assert payload["segments"][0]["words"][1]["text"] == " so"
    transcript = from_payload(payload)
    assert transcript.words[1].text == "so" and not transcript.words[1].attached
    assert transcript.text == payload["text"]
    assert all(s.language is None for s in transcript.segments)
    upgraded = to_payload(transcript)
    assert upgraded["segments"][0]["words"][1] | {"start": 0, "end": 0} == {
        "start": 0,
        "end": 0,
        "text": "so",
        "probability": payload["segments"][0]["words"][1]["probability"],
        "speaker": None,
        "attached": False,
    }
    assert from_payload(json.loads(json.dumps(upgraded))) == transcript


def test_payload_from_the_future_is_refused() -> None:
    payload = to_payload(make_transcript()) | {"schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(PayloadError, match="newer than this Trax understands"):
        from_payload(payload)
    with pytest.raises(PayloadError, match="no integer schema_version"):
        from_payload({"segments": []})


def test_every_trax_error_is_one_family() -> None:
    from trax.asr import ModelError
    from trax.config import ConfigError
    from trax.errors import TraxError
    from trax.eval import EvalError
    from trax.jobs.queue import QueueError
    from trax.media import MediaError
    from trax.pipeline import PipelineError

    for error in (
        ModelError,
        ConfigError,
        EvalError,
        QueueError,
        MediaError,
        PipelineError,
        DatabaseError,
        PayloadError,
    ):
        assert issubclass(error, TraxError), error
