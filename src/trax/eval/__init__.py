"""Measure Trax on your own recordings: word error rate and diarization error rate.

The scorers (jiwer, Whisper's normaliser, pyannote.metrics with pandas, scipy and
scikit-learn) are the ``eval`` extra, not part of the default install: nothing
else in Trax imports them.
"""

from __future__ import annotations

from trax.errors import TraxError

INSTALL_HINT = "pip install 'trax[eval]' (or, in a checkout, uv sync --extra eval)"

_DISTRIBUTIONS = {
    "jiwer": "jiwer",
    "whisper_normalizer": "whisper-normalizer",
    "pyannote.metrics": "pyannote-metrics",
}


class EvalError(TraxError):
    """Evaluation input that cannot be scored; the message is one line."""


def require(*modules: str) -> None:
    """Raise ``EvalError`` naming the missing packages unless ``modules`` can be imported."""
    import importlib

    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(_DISTRIBUTIONS.get(module, module))
    if missing:
        raise EvalError(
            f"trax eval needs {', '.join(missing)}, which the default install leaves out: "
            f"{INSTALL_HINT}"
        )


__all__ = ["INSTALL_HINT", "EvalError", "require"]
