"""Make test media from the real recordings in the repo, with PyAV's own encoders.

Re-encoding real speech into each container/codec pair tests what users feed
Trax (phones record m4a, browsers webm/opus, cameras mp4/mov) without shipping
a copy of every format.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "data" / "audio"
JFK = ROOT / "examples" / "jfk.flac"
JFK_TEXT = "And so my fellow Americans ask not what your country can do for you"

# extension -> (container format, audio codec, video codec or None)
FORMATS: dict[str, tuple[str, str, str | None]] = {
    "wav": ("wav", "pcm_s16le", None),
    "flac": ("flac", "flac", None),
    "mp3": ("mp3", "libmp3lame", None),
    "m4a": ("ipod", "aac", None),
    "ogg": ("ogg", "vorbis", None),
    "opus": ("ogg", "libopus", None),
    "webm": ("webm", "libopus", "libvpx"),
    "mp4": ("mp4", "aac", "mpeg4"),
    "mkv": ("matroska", "libopus", "mpeg4"),
    "mov": ("mov", "aac", "mpeg4"),
}


def read_audio(path: Path, rate: int = 48_000, layout: str = "stereo") -> npt.NDArray[np.float32]:
    """Decode a file to planar float32 (channels × samples) at ``rate``."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            frame.pts = None
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray())
    return np.concatenate(chunks, axis=1).astype(np.float32)


def write_media(
    path: Path,
    samples: npt.NDArray[np.float32] | None,
    rate: int = 48_000,
    fmt: str | None = None,
    video_seconds: float = 0.0,
    repeat: int = 1,
) -> Path:
    """Encode planar float samples (and optionally a few seconds of video) to ``path``.

    ``repeat`` writes the samples that many times over, so a long file is cheap
    to make: only one copy of the recording is ever in memory.
    """
    container_name, audio_codec, video_codec = FORMATS[fmt or path.suffix.lstrip(".")]
    with av.open(str(path), mode="w", format=container_name) as out:
        video: VideoStream | None = None
        if video_codec and video_seconds:
            video = cast(VideoStream, out.add_stream(video_codec, rate=10))
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio: AudioStream | None = None
        if samples is not None:
            # FFmpeg's own Vorbis encoder is flagged experimental; it is fine for tests.
            audio = cast(
                AudioStream,
                out.add_stream(audio_codec, rate=rate, options={"strict": "experimental"}),
            )
            audio.layout = "stereo" if samples.shape[0] == 2 else "mono"
        if video is not None:
            for i in range(int(video_seconds * 10)):
                image = np.full((48, 64, 3), (i * 20) % 255, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, 10)
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        if audio is not None and samples is not None:
            layout = "stereo" if samples.shape[0] == 2 else "mono"
            resampler = av.AudioResampler(format=audio.format.name, layout=layout, rate=rate)
            step, pts = 4096, 0
            for _ in range(repeat):
                for start in range(0, samples.shape[1], step):
                    chunk = av.AudioFrame.from_ndarray(
                        np.ascontiguousarray(samples[:, start : start + step]),
                        format="fltp",
                        layout=layout,
                    )
                    chunk.sample_rate = rate
                    # Timestamps, or the Vorbis muxer writes granule positions that
                    # jump backwards and the file cannot be seeked in.
                    chunk.pts, chunk.time_base = pts, Fraction(1, rate)
                    pts += chunk.samples
                    for converted in resampler.resample(chunk):
                        out.mux(audio.encode(converted))
            for converted in resampler.resample(None):
                out.mux(audio.encode(converted))
            out.mux(audio.encode(None))
    return path
