"""Pipeline v2 and ``trax enhance`` end to end: real audio, a real database, the CLI,
and a real chat-completions server on 127.0.0.1 (``tests/llm_server``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.llm_server import LLMServer, Reply, Request, edits_reply, error_reply
from tests.mediafiles import JFK
from tests.test_llm import FLOUR, KEY, PRICES, RECIPE, SOURCE, make_transcript
from trax.asr import FasterWhisperTranscriber
from trax.cli import cli
from trax.core import TranscriptionSettings
from trax.pipeline import build, describe
from trax.store import Database, SqlTranscriptStore
from trax.store.cache import SqlStageCache

V2 = TranscriptionSettings(pipeline="v2")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    """The server, configured as the LLM endpoint through the environment."""
    with LLMServer() as running:
        monkeypatch.setenv("TRAX_LLM_BASE_URL", running.url)
        monkeypatch.setenv("TRAX_LLM_API_KEY", KEY)
        monkeypatch.setenv("TRAX_LLM_MODEL", "test-model")
        monkeypatch.setenv("TRAX_LLM_DEADLINE_S", "5")
        monkeypatch.setenv("TRAX_LLM_PRICES", json.dumps(PRICES))
        monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
        yield running


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAX_LLM_API_KEY", raising=False)
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    monkeypatch.setenv("TRAX_CONFIG", "/nonexistent/trax.toml")


def capitalise_last_word(request: Request) -> Reply:
    """A good edit wherever the words are: the first segment's last word in capitals."""
    segment = request.editable()[0]
    last = len(segment["w"]) - 1
    word = segment["w"][last]
    return edits_reply([[segment["s"], last, word, word.upper()]])


def invoke(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args], catch_exceptions=False)


def test_v2_runs_v1_then_enhance_on_real_audio(
    server: LLMServer, transcriber: FasterWhisperTranscriber, tmp_path: Path
) -> None:
    server.default = capitalise_last_word
    database = Database(f"sqlite:///{tmp_path / 'trax.db'}")
    database.ensure_schema()
    v1 = build(TranscriptionSettings(), transcriber).run(JFK)
    pipeline = build(V2, transcriber)
    v2 = pipeline.run(JFK, cache=SqlStageCache(database))
    assert [r.name for r in v2.stages] == [*(r.name for r in v1.stages), "enhance"]
    enhance = v2.stages[-1]
    assert enhance.settings["model"] == "test-model" and enhance.settings["prompt"]
    assert v2.text != v1.text and v2.text.lower() == v1.text.lower()
    assert v2.segments[0].words[-1].text.isupper()
    (edit,) = v2.edits
    assert edit.status == "accepted" and edit.kind == "casing"
    assert v2.usage["llm_requests"] == 1 and v2.skipped == ()
    assert [w.start for w in v2.words] == [w.start for w in v1.words]
    database.dispose()


def test_v2_without_a_key_stores_the_v1_text_and_says_why(
    no_key: None, transcriber: FasterWhisperTranscriber
) -> None:
    infos = {i.name: i for i in describe()}
    assert infos["v2"].available  # enhancement is optional: v2 still runs
    enhance = infos["v2"].stages[-1]
    assert enhance.name == "enhance" and not enhance.available and enhance.optional
    assert "needs an API key" in enhance.reason
    v1 = build(TranscriptionSettings(), transcriber).run(JFK)
    v2 = build(V2, transcriber).run(JFK)
    assert v2.text == v1.text and "enhance" not in [r.name for r in v2.stages]
    (skipped,) = v2.skipped
    assert skipped.name == "enhance"
    assert skipped.reason == "needs an API key (set TRAX_LLM_API_KEY or DEEPSEEK_API_KEY)"


