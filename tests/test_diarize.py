"""Speaker diarization on real recordings: a woman then a man, with a known turn boundary."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.mediafiles import AUDIO, read_audio, write_media
from trax.asr import FasterWhisperTranscriber, ModelError
from trax.core import Segment, TranscriptionSettings, Word
from trax.diarize.clustering import SpeakerCount, assign, spectral_labels
from trax.diarize.models import EMBEDDING, SEGMENTATION, verified_path
from trax.diarize.reconstruct import Diarization, rttm
from trax.diarize.run import DiarizationRuntime, DiarizationSettings, Diarizer
from trax.diarize.segmentation import WINDOW_SAMPLES, chunks
from trax.diarize.stage import DiarizeStage
from trax.diarize.words import label_words
from trax.media import AudioSource
from trax.pipeline import build, describe
from trax.pipeline.stages import RunContext

WOMAN = AUDIO / "LJ001-0001.wav"  # LJ Speech: one woman reading
MAN = AUDIO / "1089-134686-0000.flac"  # LibriSpeech 1089: a man reading
RATE = 16_000


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The woman's clip, then the man's: (the file, the time the man starts)."""
    woman = read_audio(WOMAN, RATE, "mono")
    man = read_audio(MAN, RATE, "mono")
    path = tmp_path_factory.mktemp("diarize") / "conversation.flac"
    write_media(path, np.concatenate([woman, man], axis=1), RATE)
    return path, woman.shape[1] / RATE


@pytest.fixture(scope="module")
def diarizer() -> Diarizer:
    return Diarizer(DiarizationSettings(), DiarizationRuntime(threads=2))


@pytest.fixture(scope="module")
def diarized(conversation: tuple[Path, float], diarizer: Diarizer) -> Diarization:
    return diarizer(AudioSource(conversation[0]).windows())


def test_two_speakers_and_the_turn_boundary(
    diarized: Diarization, conversation: tuple[Path, float]
) -> None:
    _, boundary = conversation
    assert diarized.speakers == ("SPEAKER_1", "SPEAKER_2")
    first = [t for t in diarized.turns if t.speaker == "SPEAKER_1"]
    second = [t for t in diarized.turns if t.speaker == "SPEAKER_2"]
    # The woman speaks first; each speaker's turns stay on their side of the boundary
    # (give or take the pauses at the clips' ends: LibriSpeech starts with ~0.5 s of silence).
    assert boundary - 0.8 < max(t.end for t in first) < boundary + 0.2
    assert boundary - 0.2 < min(t.start for t in second) < boundary + 0.8
    assert sum(t.end - t.start for t in first) > 6.0
    assert sum(t.end - t.start for t in second) > 6.0
    lines = rttm(diarized, "conversation").splitlines()
    assert len(lines) == len(diarized.turns)
    assert lines[0].startswith("SPEAKER conversation 1 ")


def test_a_speaker_count_is_honoured(conversation: tuple[Path, float], diarizer: Diarizer) -> None:
    one = Diarizer.__new__(Diarizer)
    one.settings = DiarizationSettings(speakers=1)
    one.segmenter, one.embedder = diarizer.segmenter, diarizer.embedder
    assert one(AudioSource(conversation[0]).windows()).speakers == ("SPEAKER_1",)


def test_every_word_gets_the_speaker_of_its_side(
    conversation: tuple[Path, float], transcriber: FasterWhisperTranscriber
) -> None:
    """Real words from tiny.en, labelled by the stage: none unlabelled, stable, split."""
    path, boundary = conversation
    transcript = build(TranscriptionSettings(), transcriber).run(path)
    stage = DiarizeStage(DiarizationSettings())
    run = RunContext(AudioSource(path), transcript.duration_s)
    labelled = stage.process(transcript, run)
    words = labelled.words
    assert [w.text for w in words] == [w.text for w in transcript.words]
    assert all(w.speaker is not None for w in words)
    for word in words:
        middle = (word.start + word.end) / 2
        if abs(middle - boundary) > 0.5:
            expected = "SPEAKER_1" if middle < boundary else "SPEAKER_2"
            assert word.speaker == expected, word
    for segment in labelled.segments:
        assert {w.speaker for w in segment.words} == {segment.speaker}
    assert labelled.segments[0].speaker == "SPEAKER_1"
    assert labelled.segments[-1].speaker == "SPEAKER_2"
    # Labels are stable: the same file gives the same labels.
    again = DiarizeStage(DiarizationSettings()).process(transcript, run)
    assert [w.speaker for w in again.words] == [w.speaker for w in words]


