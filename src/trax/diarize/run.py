"""Diarize one recording: segmentation → embeddings → clustering → reconstruction.

The audio is read once, as the decoder's bounded windows; each 10 s window
is segmented (in small batches) and its local speakers embedded before the
next is read, so only the per-window activity (589 × 3 booleans) and
embeddings (192 floats a local speaker) are kept: about 6 MB an hour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from trax.core import AudioWindow
from trax.diarize.clustering import SpeakerCount, cluster, propagate
from trax.diarize.embeddings import Embedder, LocalEmbedding
from trax.diarize.models import EMBEDDING, SEGMENTATION, session
from trax.diarize.reconstruct import Diarization, reconstruct
from trax.diarize.segmentation import WINDOW_S, Chunk, LocalActivity, Segmenter, chunks

BATCH = 8
"""Windows segmented at once."""


@dataclass(frozen=True, slots=True)
class DiarizationSettings:
    """Everything that changes who is said to speak when (hashed into the stage's key)."""

    speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    step_s: float = 2.5
    """Sliding-window step (windows are 10 s)."""
    embed_every: int = 2
    """Embed the local speakers of every n-th window only (CAM++ is most of the cost);
    the others are mapped by agreement with the windows that overlap them."""
    merge_similarity: float = 0.7
    """Clusters whose centroids are more similar (cosine) than this are one speaker."""
    segmentation_model: str = SEGMENTATION.id
    embedding_model: str = EMBEDDING.id

    @property
    def count(self) -> SpeakerCount:
        return SpeakerCount(self.speakers, self.min_speakers, self.max_speakers)


@dataclass(frozen=True, slots=True)
class DiarizationRuntime:
    """How to run it (does not change the result): threads, and model files to use
    instead of the bundled ones (still verified against the bundled SHA-256)."""

    threads: int = 2
    segmentation_path: Path | None = None
    embedding_path: Path | None = None


class Diarizer:
    """The two models, loaded (and verified) once, for any number of recordings."""

    def __init__(self, settings: DiarizationSettings, runtime: DiarizationRuntime) -> None:
        self.settings = settings
        self.segmenter = Segmenter(
            session(SEGMENTATION, runtime.threads, runtime.segmentation_path)
        )
        self.embedder = Embedder(session(EMBEDDING, runtime.threads, runtime.embedding_path))

    def __call__(
        self,
        windows: Iterable[AudioWindow],
        progress: Callable[[float], None] | None = None,
    ) -> Diarization:
        activities: list[LocalActivity] = []
        embeddings: list[LocalEmbedding] = []
        batch: list[Chunk] = []
        end_s = 0.0

        def flush() -> None:
            for chunk, local in zip(batch, self.segmenter(batch), strict=True):
                if len(activities) % self.settings.embed_every == 0:
                    embeddings.extend(self.embedder.window(len(activities), chunk, local))
                activities.append(local)
            if batch and progress is not None:
                progress(batch[-1].start_s + WINDOW_S)
            batch.clear()

        def counted(source: Iterable[AudioWindow]) -> Iterable[AudioWindow]:
            nonlocal end_s
            for window in source:
                end_s = max(end_s, window.end_s)
                yield window

        for chunk in chunks(counted(windows), self.settings.step_s):
            batch.append(chunk)
            if len(batch) == BATCH:
                flush()
        flush()
        clustering = cluster(embeddings, self.settings.count, self.settings.merge_similarity)
        clustering = propagate(activities, clustering)
        return reconstruct(activities, clustering, end_s)
