"""Measure Trax on your own recordings: word error rate and diarization error rate."""

from __future__ import annotations


class EvalError(Exception):
    """Evaluation input that cannot be scored; the message is one line."""


__all__ = ["EvalError"]
