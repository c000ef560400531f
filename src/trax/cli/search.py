"""``trax search``: where was something said, across every stored transcript."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from trax.cli.main import Context, cli, clock, pass_context


@cli.command()
@click.argument("query", nargs=-1, required=True)
@click.option("--speaker", help="Only segments of this speaker (exact label).")
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(1))
@click.option(
    "--all-versions", is_flag=True, help="Also search older transcripts of the same file."
)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def search(
    obj: Context,
    query: tuple[str, ...],
    speaker: str | None,
    limit: int,
    all_versions: bool,
    as_json: bool,
) -> None:
    """Find segments of stored transcripts, best match first.

    Every word must appear; "a phrase" must appear as written; OR separates
    alternatives; -word or -"a phrase" excludes. Quote the whole query for the
    shell to keep its double quotes: trax search '"ask not" -country'.
    """
    from trax.store.search import search as run_search
    from trax.store.search import snippet_parts

    hits = run_search(
        obj.store().database,
        " ".join(query),
        speaker=speaker,
        limit=limit,
        all_versions=all_versions,
    )
    if as_json:
        click.echo(json.dumps([asdict(h) for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("no matches", err=True)
        return
    bold = sys.stdout.isatty()
    for hit in hits:
        who = f"  {hit.speaker}" if hit.speaker else ""
        click.echo(
            f"{hit.path}  [{clock(hit.start)} → {clock(hit.end)}]{who}  #{hit.transcript_id}"
        )
        snippet = hit.snippet
        if bold:  # the ** marks become bold on a terminal, and stay as they are in a pipe
            snippet = "".join(
                click.style(part, bold=True) if matched else part
                for part, matched in snippet_parts(hit.snippet)
            )
        click.echo(f"    {snippet}")
