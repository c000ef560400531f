"""The stage cache: expiry, stats, clear, prune, and reuse of ASR results."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from tests.mediafiles import JFK
from trax.asr import FasterWhisperTranscriber
from trax.cli import cli
from trax.core import TranscriptionSettings
from trax.payload import segment_to_dict
from trax.service import TranscriptionService
from trax.store import Database, SqlTranscriptStore
from trax.store.cache import SqlStageCache

V1 = TranscriptionSettings()


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


def test_recognition_is_reused_when_the_transcript_is_gone(
    database: Database, transcriber: FasterWhisperTranscriber
) -> None:
    cache = SqlStageCache(database)
    service = TranscriptionService(SqlTranscriptStore(database), cache, transcriber=transcriber)
    first, _ = service.transcribe(JFK, V1)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM transcripts"))
    again, cached = service.transcribe(JFK, V1)
    assert not cached  # a new transcript row…
    # …from the cached output of the audio stages (stored at the payload's precision).
    assert [segment_to_dict(s) for s in again.segments] == [
        segment_to_dict(s) for s in first.segments
    ]
    assert "recognise_s" not in again.timings and first.timings["recognise_s"] > 0.0
    assert again.stages == first.stages  # the record says which stages made it
    forced, _ = service.transcribe(JFK, V1, force=True)
    assert forced.timings["recognise_s"] > 0.0  # --force decodes again
    greedy = service.transcribe(JFK, replace(V1, beam_size=1))[0]
    assert greedy.timings["recognise_s"] > 0.0  # other stage settings, other key


def test_only_what_changes_a_stage_is_in_its_key(transcriber: FasterWhisperTranscriber) -> None:
    from trax.pipeline import build
    from trax.pipeline.stages import stage_key

    def keys(settings: TranscriptionSettings) -> list[str]:
        key, out = "0" * 64, []
        for stage in build(settings, transcriber).stages:
            key = stage_key(key, stage)
            out.append(key)
        return out

    base = keys(V1)
    assert keys(replace(V1, pipeline="v1")) == base
    prompt = keys(replace(V1, initial_prompt="Kennedy"))
    assert prompt[0] == base[0] and prompt[1] != base[1]  # VAD is untouched by a prompt
    assert keys(replace(V1, beam_size=1))[0] == base[0]


def test_cache_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["--db", url, "transcribe", str(JFK), "-f", "none", "-q"]).exit_code == 0
    )
    stats = json.loads(runner.invoke(cli, ["--db", url, "cache", "stats", "--json"]).stdout)
    assert [(s["namespace"], s["entries"]) for s in stats] == [("redecode", 1)]
    table = runner.invoke(cli, ["--db", url, "cache", "stats"])
    assert table.stdout.splitlines()[1].split()[:3] == ["redecode", "1", "0"]
    assert "expire after 30 days" in table.stderr
    assert "removed 0 expired" in runner.invoke(cli, ["--db", url, "cache", "prune"]).stderr
    assert "removed 1 cache" in runner.invoke(cli, ["--db", url, "cache", "clear"]).stderr
