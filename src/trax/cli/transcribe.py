"""``trax transcribe``: every file becomes a persisted job of a named batch."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from trax.cli.main import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    Context,
    cli,
    clock,
    fail,
    pass_context,
    subtitle_flags,
    subtitle_options,
)

if TYPE_CHECKING:
    from trax.core import Transcript
    from trax.jobs import Batch, Job, SqlJobStore
    from trax.jobs.batches import Conflict
    from trax.store import SqlTranscriptStore


@cli.command()
# Readability is checked per file, so one unreadable file fails alone, with a clear line.
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.option(
    "-m",
    "--model",
    default="tiny.en",
    show_default=True,
    help="Bundled model (tiny.en, base), hub name, or CTranslate2 model folder.",
)
@click.option(
    "-p",
    "--pipeline",
    "pipeline_name",
    default="v1",
    show_default=True,
    help="Pipeline version (see `trax pipelines`).",
)
@click.option("-l", "--language", help="Language code or name: de, DE, German (default: detect).")
@click.option("--beam-size", default=5, show_default=True, type=click.IntRange(1, 20))
@click.option("--initial-prompt", help="Text that primes spelling and style.")
@click.option("--hotwords", help="Words and names to favour.")
@click.option(
    "--glossary",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of names and terms, one a line, for LLM enhancement (pipeline v2).",
)
@click.option("--no-vad", is_flag=True, help="Decode silence too (not recommended).")
@click.option("--sequential", is_flag=True, help="Decode one chunk at a time, not batched.")
@click.option(
    "-f",
    "--format",
    "format_spec",
    default="txt,srt",
    show_default=True,
    help="Export formats: txt,srt,vtt,json,tsv,md or all; 'none' to skip.",
)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("transcripts"),
    show_default=True,
)
@click.option(
    "--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"])
)
@click.option(
    "--force", is_flag=True, help="Transcribe again even if stored with the same settings."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Let exports replace files at their names: another recording's exports, "
    "files Trax did not write (default: write 'NAME (2)' and say so).",
)
@click.option(
    "--batch",
    "batch_option",
    metavar="NAME",
    help="Name the batch (default: derived from files and settings, so rerunning "
    "the same command resumes it).",
)
@click.option(
    "--queue",
    "to_queue",
    is_flag=True,
    help="Only enqueue the jobs for `trax worker` processes (PostgreSQL).",
)
@click.option("--priority", default=0, show_default=True, help="Higher runs first (with --queue).")
@subtitle_flags
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@pass_context
def transcribe(
    obj: Context,
    paths: tuple[Path, ...],
    model: str,
    pipeline_name: str,
    language: str | None,
    beam_size: int,
    initial_prompt: str | None,
    hotwords: str | None,
    glossary: Path | None,
    no_vad: bool,
    sequential: bool,
    format_spec: str,
    output_dir: Path,
    device: str,
    force: bool,
    overwrite: bool,
    batch_option: str | None,
    to_queue: bool,
    priority: int,
    max_line_width: int | None,
    max_line_count: int | None,
    max_cue_duration: float | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Transcribe media files and folders (recursively), store and export them.

    Each file is a job of a batch kept in the database: kill the process at any
    moment and run the same command again (or `trax jobs resume`) to finish it.
    """
    from trax.config import ConfigError
    from trax.core import TranscriptionSettings
    from trax.errors import TraxError
    from trax.export import ExportError, check_output_folder, parse_formats
    from trax.jobs import SqlJobStore
    from trax.jobs.batches import submit_batch
    from trax.languages import checked_language
    from trax.llm.glossary import merge, read_glossary
    from trax.pipeline import PipelineError, get_pipeline

    try:
        formats = [] if format_spec.strip().lower() == "none" else parse_formats(format_spec)
        version = get_pipeline(pipeline_name)
        language = checked_language(language, model)
        subtitles = subtitle_options(max_line_width, max_line_count, max_cue_duration)
        terms = merge(read_glossary(glossary)) if glossary is not None else ()
    except (ValueError, PipelineError, ConfigError) as exc:
        fail(exc)
    if formats:
        try:
            check_output_folder(output_dir)
        except ExportError as exc:
            unwritable = TraxError(f"cannot write exports to {exc}")
            unwritable.__cause__ = exc.__cause__
            fail(unwritable)
    if not quiet and not as_json:
        for stage in version.describe():
            if stage.optional and not stage.available:  # said once, not once per file
                click.echo(f"warning: {stage.name} is skipped: {stage.reason}", err=True)
    settings = TranscriptionSettings(
        pipeline=pipeline_name,
        model=model,
        language=language,
        beam_size=beam_size,
        initial_prompt=initial_prompt,
        hotwords=hotwords,
        vad=not no_vad,
        batched=not sequential,
        glossary=terms,
    )
    store = obj.store()
    try:
        submitted = submit_batch(
            store.database,
            paths,
            settings,
            formats,
            output_dir,
            force=force,
            name=batch_option,
            priority=priority,
            queue=to_queue,
            overwrite=overwrite,
            subtitles=subtitles,
        )
    except TraxError as exc:
        fail(exc)
    batch, problems = submitted.batch, submitted.problems
    for path, problem in problems:
        if not as_json:
            click.echo(f"failed  {shown(path)}: {problem}", err=True)
    jobs = SqlJobStore(store.database)
    if batch is None:
        finish_batch(jobs, store, None, problems, quiet, as_json)
        return
    if submitted.enqueued is not None:
        if as_json:
            click.echo(json.dumps({"batch": batch.name, "enqueued": submitted.enqueued}))
        elif not quiet:
            click.echo(
                f"batch {batch.name}: {submitted.enqueued} job(s) enqueued for `trax worker`",
                err=True,
            )
        return

    elapsed = run_local_batch(obj, jobs, batch, quiet, as_json, device, submitted.conflicts)
    finish_batch(jobs, store, batch, problems, quiet, as_json, elapsed)


