"""Export transcripts to files: txt, srt, vtt, json, tsv and md."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from trax.core import Transcript
from trax.errors import TraxError
from trax.export.atomic import remove_leftovers, write_atomic, write_temp
from trax.export.formats import (
    JsonExporter,
    MarkdownExporter,
    SrtExporter,
    TsvExporter,
    TxtExporter,
    VttExporter,
)
from trax.export.subtitles import SubtitleOptions
from trax.failpoints import failpoint

__all__ = [
    "FORMATS",
    "ExportError",
    "Exporter",
    "SubtitleOptions",
    "check_output_folder",
    "export_beside",
    "export_transcript",
    "get_exporter",
    "parse_formats",
    "write_atomic",
]


class Exporter(Protocol):
    name: str
    extension: str

    def render(self, transcript: Transcript) -> str: ...


# Each factory takes the subtitle layout; only the subtitle formats use it.
_EXPORTERS: dict[str, Callable[[SubtitleOptions | None], Exporter]] = {
    "txt": lambda _: TxtExporter(),
    "srt": SrtExporter,
    "vtt": VttExporter,
    "json": lambda _: JsonExporter(),
    "tsv": lambda _: TsvExporter(),
    "md": lambda _: MarkdownExporter(),
}

FORMATS: tuple[str, ...] = tuple(_EXPORTERS)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown export format {name!r}; valid formats: {', '.join(FORMATS)}, all")


def get_exporter(name: str, subtitles: SubtitleOptions | None = None) -> Exporter:
    """The exporter of format ``name``; ``subtitles`` lays out srt and vtt cues."""
    factory = _EXPORTERS.get(name.strip().lower())
    if factory is None:
        raise _unknown(name)
    return factory(subtitles)


def export_transcript(
    transcript: Transcript, fmt: str, path: Path, subtitles: SubtitleOptions | None = None
) -> Path:
    """Render ``transcript`` as ``fmt`` and write it atomically to ``path``."""
    write_atomic(path, get_exporter(fmt, subtitles).render(transcript))
    return path


class ExportError(TraxError):
    """Exports could not be written: ``PATH: reason``; none of this attempt's are left.

    ``path`` is the export (or folder) that failed and ``reason`` what the
    system said (``no space left on device``); the ``OSError`` is the cause.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[ExportError], tuple[Path, str]]:
        # Keeps the error picklable (a worker may hand it across processes).
        return type(self), (self.path, self.reason)


def export_beside(
    transcript: Transcript,
    formats: Sequence[str],
    base: Path,
    subtitles: SubtitleOptions | None = None,
) -> list[Path]:
    """Write each format to ``base`` plus its extension (``out/talk`` → ``out/talk.srt``).

    All or nothing: every format is rendered, then written to a hidden temp file
    beside its target, and only when all are on disk are they renamed into
    place. A failure while writing (read-only folder, full disk) removes the
    temp files and leaves the previous exports untouched; a failure while
    renaming (rare: renames need no space) also removes the exports this call
    already renamed into place, so a file's exports never mix two attempts.
    Either way ``ExportError`` names the path and the reason. Temp files that a
    killed earlier attempt left beside the targets are removed first.
    """
    if not formats:
        return []
    if base.name in ("", ".", ".."):
        raise ExportError(base, "not a file name")
    targets = [base.with_name(base.name + get_exporter(fmt).extension) for fmt in formats]
    # Rendering first: a renderer's bug raises before anything is touched on disk.
    texts = [get_exporter(fmt, subtitles).render(transcript) for fmt in formats]
    staged: list[tuple[Path, Path]] = []
    placed: list[Path] = []
    current = base.parent
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for current in targets:
            remove_leftovers(current)
        for current, text in zip(targets, texts, strict=True):
            staged.append((write_temp(current, text), current))
        failpoint("export")
        for tmp, current in staged:
            tmp.replace(current)
            placed.append(current)
    except BaseException as exc:
        # Also on KeyboardInterrupt: an interrupted export leaves nothing of itself.
        for leftover in [tmp for tmp, _ in staged] + placed:
            with contextlib.suppress(OSError):  # the first error is the one to report
                leftover.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            where = current if current in targets else Path(exc.filename or current)
            raise ExportError(where, _reason(exc)) from exc
        raise
    return targets


def check_output_folder(folder: Path) -> None:
    """Create ``folder`` and write (then remove) a file in it, or raise ``ExportError``.

    Run before any work: a folder that cannot hold exports fails the command
    at once, rather than every file after it was transcribed. The folders it
    made are removed again (exports make them when there is something to
    write), so a command that stops early leaves no empty folder behind.
    """
    missing = [folder, *folder.parents]
    missing = missing[: next((i for i, p in enumerate(missing) if _exists(p)), len(missing))]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_temp(folder / "trax-probe", "").unlink()
    except OSError as exc:
        raise ExportError(folder, _reason(exc)) from exc
    finally:
        for made in missing:  # deepest first
            with contextlib.suppress(OSError):
                made.rmdir()


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # not a folder we can look into: mkdir says why
        return False


def _reason(exc: OSError) -> str:
    """The system's words (``No space left on device.``) as a lower-case clause."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return text.strip().rstrip(".").lower()


def parse_formats(spec: str) -> list[str]:
    """Parse a comma-separated list like ``"txt,SRT"``; ``"all"`` means every format.

    Names are case-insensitive; duplicates are dropped, first mention wins.
    """
    formats: list[str] = []
    for item in spec.split(","):
        name = item.strip().lower()
        if not name:
            continue  # tolerate "txt,,srt" and a trailing comma
        if name == "all":
            names: tuple[str, ...] = FORMATS
        elif name in _EXPORTERS:
            names = (name,)
        else:
            raise _unknown(item.strip())
        formats += [n for n in names if n not in formats]
    if not formats:
        raise ValueError(f"no export format given; valid formats: {', '.join(FORMATS)}, all")
    return formats