def test_v4_diarizes_before_sentences() -> None:
    v4 = next(info for info in describe() if info.name == "v4")
    names = [s.name for s in v4.stages]
    assert names.index("diarize") == names.index("sentences") - 1
    assert v4.available, v4.reason


def test_windows_cover_the_recording() -> None:
    audio = read_audio(MAN, RATE, "mono")[0]
    from trax.core import AudioWindow

    parts = [AudioWindow(0.0, audio[:50_000]), AudioWindow(50_000 / RATE, audio[50_000:])]
    got = list(chunks(parts, 2.5))
    assert [c.start_s for c in got] == [0.0, 2.5]  # 10.4 s: the second window reaches the end
    assert all(len(c.samples) == WINDOW_SAMPLES for c in got)
    assert np.array_equal(got[1].samples[: len(audio) - 40_000], audio[40_000:])
    short = list(chunks([AudioWindow(0.0, audio[:RATE])], 2.5))
    assert len(short) == 1 and not short[0].samples[RATE:].any()


def test_words_without_a_speaker_nearby_still_get_one(diarized: Diarization) -> None:
    words = [
        Word(1.0, 1.4, "Hello", 0.9),
        Word(1.5, 1.8, "there.", 0.9),
        Word(100.0, 100.5, "Far", 0.9),  # past the end: no turn within 0.5 s
    ]
    labels = label_words(words, diarized)
    assert labels[:2] == ["SPEAKER_1", "SPEAKER_1"]
    assert labels[2] in diarized.speakers


def test_single_word_islands_are_absorbed(diarized: Diarization) -> None:
    """A word inside the woman's speech whose own evidence is weak keeps her label."""
    words = [Word(2.0 + 0.3 * i, 2.25 + 0.3 * i, "word", 0.9) for i in range(5)]
    empty = replace(
        diarized,
        active=diarized.active.copy(),
        scores=diarized.scores.copy(),
    )
    frame = Diarization.frame_of(2.0 + 0.3 * 2 + 0.125)
    empty.active[frame - 3 : frame + 4] = [False, True]
    assert label_words(words, empty) == ["SPEAKER_1"] * 5


def test_clustering_and_assignment() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8, dtype=np.float32)
    points = np.concatenate([c + 0.05 * rng.standard_normal((6, 8)) for c in centres])
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    labels = spectral_labels(points, SpeakerCount())
    assert len(set(labels.tolist())) == 3
    assert all(len(set(labels[i : i + 6].tolist())) == 1 for i in (0, 6, 12))
    assert len(set(spectral_labels(points, SpeakerCount(maximum=2)).tolist())) == 2
    sims = np.array([[0.9, 0.8], [0.95, 0.1]], dtype=np.float32)
    assert assign(sims).tolist() == [1, 0]  # each cluster once, best total
    assert assign(np.ones((3, 2), dtype=np.float32)).tolist().count(-1) == 1


def test_models_are_verified_and_a_corrupt_copy_is_refused(tmp_path: Path) -> None:
    for model in (SEGMENTATION, EMBEDDING):
        assert verified_path(model) == model.path
    corrupt = tmp_path / SEGMENTATION.filename
    shutil.copyfile(SEGMENTATION.path, corrupt)
    with corrupt.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelError) as refused:
        Diarizer(DiarizationSettings(), DiarizationRuntime(segmentation_path=corrupt))
    message = str(refused.value)
    assert "failed its SHA-256 check" in message and "\n" not in message
    with pytest.raises(ModelError, match="missing"):
        verified_path(EMBEDDING, tmp_path / "nothing.onnx")


def test_a_transcript_without_words_is_left_alone(conversation: tuple[Path, float]) -> None:
    from trax.core import MediaInfo, Transcript

    media = MediaInfo("x.wav", 0, "0" * 64, 1.0, "wav", "pcm", RATE, 1)
    empty = Transcript(media, (Segment(0.0, 1.0, "hi"),), "en", 1.0, TranscriptionSettings(), "m")
    run = RunContext(AudioSource(conversation[0]), 1.0)
    assert DiarizeStage(DiarizationSettings()).process(empty, run) is empty
    assert DiarizeStage(DiarizationSettings()).unavailable() is None
