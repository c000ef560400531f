"""Pipelines: the version registry and the runner that composes the stages.

The runner (and with it numpy, SQLAlchemy, faster-whisper) is imported only
when used, so listing pipeline versions stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trax.pipeline.versions import (
    DEFAULT_PIPELINE,
    PIPELINES,
    PipelineError,
    PipelineVersion,
    get_pipeline,
)

if TYPE_CHECKING:
    from trax.pipeline.run import Interrupted, MediaInput, Pipeline, collect_inputs

_RUNNER = {"Interrupted", "MediaInput", "Pipeline", "collect_inputs"}


def __getattr__(name: str) -> Any:
    if name in _RUNNER:
        from trax.pipeline import run

        return getattr(run, name)
    raise AttributeError(f"module 'trax.pipeline' has no attribute {name!r}")


__all__ = [
    "DEFAULT_PIPELINE",
    "PIPELINES",
    "Interrupted",
    "MediaInput",
    "Pipeline",
    "PipelineError",
    "PipelineVersion",
    "collect_inputs",
    "get_pipeline",
]
