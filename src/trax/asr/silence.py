"""Words written where nobody spoke: Whisper's best-known failure, caught with its own signals.

Whisper fills silence with plausible text ("You", "Thank you."). VAD keeps
most silence away from the decoder, but not all of it: a packed chunk can
carry a little silence, a word's time can land in a pause when joined speech
is mapped back to the recording, and without VAD nothing holds it back. A word
is kept only when the recording supports it:

- with VAD, at least half of the word lies in the speech it found;
- a segment that Whisper itself rates as probably silence (no-speech
  probability above its threshold) goes when it was also unsure of its
  words (their mean probability below ``UNSURE``): speech it heard clearly
  stays, however the chunk began.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import replace

from trax.asr.transcriber import NO_SPEECH_THRESHOLD
from trax.core import SAMPLE_RATE, AudioWindow, Edit, Segment, Word

SPEECH_SHARE = 0.5
"""The share of a word that must lie in detected speech."""

UNSURE = 0.5
"""A probably-silent segment whose words' mean probability is below this was invented."""

Spans = Sequence[tuple[float, float]]


def speech_spans(window: AudioWindow) -> list[tuple[float, float]] | None:
    """The speech VAD found in ``window``, in seconds from the start of the file."""
    if window.speech is None:
        return None
    return [
        (window.start_s + start / SAMPLE_RATE, window.start_s + end / SAMPLE_RATE)
        for start, end in window.speech
    ]


class _Speech:
    """Speech spans, sorted, with a quick lookup of how much of a stretch they cover."""

    def __init__(self, spans: Spans) -> None:
        self.spans = sorted(spans)
        self.starts = [start for start, _ in self.spans]

    def share(self, start: float, end: float) -> float:
        i = max(bisect.bisect_right(self.starts, start) - 1, 0)
        if end <= start:  # a zero-length word: is its instant inside speech?
            inside = bool(self.spans) and self.spans[i][0] <= start <= self.spans[i][1]
            return 1.0 if inside else 0.0
        covered = 0.0
        while i < len(self.spans) and self.spans[i][0] < end:
            covered += max(0.0, min(end, self.spans[i][1]) - max(start, self.spans[i][0]))
            i += 1
        return covered / (end - start)


def drop_unspoken(
    segments: Sequence[Segment], speech: Spans | None, stage: str
) -> tuple[list[Segment], list[Edit]]:
    """``segments`` without the words the recording does not support, and an edit per change.

    A segment left with no words goes; one left with some is re-timed to them.
    Segments without word timestamps are judged as a whole (their average
    log probability stands in for a word's probability).
    """
    found = None if speech is None else _Speech(speech)
    kept: list[Segment] = []
    edits: list[Edit] = []
    for segment in segments:
        result = _spoken_part(segment, found)
        if result is segment:
            kept.append(segment)
            continue
        after = result.text if result is not None else ""
        edits.append(Edit(stage, segment.start, segment.end, segment.text, after, "silence"))
        if result is not None:
            kept.append(result)
    return kept, edits


def _spoken_part(segment: Segment, speech: _Speech | None) -> Segment | None:
    """The segment itself when all of it is supported, a shorter one, or None."""
    words = segment.words
    if speech is not None:
        if not words:
            return segment if speech.share(segment.start, segment.end) >= SPEECH_SHARE else None
        words = tuple(w for w in words if speech.share(w.start, w.end) >= SPEECH_SHARE)
        if not words:
            return None
    if segment.no_speech_prob > NO_SPEECH_THRESHOLD:
        # Probably silence, says Whisper; text it was unsure of too was invented.
        if words:
            confidence = sum(w.probability for w in words) / len(words)
        else:
            confidence = math.exp(segment.avg_logprob)  # the mean token probability
        if confidence < UNSURE:
            return None
    if len(words) == len(segment.words):
        return segment
    return _with_words(segment, words)


def _with_words(segment: Segment, words: tuple[Word, ...]) -> Segment:
    # The first word kept no longer follows anything in this segment.
    first = replace(words[0], attached=False) if words[0].attached else words[0]
    words = (first, *words[1:])
    return replace(segment, start=words[0].start, end=words[-1].end, words=words, text="")