def run_local_batch(
    obj: Context,
    jobs: SqlJobStore,
    batch: Batch,
    quiet: bool,
    as_json: bool,
    device: str = "auto",
    conflicts: list[Conflict] | None = None,
) -> float:
    """Work through the batch here and return the seconds it took.

    On interruption, say how to resume and exit with 130. ``conflicts``: the
    files that export under another name, to say so when each is done.
    """
    from trax.core import TranscriptionSettings
    from trax.errors import TraxError
    from trax.jobs.runner import LocalRunner
    from trax.service import TranscriptionService

    store = obj.store()
    service = TranscriptionService.open(store.database, device)
    try:
        # A bad model name or a stage that cannot run fails here, before any file.
        service.pipeline(TranscriptionSettings.from_dict(batch.settings))
    except TraxError as exc:
        fail(exc)
    started = time.monotonic()
    stop = threading.Event()
    progress = BatchProgress(jobs, batch, enabled=not (quiet or as_json) and sys.stderr.isatty())
    reporter = _Reporter(store, quiet or as_json, progress, conflicts or [])
    try:
        with _stop_on_ctrl_c(stop, not (quiet or as_json), progress, batch.name):
            finished = LocalRunner(jobs, service, stop).run(
                batch, progress.start, progress.update, reporter.report
            )
    except TraxError as exc:
        fail(exc)
    progress.clear()
    if not finished:
        done = jobs.counts(batch.id)["done"]
        click.echo(
            f"interrupted: {done} file(s) finished and stored; nothing partial was kept. "
            f"Resume with: trax jobs resume {batch.name}",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    return time.monotonic() - started


@contextmanager
def _stop_on_ctrl_c(
    stop: threading.Event, announce: bool, progress: BatchProgress, batch_name: str
) -> Iterator[None]:
    """First Ctrl-C: finish the current file's current step, then stop. Second: quit now.

    Signals are read by a thread from a wakeup socket, not acted on by a Python
    handler: a handler runs only once the main thread is back in Python, which
    the recogniser's native code delays by seconds (a second Ctrl-C took
    10.6 s), while the socket is written at once. Quitting is ``os._exit``,
    as safe as ``kill -9``: transcripts are saved in one transaction, exports
    renamed into place whole, and the job left running is requeued on resume.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals can only be set up from the main thread (e.g. under test runners)
        return
    import socket

    reader, writer = socket.socketpair()
    writer.setblocking(False)  # set_wakeup_fd requires it; a full buffer only drops bytes

    def watch() -> None:
        while received := reader.recv(64):  # one byte per signal; b"" once closed
            for signum in received:
                if signum != signal.SIGINT:
                    continue
                if stop.is_set():
                    progress.clear()
                    click.echo(
                        f"\nquit: nothing partial was kept. Resume with: trax jobs resume "
                        f"{batch_name}",
                        err=True,
                    )
                    sys.stderr.flush()
                    os._exit(EXIT_INTERRUPTED)
                stop.set()
                if announce:
                    progress.clear()
                    click.echo(
                        "\nstopping when the current step of this file ends… "
                        "(Ctrl-C again to quit now)",
                        err=True,
                    )

    # The Python handler only has to exist (and not raise KeyboardInterrupt).
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="trax-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous)
        writer.shutdown(socket.SHUT_RDWR)  # ends the watcher's recv
        watcher.join()
        writer.close()
        reader.close()


class BatchProgress:
    """A live line on stderr: the current file's bar, the batch's counts, audio done, ETA."""

    width = 20

    def __init__(self, jobs: SqlJobStore, batch: Batch, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False
        self.started = self.file_started = time.monotonic()
        self.counts: dict[str, int] = {}
        self.audio_done = 0.0
        self.files_done_now = 0
        if enabled:
            self.counts = jobs.counts(batch.id)

    @property
    def remaining(self) -> int:
        return self.counts.get("queued", 0) + self.counts.get("running", 0)

    def start(self, job: Job) -> None:
        self.file_started = time.monotonic()
        self.counts["queued"] = self.counts.get("queued", 0) - 1
        self.counts["running"] = self.counts.get("running", 0) + 1

    def end(self, job: Job) -> None:
        self.counts["running"] = self.counts.get("running", 0) - 1
        self.counts[job.status] = self.counts.get(job.status, 0) + 1
        if job.status == "done" and not job.cached:  # reused transcripts took no time here
            self.audio_done += job.duration_s or 0.0
        self.files_done_now += 1

    def update(self, position: float, duration: float | None) -> None:
        if not self.enabled:
            return
        line = ""
        if duration:
            fraction = min(position / duration, 1.0)
            filled = round(fraction * self.width)
            line += f"{'█' * filled}{'░' * (self.width - filled)} {fraction:4.0%} "
        line += f"{clock(position)}/{clock(duration)}"
        line += (
            f" | {self.counts.get('done', 0)} done, {self.counts.get('failed', 0)} failed, "
            f"{self.remaining} left | {clock(self.audio_done + position)} audio"
        )
        elapsed = time.monotonic() - self.started
        if elapsed > 1.0:
            line += f" | {(self.audio_done + position) / elapsed:.0f}× real time"
        if self.files_done_now:
            eta = elapsed / self.files_done_now * max(self.remaining - 1, 0)
            line += f" | ETA {clock(eta)}"
        click.echo(f"\r\033[K{line}", err=True, nl=False)
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            click.echo("\r\033[K", err=True, nl=False)
            self.shown = False


def shown(path: str | Path) -> str:
    """A path as it reads best: relative under the current folder, ``~/…`` under the
    home folder, else absolute (a relative one, from an older batch, as stored)."""
    target = Path(path)
    if not target.is_absolute():
        return str(target)
    try:
        here = Path.cwd()
        if here != Path(here.anchor) and target.is_relative_to(here):
            return str(target.relative_to(here))
        home = Path.home()
        if target.is_relative_to(home):
            return str(Path("~") / target.relative_to(home))
    except (OSError, RuntimeError):  # no current folder (deleted) or no home folder
        pass
    return str(target)


class _Reporter:
    def __init__(
        self,
        store: SqlTranscriptStore,
        quiet: bool,
        progress: BatchProgress,
        conflicts: list[Conflict],
    ) -> None:
        self.store = store
        self.quiet = quiet
        self.progress = progress
        self.conflicts = {str(c.path): c for c in conflicts}

    def report(self, job: Job, outcome: str) -> None:
        self.progress.clear()
        self.progress.end(job)
        if outcome == "failed":
            if not self.quiet:
                click.echo(f"failed  {shown(job.path)}: {job.error}", err=True)
            return
        if self.quiet or outcome != "done":
            return
        elapsed = time.monotonic() - self.progress.file_started
        note = "already stored" if job.cached else f"{elapsed:.1f} s"
        exports = ", ".join(shown(e) for e in job.exports) or "no exports"
        status = "cached" if job.cached else "done"
        transcript = self.store.get(job.transcript_id) if job.transcript_id else None
        empty = " no speech found" if transcript is not None and transcript.no_speech else ""
        click.echo(
            f"{status:<6}  {shown(job.path)}  [{clock(job.duration_s)} audio, {note}, "
            f"#{job.transcript_id}]{empty} → {exports}",
            err=True,
        )
        conflict = self.conflicts.get(job.path)
        if conflict is not None and job.exports:
            click.echo(conflict_note(conflict, job.exports), err=True)


def conflict_note(conflict: Conflict, exports: list[str]) -> str:
    """``out/video.txt is video.mp4's export; wrote out/video (2).txt``: what was not replaced."""
    whose = (
        f"is {shown(conflict.owner)}'s export"
        if conflict.owner is not None
        else "was not written by Trax"
    )
    # The export of the same format as the file in the way, if one was written.
    extension = conflict.taken.name[len(conflict.wanted.name) :]
    wrote = next((e for e in exports if e.endswith(extension)), exports[0])
    return f"{shown(conflict.taken)} {whose}; wrote {shown(wrote)} (--overwrite to replace it)"


def _this_run(batch_jobs: list[Job], elapsed_s: float) -> str:
    """What this run did: only audio transcribed now counts towards its speed.

    Jobs done by earlier runs of the batch, and transcripts reused from
    storage, took no time here; counting them gave figures like 7799× real time.
    """
    from datetime import UTC, datetime, timedelta

    started = datetime.now(UTC) - timedelta(seconds=elapsed_s)
    now = [
        j for j in batch_jobs if j.status == "done" and j.finished_at and j.finished_at >= started
    ]
    audio = sum(j.duration_s or 0.0 for j in now if not j.cached)
    reused = sum(j.cached for j in now)
    if not audio:
        return f"nothing transcribed in this run, {reused} reused from storage"
    return (
        f"{clock(audio)} of audio transcribed in {clock(elapsed_s)} "
        f"({audio / elapsed_s:.0f}× real time), {reused} reused from storage"
    )


def _done(store: SqlTranscriptStore, jobs: list[Job]) -> list[Transcript]:
    """The transcripts of the jobs that are done."""
    found = (store.get(j.transcript_id) for j in jobs if j.status == "done" and j.transcript_id)
    return [t for t in found if t is not None]


def _llm_cost(transcript: Transcript) -> str:
    usage = transcript.usage
    tokens = usage.get("llm_prompt_tokens", 0) + usage.get("llm_output_tokens", 0)
    return f"LLM ${usage.get('llm_cost_usd', 0.0):.4f} ({tokens:,.0f} tokens)"


def finish_batch(
    jobs: SqlJobStore,
    store: SqlTranscriptStore,
    batch: Batch | None,
    problems: list[tuple[Path, str]],
    quiet: bool,
    as_json: bool,
    elapsed_s: float | None = None,
) -> None:
    """Print the batch's outcome (all its jobs, including earlier runs) and exit."""
    from trax.jobs.batches import batch_summary

    batch_jobs = jobs.jobs(batch.id) if batch is not None else []
    failed = len(problems) + sum(j.status == "failed" for j in batch_jobs)
    if as_json:
        click.echo(
            json.dumps(
                batch_summary(batch, batch_jobs, problems, store), ensure_ascii=False, indent=2
            )
        )
    elif not quiet:
        if len(batch_jobs) == 1 and not problems:
            # One file: its text is the answer (its failure was already reported).
            only = batch_jobs[0]
            transcript = store.get(only.transcript_id) if only.transcript_id else None
            if transcript is not None and transcript.no_speech:
                click.echo(f"no speech found in {shown(only.path)}", err=True)
            elif transcript is not None:
                click.echo(transcript.text)
            if transcript is not None and "llm_cost_usd" in transcript.usage:
                click.echo(_llm_cost(transcript), err=True)
        elif batch is not None:
            counts: dict[str, int] = {}
            for job in batch_jobs:
                counts[job.status] = counts.get(job.status, 0) + 1
            counts["failed"] = failed
            line = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            done = _done(store, batch_jobs)
            silent = sum(t.no_speech for t in done)
            if silent:
                line += f"; no speech found in {silent}"
            cost = sum(t.usage.get("llm_cost_usd", 0.0) for t in done)
            if any("llm_cost_usd" in t.usage for t in done):
                line += f"; LLM ${cost:.4f}"
            click.echo(f"batch {batch.name}: {line}", err=True)
            if elapsed_s:
                click.echo(f"  {_this_run(batch_jobs, elapsed_s)}", err=True)
    if failed:
        sys.exit(EXIT_FAILED)
