"""Languages are checked and normalised before any work: one line, exit 2, nothing touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.mediafiles import JFK
from trax.cli import cli
from trax.languages import LANGUAGES, LanguageError, checked_language, language_code


def test_the_table_is_whispers() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    assert set(LANGUAGES) == set(_LANGUAGE_CODES)


@pytest.mark.parametrize(
    ("given", "code"),
    [("de", "de"), ("DE", "de"), (" German ", "de"), ("english", "en"), ("Mandarin", "zh"),
     ("haitian creole", "ht"), ("HAW", "haw")],
)  # fmt: skip
def test_codes_and_names_in_any_case(given: str, code: str) -> None:
    assert language_code(given) == code


@pytest.mark.parametrize("given", ["xx", "", "klingon", "en-US"])
def test_unknown_languages_are_refused(given: str) -> None:
    with pytest.raises(LanguageError, match="unknown language"):
        language_code(given)


def test_english_only_models_refuse_other_languages() -> None:
    assert checked_language("English", "tiny.en") == "en"
    assert checked_language("German", "base") == "de"
    assert checked_language(None, "tiny.en") is None
    with pytest.raises(LanguageError, match=r"tiny\.en transcribes English only"):
        checked_language("de", "tiny.en")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-l", "xx"], "error: unknown language 'xx'"),
        (["-l", "german"], "error: tiny.en transcribes English only; for german (de)"),
    ],
)
def test_the_cli_refuses_before_touching_anything(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = tmp_path / "trax.db"
    result = CliRunner().invoke(
        cli, ["--db", f"sqlite:///{db}", "transcribe", str(JFK), "-o", str(tmp_path / "o"), *args]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert not db.exists() and not (tmp_path / "o").exists()


def test_a_code_in_capitals_transcribes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    result = CliRunner().invoke(
        cli, ["--db", db, "transcribe", str(JFK), "-l", "EN", "--json", "-f", "none"]
    )
    assert result.exit_code == 0, result.output
    assert '"language": "en"' in result.stdout


def test_verbose_works_after_the_command_too() -> None:
    """`trax list -v` shows an error's causes, as `trax -v list` does."""
    unreachable = ["--db", "postgresql://trax@127.0.0.1:1/nothing"]
    plain = CliRunner().invoke(cli, [*unreachable, "list"])
    before = CliRunner().invoke(cli, ["-v", *unreachable, "list"])
    after = CliRunner().invoke(cli, [*unreachable, "list", "-v"])
    assert plain.exit_code == before.exit_code == after.exit_code == 2
    assert "caused by" not in plain.stderr
    assert "caused by" in before.stderr
    assert after.stderr == before.stderr
