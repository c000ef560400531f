"""The pipeline end to end on real recordings: stages, truthful records, pure runs, dedup."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.mediafiles import JFK, JFK_TEXT
from trax.asr import FasterWhisperTranscriber
from trax.core import AudioWindow, SkippedStage, Transcript, TranscriptionSettings, render_words
from trax.pipeline import PipelineError, build, collect_inputs, describe, get_pipeline
from trax.pipeline.stages import RunContext
from trax.service import TranscriptionService
from trax.store import Database, SqlTranscriptStore

V1 = TranscriptionSettings()


def row_counts(database: Database) -> tuple[int, int]:
    with database.engine.connect() as conn:
        media = conn.execute(text("SELECT count(*) FROM media_files")).scalar_one()
        transcripts = conn.execute(text("SELECT count(*) FROM transcripts")).scalar_one()
    return media, transcripts


def names(transcript: Transcript) -> list[str]:
    return [r.name for r in transcript.stages]


def test_transcribe_stores_jfk_with_provenance(
    service: TranscriptionService, database: Database
) -> None:
    transcript, cached = service.transcribe(JFK, V1)
    assert not cached
    assert JFK_TEXT.lower() in transcript.text.lower().replace(",", "")
    assert transcript.id is not None
    assert names(transcript) == ["decode", "vad", "recognise", "redecode", "sentences"]
    recognise = transcript.stages[2].settings
    assert recognise["model_id"] == transcript.model_id
    assert transcript.model_id.startswith("tiny.en@sha256:")
    assert recognise["batched"] is True and recognise["temperatures"] == [0.0]
    assert transcript.media.duration_s == pytest.approx(11.0, abs=0.05)
    assert {
        "probe_s",
        "decode_s",
        "vad_s",
        "recognise_s",
        "redecode_s",
        "sentences_s",
        "total_s",
    } == set(transcript.timings)
    assert row_counts(database) == (1, 1)


def test_the_record_says_what_ran(transcriber: FasterWhisperTranscriber) -> None:
    """--no-vad runs no VAD stage; --sequential has Whisper's own fallback, no re-decoding."""
    no_vad = build(replace(V1, vad=False), transcriber).run(JFK)
    assert names(no_vad) == ["decode", "recognise", "redecode", "sentences"]
    sequential = build(replace(V1, batched=False), transcriber).run(JFK)
    assert names(sequential) == ["decode", "vad", "recognise", "sentences"]
    assert sequential.stages[1].settings["min_silence_duration_ms"] == 2000  # Whisper's own
    assert sequential.stages[2].settings["temperatures"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    for transcript in (no_vad, sequential):
        assert "ask not what your country can do for you" in transcript.text.lower()
    # Different stages, different dedup keys.
    assert len({no_vad.key, sequential.key, build(V1, transcriber).key}) == 3


def test_vad_stage_decodes_exactly_what_faster_whisper_would(
    transcriber: FasterWhisperTranscriber, tmp_path: Path
) -> None:
    """VAD as its own stage hands recognition the same chunks faster-whisper's filter makes."""
    import numpy as np
    from faster_whisper import BatchedInferencePipeline

    from tests.mediafiles import read_audio, write_media
    from trax.media import PyAVDecoder

    jfk = read_audio(JFK)
    pause = np.zeros((2, 48_000 * 4), dtype=np.float32)
    path = write_media(tmp_path / "two takes.wav", np.concatenate([jfk, pause, jfk], axis=1))
    ours = build(V1, transcriber)
    ours.stages = [s for s in ours.stages if s.name in ("vad", "recognise")]
    mine = ours.run(path)
    (window,) = PyAVDecoder().windows(path)  # the same samples for both
    raw, _ = BatchedInferencePipeline(transcriber.whisper).transcribe(
        window.samples,
        batch_size=8,
        beam_size=5,
        word_timestamps=True,
        condition_on_previous_text=False,
    )
    theirs = list(raw)
    assert [s.text for s in mine.segments] == [s.text.strip() for s in theirs]
    mine_words = [t for w in mine.words for t in (w.start, w.end)]
    their_words = [t for s in theirs for w in s.words for t in (w.start, w.end)]
    assert mine_words == pytest.approx(their_words, abs=1e-6)


def test_text_is_rendered_from_words(service: TranscriptionService) -> None:
    from trax.export import get_exporter

    transcript, _ = service.transcribe(JFK, V1)
    for segment in transcript.segments:
        assert segment.words and segment.text == render_words(segment.words)
    assert (
        replace(transcript.segments[0], text="something else").text == transcript.segments[0].text
    )
    lines = get_exporter("txt").render(transcript).splitlines()
    assert lines == [s.text for s in transcript.segments]


def test_same_content_is_not_transcribed_twice(
    service: TranscriptionService, database: Database, tmp_path: Path
) -> None:
    first, _ = service.transcribe(JFK, V1)
    renamed = tmp_path / "copy of jfk.flac"
    renamed.write_bytes(JFK.read_bytes())
    again, cached = service.transcribe(renamed, V1)
    assert cached and again.id == first.id
    forced, cached = service.transcribe(renamed, V1, force=True)
    assert not cached and forced.id != first.id
    assert row_counts(database) == (1, 2)


def test_other_stage_settings_transcribe_again(
    service: TranscriptionService, database: Database
) -> None:
    service.transcribe(JFK, V1)
    _, cached = service.transcribe(JFK, replace(V1, beam_size=1))
    assert not cached
    # The model's name is not its identity: the same weights under another request
    # field that no stage reads (the batch's name for it) would still reuse; a new
    # pipeline version string alone never changes the stages' key.
    assert row_counts(database) == (1, 2)


@pytest.mark.parametrize("ext", ["mp3", "m4a", "ogg", "opus", "webm", "mp4", "mkv", "mov"])
def test_every_format_transcribes(
    transcriber: FasterWhisperTranscriber, media_dir: Path, ext: str
) -> None:
    transcript = build(V1, transcriber).run(media_dir / f"jfk.{ext}")
    assert "ask not what your country can do for you" in transcript.text.lower()


def test_pure_silence_is_an_empty_transcript(
    transcriber: FasterWhisperTranscriber, tmp_path: Path
) -> None:
    import numpy as np

    from tests.mediafiles import write_media

    path = write_media(tmp_path / "silence.wav", np.zeros((1, 48_000 * 30), dtype=np.float32))
    transcript = build(V1, transcriber).run(path)
    assert transcript.segments == () and transcript.text == ""
    assert transcript.media.duration_s == pytest.approx(30.0)


def test_long_recording_is_processed_in_windows(
    transcriber: FasterWhisperTranscriber,
) -> None:
    from trax.media import PyAVDecoder

    seen: list[float] = []

    def progress(position: float, duration: float | None) -> None:
        assert duration == pytest.approx(11.0, abs=0.05)
        seen.append(position)

    small_windows = build(V1, transcriber, decoder=PyAVDecoder(window_s=4.0, search_s=1.5))
    transcript = small_windows.run(JFK, on_progress=progress)
    assert len(seen) >= 4 and seen == sorted(seen)  # per segment and per window
    assert seen[-1] == pytest.approx(11.0, abs=0.05)
    assert "your country" in transcript.text.lower()
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts) and starts[-1] > 8.0
    assert transcript.stages[0].settings["window_s"] == 4.0


