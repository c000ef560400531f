"""``trax enhance``: a stored transcript upgraded to v2 without transcribing again.

The stored transcript is the input of the enhancement stage exactly as the
recognition stages left it; the result is a new version of the same media
file (the old one stays), recorded with the old stages plus ``enhance``, so
its key is the one ``trax transcribe --pipeline v2`` would give it and the two
paths reuse each other's work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from trax.core import Transcript, records_key

if TYPE_CHECKING:
    from trax.llm.stage import EnhanceStage
    from trax.store.cache import StageCache
    from trax.store.transcripts import SqlTranscriptStore

STAGE = "enhance"


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What became of one stored transcript."""

    source_id: int
    transcript: Transcript | None = None
    """The enhanced version (new, or stored before); None when there is none."""
    reused: bool = False
    problem: str | None = None
    """Why nothing was stored (not found, or enhancement did not finish at all)."""
    warning: str | None = None
    """Stored, but not every chunk was enhanced."""


def enhanced(transcript: Transcript) -> bool:
    """Whether the enhancement stage ran and finished over this transcript."""
    ran = any(r.name == STAGE for r in transcript.stages)
    return ran and not any(s.name == STAGE for s in transcript.skipped)


def base_of(transcript: Transcript) -> Transcript:
    """The transcript as the recognition stages left it: without an earlier enhancement's
    record, its skip notice or its cost (its accepted edits stay in the text)."""
    return replace(
        transcript,
        id=None,
        created_at=None,
        stages=tuple(r for r in transcript.stages if r.name != STAGE),
        skipped=tuple(s for s in transcript.skipped if s.name != STAGE),
        usage={},
    )


def enhance_stored(
    store: SqlTranscriptStore,
    ids: Sequence[int],
    make_stage: Callable[[Transcript], EnhanceStage],
    *,
    cache: StageCache | None = None,
    force: bool = False,
) -> Iterator[Upgrade]:
    """Enhance each stored transcript and store the result as a new version, one at a
    time (each is saved before the next starts, so an interruption loses at most one).

    ``make_stage`` builds the stage for a transcript (its glossary includes the
    transcript's own hotwords). Without ``force`` a transcript that is already
    enhanced, or whose enhanced version is stored, is returned as it is.
    """
    from trax.media import AudioSource
    from trax.pipeline.stages import RunContext, record

    for transcript_id in ids:
        source = store.get(transcript_id)
        if source is None:
            yield Upgrade(transcript_id, problem=f"no transcript with id {transcript_id}")
            continue
        if enhanced(source) and not force:
            yield Upgrade(transcript_id, source, reused=True)
            continue
        stage = make_stage(source)
        base = base_of(source)
        stages = (*base.stages, record(stage))
        if not force:
            found = store.find(source.media.sha256, records_key(stages))
            if found is not None and enhanced(found):
                yield Upgrade(transcript_id, found, True)
                continue
        # The audio is never read (the stage works on text), but a stage may ask.
        run = RunContext(AudioSource(Path(source.media.path)), source.duration_s, cache=cache)
        tick = time.perf_counter()
        out = stage.process(base, run)
        spent = time.perf_counter() - tick
        notice = next((s.reason for s in out.skipped if s.name == STAGE), None)
        accepted = [e for e in out.edits[len(base.edits) :] if e.status == "accepted"]
        if notice is not None and notice.startswith("not enhanced") and not accepted:
            yield Upgrade(transcript_id, problem=notice)
            continue
        result = replace(
            out,
            settings=replace(source.settings, pipeline="v2"),
            stages=stages,
            timings={**base.timings, f"{STAGE}_s": spent},
        )
        saved = store.save(result)
        yield Upgrade(transcript_id, saved, warning=notice)
