"""Pipelines: the version registry, the stages, and the runner that composes them.

The runner (and with it numpy and faster-whisper) is imported only when used,
so listing pipeline versions stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trax.pipeline.versions import (
    DEFAULT_PIPELINE,
    PIPELINES,
    PipelineError,
    PipelineInfo,
    PipelineVersion,
    StageInfo,
    describe,
    get_pipeline,
)

if TYPE_CHECKING:
    from trax.pipeline.run import (
        Interrupted,
        MediaInput,
        Pipeline,
        PreparedMedia,
        build,
        collect_inputs,
    )

_RUNNER = {"Interrupted", "MediaInput", "Pipeline", "PreparedMedia", "build", "collect_inputs"}


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
    "PipelineInfo",
    "PipelineVersion",
    "PreparedMedia",
    "StageInfo",
    "build",
    "collect_inputs",
    "describe",
    "get_pipeline",
]
