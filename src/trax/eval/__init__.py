"""Measure Trax on your own recordings: word error rate and diarization error rate."""

from __future__ import annotations

from trax.errors import TraxError


class EvalError(TraxError):
    """Evaluation input that cannot be scored; the message is one line."""


__all__ = ["EvalError"]
