"""`trax transcribe --pipeline v2` from the command line: the glossary reaches the model,
cost is stored and shown, and a missing key is said once (a real local LLM server)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.llm_server import LLMServer
from tests.mediafiles import AUDIO, JFK
from tests.test_llm import KEY, PRICES
from trax.cli import cli


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    with LLMServer() as running:
        monkeypatch.setenv("TRAX_CONFIG", "/nonexistent/trax.toml")
        monkeypatch.setenv("TRAX_LLM_BASE_URL", running.url)
        monkeypatch.setenv("TRAX_LLM_API_KEY", KEY)
        monkeypatch.setenv("TRAX_LLM_MODEL", "test-model")
        monkeypatch.setenv("TRAX_LLM_PRICES", json.dumps(PRICES))
        monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
        yield running


def invoke(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args], catch_exceptions=False)


def test_v2_from_the_cli_sends_the_glossary_and_stores_the_cost(
    server: LLMServer, tmp_path: Path
) -> None:
    glossary = tmp_path / "terms.txt"
    glossary.write_text("# people\nKennedy\n\nPeace Corps  # a programme\n")
    db = f"sqlite:///{tmp_path / 't.db'}"
    out = tmp_path / "out"
    args = ["transcribe", str(JFK), "-p", "v2", "--glossary", str(glossary)]
    done = invoke(db, *args, "-f", "json", "-o", str(out))
    assert done.exit_code == 0, done.output
    (request,) = server.requests
    sent = json.dumps(request.body)
    assert "Kennedy" in sent and "Peace Corps" in sent and "a programme" not in sent
    assert KEY not in sent  # the key goes in the header only
    assert request.headers.get("Authorization") == f"Bearer {KEY}"
    [cost] = [line for line in done.stderr.splitlines() if line.startswith("LLM $")]
    exported = json.loads((out / "jfk.json").read_text())
    assert exported["usage"]["llm_requests"] == 1
    assert f"${exported['usage']['llm_cost_usd']:.4f}" in cost
    # Stored with the transcript (not only on the enhance path), and the terms with the batch.
    shown = json.loads(invoke(db, "show", "1", "--json").stdout)
    assert shown["usage"] == exported["usage"]
    assert shown["settings"]["glossary"] == ["Kennedy", "Peace Corps"]
    # The same command again reuses the stored transcript: the model is not asked again.
    assert invoke(db, *args, "-f", "none").exit_code == 0
    assert len(server.requests) == 1


def test_a_missing_key_is_said_once_for_the_whole_batch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRAX_CONFIG", "/nonexistent/trax.toml")
    monkeypatch.delenv("TRAX_LLM_API_KEY", raising=False)
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(JFK, folder / "jfk.flac")
    shutil.copy(AUDIO / "LDC93S1.wav", folder / "ldc.wav")
    db = f"sqlite:///{tmp_path / 't.db'}"
    done = invoke(db, "transcribe", str(folder), "-p", "v2", "-f", "none")
    assert done.exit_code == 0, done.output
    warnings = [line for line in done.stderr.splitlines() if "enhance is skipped" in line]
    assert len(warnings) == 1 and "API key" in warnings[0]
    assert "LLM $" not in done.stderr
    for transcript_id in ("1", "2"):
        stored = json.loads(invoke(db, "show", transcript_id, "--json").stdout)
        assert [s["name"] for s in stored["skipped"]] == ["enhance"]
        assert stored["usage"] == {}


def test_an_unreadable_glossary_is_refused_before_any_work(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    missing = tmp_path / "nope.txt"
    done = invoke(f"sqlite:///{db}", "transcribe", str(JFK), "-p", "v2", "--glossary", str(missing))
    assert done.exit_code == 2
    assert f"cannot read glossary {missing}" in done.output
    assert not db.exists()
