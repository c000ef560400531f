"""Stream any FFmpeg-readable media as 16 kHz mono float32 windows.

Decoding is incremental: at most one window (plus the tail carried into the
next) is held in memory, so peak memory does not grow with the length of the
recording. Windows are cut at the quietest point near their nominal end so a
word is rarely split between two windows.

Any span can also be read on its own (``PyAVDecoder.read``): the decoder seeks
near it instead of decoding from the start, so later passes can go back to
ten seconds three hours into a recording at the cost of those ten seconds.
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
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
    from av.audio.stream import AudioStream
    from av.container import InputContainer

MIN_DURATION_S = 0.2
"""Shorter clips carry no recognisable word; Whisper would only invent one."""

TRUNCATION_TOLERANCE = 0.9
"""A stream that decodes to less than this share of its declared length is cut short."""

SEEK_PREROLL_S = 0.5
"""Decoded before a range and thrown away. Codecs need a little audio to settle
after a seek (the MDCT overlap of AAC/Vorbis/Opus, the MP3 bit reservoir) and so
does the resampler's filter; after this much, a range matches a full decode."""

_SEEK_TRIES = 3
"""Seeks, each reaching four times further back, before decoding from the start."""

_PLACE_FRAMES = 9
"""Frames whose timestamps together place the audio after a seek."""

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

    def read(self, path: Path, start_s: float, end_s: float) -> AudioWindow:
        """The 16 kHz samples of ``[start_s, end_s)``, placed as a full decode places them.

        Seeks to just before ``start_s`` and holds no more than the range, so a
        span deep into a long recording costs about what one at its start does,
        in time and in memory. A start before 0 reads from 0. A range running
        past the end gives what exists, down to an empty window when the range
        is empty or lies wholly beyond the end: a file's length is only certain
        once it is decoded, and callers ask for spans they computed, so running
        off the end is not an error. ``end_s`` may be ``math.inf``.

        Seeking trusts the container's timestamps, as players do; formats whose
        frames carry none are decoded from the start, counting samples. Matroska
        and WebM round timestamps to milliseconds: ranges there are still exact
        where frames last whole milliseconds (Opus, AAC or Vorbis at 48 kHz),
        and otherwise off by about a sample at 16 kHz.
        """
        import numpy as np

        if math.isnan(start_s) or math.isnan(end_s):
            raise ValueError(f"range must be numbers, got [{start_s}, {end_s})")
        check_readable(path)
        start_s = max(0.0, start_s)
        empty = AudioWindow(start_s=start_s, samples=np.zeros(0, dtype=np.float32))
        if not start_s < end_s:  # also catches start_s == inf
            return empty
        stop = round(end_s * SAMPLE_RATE) if math.isfinite(end_s) else sys.maxsize
        span = _Span(round(start_s * SAMPLE_RATE), stop)
        if span.first >= span.stop:
            return empty
        if start_s <= SEEK_PREROLL_S or not _read_seeking(path, span):
            span.clear()
            for block in self._blocks(path):
                if span.add(block):
                    break
        return AudioWindow(start_s=start_s, samples=span.samples())

    def _blocks(self, path: Path) -> Iterator[npt.NDArray[np.float32]]:
        """Yield resampled mono float32 blocks straight from the decoder."""
        import av
        import numpy as np

        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        with _audio_stream(path) as (container, stream):
            frames = _skip_invalid(container.decode(stream))
            for frame in itertools.chain(frames, [None]):
                if frame is not None:
                    # Timestamps of damaged files can jump; the resampler
                    # only needs the samples in order.
                    frame.pts = None
                for out in resampler.resample(frame):
                    yield np.array(out.to_ndarray(), dtype=np.float32).reshape(-1)
                    failpoint("decode")


@contextmanager
def _audio_stream(path: Path) -> Iterator[tuple[InputContainer, AudioStream]]:
    """The file's first audio stream, open for decoding; FFmpeg's errors, while it is
    open, become one-line ``MediaError``s."""
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise MediaError("no audio stream")
            stream = container.streams.audio[0]
            stream.codec_context.thread_type = "AUTO"
            yield container, stream
    except PermissionError:
        raise MediaError("permission denied") from None
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"cannot decode media ({_reason(exc)})") from exc


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


class _Span:
    """Keeps what of a stream of 16 kHz blocks falls in samples ``[first, stop)``.

    Only the span itself is kept, never the audio before it, so memory does not
    depend on where in the file the span lies.
    """

    def __init__(self, first: int, stop: int) -> None:
        self.first = first
        self.stop = stop
        self.position = 0  # index in a full decode of the next block's first sample
        self.parts: list[npt.NDArray[np.float32]] = []

    def add(self, block: npt.NDArray[np.float32]) -> bool:
        """Take the next block; True once the span is complete."""
        lo = max(self.first, self.position)
        hi = min(self.stop, self.position + len(block))
        if hi > lo:
            self.parts.append(block[lo - self.position : hi - self.position])
        self.position += len(block)
        return self.position >= self.stop

    def clear(self) -> None:
        self.position = 0
        self.parts = []

    def samples(self) -> npt.NDArray[np.float32]:
        import numpy as np

        if not self.parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]


