"""The stage cache: expiry, stats, clear, prune, and reuse of ASR results."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from tests.mediafiles import JFK
from trax.asr import FasterWhisperTranscriber
from trax.cli import cli
from trax.core import TranscriptionSettings
from trax.payload import segment_to_dict
from trax.pipeline import Pipeline
from trax.store import Database, SqlTranscriptStore
from trax.store.cache import SqlStageCache


def test_get_put_expiry_and_housekeeping(database: Database) -> None:
    cache = SqlStageCache(database)
    cache.put("asr", "k1", {"segments": [1, 2]})
    cache.put("asr", "old", [1], ttl=timedelta(seconds=-1))  # already expired
    cache.put("llm", "p1", "answer")
    assert cache.get("asr", "k1") == {"segments": [1, 2]}
    assert cache.get("asr", "k1") is not None
    assert cache.get("asr", "old") is None  # expired is a miss
    assert cache.get("asr", "nope") is None
    stats = {s.namespace: s for s in cache.stats()}
    assert (stats["asr"].entries, stats["asr"].expired, stats["asr"].hits) == (2, 1, 2)
    assert stats["asr"].size_bytes == len('{"segments":[1,2]}') + len("[1]")
    cache.put("asr", "k1", {"segments": []})  # replacing keeps one entry
    assert cache.get("asr", "k1") == {"segments": []}
    assert cache.prune() == 1
    assert cache.clear("llm") == 1
    assert [s.namespace for s in cache.stats()] == ["asr"]
    assert cache.clear() == 1 and cache.stats() == []


def test_asr_result_is_reused_when_the_transcript_is_gone(
    database: Database, transcriber: FasterWhisperTranscriber
) -> None:
    cache = SqlStageCache(database)
    pipeline = Pipeline(
        TranscriptionSettings(), SqlTranscriptStore(database), transcriber=transcriber, cache=cache
    )
    first, _ = pipeline.transcribe(JFK)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM transcripts"))
    again, cached = pipeline.transcribe(JFK)
    assert not cached  # a new transcript row…
    # …from the cached ASR result (stored at the payload's precision).
    assert [segment_to_dict(s) for s in again.segments] == [
        segment_to_dict(s) for s in first.segments
    ]
    assert again.timings["asr_s"] == 0.0 and first.timings["asr_s"] > 0.0
    forced, _ = pipeline.transcribe(JFK, force=True)
    assert forced.timings["asr_s"] > 0.0  # --force decodes again
    other = Pipeline(
        TranscriptionSettings(beam_size=1),
        SqlTranscriptStore(database),
        transcriber=transcriber,
        cache=cache,
    )
    assert other.transcribe(JFK)[0].timings["asr_s"] > 0.0  # other settings, other key


def test_cache_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["--db", url, "transcribe", str(JFK), "-f", "none", "-q"]).exit_code == 0
    )
    stats = json.loads(runner.invoke(cli, ["--db", url, "cache", "stats", "--json"]).stdout)
    assert [(s["namespace"], s["entries"]) for s in stats] == [("asr", 1)]
    table = runner.invoke(cli, ["--db", url, "cache", "stats"])
    assert table.stdout.splitlines()[1].split()[:3] == ["asr", "1", "0"]
    assert "expire after 30 days" in table.stderr
    assert "removed 0 expired" in runner.invoke(cli, ["--db", url, "cache", "prune"]).stderr
    assert "removed 1 cache" in runner.invoke(cli, ["--db", url, "cache", "clear"]).stderr
