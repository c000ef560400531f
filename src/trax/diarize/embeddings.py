"""A speaker embedding per (window, local speaker): CAM++ on the frames they speak in.

The filterbanks of a whole 10 s window are computed once; each local
speaker's embedding comes from the frames where that speaker is active
alone (clean speech), or, when that is under ``MIN_CLEAN_S``, all frames
where they are active. A speaker active for less than ``MIN_ACTIVE_S`` gets
no embedding (too little speech to tell who it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from trax.core import SAMPLE_RATE
from trax.diarize.fbank import FRAME_LENGTH, FRAME_SHIFT, fbank
from trax.diarize.segmentation import FRAME_OFFSET_S, FRAME_STEP_S, FRAMES, Chunk, LocalActivity

EMBEDDING_DIM = 192
MIN_CLEAN_S = 0.5
MIN_ACTIVE_S = 0.25
MAX_FRAMES = 300
"""At most 3 s of filterbank frames a speaker per window (the middle ones beyond it)."""


@dataclass(frozen=True, slots=True)
class LocalEmbedding:
    """The embedding (unit length) of local speaker ``speaker`` of window ``window``."""

    window: int
    speaker: int
    vector: npt.NDArray[np.float32]
    active_s: float
    """How much speech it was computed from."""


def _fbank_to_segmentation_frames(count: int) -> npt.NDArray[np.intp]:
    """For each filterbank frame of a window, the segmentation frame at its centre."""
    centres = (np.arange(count) * FRAME_SHIFT + FRAME_LENGTH / 2) / SAMPLE_RATE
    index = np.rint((centres - FRAME_OFFSET_S) / FRAME_STEP_S).astype(np.intp)
    return np.clip(index, 0, FRAMES - 1)


class Embedder:
    """CAM++ on an onnxruntime session (see ``trax.diarize.models``)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def embed(self, feats: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The unit-length embedding of (frames × 80) filterbanks (mean-normalised here)."""
        normalised = (feats - feats.mean(axis=0, keepdims=True)).astype(np.float32)
        (out,) = self._session.run(None, {"feats": normalised[None]})
        vector = np.asarray(out, dtype=np.float32)[0]
        return np.asarray(vector / max(float(np.linalg.norm(vector)), 1e-8), dtype=np.float32)

    def window(self, index: int, chunk: Chunk, local: LocalActivity) -> list[LocalEmbedding]:
        """The embeddings of the local speakers of one window."""
        active_frames = local.activity.sum(axis=0)
        if not active_frames.any():
            return []
        feats = fbank(chunk.samples)
        to_segmentation = _fbank_to_segmentation_frames(len(feats))
        activity = local.activity[to_segmentation]  # (fbank frames × 3)
        alone = activity & (activity.sum(axis=1, keepdims=True) == 1)
        frame_s = FRAME_SHIFT / SAMPLE_RATE
        out: list[LocalEmbedding] = []
        for speaker in range(activity.shape[1]):
            mask = alone[:, speaker]
            if mask.sum() * frame_s < MIN_CLEAN_S:
                mask = activity[:, speaker]
            count = int(mask.sum())
            if count * frame_s < MIN_ACTIVE_S:
                continue
            selected = feats[mask]
            if count > MAX_FRAMES:
                first = (count - MAX_FRAMES) // 2
                selected = selected[first : first + MAX_FRAMES]
            out.append(LocalEmbedding(index, speaker, self.embed(selected), count * frame_s))
        return out
