"""Local speaker activity: pyannote segmentation-3.0 over sliding 10-second windows.

The model takes 10 s of 16 kHz mono audio and gives, for each of 589 frames
(one every 16.875 ms), log-probabilities of 7 powerset classes: nobody, one
of three local speakers, or one of the three pairs. The most likely class
per frame becomes each local speaker's activity (a frame can have two).
"Local": speaker 0 of one window has nothing to do with speaker 0 of the next;
clustering links them.

``chunks`` cuts the audio into windows as the file is decoded, keeping only
the current decoder window and the overlap, so memory does not grow with the
length of the recording.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from trax.core import SAMPLE_RATE, AudioWindow

WINDOW_S = 10.0
WINDOW_SAMPLES = int(WINDOW_S * SAMPLE_RATE)
FRAMES = 589
"""Output frames per 10 s window."""
FRAME_STEP_S = 270 / SAMPLE_RATE
"""The model's frame step: SincNet's stride of 10 samples, then three max-pools of 3."""
FRAME_OFFSET_S = 991 / SAMPLE_RATE / 2
"""The centre of frame 0 (half the model's 991-sample receptive field)."""
LOCAL_SPEAKERS = 3

# Powerset class → local speakers: {}, {0}, {1}, {2}, {0,1}, {0,2}, {1,2}.
_POWERSET = np.array(
    [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=bool
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One 10-second window of the recording (zero-padded past its end)."""

    start_s: float
    samples: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class LocalActivity:
    """What segmentation found in one window: (589 frames × 3 local speakers) activity."""

    start_s: float
    activity: npt.NDArray[np.bool_]

    def frame_times(self) -> npt.NDArray[np.float64]:
        """The centre of each frame, in seconds from the start of the recording."""
        return np.asarray(
            self.start_s + FRAME_OFFSET_S + FRAME_STEP_S * np.arange(FRAMES), dtype=np.float64
        )


def chunks(windows: Iterable[AudioWindow], step_s: float) -> Iterator[Chunk]:
    """10 s windows every ``step_s`` over decoded ``windows`` (consecutive, from 0 s)."""
    step = round(step_s * SAMPLE_RATE)
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # sample index of buffer[0] in the recording
    total = 0
    covered = -1  # where the last window yielded ends
    for window in windows:
        buffer = np.concatenate([buffer, np.asarray(window.samples, dtype=np.float32)])
        total += len(window.samples)
        while len(buffer) >= WINDOW_SAMPLES:
            yield Chunk(buffer_start / SAMPLE_RATE, buffer[:WINDOW_SAMPLES].copy())
            covered = buffer_start + WINDOW_SAMPLES
            buffer = buffer[step:]
            buffer_start += step
    if total > covered:
        # The tail (or a recording shorter than a window): zero-padded.
        padded = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        padded[: len(buffer)] = buffer
        yield Chunk(buffer_start / SAMPLE_RATE, padded)


class Segmenter:
    """segmentation-3.0 on an onnxruntime session (see ``trax.diarize.models``)."""

    def __init__(self, session: Any, threshold: float | None = None) -> None:
        self._session = session
        self.threshold = threshold
        """None: each frame's most likely class; else a local speaker is active where the
        classes that include them are together at least this likely."""

    def __call__(self, batch: list[Chunk]) -> list[LocalActivity]:
        if not batch:
            return []
        inputs = np.stack([c.samples for c in batch])[:, None, :]
        (log_probs,) = self._session.run(None, {"input": inputs})
        if self.threshold is None:
            classes = np.asarray(log_probs).argmax(axis=-1)  # (batch, frames)
            activity = _POWERSET[classes]
        else:
            marginal = np.exp(np.asarray(log_probs)) @ _POWERSET.astype(np.float32)
            activity = marginal >= self.threshold
        return [
            LocalActivity(chunk.start_s, frames)
            for chunk, frames in zip(batch, activity, strict=True)
        ]
