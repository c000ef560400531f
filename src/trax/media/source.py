"""One media file that later stages can go back to: whole, or any span of it.

Nothing decoded is kept between calls; each call decodes again from the file,
so holding an ``AudioSource`` for a three-hour recording costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from trax.core import AudioWindow
from trax.media.decode import PyAVDecoder


class AudioSource:
    """A media file, re-openable: stream it as windows, or read one span by seeking."""

    def __init__(
        self,
        path: Path,
        decoder: PyAVDecoder | None = None,
        declared_duration_s: float | None = None,
    ) -> None:
        self.path = path
        self.decoder = decoder if decoder is not None else PyAVDecoder()
        self.declared_duration_s = declared_duration_s

    def windows(self) -> Iterator[AudioWindow]:
        """The whole file, as bounded windows (see ``PyAVDecoder.windows``)."""
        return self.decoder.windows(self.path, self.declared_duration_s)

    def read(self, start_s: float, end_s: float) -> AudioWindow:
        """The samples of ``[start_s, end_s)`` only (see ``PyAVDecoder.read``)."""
        return self.decoder.read(self.path, start_s, end_s)

    def __repr__(self) -> str:
        return f"AudioSource({str(self.path)!r})"
