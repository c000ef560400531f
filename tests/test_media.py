"""Media in: every promised container decodes to 16 kHz mono; bad files fail clearly."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from tests.mediafiles import AUDIO, JFK, write_media
from trax.core import SAMPLE_RATE
from trax.media import MediaError, PyAVDecoder, is_media_path, probe
from trax.media.decode import find_quiet_cut


def decode_all(path: Path, window_s: float = 600.0) -> np.ndarray:
    info = probe(path)
    windows = list(
        PyAVDecoder(window_s=window_s, search_s=min(5.0, window_s / 2)).windows(
            path, info.duration_s
        )
    )
    return np.concatenate([w.samples for w in windows])


@pytest.mark.parametrize("ext", ["wav", "mp3", "m4a", "ogg", "opus", "webm", "mp4", "mkv", "mov"])
def test_every_container_decodes_to_16k_mono(media_dir: Path, ext: str) -> None:
    path = media_dir / f"jfk.{ext}"
    samples = decode_all(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    # 11 s of speech, give or take encoder padding.
    assert 10.5 < len(samples) / SAMPLE_RATE < 11.5
    assert 0.01 < float(np.sqrt(np.mean(samples**2))) < 0.5  # real signal, not silence or clipping


def test_probe_reports_container_codec_hash_and_channels() -> None:
    info = probe(JFK)
    assert (info.container, info.audio_codec) == ("flac", "flac")
    assert (info.sample_rate, info.channels) == (44_100, 2)
    assert info.size_bytes == JFK.stat().st_size
    import hashlib

    assert info.sha256 == hashlib.sha256(JFK.read_bytes()).hexdigest()


def test_stereo_is_downmixed_not_one_channel(tmp_path: Path) -> None:
    # Voice on the left only: a downmix keeps it (at -3 dB);
    # taking the right channel would give silence.
    mono = decode_all(AUDIO / "LDC93S1.wav")
    left_only = np.zeros((2, len(mono)), dtype=np.float32)
    left_only[0] = mono
    path = write_media(tmp_path / "left.wav", left_only, rate=SAMPLE_RATE)
    mixed = decode_all(path)
    assert np.corrcoef(mixed[: len(mono)], mono[: len(mixed)])[0, 1] > 0.99
    # FFmpeg mixes each channel in at -3 dB (1/√2), keeping loudness comparable.
    assert np.abs(mixed).max() / np.abs(mono).max() == pytest.approx(0.707, abs=0.05)


def test_windows_are_bounded_contiguous_and_lossless(media_dir: Path) -> None:
    path = media_dir / "jfk.wav"
    whole = decode_all(path)
    windows = list(PyAVDecoder(window_s=3.0, search_s=1.0).windows(path))
    assert len(windows) >= 3
    assert all(w.duration_s <= 4.0 + 1e-6 for w in windows)
    for before, after in itertools.pairwise(windows):
        assert after.start_s == pytest.approx(before.end_s)
    np.testing.assert_array_equal(np.concatenate([w.samples for w in windows]), whole)


def test_cut_lands_in_the_quietest_frame() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.3, SAMPLE_RATE * 2).astype(np.float32)
    samples[20_000:20_320] = 0.0  # a 20 ms gap
    cut = find_quiet_cut(samples, 10_000, 30_000)
    assert 20_000 <= cut <= 20_320


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("zero_bytes", "empty file (0 bytes)"),
        ("text_as_mp3", "not a readable media file"),
        ("truncated", "truncated or corrupt media"),
        ("video_only", "no audio stream (has video only)"),
        ("too_short", "audio too short to transcribe"),
    ],
)
def test_bad_input_gives_one_clear_line(
    bad_inputs: dict[str, Path], kind: str, message: str
) -> None:
    path = bad_inputs[kind]
    with pytest.raises(MediaError) as caught:
        decode_all(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="file not found"):
        probe(tmp_path / "nope.wav")
    with pytest.raises(MediaError, match="is a directory"):
        probe(tmp_path)


def test_media_extensions() -> None:
    assert is_media_path(Path("a/B.MP4")) and is_media_path(Path("x.opus"))
    assert not is_media_path(Path("notes.txt"))
