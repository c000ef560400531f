"""Command definitions. Heavy imports live inside the commands."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from trax.config import Config
    from trax.core import Transcript
    from trax.eval.asr import AsrReport
    from trax.export import SubtitleOptions
    from trax.store import Database, SqlTranscriptStore
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


NEVER_CREATE = frozenset(
    {"list", "show", "export", "search", "jobs list", "jobs show", "cache stats", "delete"}
    | {"cache clear", "cache prune"}
)
"""Commands that only read or remove: with no database yet they see an empty library,
and create neither a file nor a schema (an older Trax schema is still upgraded: see
``Database.has_library``). Listed here by name because ``Context.store`` is where every
command, in whichever module, opens the database."""


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

        current = click.get_current_context(silent=True)
        command = " ".join(current.command_path.split()[1:]) if current else ""
        try:
            database = open_database(self.database_url)
            if command in NEVER_CREATE:
                if not database.has_library():
                    database = _empty_library()
            else:
                database.ensure_schema()
        except DatabaseError as exc:
            fail(exc)
        return SqlTranscriptStore(database)


def _empty_library() -> Database:
    """A new, empty library in memory: what read-only commands see before anything is
    stored, with every table they query, and gone when the process ends."""
    from trax.store import Database

    database = Database("sqlite://")
    database.ensure_schema()
    return database


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


_AGE = re.compile(r"(\d+)\s*([mhdw])")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> datetime:
    """An ISO date or time (local time unless it names a zone), or an age: 30m, 3h, 2d, 1w."""
    age = _AGE.fullmatch(text.strip().lower())
    if age:
        return datetime.now(UTC) - timedelta(**{_AGE_UNITS[age[2]]: int(age[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(
            f"--since {text!r}: expected a date or time (2026-05-01, 2026-05-01T14:30) "
            "or an age (30m, 3h, 2d, 1w)"
        )
    return moment.astimezone()  # a naive time is the user's local time


@cli.command("list")
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option(
    "--path", "path_part", metavar="TEXT", help="Only media whose path contains TEXT (any case)."
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only transcripts made since WHEN: 2026-05-01[T14:30], or 30m, 3h, 2d, 1w ago.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_(
    obj: Context, limit: int, path_part: str | None, since: str | None, as_json: bool
) -> None:
    """List stored transcripts, newest first.

    VER shows which transcript of its file each is (v2/3: the second of three),
    when a file has several.
    """
    after = parse_since(since) if since is not None else None
    summaries = obj.store().summaries(limit, path=path_part, since=after)
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
                "version": s.version,
                "versions": s.versions,
            }
            for s in summaries
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not summaries:
        if path_part or since:
            click.echo("no transcripts match", err=True)
        else:
            click.echo("no transcripts yet: run `trax transcribe FILE`", err=True)
        return
    click.echo(
        f"{'ID':>5}  {'CREATED':16}  {'AUDIO':>7}  {'PIPE':4}  {'WORDS':>6}  {'VER':>5}  PATH"
    )
    for s in summaries:
        version = f"v{s.version}/{s.versions}" if s.versions > 1 else ""
        click.echo(
            f"{s.id:>5}  {s.created_at:%Y-%m-%d %H:%M}  {clock(s.duration_s):>7}  "
            f"{s.pipeline:4}  {s.words:>6}  {version:>5}  {s.path}"
        )


@cli.command()
@click.argument("transcript_ids", metavar="[ID]...", nargs=-1, type=int)
@click.option(
    "--media",
    "media_paths",
    metavar="PATH",
    multiple=True,
    help="Every transcript of this media file (repeatable).",
)
@pass_context
def delete(obj: Context, transcript_ids: tuple[int, ...], media_paths: tuple[str, ...]) -> None:
    """Delete transcripts by id, or all of a media file's; with them go their search
    entries and, once no transcript of a file is left, its cached stage results.

    Nothing is asked: what is named is deleted, in one transaction.
    """
    if not transcript_ids and not media_paths:
        fail("name the transcripts to delete: trax delete ID... or --media PATH (see `trax list`)")
    # Stored paths are absolute and resolved (older ones: as given when transcribed).
    wanted = {p: {p, str(Path(p).absolute()), str(Path(p).resolve())} for p in media_paths}
    removal = obj.store().delete(transcript_ids, [p for ps in wanted.values() for p in ps])
    for transcript_id, path in removal.transcripts:
        click.echo(f"deleted #{transcript_id}  {path}")
    removed = {path for _, path in removal.transcripts}
    missing = [f"no transcript with id {i}" for i in removal.unknown_ids]
    missing += [f"no transcripts of {p}" for p, forms in wanted.items() if not forms & removed]
    for problem in missing:
        click.echo(f"error: {problem}", err=True)
    if removal.transcripts:
        click.echo(
            f"deleted {len(removal.transcripts)} transcript(s); forgot {len(removal.media)} "
            f"media file(s) and {removal.cache_entries} cache entries",
            err=True,
        )
    if missing:
        sys.exit(EXIT_FAILED)


def _load(obj: Context, transcript_id: int) -> Transcript:
    transcript = obj.store().get(transcript_id)
    if transcript is None:
        fail(f"no transcript with id {transcript_id} (see `trax list`)")
    return transcript


@cli.command()
@click.argument("transcript_id", type=int)
@click.option("--segments", is_flag=True, help="One line per segment with times.")
@click.option("--json", "as_json", is_flag=True, help="The full stored payload.")
@click.option(
    "--changes",
    is_flag=True,
    help="What later stages changed (LLM edits accepted and rejected, with reasons).",
)
@pass_context
def show(obj: Context, transcript_id: int, segments: bool, as_json: bool, changes: bool) -> None:
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
        f"language {_languages(transcript)}, pipeline {transcript.settings.pipeline}, "
        f"model {transcript.model_id}"
    )
    click.echo(f"  sha256 {media.sha256}")
    stages = " → ".join(f"{r.name} ({r.version})" for r in transcript.stages)
    click.echo(f"  stages {stages or 'not recorded'}")
    for skipped in transcript.skipped:
        click.echo(f"  skipped {skipped.name}: {skipped.reason}")
    usage = transcript.usage
    if "llm_cost_usd" in usage:
        tokens = usage.get("llm_prompt_tokens", 0) + usage.get("llm_output_tokens", 0)
        click.echo(
            f"  cost ${usage['llm_cost_usd']:.4f} ({tokens:,.0f} LLM tokens, "
            f"{usage.get('llm_cache_hit_tokens', 0):,.0f} from the prompt cache; "
            f"{usage.get('llm_requests', 0):.0f} requests)"
        )
    if transcript.edits:
        accepted = sum(1 for e in transcript.edits if e.status == "accepted")
        rejected = len(transcript.edits) - accepted
        hint = "" if changes else " (--changes lists them)"
        click.echo(f"  edits {accepted} accepted, {rejected} rejected{hint}")
    click.echo("")
    if changes:
        if not transcript.edits:
            click.echo("no changes recorded")
        for e in transcript.edits:
            why = f"  ({e.reason})" if e.reason else ""
            click.echo(
                f"[{clock(e.start)} → {clock(e.end)}] {e.status:8} {e.stage}/{e.kind}: "
                f"{e.before!r} → {e.after!r}{why}"
            )
        return
    if transcript.no_speech:
        click.echo("no speech found")
    elif segments:
        # A recording that changes language shows each segment's.
        mixed = len({s.language for s in transcript.segments if s.language}) > 1
        for s in transcript.segments:
            tag = f"({s.language}) " if mixed and s.language else ""
            click.echo(f"[{clock(s.start)} → {clock(s.end)}] {tag}{s.text}")
    else:
        click.echo(transcript.text)


def _languages(transcript: Transcript) -> str:
    """The transcript's language, then any other its segments were spoken in."""
    others = {s.language for s in transcript.segments if s.language} - {transcript.language}
    return ", ".join([transcript.language, *sorted(others)])