@dataclass(frozen=True, slots=True)
class ShoutSettings:
    """A test stage's settings."""

    suffix: str = "!"


class ShoutStage:
    """A transcript stage written for the test: it proves the pipeline runs, skips or
    refuses a stage by what the stage says of itself."""

    name = "shout"
    version = "test/1"
    kind = "transcript"
    adds = "exclamation marks"
    cached = True

    def __init__(self, reason: str | None, optional: bool) -> None:
        self.settings = ShoutSettings()
        self.reason = reason
        self.optional = optional
        self.calls = 0

    def unavailable(self) -> str | None:
        return self.reason

    def process(self, transcript: Transcript, run: RunContext) -> Transcript:
        self.calls += 1
        assert run.audio.read(1.0, 2.0).samples.size == 16_000  # stages may go back to audio
        return transcript


def test_a_stage_that_cannot_run_is_skipped_with_its_reason_or_stops_the_run(
    transcriber: FasterWhisperTranscriber,
) -> None:
    pipeline = build(V1, transcriber)
    ready = ShoutStage(reason=None, optional=True)
    pipeline.stages.append(ready)  # type: ignore[arg-type]
    ran = pipeline.run(JFK)
    assert names(ran)[-1] == "shout" and ready.calls == 1 and ran.skipped == ()

    pipeline.stages[-1] = ShoutStage(reason="needs an API key", optional=True)  # type: ignore[call-overload]
    skipped = pipeline.run(JFK)
    assert "shout" not in names(skipped)
    assert skipped.skipped == (SkippedStage("shout", "needs an API key"),)
    assert skipped.key != ran.key  # a skipped stage never stands in for a run one

    required = ShoutStage(reason="needs an API key", optional=False)
    pipeline.stages[-1] = required  # type: ignore[call-overload]
    with pytest.raises(PipelineError, match="stage shout cannot run: needs an API key"):
        pipeline.run(Path("/nonexistent/file.wav"))  # refused before the file is touched


