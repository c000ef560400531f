"""Look at a media file before decoding it: size, content hash, streams, duration."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK

from trax.core import MediaInfo
from trax.media.errors import MediaError

_HASH_CHUNK = 1 << 20


def check_readable(path: Path) -> int:
    """Return the file size, or raise ``MediaError`` saying why it can't be read."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise MediaError("file not found") from None
    except PermissionError:
        raise MediaError("permission denied") from None
    if S_ISDIR(stat.st_mode):
        raise MediaError("is a directory, not a media file")
    if not S_ISREG(stat.st_mode):
        # A FIFO, a device (/dev/zero) or a socket: reading one may never end, or
        # block until another process writes; a media file is a regular file.
        raise MediaError(f"not a regular file ({_kind(stat.st_mode)})")
    if stat.st_size == 0:
        raise MediaError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError("permission denied")
    return stat.st_size


def _kind(mode: int) -> str:
    if S_ISFIFO(mode):
        return "a FIFO"
    if S_ISCHR(mode):
        return "a character device"
    if S_ISBLK(mode):
        return "a block device"
    if S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except PermissionError:
        raise MediaError("permission denied") from None
    return digest.hexdigest()


def probe(path: Path) -> MediaInfo:
    """Read the container header and hash the content; decode nothing."""
    import av

    size = check_readable(path)
    sha256 = sha256_file(path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except PermissionError:
        raise MediaError("permission denied") from None
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"not a readable media file ({_reason(exc)})") from exc
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams})
            has = f" (has {', '.join(kinds)} only)" if kinds else ""
            raise MediaError(f"no audio stream{has}")
        stream = container.streams.audio[0]
        duration: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # av.time_base is microseconds
        codec = stream.codec_context
        return MediaInfo(
            path=str(path),
            size_bytes=size,
            sha256=sha256,
            duration_s=duration,
            container=container.format.name,
            audio_codec=codec.name,
            sample_rate=codec.sample_rate or 0,
            channels=codec.channels or 0,
        )


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words, without the errno prefix and the file path."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().rstrip(".").lower()
