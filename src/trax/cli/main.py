"""Command definitions. Heavy imports live inside the commands."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from trax.config import Config
    from trax.core import Transcript
    from trax.store import SqlTranscriptStore
    from trax.store.cache import SqlStageCache

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_verbosity = 0


def fail(problem: str | BaseException, code: int = EXIT_USAGE) -> NoReturn:
    """One line for the user; with ``-v``, the chain of causes beneath it.

    Both pass through ``scrub``: no password Trax has seen is ever printed, even
    where a driver quotes it back.
    """
    from trax.errors import causes, scrub

    click.echo(scrub(f"error: {problem}"), err=True)
    if isinstance(problem, BaseException) and _verbosity:
        for cause in causes(problem):
            click.echo(f"  caused by {cause}", err=True)
    sys.exit(code)


class Context:
    """What every command shares: the configuration (read once) and the database."""

    def __init__(self, database_url: str | None) -> None:
        self.database_url = database_url

    @property
    def config(self) -> Config:
        from trax.config import ConfigError, load_config

        try:
            return load_config()
        except ConfigError as exc:
            fail(exc)

    def store(self) -> SqlTranscriptStore:
        from trax.store import DatabaseError, SqlTranscriptStore, open_database

        try:
            database = open_database(self.database_url)
            database.ensure_schema()
        except DatabaseError as exc:
            fail(exc)
        return SqlTranscriptStore(database)


pass_context = click.make_pass_decorator(Context)


def _configure_logging(verbose: int) -> None:
    global _verbosity
    _verbosity = verbose
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    if verbose < 2:
        # faster-whisper logs every VAD pass at INFO; that is noise at -v.
        logging.getLogger("faster_whisper").setLevel(max(level, logging.WARNING))


def _more_verbose(_ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        _configure_logging(_verbosity + value)


class TraxGroup(click.Group):
    """A group whose every command also takes ``-v`` after its name (``trax list -v``)."""

    group_class = type  # subgroups (``trax jobs``) are TraxGroups too

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not isinstance(cmd, click.Group):
            cmd.params.append(
                click.Option(
                    ["-v", "--verbose"],
                    count=True,
                    expose_value=False,
                    is_eager=True,
                    callback=_more_verbose,
                    help="More log output (-vv for debug).",
                )
            )
        super().add_command(cmd, name)


@click.group(cls=TraxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    "database_url",
    metavar="URL",
    help="Database URL (default: TRAX_DATABASE_URL, the config file, else SQLite in the "
    "user data folder; see `trax config`).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="trax")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, verbose: int) -> None:
    """Trax: transcribe any audio or video into stored, searchable transcripts."""
    _configure_logging(verbose)
    ctx.obj = Context(database_url)


def main() -> None:
    from trax.errors import TraxError

    try:
        cli(prog_name="trax")
    except TraxError as exc:  # one line, whichever command let it through
        fail(exc, EXIT_FAILED)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --------------------------------------------------------------------------- browse


@cli.command("list")
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_(obj: Context, limit: int, as_json: bool) -> None:
    """List stored transcripts, newest first."""
    summaries = obj.store().summaries(limit)
    if as_json:
        rows = [
            {
                "id": s.id,
                "path": s.path,
                "duration_s": s.duration_s,
                "pipeline": s.pipeline,
                "model_id": s.model_id,
                "language": s.language,
                "words": s.words,
                "created_at": s.created_at.isoformat(),
            }
            for s in summaries
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not summaries:
        click.echo("no transcripts yet: run `trax transcribe FILE`", err=True)
        return
    click.echo(f"{'ID':>5}  {'CREATED':16}  {'AUDIO':>7}  {'PIPE':4}  {'WORDS':>6}  PATH")
    for s in summaries:
        click.echo(
            f"{s.id:>5}  {s.created_at:%Y-%m-%d %H:%M}  {clock(s.duration_s):>7}  "
            f"{s.pipeline:4}  {s.words:>6}  {s.path}"
        )


def _load(obj: Context, transcript_id: int) -> Transcript:
    transcript = obj.store().get(transcript_id)
    if transcript is None:
        fail(f"no transcript with id {transcript_id} (see `trax list`)")
    return transcript


@cli.command()
@click.argument("transcript_id", type=int)
@click.option("--segments", is_flag=True, help="One line per segment with times.")
@click.option("--json", "as_json", is_flag=True, help="The full stored payload.")
@pass_context
def show(obj: Context, transcript_id: int, segments: bool, as_json: bool) -> None:
    """Show one stored transcript."""
    from trax.payload import to_payload

    transcript = _load(obj, transcript_id)
    if as_json:
        click.echo(json.dumps(to_payload(transcript), ensure_ascii=False, indent=2))
        return
    media = transcript.media
    click.echo(f"#{transcript.id}  {media.path}")
    click.echo(
        f"  {clock(transcript.duration_s)} audio, {media.container}/{media.audio_codec}, "
        f"language {transcript.language}, pipeline {transcript.settings.pipeline}, "
        f"model {transcript.model_id}"
    )
    click.echo(f"  sha256 {media.sha256}")
    stages = " → ".join(f"{r.name} ({r.version})" for r in transcript.stages)
    click.echo(f"  stages {stages or 'not recorded'}")
    for skipped in transcript.skipped:
        click.echo(f"  skipped {skipped.name}: {skipped.reason}")
    click.echo("")
    if segments:
        for s in transcript.segments:
            click.echo(f"[{clock(s.start)} → {clock(s.end)}] {s.text}")
    else:
        click.echo(transcript.text)


@cli.command()
@click.argument("transcript_id", type=int)
@click.option("-f", "--format", "fmt", default="srt", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: standard output).",
)
@pass_context
def export(obj: Context, transcript_id: int, fmt: str, output: Path | None) -> None:
    """Export a stored transcript to a file."""
    from trax.export import export_transcript, get_exporter

    try:
        exporter = get_exporter(fmt.lower())
    except ValueError as exc:
        fail(exc)
    transcript = _load(obj, transcript_id)
    if output is None or str(output) == "-":
        click.echo(exporter.render(transcript), nl=False)
        return
    try:
        export_transcript(transcript, exporter.name, output)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"wrote {output}", err=True)


# --------------------------------------------------------------------------- registry


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def models(as_json: bool) -> None:
    """List the models Trax can use and where they live."""
    from trax.asr import list_models

    entries = list_models()
    if as_json:
        rows = [asdict(e) for e in entries]
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'MODEL':18}  {'SOURCE':7}  {'OFFLINE':7}  LOCATION")
    for e in entries:
        offline = "yes" if e.available else "no"
        click.echo(f"{e.name:18}  {e.source:7}  {offline:7}  {e.location}  ({e.description})")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def pipelines(as_json: bool) -> None:
    """Show pipeline versions, their stages and whether each can run now."""
    from trax.pipeline import describe

    infos = describe()
    if as_json:
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    for info in infos:
        state = "available" if info.available else info.reason or "not available"
        click.echo(f"{info.name}  {info.title}  [{state}]")
        for stage in info.stages:
            ready = "" if stage.available else f"  (cannot run: {stage.reason})"
            click.echo(f"    {stage.name:10} {stage.version:26} {stage.adds}; {stage.when}{ready}")


@cli.command("config")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def config_(obj: Context, as_json: bool) -> None:
    """Show the effective configuration and where each value comes from (secrets masked)."""
    config = obj.config
    rows = config.shown()
    if obj.database_url:  # --db, which beats everything else
        from trax.store import redact

        rows = [
            (key, redact(obj.database_url), "--db") if key == "database_url" else (key, value, src)
            for key, value, src in rows
        ]
    if as_json:
        out = {key: {"value": value, "source": source} for key, value, source in rows}
        click.echo(json.dumps({"file": str(config.file), "settings": out}, indent=2))
        return
    exists = "" if config.file.exists() else " (not found)"
    click.echo(f"config file: {config.file}{exists}", err=True)
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        click.echo(f"{key:{width}}  {value}  [{source}]")


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@pass_context
def upgrade(obj: Context) -> None:
    """Create or upgrade the database schema to the newest revision."""
    from trax.store import DatabaseError, open_database, redact
    from trax.store.migrate import upgrade as run_upgrade

    database = open_database(obj.database_url)
    try:
        before, after = run_upgrade(database)
    except DatabaseError as exc:
        fail(exc)
    where = redact(database.url)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded {before or 'empty'} → {after}")


# --------------------------------------------------------------------------- eval


@cli.group("eval")
def eval_() -> None:
    """Measure accuracy on your own recordings."""


@eval_.command("asr")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--refs",
    "refs_path",
    required=True,
    type=click.Path(path_type=Path),
    help="References: one '<file stem><TAB><text>' per line.",
)
@click.option("-p", "--pipeline", "pipeline_name", default="v1", show_default=True)
@click.option("-m", "--model", default="tiny.en", show_default=True)
@click.option("--beam-size", default=5, show_default=True, type=click.IntRange(1, 20))
@click.option(
    "-l",
    "--language",
    default="en",
    show_default=True,
    help="Language of the references (picks the text normaliser).",
)
@click.option(
    "--baseline",
    is_flag=True,
    help="Also score raw faster-whisper (same model and beam) for comparison.",
)
@click.option("--force", is_flag=True, help="Transcribe again even if stored.")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def eval_asr(
    obj: Context,
    directory: Path,
    refs_path: Path,
    pipeline_name: str,
    model: str,
    beam_size: int,
    language: str,
    baseline: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Word error rate of a pipeline against reference transcripts."""
    from trax.asr import ModelError, resolve_model
    from trax.core import TranscriptionSettings
    from trax.errors import TraxError
    from trax.eval.asr import evaluate, match_audio, raw_faster_whisper, read_references
    from trax.media import MediaError
    from trax.service import TranscriptionService

    try:
        references = read_references(refs_path)
        clips = match_audio(directory, references)
        resolved = resolve_model(model)
        settings = TranscriptionSettings(
            pipeline=pipeline_name,
            model=model,
            beam_size=beam_size,
            language=None if language == "auto" else language,
        )
        service = TranscriptionService.open(obj.store().database)
        service.pipeline(settings)
    except TraxError as exc:
        fail(exc)

    def trax_recognise(path: Path) -> tuple[str, float, bool]:
        transcript, cached = service.transcribe(path, settings, force=force)
        return transcript.text, transcript.duration_s, cached

    try:
        reports = [
            evaluate(
                f"trax {pipeline_name} ({model}, beam {beam_size})",
                clips,
                references,
                trax_recognise,
                language,
            )
        ]
        if baseline:
            raw = raw_faster_whisper(resolved.location, beam_size)
            reports.append(
                evaluate(
                    f"faster-whisper ({model}, beam {beam_size})", clips, references, raw, language
                )
            )
    except ModelError as exc:
        fail(exc)
    except MediaError as exc:
        fail(f"cannot transcribe a reference clip: {exc}")

    if as_json:
        payload = {
            "normaliser": _normaliser_name(language),
            "systems": [r.to_dict() for r in reports],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    click.echo(f"{'FILE':24} " + " ".join(f"{r.system[:22]:>22}" for r in reports))
    for rows in zip(*(r.files for r in reports), strict=True):
        click.echo(f"{rows[0].name[:24]:24} " + " ".join(f"{f.wer:>21.1%} " for f in rows))
    click.echo("")
    for r in reports:
        speed = f", {r.audio_s / r.elapsed_s:.0f}× real time" if r.elapsed_s else ""
        click.echo(
            f"{r.system}: WER {r.wer:.2%} over {r.reference_words} words "
            f"(S {r.substitutions}, D {r.deletions}, I {r.insertions}){speed}"
        )
    click.echo(f"normalised with {_normaliser_name(language)}", err=True)


def _normaliser_name(language: str) -> str:
    return "Whisper's English text normaliser" if language == "en" else "Whisper's basic normaliser"


@eval_.command("diarization")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--rttm", "rttm_path", required=True, type=click.Path(path_type=Path), help="Reference RTTM."
)
@click.option("--uem", "uem_path", type=click.Path(path_type=Path), help="Scored regions (UEM).")
@click.option(
    "--hyp", "hyp_path", type=click.Path(path_type=Path), help="RTTM of the system to score."
)
@click.option(
    "--collar",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds ignored around each reference boundary (full width, ± half).",
)
@click.option("--skip-overlap", is_flag=True, help="Do not score overlapping speech.")
@click.option("--json", "as_json", is_flag=True)
def eval_diarization(
    directory: Path,
    rttm_path: Path,
    uem_path: Path | None,
    hyp_path: Path | None,
    collar: float,
    skip_overlap: bool,
    as_json: bool,
) -> None:
    """Diarization error rate (pyannote.metrics) against a reference RTTM."""
    from trax.eval import EvalError
    from trax.eval.diarization import evaluate_diarization, read_rttm, read_uem

    if hyp_path is None:
        fail(
            "Trax's own diarization arrives with pipeline v4 (see `trax pipelines`); "
            "until then score a system's output with --hyp HYP.rttm"
        )
    try:
        report = evaluate_diarization(
            directory,
            read_rttm(rttm_path),
            read_rttm(hyp_path),
            read_uem(uem_path) if uem_path else None,
            collar,
            skip_overlap,
        )
    except EvalError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(f"{'FILE':16} {'DER':>7} {'MISSED':>7} {'F.ALARM':>7} {'CONFUSED':>8} {'SPEECH':>8}")
    for score in [*report.files, report.overall]:
        total = score.total_s or 1.0
        click.echo(
            f"{score.uri[:16]:16} {score.der:7.1%} {score.missed_s / total:7.1%} "
            f"{score.false_alarm_s / total:7.1%} {score.confusion_s / total:8.1%} "
            f"{score.total_s:7.1f}s"
        )
    overlap = "overlap not scored" if skip_overlap else "overlap scored"
    click.echo(
        f"collar {collar:g} s (±{collar / 2:g} s around reference boundaries), {overlap}", err=True
    )