def test_python_api_is_pure_unless_asked_to_store(tmp_path: Path) -> None:
    import trax
    from trax.config import load_config

    data = load_config().data_dir
    transcript = trax.transcribe(JFK, beam_size=1)
    assert "fellow americans" in transcript.text.lower() and transcript.id is None
    assert not data.exists() or not any(data.iterdir())  # no database was created

    url = f"sqlite:///{tmp_path / 'api.db'}"
    stored = trax.transcribe(JFK, store=True, database_url=url, beam_size=1)
    assert stored.settings.beam_size == 1 and stored.id == 1
    assert trax.transcribe(str(JFK), store=True, database_url=url, beam_size=1).id == 1
    from trax.errors import TraxError

    with pytest.raises(TraxError, match="only with store=True"):
        trax.transcribe(JFK, database_url=url)


def test_stored_transcript_records_stages_and_reloads(
    service: TranscriptionService, store: SqlTranscriptStore
) -> None:
    saved, _ = service.transcribe(JFK, V1)
    assert saved.id is not None
    loaded = store.get(saved.id)
    assert loaded is not None
    assert loaded.stages == saved.stages and loaded.key == saved.key
    assert store.find(saved.media.sha256, service.pipeline(V1).key) == loaded


def test_collect_inputs_recurses_skips_non_media_and_disambiguates(
    clip_dir: Path, tmp_path: Path
) -> None:
    (clip_dir / "Präsident Kennedy.mp3").write_bytes(b"x")  # same stem, other extension
    (clip_dir / ".hidden.wav").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.wav"
    inputs, problems = collect_inputs([clip_dir, empty, missing], tmp_path / "out")
    found = sorted(i.path.name for i in inputs)
    # A missing file named directly becomes a job (that fails with its reason).
    assert found == [
        "Präsident Kennedy.flac",
        "Präsident Kennedy.mp3",
        "greasy wash.wav",
        "missing.wav",
    ]
    bases = {i.path.name: i.export_base for i in inputs}
    assert bases["greasy wash.wav"] == tmp_path / "out" / "Zürich" / "greasy wash"
    assert bases["Präsident Kennedy.flac"].name == "Präsident Kennedy.flac"
    assert problems == [(empty, "no media files found in folder")]


def test_pipeline_registry_is_generated_from_the_stages() -> None:
    assert get_pipeline("v1").name == "v1"
    with pytest.raises(PipelineError, match=r"unknown pipeline 'v9' \(choose from v1, v2, v3, v4"):
        get_pipeline("v9")
    infos = {i.name: i for i in describe()}
    v1 = infos["v1"]
    assert v1.available and [s.name for s in v1.stages] == [
        "vad",
        "recognise",
        "redecode",
        "sentences",
    ]
    assert all(s.version and s.adds and s.available for s in v1.stages)
    assert [s.name for s in infos["v4"].stages][-2:] == ["diarize", "sentences"]


def test_window_speech_is_what_vad_found(transcriber: FasterWhisperTranscriber) -> None:
    from trax.media import AudioSource, PyAVDecoder

    (window,) = PyAVDecoder().windows(JFK)
    vad = build(V1, transcriber).stages[0]
    transcript = build(V1, transcriber).run(JFK)
    marked, _ = vad.process(window, transcript, RunContext(AudioSource(JFK), 11.0))  # type: ignore[attr-defined]
    assert isinstance(marked, AudioWindow) and marked.speech
    assert all(0 <= a < b <= len(window.samples) for a, b in marked.speech)
