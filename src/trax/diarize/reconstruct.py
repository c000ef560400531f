"""Overlap-aware reconstruction: global speaker activity on one frame grid.

Every window's local activity is written to the global speaker its local
speaker was mapped to, on a frame grid of the segmentation's step; where
windows overlap the activities are averaged, and so is the number of local
speakers active. Each frame then keeps that many speakers (rounded), the
most active first: two speakers where the segmentation heard two at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trax.diarize.clustering import Clustering
from trax.diarize.segmentation import FRAME_OFFSET_S, FRAME_STEP_S, FRAMES, LocalActivity

COUNT_THRESHOLD = 0.5
"""A frame has n speakers where the windows over it heard, on average, n - 1 + this."""


@dataclass(frozen=True, slots=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True, slots=True)
class Diarization:
    """Who speaks when: per-frame activity of each speaker, and the turns it makes.

    Frame ``i`` is centred at ``FRAME_OFFSET_S + i × FRAME_STEP_S`` seconds.
    ``scores`` is the averaged activity (frames × speakers, 0–1), ``active``
    the reconstruction (at most as many speakers per frame as were heard).
    """

    speakers: tuple[str, ...]
    scores: npt.NDArray[np.float32]
    active: npt.NDArray[np.bool_]
    turns: tuple[Turn, ...]

    @staticmethod
    def frame_of(time_s: float) -> int:
        return round((time_s - FRAME_OFFSET_S) / FRAME_STEP_S)


def speaker_label(index: int) -> str:
    return f"SPEAKER_{index + 1}"


def reconstruct(
    windows: Sequence[LocalActivity], clustering: Clustering, duration_s: float
) -> Diarization:
    frames = max(Diarization.frame_of(duration_s) + 1, 1)
    k = clustering.count
    scores = np.zeros((frames, max(k, 1)), dtype=np.float32)
    count = np.zeros(frames, dtype=np.float32)
    weight = np.zeros(frames, dtype=np.float32)
    for w, local in enumerate(windows):
        first = Diarization.frame_of(local.start_s + FRAME_OFFSET_S)
        target = first + np.arange(FRAMES)
        inside = target < frames
        target = target[inside]
        activity = local.activity[inside]
        weight[target] += 1.0
        count[target] += activity.sum(axis=1)
        for speaker in range(activity.shape[1]):
            cluster = clustering.mapping.get((w, speaker))
            if cluster is not None:
                scores[target, cluster] += activity[:, speaker]
    seen = weight > 0
    scores[seen] /= weight[seen, None]
    speakers_per_frame = np.floor(
        np.where(seen, count / np.maximum(weight, 1.0), 0.0) + 1.0 - COUNT_THRESHOLD
    )
    active = np.zeros_like(scores, dtype=bool)
    if k:
        order = np.argsort(-scores, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(scores.shape[1])[None, :], axis=1)
        active = (rank < speakers_per_frame[:, None]) & (scores > 0)
    # Speakers in order of first appearance.
    firsts = [(int(np.argmax(active[:, c])), c) for c in range(k) if active[:, c].any()]
    order_of = [c for _, c in sorted(firsts)]
    scores = scores[:, order_of] if order_of else np.zeros((frames, 0), dtype=np.float32)
    active = active[:, order_of] if order_of else np.zeros((frames, 0), dtype=bool)
    labels = tuple(speaker_label(i) for i in range(len(order_of)))
    return Diarization(labels, scores, active, _turns(active, labels, duration_s))


def _turns(
    active: npt.NDArray[np.bool_], labels: tuple[str, ...], end_s: float
) -> tuple[Turn, ...]:
    turns: list[Turn] = []
    for c, label in enumerate(labels):
        column = np.concatenate([[False], active[:, c], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(column))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            start = max(0.0, FRAME_OFFSET_S + (float(a) - 0.5) * FRAME_STEP_S)
            end = min(end_s, FRAME_OFFSET_S + (float(b) - 0.5) * FRAME_STEP_S)
            if end > start:
                turns.append(Turn(round(start, 3), round(end, 3), label))
    turns.sort(key=lambda t: (t.start, t.speaker))
    return tuple(turns)


def rttm(diarization: Diarization, uri: str) -> str:
    """The turns as RTTM ``SPEAKER`` lines."""
    return "".join(
        f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n"
        for t in diarization.turns
    )