def _read_seeking(path: Path, span: _Span) -> bool:
    """Fill ``span`` by seeking; False if this file's timestamps cannot place it.

    Positions are measured from the first decoded frame, because that is where
    a full decode starts counting (codec priming and pre-skip already dropped).
    """
    with _audio_stream(path) as (container, stream):
        _, origin = _peek(_skip_invalid(container.decode(stream)), stream)
        if origin is None:
            return False
        return _seek_and_decode(container, stream, origin, span)


def _seek_and_decode(
    container: InputContainer, stream: AudioStream, origin: Fraction, span: _Span
) -> bool:
    import av

    start = Fraction(span.first, SAMPLE_RATE)
    preroll = Fraction(SEEK_PREROLL_S)
    for _ in range(_SEEK_TRIES):
        if start <= preroll or stream.time_base is None:
            return False  # so near the start that decoding from it is as cheap
        try:
            container.seek(
                math.floor((origin + start - preroll) / stream.time_base),
                stream=stream,
                backward=True,
                any_frame=False,
            )
        except av.error.FFmpegError:
            return False  # a format that cannot seek
        frames = _skip_invalid(container.decode(stream))
        peeked, landed = _peek(frames, stream)
        if not peeked:
            # Nothing decodes after the seek point: the range starts past the last frame.
            return True
        if landed is None:
            return False  # frames here carry no timestamps
        rate = peeked[0].sample_rate
        offset = round((landed - origin) * rate)
        # Start the resampler on an input sample that falls exactly on a 16 kHz
        # sample of the full decode (every 441st at 44.1 kHz, every 3rd at 48 kHz):
        # its output then lands on the same grid and matches sample for sample.
        step = rate // math.gcd(rate, SAMPLE_RATE)
        aligned = -(-offset // step) * step
        if Fraction(aligned, rate) > start - preroll / 2:
            # Seeking is inexact in some formats: this landed too close to the
            # range to settle the decoder, so go further back.
            preroll *= 4
            continue
        _decode_from(itertools.chain(peeked, frames), aligned - offset, aligned, span)
        return True
    return False


def _peek(
    frames: Iterator[AudioFrame], stream: AudioStream
) -> tuple[list[AudioFrame], Fraction | None]:
    """The next few frames, and when the first of them starts (None: no timestamps).

    Each frame's timestamp less the audio decoded before it estimates that
    start; the median of the estimates is exact even where the container
    rounds timestamps (Matroska and WebM keep milliseconds) as long as most
    frames land on whole ticks, and it ignores frames without a timestamp.
    """
    peeked = list(itertools.islice(frames, _PLACE_FRAMES))
    estimates: list[Fraction] = []
    before = Fraction(0)
    for frame in peeked:
        time = _frame_time(frame, stream)
        if time is not None:
            estimates.append(time - before)
        before += Fraction(frame.samples, frame.sample_rate)
    return peeked, statistics.median_low(estimates) if estimates else None


def _decode_from(frames: Iterator[AudioFrame], drop: int, aligned: int, span: _Span) -> None:
    """Resample ``frames`` to 16 kHz into ``span``, dropping the first ``drop`` samples.

    Downmixing first, at the file's own rate, lets whole input samples be dropped
    to reach ``aligned``; resampling then starts exactly on the 16 kHz grid.
    """
    import av
    import numpy as np

    mono: av.AudioResampler | None = None
    to_16k = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    rate = 0
    for frame in itertools.chain(frames, [None]):
        if frame is not None:
            if mono is None:
                rate = frame.sample_rate
                mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
                span.position = aligned * SAMPLE_RATE // rate
            frame.pts = None  # placed by counting from here on, as a full decode does
        outs = []
        for converted in mono.resample(frame) if mono is not None else []:
            samples = np.asarray(converted.to_ndarray(), dtype=np.float32).reshape(-1)
            if drop:
                cut = min(drop, len(samples))
                samples, drop = samples[cut:], drop - cut
            if len(samples):
                piece = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(samples).reshape(1, -1), format="flt", layout="mono"
                )
                piece.sample_rate = rate
                outs.extend(to_16k.resample(piece))
        if frame is None:
            outs.extend(to_16k.resample(None))
        for out in outs:
            if span.add(np.array(out.to_ndarray(), dtype=np.float32).reshape(-1)):
                return


def _frame_time(frame: AudioFrame, stream: AudioStream) -> Fraction | None:
    """When ``frame`` starts, in seconds of stream time; None if it carries no timestamp."""
    time_base = frame.time_base or stream.time_base
    if frame.pts is None or time_base is None:
        return None
    return frame.pts * time_base
