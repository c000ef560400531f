"""Stream any FFmpeg-readable media as 16 kHz mono float32 windows.

Decoding is incremental: at most one window (plus the tail carried into the
next) is held in memory, so peak memory does not grow with the length of the
recording. Windows are cut at the quietest point near their nominal end so a
word is rarely split between two windows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from trax.core import SAMPLE_RATE, AudioWindow
from trax.failpoints import failpoint
from trax.media.errors import MediaError
from trax.media.probe import _reason, check_readable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from av.audio.frame import AudioFrame

MIN_DURATION_S = 0.2
"""Shorter clips carry no recognisable word; Whisper would only invent one."""

TRUNCATION_TOLERANCE = 0.9
"""A stream that decodes to less than this share of its declared length is cut short."""

_CUT_FRAME_S = 0.02


def find_quiet_cut(samples: npt.NDArray[np.float32], lo: int, hi: int) -> int:
    """Index in ``samples[lo:hi]`` at the centre of the quietest 20 ms frame."""
    import numpy as np

    frame = int(_CUT_FRAME_S * SAMPLE_RATE)
    region = samples[lo:hi]
    n_frames = len(region) // frame
    if n_frames == 0:
        return hi
    energy = np.square(region[: n_frames * frame].reshape(n_frames, frame)).mean(axis=1)
    quietest = int(np.argmin(energy))
    return lo + quietest * frame + frame // 2


class PyAVDecoder:
    """Decodes with the FFmpeg libraries bundled in PyAV — no system ffmpeg needed."""

    def __init__(self, window_s: float = 600.0, search_s: float = 15.0) -> None:
        if search_s >= window_s:
            raise ValueError("search_s must be shorter than window_s")
        self.window_s = window_s
        self.search_s = search_s

    def windows(
        self, path: Path, declared_duration_s: float | None = None
    ) -> Iterator[AudioWindow]:
        import numpy as np

        check_readable(path)
        window = int(self.window_s * SAMPLE_RATE)
        search = int(self.search_s * SAMPLE_RATE)
        pending: list[npt.NDArray[np.float32]] = []
        pending_len = 0
        offset = 0  # samples already yielded
        for block in self._blocks(path):
            pending.append(block)
            pending_len += len(block)
            if pending_len < window + search:
                continue
            buffer = np.concatenate(pending)
            cut = find_quiet_cut(buffer, window - search, window + search)
            yield AudioWindow(start_s=offset / SAMPLE_RATE, samples=buffer[:cut])
            offset += cut
            pending, pending_len = [buffer[cut:]], len(buffer) - cut

        total = offset + pending_len
        if total < MIN_DURATION_S * SAMPLE_RATE:
            raise MediaError(
                f"audio too short to transcribe ({total / SAMPLE_RATE:.2f} s; "
                f"minimum {MIN_DURATION_S} s)"
            )
        if declared_duration_s and total / SAMPLE_RATE < TRUNCATION_TOLERANCE * declared_duration_s:
            raise MediaError(
                f"truncated or corrupt media: decoded {total / SAMPLE_RATE:.1f} s "
                f"of a declared {declared_duration_s:.1f} s"
            )
        if pending_len:
            tail = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield AudioWindow(start_s=offset / SAMPLE_RATE, samples=tail)

    def _blocks(self, path: Path) -> Iterator[npt.NDArray[np.float32]]:
        """Yield resampled mono float32 blocks straight from the decoder."""
        import av
        import numpy as np

        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            with av.open(str(path), mode="r", metadata_errors="ignore") as container:
                if not container.streams.audio:
                    raise MediaError("no audio stream")
                stream = container.streams.audio[0]
                stream.codec_context.thread_type = "AUTO"
                frames = _skip_invalid(container.decode(stream))
                for frame in itertools.chain(frames, [None]):
                    if frame is not None:
                        # Timestamps of damaged files can jump; the resampler
                        # only needs the samples in order.
                        frame.pts = None
                    for out in resampler.resample(frame):
                        yield np.array(out.to_ndarray(), dtype=np.float32).reshape(-1)
                        failpoint("decode")
        except PermissionError:
            raise MediaError("permission denied") from None
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise MediaError(f"cannot decode media ({_reason(exc)})") from None


def _skip_invalid(frames: Iterator[AudioFrame]) -> Iterator[AudioFrame]:
    """Skip undecodable packets; the truncation check catches real damage."""
    import av

    iterator = iter(frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue
