"""A speaker for every word, decided at word level.

Each word is scored against each speaker over its central half (Whisper's
word edges are the least reliable part of its timing), from the
reconstruction's activity, with the averaged scores as a tie-break. A word
no speaker is active in takes the nearest turn within ``NEAR_S``, else its
neighbour's speaker: no word is left without one. The sequence is then
smoothed (Viterbi): changing speaker costs ``CHANGE_COST``, less at a pause
of ``PAUSE_S`` or more and after a sentence end. Last, a single word whose
neighbours agree on another speaker takes theirs, unless its turn is real
(its own speaker clearly active and theirs clearly not).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from trax.asr.sentences import ends_sentence
from trax.core import Segment, Word
from trax.diarize.reconstruct import Diarization

NEAR_S = 0.5
PAUSE_S = 0.3
CHANGE_COST = 0.6
CHANGE_COST_AT_BREAK = 0.15
ISLAND_OWN = 0.8
ISLAND_OTHER = 0.2


def word_scores(words: Sequence[Word], diarization: Diarization) -> npt.NDArray[np.float32]:
    """(words × speakers) evidence, 0–1: share of the word's central half each speaker is
    active in (plus a little of the averaged score), or a nearest-turn fallback."""
    k = len(diarization.speakers)
    scores = np.zeros((len(words), k), dtype=np.float32)
    if not k:
        return scores
    last = len(diarization.active) - 1
    for i, word in enumerate(words):
        quarter = max(0.0, word.end - word.start) / 4
        a = min(max(Diarization.frame_of(word.start + quarter), 0), last)
        b = min(max(Diarization.frame_of(word.end - quarter), a), last)
        active = diarization.active[a : b + 1].mean(axis=0)
        soft = diarization.scores[a : b + 1].mean(axis=0)
        scores[i] = 0.9 * active + 0.1 * soft
        if scores[i].max() <= 0:
            nearest = _nearest_turn(word, diarization)
            if nearest is not None:
                scores[i, nearest] = 0.5
    return scores


def _nearest_turn(word: Word, diarization: Diarization) -> int | None:
    best, best_gap = None, NEAR_S
    for turn in diarization.turns:
        gap = max(turn.start - word.end, word.start - turn.end, 0.0)
        if gap <= best_gap:
            best, best_gap = diarization.speakers.index(turn.speaker), gap
    return best


def _change_costs(words: Sequence[Word]) -> list[float]:
    """The cost of a speaker change before each word (index 0 unused)."""
    costs = [0.0]
    for previous, word in itertools.pairwise(words):
        pause = word.start - previous.end >= PAUSE_S
        costs.append(
            CHANGE_COST_AT_BREAK if pause or ends_sentence(previous, word) else CHANGE_COST
        )
    return costs


def label_words(words: Sequence[Word], diarization: Diarization) -> list[str]:
    """A speaker label for every word of ``words`` (in time order)."""
    if not words:
        return []
    speakers = diarization.speakers or ("SPEAKER_1",)
    scores = word_scores(words, diarization)
    if not diarization.speakers:
        return [speakers[0]] * len(words)
    # Words no speaker is near: share the evidence of their neighbours.
    known = scores.max(axis=1) > 0
    if not known.any():
        return [speakers[int(np.argmax(diarization.active.sum(axis=0)))]] * len(words)
    costs = _change_costs(words)
    n, k = scores.shape
    emission = 1.0 - scores
    emission[~known] = 0.0  # no evidence: any speaker, the smoothing decides
    total = emission[0].copy()
    back = np.zeros((n, k), dtype=np.intp)
    for i in range(1, n):
        stay = total
        move = total.min() + costs[i]
        best_prev = int(np.argmin(total))
        back[i] = np.where(stay <= move, np.arange(k), best_prev)
        total = np.minimum(stay, move) + emission[i]
    path = [int(np.argmin(total))]
    for i in range(n - 1, 0, -1):
        path.append(int(back[i, path[-1]]))
    path.reverse()
    for i in range(1, n - 1):
        before, own, after = path[i - 1], path[i], path[i + 1]
        real = scores[i, own] >= ISLAND_OWN and scores[i, before] <= ISLAND_OTHER
        if before == after != own and not real:
            path[i] = before
    return [speakers[c] for c in path]


def apply_speakers(segments: Sequence[Segment], diarization: Diarization) -> list[Segment]:
    """``segments`` with every word's speaker set, split where the speaker changes;
    each segment's speaker is its words'. Segments without words take the speaker
    most active over them (None when nobody is)."""
    words = [w for s in segments for w in s.words]
    labels = iter(label_words(words, diarization))
    out: list[Segment] = []
    for segment in segments:
        if not segment.words:
            out.append(replace(segment, speaker=_most_active(segment, diarization)))
            continue
        labelled = [replace(w, speaker=next(labels)) for w in segment.words]
        cuts = [0] + [
            i for i in range(1, len(labelled)) if labelled[i].speaker != labelled[i - 1].speaker
        ]
        for lo, hi in zip(cuts, [*cuts[1:], len(labelled)], strict=True):
            part = labelled[lo:hi]
            if lo:  # a new segment starts here: its first word is not attached to anything
                part[0] = replace(part[0], attached=False)
            out.append(
                replace(
                    segment,
                    start=segment.start if lo == 0 else part[0].start,
                    end=segment.end if hi == len(labelled) else max(w.end for w in part),
                    words=tuple(part),
                    text="",
                    speaker=part[0].speaker,
                )
            )
    return out


def _most_active(segment: Segment, diarization: Diarization) -> str | None:
    if not diarization.speakers:
        return None
    last = len(diarization.active) - 1
    a = min(max(Diarization.frame_of(segment.start), 0), last)
    b = min(max(Diarization.frame_of(segment.end), a), last)
    totals = diarization.active[a : b + 1].sum(axis=0)
    return diarization.speakers[int(np.argmax(totals))] if totals.max() > 0 else None