def test_trax_enhance_upgrades_a_stored_v1_transcript(server: LLMServer, db_url: str) -> None:
    database = Database(db_url)
    store = SqlTranscriptStore(database)
    stored = store.save(make_transcript(RECIPE))
    assert stored.id is not None
    server.default = edits_reply([FLOUR, SOURCE])
    result = invoke(db_url, "enhance", str(stored.id))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        f"#{stored.id} → #{stored.id + 1}  1 edits accepted, 1 rejected"
    )
    upgraded = store.get(stored.id + 1)
    assert upgraded is not None and upgraded.settings.pipeline == "v2"
    assert "flour" in upgraded.text and "sauce" in upgraded.text
    assert [r.name for r in upgraded.stages][-1] == "enhance"
    assert [(e.after, e.status) for e in upgraded.edits] == [
        ("flour", "accepted"),
        ("source", "rejected"),
    ]
    usage = store.get(stored.id + 1).usage  # type: ignore[union-attr]
    assert usage["llm_requests"] == 1 and usage["llm_cost_usd"] > 0
    original = store.get(stored.id)
    assert original is not None and "flower" in original.text  # the v1 version stays
    shown = invoke(db_url, "show", str(stored.id + 1)).stdout
    assert "  cost $0.0001 (1,050 LLM tokens, 600 from the prompt cache; 1 requests)" in shown
    assert "  edits 1 accepted, 1 rejected (--changes lists them)" in shown
    changes = invoke(db_url, "show", "--changes", str(stored.id + 1)).stdout.splitlines()
    assert changes[-2:] == [
        "[0:02 → 0:02] accepted enhance/mishearing: 'flower' → 'flour'",
        "[0:03 → 0:03] rejected enhance/mishearing: 'sauce' → 'source'  (changes words the "
        "recogniser was sure of (p=0.98 ≥ 0.6) and no glossary term)",
    ]
    as_json = json.loads(invoke(db_url, "show", "--json", str(stored.id + 1)).stdout)
    assert as_json["usage"]["llm_cost_usd"] == usage["llm_cost_usd"]
    assert as_json["edits"][1]["status"] == "rejected"
    # Again: nothing new is asked or stored, from the v1 id or the v2 one.
    for again in (stored.id, stored.id + 1):
        repeat = invoke(db_url, "enhance", str(again))
        assert "already enhanced" in repeat.stdout and len(server.requests) == 1
    # --force asks again, but the answer is cached: no cost.
    forced = invoke(db_url, "enhance", "--force", "--json", str(stored.id))
    (row,) = json.loads(forced.stdout)
    assert row["id"] == stored.id + 2 and row["usage"]["llm_cost_usd"] == 0
    assert len(server.requests) == 1
    database.dispose()


def test_trax_enhance_failures_are_one_line_and_store_nothing(
    server: LLMServer, db_url: str
) -> None:
    database = Database(db_url)
    store = SqlTranscriptStore(database)
    stored = store.save(make_transcript(RECIPE))
    assert stored.id is not None
    server.default = error_reply(402, "Insufficient Balance")
    result = invoke(db_url, "enhance", str(stored.id), "999")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: #{stored.id}: not enhanced, v1 text kept: LLM API account has no balance "
        "(402) (Insufficient Balance): top it up to enhance",
        "error: #999: no transcript with id 999",
    ]
    assert store.get(stored.id + 1) is None
    database.dispose()


def test_trax_enhance_without_a_key_refuses_before_any_work(no_key: None, db_url: str) -> None:
    result = invoke(db_url, "enhance", "1")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: enhancement needs an API key (set TRAX_LLM_API_KEY or DEEPSEEK_API_KEY)"
    )


def test_the_api_key_never_appears_in_logs_errors_rows_or_exports(
    server: LLMServer,
    db_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sqlalchemy import inspect, text

    caplog.set_level(logging.DEBUG)
    database = Database(db_url)
    store = SqlTranscriptStore(database)
    first = store.save(make_transcript(RECIPE))
    second = store.save(make_transcript([[("sauce", 0.3), ("is", 0.9)]], sha="d" * 64))
    assert first.id is not None
    # The server quotes the key back, as some do in their 401s.
    server.script = [edits_reply([FLOUR]), error_reply(401, f"Incorrect API key {KEY}")]
    result = invoke(db_url, "-vv", "enhance", str(first.id), str(second.id))
    seen = [result.stdout, result.stderr, caplog.text]
    out = tmp_path / "exports"
    export = invoke(db_url, "export", str(first.id + 2), "-f", "all", "-o", f"{out}/")
    assert export.exit_code == 0, export.output
    seen += [p.read_text() for p in out.iterdir()]
    seen.append(invoke(db_url, "show", "--json", str(first.id + 2)).stdout)
    seen.append(invoke(db_url, "config").stdout + invoke(db_url, "config", "--json").stdout)
    with database.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            seen.append(repr(conn.execute(text(f"SELECT * FROM {table}")).all()))
    assert "Incorrect API key ***" in result.stderr  # what the server said, key masked
    assert "LLM API refused the key (401)" in result.stderr
    assert all(KEY not in part for part in seen)
    assert "flour" in (store.get(first.id + 2) or make_transcript([])).text
    database.dispose()


def test_v2_settings_change_the_dedup_key(
    server: LLMServer, transcriber: FasterWhisperTranscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = build(V2, transcriber).key
    monkeypatch.setenv("TRAX_LLM_MODEL", "another-model")
    assert build(V2, transcriber).key != base
    monkeypatch.setenv("TRAX_LLM_MODEL", "test-model")
    assert build(replace(V2, hotwords="Trax, DeepSeek"), transcriber).key != base
    assert build(V2, transcriber).key == base
