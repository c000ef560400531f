"""Write a file so that readers see either the old content or the new, never half."""

from __future__ import annotations

import glob
import os
import secrets
from pathlib import Path

from trax.failpoints import failpoint


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temp file and ``os.replace``.

    The temp file lives in the target's directory (``os.replace`` is only
    atomic within one file system) and is named ``.<name>.<random>.tmp`` so a
    leftover from a crash is hidden and never mistaken for an export.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(path, text)
    try:
        failpoint("export")
        tmp.replace(path)
    except BaseException:
        # Also on KeyboardInterrupt: an interrupted export must not leave debris.
        tmp.unlink(missing_ok=True)
        raise


def write_temp(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8, synced to disk) to a new hidden temp file beside ``path``.

    Returns the temp file, for the caller to rename onto ``path``; on any
    failure the temp file is removed before the error propagates.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as a plain open() would;
    # tempfile.mkstemp would leave every export readable by its owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        # newline="" keeps "\n" as is on Windows: subtitle and TSV bytes stay the same everywhere.
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def remove_leftovers(path: Path) -> None:
    """Delete temp files a killed process left beside ``path`` (``.<name>.<random>.tmp``)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)
