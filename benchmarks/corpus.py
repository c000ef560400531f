"""The shared speech corpus and the recordings built from it for speed and memory runs.

Long recordings are built by concatenating real LibriSpeech utterances rather
than synthesising anything, and written as plain 16 kHz mono 16-bit WAV so
the decoder is not what is being measured. They are written to a temporary
folder, never into the repository.
"""

from __future__ import annotations

import shutil
import wave
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path

SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2  # bytes: 16-bit PCM


class CorpusError(Exception):
    """The corpus is missing or incomplete; the message is one line."""


@dataclass(frozen=True, slots=True)
class Corpus:
    root: Path

    @property
    def asr_dir(self) -> Path:
        return self.root / "asr-dev"

    @property
    def references(self) -> Path:
        return self.asr_dir / "references.tsv"

    @property
    def speakers_dir(self) -> Path:
        return self.root / "speakers-librispeech"

    def asr_clips(self) -> list[Path]:
        """The asr-dev clips named in ``references.tsv``, in file-name order."""
        stems = {
            line.partition("\t")[0].strip()
            for line in self.references.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        }
        return sorted(p for p in self.asr_dir.iterdir() if p.stem in stems and p.is_file())

    def librispeech_clips(self) -> list[Path]:
        return sorted(self.speakers_dir.glob("*.flac"))


def locate(root: Path) -> Corpus:
    """The corpus at ``root``, or a one-line ``CorpusError`` saying what is missing."""
    corpus = Corpus(root.resolve())
    if not root.is_dir():
        raise CorpusError(f"corpus not found at {root} (pass --corpus PATH)")
    if not corpus.references.is_file():
        raise CorpusError(f"corpus at {root} has no asr-dev/references.tsv")
    if not corpus.librispeech_clips():
        raise CorpusError(f"corpus at {root} has no speakers-librispeech/*.flac")
    return corpus


def decode_pcm16(path: Path) -> bytes:
    """The whole file as 16 kHz mono signed 16-bit little-endian PCM."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[bytes] = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            frame.pts = None  # the resampler only needs the samples in order
            chunks.extend(out.to_ndarray().tobytes() for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().tobytes() for out in resampler.resample(None))  # flush
    return b"".join(chunks)


def build_recording(clips: list[Path], seconds: float, target: Path) -> float:
    """Write ``target`` by concatenating ``clips`` (looping them) to exactly ``seconds``.

    Clips are decoded once and kept as PCM (the 52-minute set is ~100 MB), so a
    2-hour file loops over them without decoding each clip again. Returns the
    duration written, in seconds.
    """
    if not clips:
        raise CorpusError("no clips to build a recording from")
    wanted = round(seconds * SAMPLE_RATE) * SAMPLE_WIDTH
    decoded: dict[Path, bytes] = {}
    written = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        for clip in cycle(clips):
            if written >= wanted:
                break
            if clip not in decoded:
                decoded[clip] = decode_pcm16(clip)
            pcm = decoded[clip][: wanted - written]
            out.writeframes(pcm)
            written += len(pcm)
    return written / SAMPLE_WIDTH / SAMPLE_RATE


def copy_batch(clips: list[Path], target: Path) -> list[Path]:
    """Copy ``clips`` into ``target`` (flat); names in the corpus are unique."""
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for clip in clips:
        destination = target / clip.name
        shutil.copyfile(clip, destination)
        copied.append(destination)
    return sorted(copied)


def audio_seconds(path: Path) -> float:
    """Duration of a media file from its container (good enough for a batch total)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return float(container.duration) / 1_000_000
    return 0.0
