"""Sentence-sized segments, rebuilt from the words' own punctuation and timing.

Whisper's segments are decoding units: batched decoding returns one per
packed 30-second chunk of speech, and even sequential decoding cuts where its
window ends. Readers, search results and speaker turns want sentences. The
words are regrouped (never changed, dropped or reordered): a segment ends
where a sentence ends, where the speaker or the language changes, and at a
long pause; a sentence that runs on past ``max_duration_s`` is split at its
best break — the longest pause, preferring a clause mark, near the middle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from trax.core import Segment, Transcript, Word
from trax.punctuation import CLOSERS, ending

if TYPE_CHECKING:
    from trax.pipeline.stages import RunContext

# "Mr. Smith" or "e.g. this" do not end a sentence.
_ABBREVIATIONS = frozenset(
    ["mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "mt.", "jr.", "sr.", "vs.", "e.g.", "i.e."]
)
# What a sentence or clause mark is worth, in seconds of pause, when choosing
# where to split a long sentence.
_BONUS_S = {"sentence": 2.0, "clause": 1.0, "": 0.0}


def ends_sentence(word: Word, following: Word | None) -> bool:
    """Whether a sentence ends after ``word`` (the next word, if any, starts a new one)."""
    if ending(word.text) != "sentence" or word.text.lower() in _ABBREVIATIONS:
        return False
    if following is None or not word.text.rstrip(CLOSERS).endswith("."):
        return True
    # "3.5" or "etc. and so on": a full stop followed by a lower-case word is not an end.
    first = following.text.lstrip("\"'(«“‘¿¡")[:1]
    return not first.islower()


def _break_score(words: Sequence[Word], i: int) -> float:
    """How good a place the gap after ``words[i]`` is to split at, in seconds of pause."""
    pause = max(0.0, words[i + 1].start - words[i].end)
    return pause + _BONUS_S[ending(words[i].text)]


def _split_long(words: Sequence[Word], lo: int, hi: int, max_s: float) -> list[tuple[int, int]]:
    """``words[lo:hi]`` as index ranges of at most ``max_s`` each, split at the best breaks."""
    start, end = words[lo].start, words[hi - 1].end
    if hi - lo < 2 or end - start <= max_s:
        return [(lo, hi)]
    best, best_score = lo + 1, -1.0
    for i in range(lo, hi - 1):
        # Prefer the middle: a break near either end leaves a fragment and a run-on.
        position = (words[i].end - start) / (end - start)
        score = _break_score(words, i) + 1.0 - abs(position - 0.5) * 2
        if score > best_score:
            best, best_score = i + 1, score
    return _split_long(words, lo, best, max_s) + _split_long(words, best, hi, max_s)


@dataclass(frozen=True, slots=True)
class SentenceSettings:
    max_duration_s: float = 15.0
    pause_s: float = 1.5
    """A silence this long between two words ends a segment, punctuation or not."""


def sentences(segments: Sequence[Segment], settings: SentenceSettings) -> list[Segment]:
    """``segments`` regrouped into sentences (segments without words stay as they are)."""
    out: list[Segment] = []
    words: list[Word] = []
    sources: list[Segment] = []  # the segment each word came from

    def flush() -> None:
        if not words:
            return
        for lo, hi in _split_long(words, 0, len(words), settings.max_duration_s):
            out.append(_segment(words[lo:hi], sources[lo:hi]))
        words.clear()
        sources.clear()

    for segment in segments:
        if not segment.words:
            flush()
            out.append(segment)
            continue
        for word in segment.words:
            if words and (
                ends_sentence(words[-1], word)
                or word.start - words[-1].end >= settings.pause_s
                or word.speaker != words[-1].speaker
                or segment.language != sources[-1].language
            ):
                flush()
            words.append(word)
            sources.append(segment)
    flush()
    return out


def _segment(words: list[Word], sources: list[Segment]) -> Segment:
    """A segment of ``words`` with the quality signals of the segment most of them came from."""
    main = max(sources, key=lambda source: sum(s is source for s in sources))
    first = replace(words[0], attached=False) if words[0].attached else words[0]
    return replace(
        main,
        start=words[0].start,
        end=max(w.end for w in words),
        words=(first, *words[1:]),
        text="",
        speaker=words[0].speaker or main.speaker,
    )


class SentenceStage:
    """Regroups the words into sentence-sized segments (see the module docstring)."""

    name = "sentences"
    version = "sentences/1"
    kind: Final = "transcript"
    adds = "sentence-sized segments from the words' punctuation and pauses"
    cached = False
    optional = False

    def __init__(self, settings: SentenceSettings) -> None:
        self.settings = settings

    def unavailable(self) -> str | None:
        return None

    def process(self, transcript: Transcript, run: RunContext) -> Transcript:
        return replace(transcript, segments=tuple(sentences(transcript.segments, self.settings)))
