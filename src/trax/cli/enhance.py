"""``trax enhance ID...``: upgrade stored transcripts to v2 (LLM enhancement)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from trax.cli.main import EXIT_FAILED, Context, cli, fail, pass_context

if TYPE_CHECKING:
    from trax.core import Transcript
    from trax.llm.stage import EnhanceStage


def changes_summary(transcript: Transcript) -> str:
    """ "3 edits accepted, 1 rejected, $0.0004 (2,310 tokens)"."""
    mine = [e for e in transcript.edits if e.stage == "enhance"]
    accepted = sum(1 for e in mine if e.status == "accepted")
    usage = transcript.usage
    tokens = int(usage.get("llm_prompt_tokens", 0) + usage.get("llm_output_tokens", 0))
    cost = usage.get("llm_cost_usd", 0.0)
    return (
        f"{accepted} edits accepted, {len(mine) - accepted} rejected, "
        f"${cost:.4f} ({tokens:,} tokens)"
    )


@cli.command()
@click.argument("transcript_ids", metavar="ID...", nargs=-1, type=int, required=True)
@click.option(
    "--glossary",
    "glossary_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Names and terms, one a line: evidence for word edits (besides the config's "
    "llm.glossary and the transcript's --hotwords).",
)
@click.option("--force", is_flag=True, help="Enhance again, even where it was done.")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def enhance(
    obj: Context,
    transcript_ids: tuple[int, ...],
    glossary_file: Path | None,
    force: bool,
    as_json: bool,
) -> None:
    """Enhance stored transcripts with the LLM (pipeline v2), without transcribing again.

    Each becomes a new version of its file (the original stays): misheard words,
    terms, punctuation and casing fixed by guarded edits (`trax show ID --changes`).
    """
    from trax.config import ConfigError
    from trax.llm.glossary import read_glossary
    from trax.llm.stage import EnhanceRuntime, EnhanceSettings, EnhanceStage
    from trax.llm.upgrade import enhance_stored
    from trax.store.cache import SqlStageCache

    config = obj.config
    try:
        extra = tuple(read_glossary(glossary_file)) if glossary_file else ()
        runtime = EnhanceRuntime.from_config(config)
        probe = EnhanceStage(EnhanceSettings.from_config(config, None, extra), runtime)
    except ConfigError as exc:
        fail(exc)
    if (reason := probe.unavailable()) is not None:
        fail(f"enhancement {reason}")

    def make_stage(transcript: Transcript) -> EnhanceStage:
        hotwords = transcript.settings.hotwords
        return EnhanceStage(EnhanceSettings.from_config(config, hotwords, extra), runtime)

    store = obj.store()
    cache = SqlStageCache(store.database)
    failed = False
    rows: list[dict[str, Any]] = []
    for outcome in enhance_stored(store, transcript_ids, make_stage, cache=cache, force=force):
        made = outcome.transcript
        if made is None:
            failed = True
            click.echo(f"error: #{outcome.source_id}: {outcome.problem}", err=True)
            rows.append({"source_id": outcome.source_id, "error": outcome.problem})
            continue
        rows.append(
            {
                "source_id": outcome.source_id,
                "id": made.id,
                "reused": outcome.reused,
                "warning": outcome.warning,
                "usage": made.usage,
            }
        )
        if outcome.warning:
            click.echo(f"warning: #{outcome.source_id}: {outcome.warning}", err=True)
        if as_json:
            continue
        if outcome.reused:
            click.echo(f"#{outcome.source_id} → #{made.id}  already enhanced (--force to redo)")
        else:
            click.echo(f"#{outcome.source_id} → #{made.id}  {changes_summary(made)}")
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    if failed:
        sys.exit(EXIT_FAILED)
