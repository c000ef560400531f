"""Export transcripts to files: txt, srt, vtt, json, tsv and md."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from trax.core import Transcript
from trax.export.atomic import remove_leftovers, write_atomic
from trax.export.formats import (
    JsonExporter,
    MarkdownExporter,
    SrtExporter,
    TsvExporter,
    TxtExporter,
    VttExporter,
)

__all__ = [
    "FORMATS",
    "Exporter",
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


_EXPORTERS: dict[str, Callable[[], Exporter]] = {
    "txt": TxtExporter,
    "srt": SrtExporter,
    "vtt": VttExporter,
    "json": JsonExporter,
    "tsv": TsvExporter,
    "md": MarkdownExporter,
}

FORMATS: tuple[str, ...] = tuple(_EXPORTERS)


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown export format {name!r}; valid formats: {', '.join(FORMATS)}, all")


def get_exporter(name: str) -> Exporter:
    factory = _EXPORTERS.get(name.strip().lower())
    if factory is None:
        raise _unknown(name)
    return factory()


def export_transcript(transcript: Transcript, fmt: str, path: Path) -> Path:
    """Render ``transcript`` as ``fmt`` and write it atomically to ``path``."""
    write_atomic(path, get_exporter(fmt).render(transcript))
    return path


def export_beside(transcript: Transcript, formats: Sequence[str], base: Path) -> list[Path]:
    """Write each format to ``base`` plus its extension (``out/talk`` → ``out/talk.srt``).

    Temp files that a killed earlier attempt left beside the targets are removed.
    """
    paths = [base.with_name(base.name + get_exporter(fmt).extension) for fmt in formats]
    for path in paths:
        remove_leftovers(path)
    return [
        export_transcript(transcript, fmt, path) for fmt, path in zip(formats, paths, strict=True)
    ]


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
