"""Media in: probe any container FFmpeg reads and stream it as 16 kHz mono windows."""

from __future__ import annotations

from pathlib import Path

from trax.core import AudioWindow, MediaInfo
from trax.media.decode import MIN_DURATION_S, PyAVDecoder
from trax.media.errors import MediaError
from trax.media.probe import probe, sha256_file
from trax.media.source import AudioSource

MEDIA_EXTENSIONS = frozenset(
    [
        ".wav",
        ".flac",
        ".mp3",
        ".m4a",
        ".aac",
        ".ogg",
        ".oga",
        ".opus",
        ".webm",
        ".mp4",
        ".m4v",
        ".mkv",
        ".mov",
        ".avi",
        ".wma",
        ".aiff",
        ".aif",
        ".amr",
        ".3gp",
        ".mpeg",
        ".mpg",
        ".ts",
        ".mka",
        ".caf",
    ]
)
"""Extensions picked up when a directory is given; single files are tried whatever their name."""


def is_media_path(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_EXTENSIONS


__all__ = [
    "MEDIA_EXTENSIONS",
    "MIN_DURATION_S",
    "AudioSource",
    "AudioWindow",
    "MediaError",
    "MediaInfo",
    "PyAVDecoder",
    "is_media_path",
    "probe",
    "sha256_file",
]