# --------------------------------------------------------------------------- cache


@cli.group()
def cache() -> None:
    """Cached stage results (ASR per model and settings): inspect, clear, prune.

    Stored transcripts are not cache: they stay until you delete them.
    """


def _stage_cache(obj: Context) -> SqlStageCache:
    from trax.store.cache import SqlStageCache

    return SqlStageCache(obj.store().database)


@cache.command("stats")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def cache_stats(obj: Context, as_json: bool) -> None:
    """Entries, expired entries, size and hits per stage."""
    from trax.store.cache import default_ttl

    rows = _stage_cache(obj).stats()
    if as_json:
        click.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    click.echo(f"{'STAGE':10} {'ENTRIES':>8} {'EXPIRED':>8} {'SIZE':>10} {'HITS':>6}")
    for r in rows:
        click.echo(
            f"{r.namespace:10} {r.entries:>8} {r.expired:>8} {r.size_bytes / 1e6:>8.2f}MB "
            f"{r.hits:>6}"
        )
    click.echo(f"entries expire after {default_ttl().days} days (TRAX_CACHE_TTL_DAYS)", err=True)


@cache.command("clear")
@click.option("--stage", help="Only this stage (e.g. asr).")
@pass_context
def cache_clear(obj: Context, stage: str | None) -> None:
    """Delete cached entries (all, or one stage's)."""
    click.echo(f"removed {_stage_cache(obj).clear(stage)} cache entries", err=True)


@cache.command("prune")
@pass_context
def cache_prune(obj: Context) -> None:
    """Delete expired entries."""
    click.echo(f"removed {_stage_cache(obj).prune()} expired cache entries", err=True)
