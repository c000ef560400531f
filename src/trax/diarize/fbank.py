"""Kaldi-style log mel filterbanks in numpy, as 3D-Speaker computes CAM++'s input.

The same as ``torchaudio.compliance.kaldi.fbank(wave, num_mel_bins=80,
dither=0)``: 25 ms frames every 10 ms (edges snipped), DC offset removed,
pre-emphasis 0.97, Povey window, 512-point power spectrum, 80 triangular mel
bins from 20 Hz to Nyquist, natural log floored at float32 epsilon.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from trax.core import SAMPLE_RATE

FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
FFT_SIZE = 512
NUM_MEL_BINS = 80
_PREEMPHASIS = 0.97
_LOW_HZ = 20.0
_EPSILON = float(np.finfo(np.float32).eps)


def _mel(hz: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64]:
    return np.asarray(1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0))


@cache
def _mel_banks() -> npt.NDArray[np.float32]:
    """(257 FFT bins × 80 mel bins) triangular weights, as Kaldi builds them."""
    high_hz = SAMPLE_RATE / 2
    mel_low, mel_high = float(_mel(_LOW_HZ)), float(_mel(high_hz))
    delta = (mel_high - mel_low) / (NUM_MEL_BINS + 1)
    bins = np.arange(NUM_MEL_BINS)[:, None]
    left = mel_low + bins * delta
    center = left + delta
    right = center + delta
    mel = _mel(np.arange(FFT_SIZE // 2) * SAMPLE_RATE / FFT_SIZE)[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    weights = np.maximum(0.0, np.minimum(up, down))
    banks = np.zeros((FFT_SIZE // 2 + 1, NUM_MEL_BINS), dtype=np.float32)
    banks[: FFT_SIZE // 2] = weights.T  # Kaldi gives the Nyquist bin no weight
    return banks


@cache
def _window() -> npt.NDArray[np.float64]:
    n = np.arange(FRAME_LENGTH)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME_LENGTH - 1))
    return np.asarray(hann**0.85)


def num_frames(num_samples: int) -> int:
    return 0 if num_samples < FRAME_LENGTH else 1 + (num_samples - FRAME_LENGTH) // FRAME_SHIFT


def fbank(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(frames × 80) log mel filterbank energies of 16 kHz mono ``samples``.

    Frame ``i`` covers samples ``[160 i, 160 i + 400)``. Not mean-normalised.
    """
    count = num_frames(len(samples))
    if count == 0:
        return np.zeros((0, NUM_MEL_BINS), dtype=np.float32)
    wave = np.asarray(samples, dtype=np.float64)
    index = np.arange(FRAME_LENGTH)[None, :] + FRAME_SHIFT * np.arange(count)[:, None]
    frames = wave[index]
    frames -= frames.mean(axis=1, keepdims=True)
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - _PREEMPHASIS * previous) * _window()
    spectrum = np.fft.rfft(frames, n=FFT_SIZE, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    energies = power @ _mel_banks()
    return np.asarray(np.log(np.maximum(energies, _EPSILON)), dtype=np.float32)