def subtitle_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """The subtitle layout options users know from other tools (srt and vtt)."""
    for flag, kind, what in reversed(
        [
            ("--max-line-width", click.IntRange(1), "Characters a subtitle line (default 42)."),
            ("--max-line-count", click.IntRange(1), "Lines a subtitle cue (default 2)."),
            ("--max-cue-duration", float, "Seconds a cue stays up at most (default 7)."),
        ]
    ):
        command = click.option(flag, type=kind, help=what)(command)
    return command


def subtitle_options(
    max_line_width: int | None, max_line_count: int | None, max_cue_duration: float | None
) -> SubtitleOptions | None:
    """The subtitle layout asked for (None: the defaults); ValueError names a bad value."""
    from trax.export import SubtitleOptions

    if max_line_width is None and max_line_count is None and max_cue_duration is None:
        return None
    default = SubtitleOptions()
    return SubtitleOptions(
        max_line_width=default.max_line_width if max_line_width is None else max_line_width,
        max_line_count=default.max_line_count if max_line_count is None else max_line_count,
        max_cue_duration=default.max_cue_duration if max_cue_duration is None else max_cue_duration,
    )


@cli.command()
@click.argument("transcript_id", type=int)
@click.option(
    "-f",
    "--format",
    "fmt",
    default="srt",
    show_default=True,
    help="txt,srt,vtt,json,tsv,md (several, comma-separated) or all.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="File to write (default: standard output). A folder (existing, or ending in /) "
    "gets MEDIA-NAME.EXT per format; with several formats any other path is a base "
    "name: -o out/talk writes out/talk.srt, out/talk.vtt.",
)
@subtitle_flags
@pass_context
def export(
    obj: Context,
    transcript_id: int,
    fmt: str,
    output: str | None,
    max_line_width: int | None,
    max_line_count: int | None,
    max_cue_duration: float | None,
) -> None:
    """Export a stored transcript to files or standard output."""
    from trax.export import export_transcript, get_exporter, parse_formats

    try:
        formats = parse_formats(fmt)
        subtitles = subtitle_options(max_line_width, max_line_count, max_cue_duration)
    except ValueError as exc:
        fail(exc)
    if output is None or output == "-":
        if len(formats) > 1:
            fail(
                f"{len(formats)} formats need -o: a folder, or a base name "
                "(-o out/talk writes out/talk.srt, out/talk.vtt)"
            )
        transcript = _load(obj, transcript_id)
        click.echo(get_exporter(formats[0], subtitles).render(transcript), nl=False)
        return
    transcript = _load(obj, transcript_id)
    extensions = [get_exporter(name).extension for name in formats]
    base = Path(output)
    if base.is_dir() or output.endswith(("/", os.sep)):
        stem = Path(transcript.media.path).stem
        targets = [base / f"{stem}{ext}" for ext in extensions]
    elif len(formats) == 1:
        targets = [base]
    else:
        targets = [base.with_name(base.name + ext) for ext in extensions]
    for name, target in zip(formats, targets, strict=True):
        try:
            export_transcript(transcript, name, target, subtitles)
        except OSError as exc:
            fail(f"cannot write {target}: {exc.strerror or exc}")
        click.echo(f"wrote {target}", err=True)


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

    try:
        database = open_database(obj.database_url)
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
@click.option(
    "--force", is_flag=True, help="Transcribe every clip, even copies of the same recording."
)
@click.option("--json", "as_json", is_flag=True)
def eval_asr(
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
    """Word error rate of a pipeline against reference transcripts.

    Clips are transcribed into a temporary database, removed afterwards: your
    library is never read or written.
    """
    import tempfile

    from trax.errors import TraxError
    from trax.eval import require

    try:
        require("jiwer", "whisper_normalizer")
    except TraxError as exc:
        fail(exc)
    with tempfile.TemporaryDirectory(prefix="trax-eval-") as folder:
        from trax.store import Database

        database = Database(f"sqlite:///{Path(folder) / 'eval.db'}")
        try:
            reports = _score_asr(
                database,
                directory,
                refs_path,
                pipeline_name,
                model,
                beam_size,
                language,
                baseline,
                force,
            )
        finally:
            database.dispose()

    if as_json:
        payload = {
            "normaliser": _normaliser_name(language),
            "systems": [r.to_dict() for r in reports],
        }
        click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
        return
    names = max([4, *(len(f.name) for f in reports[0].files)])
    widths = [max(len(r.system), 6) for r in reports]
    click.echo(
        f"{'FILE':{names}}  "
        + "  ".join(f"{r.system:>{w}}" for r, w in zip(reports, widths, strict=True))
    )
    for rows in zip(*(r.files for r in reports), strict=True):
        cells = "  ".join(f"{f.wer:>{w}.1%}" for f, w in zip(rows, widths, strict=True))
        click.echo(f"{rows[0].name:{names}}  {cells}")
    click.echo("")
    for r in reports:
        speed = f", {r.audio_s / r.elapsed_s:.0f}× real time" if r.elapsed_s else ""
        click.echo(
            f"{r.system}: WER {r.wer:.2%} over {r.reference_words} words "
            f"(S {r.substitutions}, D {r.deletions}, I {r.insertions}){speed}"
        )
    click.echo(f"normalised with {_normaliser_name(language)}", err=True)


def _score_asr(
    database: Database,
    directory: Path,
    refs_path: Path,
    pipeline_name: str,
    model: str,
    beam_size: int,
    language: str,
    baseline: bool,
    force: bool,
) -> list[AsrReport]:
    from trax.asr import ModelError, resolve_model
    from trax.core import TranscriptionSettings
    from trax.errors import TraxError
    from trax.eval.asr import evaluate, match_audio, raw_faster_whisper, read_references
    from trax.media import MediaError
    from trax.service import TranscriptionService

    try:
        references = read_references(refs_path)
        clips, missing = match_audio(directory, references)
        resolved = resolve_model(model)
        settings = TranscriptionSettings(
            pipeline=pipeline_name,
            model=model,
            beam_size=beam_size,
            language=None if language == "auto" else language,
        )
        service = TranscriptionService.open(database)
        service.pipeline(settings)
    except TraxError as exc:
        fail(exc)
    if missing:
        shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        click.echo(
            f"warning: {len(missing)} reference(s) name clips not in {directory}, "
            f"scored without them: {shown}",
            err=True,
        )

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
    return reports


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
    from trax.eval import EvalError, require

    try:
        require("pyannote.metrics")
    except EvalError as exc:
        fail(exc)
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
