"""The v1 pipeline end to end on real recordings, against both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from tests.mediafiles import JFK, JFK_TEXT
from trax.core import TranscriptionSettings
from trax.pipeline import (
    PIPELINES,
    Pipeline,
    PipelineError,
    collect_inputs,
    get_pipeline,
)
from trax.store import Database, SqlTranscriptStore


def row_counts(database: Database) -> tuple[int, int]:
    with database.engine.connect() as conn:
        media = conn.execute(text("SELECT count(*) FROM media_files")).scalar_one()
        transcripts = conn.execute(text("SELECT count(*) FROM transcripts")).scalar_one()
    return media, transcripts


def test_transcribe_stores_jfk_with_provenance(pipeline: Pipeline, database: Database) -> None:
    transcript, cached = pipeline.transcribe(JFK)
    assert not cached
    assert JFK_TEXT.lower() in transcript.text.lower().replace(",", "")
    assert transcript.id is not None
    assert transcript.stage_versions == PIPELINES["v1"].stages
    assert transcript.model_id.startswith("tiny.en@sha256:")
    assert transcript.media.duration_s == pytest.approx(11.0, abs=0.05)
    assert set(transcript.timings) == {"probe_s", "decode_s", "asr_s", "total_s"}
    assert row_counts(database) == (1, 1)


def test_same_content_is_not_transcribed_twice(
    pipeline: Pipeline, database: Database, tmp_path: Path
) -> None:
    first, _ = pipeline.transcribe(JFK)
    renamed = tmp_path / "copy of jfk.flac"
    renamed.write_bytes(JFK.read_bytes())
    again, cached = pipeline.transcribe(renamed)
    assert cached and again.id == first.id
    forced, cached = pipeline.transcribe(renamed, force=True)
    assert not cached and forced.id != first.id
    assert row_counts(database) == (1, 2)


def test_other_settings_transcribe_again(
    pipeline: Pipeline, store: SqlTranscriptStore, database: Database
) -> None:
    pipeline.transcribe(JFK)
    greedy = Pipeline(TranscriptionSettings(beam_size=1), store, transcriber=pipeline.transcriber)
    _, cached = greedy.transcribe(JFK)
    assert not cached
    assert row_counts(database) == (1, 2)


@pytest.mark.parametrize("ext", ["mp3", "m4a", "ogg", "opus", "webm", "mp4", "mkv", "mov"])
def test_every_format_transcribes(pipeline: Pipeline, media_dir: Path, ext: str) -> None:
    transcript, _ = pipeline.transcribe(media_dir / f"jfk.{ext}")
    assert "ask not what your country can do for you" in transcript.text.lower()


def test_pure_silence_is_an_empty_transcript(pipeline: Pipeline, tmp_path: Path) -> None:
    import numpy as np

    from tests.mediafiles import write_media

    path = write_media(tmp_path / "silence.wav", np.zeros((1, 48_000 * 30), dtype=np.float32))
    transcript, _ = pipeline.transcribe(path)
    assert transcript.segments == () and transcript.text == ""
    assert transcript.media.duration_s == pytest.approx(30.0)


def test_long_recording_is_processed_in_windows(
    store: SqlTranscriptStore, transcriber: object, tmp_path: Path
) -> None:
    from trax.asr import FasterWhisperTranscriber
    from trax.media import PyAVDecoder

    assert isinstance(transcriber, FasterWhisperTranscriber)
    seen: list[float] = []

    def progress(position: float, duration: float | None) -> None:
        assert duration == pytest.approx(11.0, abs=0.05)
        seen.append(position)

    small_windows = Pipeline(
        TranscriptionSettings(),
        store,
        decoder=PyAVDecoder(window_s=4.0, search_s=1.5),
        transcriber=transcriber,
    )
    transcript, _ = small_windows.transcribe(JFK, on_progress=progress)
    assert len(seen) >= 4 and seen == sorted(seen)  # per segment and per window
    assert seen[-1] == pytest.approx(11.0, abs=0.05)
    assert "your country" in transcript.text.lower()
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts) and starts[-1] > 8.0


def test_collect_inputs_recurses_skips_non_media_and_disambiguates(
    clip_dir: Path, tmp_path: Path
) -> None:
    (clip_dir / "Präsident Kennedy.mp3").write_bytes(b"x")  # same stem, other extension
    (clip_dir / ".hidden.wav").write_bytes(b"x")
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.wav"
    inputs, problems = collect_inputs([clip_dir, empty, missing], tmp_path / "out")
    names = sorted(i.path.name for i in inputs)
    # A missing file named directly becomes a job (that fails with its reason).
    assert names == [
        "Präsident Kennedy.flac",
        "Präsident Kennedy.mp3",
        "greasy wash.wav",
        "missing.wav",
    ]
    bases = {i.path.name: i.export_base for i in inputs}
    assert bases["greasy wash.wav"] == tmp_path / "out" / "Zürich" / "greasy wash"
    assert bases["Präsident Kennedy.flac"].name == "Präsident Kennedy.flac"
    assert problems == [(empty, "no media files found in folder")]


def test_pipeline_registry() -> None:
    assert get_pipeline("v1").available
    with pytest.raises(PipelineError, match="not available yet; use v1"):
        get_pipeline("v4")
    with pytest.raises(PipelineError, match="unknown pipeline 'v9'"):
        get_pipeline("v9")


def test_python_api_transcribes_and_stores(tmp_path: Path) -> None:
    import trax

    url = f"sqlite:///{tmp_path / 'api.db'}"
    transcript = trax.transcribe(JFK, database_url=url, beam_size=1)
    assert "fellow americans" in transcript.text.lower()
    assert transcript.settings.beam_size == 1 and transcript.id == 1
    assert trax.transcribe(str(JFK), database_url=url, beam_size=1).id == 1  # stored: reused
