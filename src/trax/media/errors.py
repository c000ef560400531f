"""Errors a user can act on: each message is one line that names the problem."""

from __future__ import annotations

from trax.errors import TraxError


class MediaError(TraxError):
    """A file that cannot be turned into audio, with a one-line reason."""
