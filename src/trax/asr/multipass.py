"""Pass 2 of v3: decode again only where pass 1 was unsure, and keep the surer words.

Pass 1 (v1's recognition and re-decoding, with the fast model) leaves every
word's probability and every segment's quality signals. This stage:

1. **finds weak spans** in each window: words with a low probability, and
   segments whose average log probability is low, whose compression ratio
   says they loop, or that Whisper rates as probably silent while it wrote
   text. Each is widened by a margin of whole words (context for the
   decoder, and anchors for the combination), nearby ones are joined, and
   their total is capped (weakest first) at one Whisper input or a share of
   the window's speech, whichever is more;
2. **decodes those spans again** with a stronger setting: by default the
   larger bundled model (``base``) in the language pass 1 found, beam 5, the
   text before the span as its prompt, and a token limit that cuts a looping
   decode short. The second model is loaded once, on the first weak span;
3. **combines word by word**: the two hypotheses of a span are aligned on
   normalised words (edit distance); where they disagree between two agreed
   words, the more probable word is kept (see ``combine`` and
   ``MultipassSettings``). Every change, and every alternative turned down,
   is kept as an ``Edit`` (kind ``multipass``) with its reason.

Words keep times: a word replaced by another keeps pass 1's times, a word only
pass 2 heard gets pass 2's (held between the words around it). Pass-2 words in
silence and looping pass-2 decodes are dropped as in pass 1.
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

from trax.asr.silence import drop_unspoken, speech_spans
from trax.asr.transcriber import (
    COMPRESSION_RATIO_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    RecognitionSettings,
    Transcriber,
)
from trax.core import SAMPLE_RATE, AudioWindow, Edit, Segment, Transcript, Word, render_words

if TYPE_CHECKING:
    from trax.pipeline.stages import RunContext

SPAN_LIMIT_S = 28.0
"""The longest span decoded at once: one Whisper input (30 s) with room for its edges."""


@dataclass(frozen=True, slots=True)
class MultipassSettings:
    """Where pass 2 decodes, how, and how its words are weighed against pass 1's.

    The defaults were chosen on asr-dev (``benchmarks/multipass.py``): spans
    decoded one by one with their prompt (packed where a window has many),
    settled word by word, pass 2 winning a disagreement when its word
    probability (plus ``pass2_bias``) is at least pass 1's.
    """

    model_id: str
    """The pass-2 model, pinned to its weights."""
    beam_size: int = 5
    temperatures: tuple[float, ...] = (0.0,)
    """Whisper's fallback schedule (``TEMPERATURES``) changed no word on asr-dev and cost
    time: a looping decode is cut by ``tokens_per_s`` and dropped instead."""
    tokens_per_s: float = 8.0
    """The most tokens a decode of a span may write, per second of it (plus 16): speech
    runs at 4-6 tokens a second, so a decoder caught in a loop stops early."""
    packed: bool = False
    """Decode the spans of a window together, joined into as few 30-second Whisper inputs
    as they fill, as one batch (no prompt, as in pass 1) rather than one by one with the
    text before each as its prompt. Whisper
    pays for a full 30-second input however short the clip, so packing is cheaper where
    a window has many spans; on asr-dev it lost the prompt's gain (29 errors, not 25)."""
    pack_above: int = 2
    """A window with more spans than this has them packed whatever ``packed`` says: one
    by one, each costs a whole encoder pass (on a 5-minute recording, 56 s one by one
    against 5 s packed, with pass 1 at 21 s)."""
    prompt_words: int = 40
    """Words of the text before a span given as its prompt when spans are decoded one
    by one (0: none)."""
    word_probability_below: float = 0.5
    avg_logprob_below: float = -0.7
    compression_ratio_above: float = COMPRESSION_RATIO_THRESHOLD
    no_speech_above: float = NO_SPEECH_THRESHOLD
    margin_s: float = 1.0
    """Context either side of a weak word: the pass-1 words within this reach."""
    join_gap_s: float = 1.0
    """Weak spans closer than this are decoded as one."""
    max_share: float = 0.3
    """The most of a window's recognised speech that pass 2 decodes (weakest spans first),
    beyond ``min_budget_s``."""
    min_budget_s: float = 30.0
    """Seconds of spans a window may always have decoded: packed, they fill one Whisper
    input, which costs the same however little of it is used."""
    rule: str = "confidence"
    """``confidence``: the surer hypothesis wins each disagreement, word by word;
    ``region``: each run of disagreeing words as a whole (mean against mean); ``pass2``:
    pass 2's words replace pass 1's wherever they disagree (the ablation's arms)."""
    pass2_bias: float = 0.0
    """Added to pass 2's probability when it is weighed against pass 1's. On asr-dev
    +0.1 always lost words; -0.1 did worse one by one (26 errors against 25) and better
    packed (28 against 29): within noise, so 0."""
    keep_below: float = 0.5
    """A pass-1 word that pass 2 did not hear goes only when its probability is below this;
    a pass-2 word that pass 1 did not hear comes in only when its probability is above it."""


@dataclass(frozen=True, slots=True)
class WeakSpan:
    """A stretch of a window to decode again (file seconds) and why it was chosen."""

    start: float
    end: float
    reason: str
    weakness: float
    """How unsure pass 1 was (1 − the lowest word probability in it): the budget's order."""

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class PassStats:
    """What pass 2 did, summed over a run's windows (read by tests and benchmarks)."""

    spans: list[WeakSpan] = field(default_factory=list)
    decoded_s: float = 0.0
    speech_s: float = 0.0
    seconds: float = 0.0


_WORD_CHARS = re.compile(r"[^\w']+")


def normalised(text: str) -> str:
    """A word as the alignment compares it: lower case, no punctuation."""
    return _WORD_CHARS.sub("", text.lower()).strip("'")


# -- 1. weak spans ---------------------------------------------------------------------


def _weak_reasons(segment: Segment, settings: MultipassSettings) -> list[str]:
    reasons = []
    if segment.avg_logprob < settings.avg_logprob_below:
        reasons.append(f"avg log-prob {segment.avg_logprob:.2f}")
    if segment.compression_ratio > settings.compression_ratio_above:
        reasons.append(f"compression ratio {segment.compression_ratio:.1f}")
    if segment.no_speech_prob > settings.no_speech_above and segment.words:
        reasons.append(f"no-speech probability {segment.no_speech_prob:.2f}")
    return reasons


def find_weak_spans(
    segments: Sequence[Segment],
    settings: MultipassSettings,
    bounds: tuple[float, float] | None = None,
) -> list[WeakSpan]:
    """The spans of ``segments`` (one window's, in order) that pass 2 should decode again.

    ``bounds`` (the window's start and end) keeps spans inside the audio at hand.
    """
    words = [w for s in segments for w in s.words]
    if not words:
        return []
    flagged: list[tuple[int, str]] = []  # (word index, reason)
    index = 0
    for segment in segments:
        reasons = _weak_reasons(segment, settings)
        for word in segment.words:
            if reasons:
                flagged.append((index, "segment " + ", ".join(reasons)))
            elif word.probability < settings.word_probability_below:
                flagged.append((index, f"word {word.text!r} p={word.probability:.2f}"))
            index += 1
    raw: list[tuple[int, int, list[str]]] = []  # (first word, last word, reasons)
    for i, reason in flagged:
        lo, hi = i, i
        while lo > 0 and words[lo - 1].start >= words[i].start - settings.margin_s:
            lo -= 1
        while hi + 1 < len(words) and words[hi + 1].end <= words[i].end + settings.margin_s:
            hi += 1
        # At least one word of context either side where there is one: the anchors.
        lo, hi = max(0, min(lo, i - 1)), min(len(words) - 1, max(hi, i + 1))
        if raw and words[lo].start - words[raw[-1][1]].end < settings.join_gap_s:
            last = raw[-1]
            if words[hi].end - words[last[0]].start <= SPAN_LIMIT_S:
                raw[-1] = (last[0], max(last[1], hi), [*last[2], reason])
                continue
        if raw:
            lo = max(lo, raw[-1][1] + 1)  # spans never share a word
        if lo <= hi:
            raw.append((lo, hi, [reason]))
    spans = []
    for lo, hi, reasons in raw:
        # Edges halfway into the gaps around the span (at most 0.3 s): whole words only.
        before = words[lo - 1].end if lo > 0 else words[lo].start - 0.3
        after = words[hi + 1].start if hi + 1 < len(words) else words[hi].end + 0.3
        start = max(words[lo].start - 0.3, (before + words[lo].start) / 2)
        end = min(words[hi].end + 0.3, (words[hi].end + after) / 2)
        if bounds is not None:
            start, end = max(start, bounds[0]), min(end, bounds[1])
        lowest = min(w.probability for w in words[lo : hi + 1])
        unique = list(dict.fromkeys(reasons))
        reason = "; ".join(unique[:3]) + (f"; +{len(unique) - 3} more" if len(unique) > 3 else "")
        spans.append(WeakSpan(start, end, reason, 1.0 - lowest))
    return spans


def within_budget(spans: Sequence[WeakSpan], budget_s: float) -> list[WeakSpan]:
    """The weakest spans whose total fits ``budget_s``, back in time order."""
    chosen: list[WeakSpan] = []
    total = 0.0
    for span in sorted(spans, key=lambda s: -s.weakness):
        if total + span.duration_s <= budget_s:
            chosen.append(span)
            total += span.duration_s
    return sorted(chosen, key=lambda s: s.start)


# -- 3. combination ----------------------------------------------------------------------


def align(first: Sequence[str], second: Sequence[str]) -> list[tuple[int | None, int | None]]:
    """An edit-distance alignment of two word lists: (i, j) pairs, None for a gap.

    Equal words are paired wherever the minimum cost allows (a substitution costs
    as much as a deletion and an insertion would not, so unequal pairs stay pairs).
    """
    n, m = len(first), len(second)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            same = first[i - 1] == second[j - 1]
            cost[i][j] = min(
                cost[i - 1][j - 1] + (0 if same else 1),
                cost[i - 1][j] + 1,
                cost[i][j - 1] + 1,
            )
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            same = first[i - 1] == second[j - 1]
            if cost[i][j] == cost[i - 1][j - 1] + (0 if same else 1):
                pairs.append((i - 1, j - 1))
                i, j = i - 1, j - 1
                continue
        if i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    pairs.reverse()
    return pairs


def _mean(words: Sequence[Word]) -> float:
    return sum(w.probability for w in words) / len(words)


@dataclass(frozen=True, slots=True)
class Choice:
    """One disagreement between the passes and how it was settled."""

    ours: tuple[Word, ...]
    theirs: tuple[Word, ...]
    take: bool
    reason: str


def decide(ours: Sequence[Word], theirs: Sequence[Word], settings: MultipassSettings) -> Choice:
    """Which hypothesis of a disagreement stays: pass 1's (``ours``) or pass 2's."""
    if settings.rule == "pass2":
        return Choice(tuple(ours), tuple(theirs), True, "pass 2 wins every disagreement")
    if not theirs:
        p = _mean(ours)
        take = p < settings.keep_below
        return Choice(tuple(ours), (), take, f"pass 2 heard nothing here; pass 1 p={p:.2f}")
    if not ours:
        p = _mean(theirs)
        take = p > settings.keep_below
        return Choice((), tuple(theirs), take, f"pass 1 heard nothing here; pass 2 p={p:.2f}")
    p1, p2 = _mean(ours), _mean(theirs)
    take = p2 + settings.pass2_bias >= p1
    return Choice(tuple(ours), tuple(theirs), take, f"pass 1 p={p1:.2f}, pass 2 p={p2:.2f}")


def combine(
    ours: Sequence[Word],
    theirs: Sequence[Word],
    settings: MultipassSettings,
    open_start: bool = False,
    open_end: bool = False,
) -> tuple[list[Word], list[Choice]]:
    """Pass 1's words of a span with pass 2's where pass 2 is surer, and every choice made.

    Only disagreements between two agreed words are settled by confidence: at a
    span's edges either pass may have heard half a word, so pass 1 stays there,
    unless the span is open on that side (no pass-1 word lies beyond it). Inside,
    a word that the other pass heard as another word is settled word by word (the
    replacement takes pass 1's times); words only one pass heard are settled as a
    run (added words get pass 2's times, held between the words around them).
    """
    a = [normalised(w.text) for w in ours]
    b = [normalised(w.text) for w in theirs]
    pairs = align(a, b)
    out: list[Word] = []
    choices: list[Choice] = []
    anchored = open_start
    pending: list[tuple[int | None, int | None]] = []

    def settle(closed: bool, following: Word | None) -> None:
        if not pending:
            return
        mine = [ours[i] for i, _ in pending if i is not None]
        heard = [w for w in (*mine, *(theirs[j] for _, j in pending if j is not None))]
        # Unanchored (a span's edge), or differing in punctuation only: pass 1 stays.
        if not (anchored and closed) or not any(normalised(w.text) for w in heard):
            out.extend(mine)
            pending.clear()
            return
        if settings.rule == "region":  # the whole disagreement, mean against mean
            other = [theirs[j] for _, j in pending if j is not None]
            choice = decide(mine, other, settings)
            choices.append(choice)
            out.extend(_timed(other, out, following) if choice.take else mine)
            pending.clear()
            return
        k = 0
        while k < len(pending):
            i, j = pending[k]
            if i is not None and j is not None:  # one word against one: word by word
                choice = decide([ours[i]], [theirs[j]], settings)
                choices.append(choice)
                out.append(_substituted(ours[i], theirs[j]) if choice.take else ours[i])
                k += 1
                continue
            gap = []
            while k < len(pending) and (pending[k][0] is None) != (pending[k][1] is None):
                gap.append(pending[k])
                k += 1
            lost = [ours[i] for i, _ in gap if i is not None]
            found = [theirs[j] for _, j in gap if j is not None]
            choice = decide(lost, found, settings)
            choices.append(choice)
            later = [ours[i] for i, _ in pending[k:] if i is not None]
            after = later[0] if later else following
            out.extend(_timed(found, out, after) if choice.take else lost)
        pending.clear()

    for i, j in pairs:
        if i is not None and j is not None and a[i] == b[j] and a[i]:
            settle(closed=True, following=ours[i])
            out.append(ours[i])
            anchored = True
        else:
            pending.append((i, j))
    settle(closed=open_end, following=None)
    return out, choices


def _substituted(ours: Word, theirs: Word) -> Word:
    """Pass 2's word in pass 1's place: its text and probability, pass 1's times."""
    return replace(ours, text=theirs.text, probability=theirs.probability, attached=theirs.attached)


def _timed(words: Sequence[Word], before: Sequence[Word], following: Word | None) -> list[Word]:
    """``words`` with times held between the word before them and the word after them."""
    low = before[-1].end if before else None
    high = following.start if following is not None else None
    timed = []
    for word in words:
        start, end = word.start, word.end
        if low is not None:
            start, end = max(start, low), max(end, low)
        if high is not None:
            start, end = min(start, high), min(end, high)
        timed.append(replace(word, start=start, end=max(start, end)))
        low = end
    return timed


# -- the stage ---------------------------------------------------------------------------


class MultipassStage:
    """v3's pass 2: weak spans of pass 1 decoded again by a stronger recogniser and the
    surer words kept (see the module docstring)."""

    name = "multipass"
    version = "multipass/1"
    kind: Final = "audio"
    adds = "weak spans re-decoded by a larger model; the surer words kept, each change recorded"
    cached = True
    optional = False

    def __init__(
        self,
        settings: MultipassSettings,
        recognition: RecognitionSettings,
        transcriber: Transcriber,
    ) -> None:
        self.settings = settings
        self.recognition = replace(
            recognition,
            model_id=settings.model_id,
            beam_size=settings.beam_size,
            batched=False,
            temperatures=settings.temperatures,
        )
        self.transcriber = transcriber
        self.stats = PassStats()

    def unavailable(self) -> str | None:
        return None

    def process(
        self, window: AudioWindow, transcript: Transcript, run: RunContext
    ) -> tuple[AudioWindow, Transcript]:
        started = time.perf_counter()
        segments = list(transcript.segments)
        first = bisect.bisect_left([s.start for s in segments], window.start_s)
        mine = segments[first:]
        speech = sum(w.end - w.start for s in mine for w in s.words)
        self.stats.speech_s += speech
        spans = find_weak_spans(mine, self.settings, (window.start_s, window.end_s))
        budget = max(self.settings.max_share * speech, self.settings.min_budget_s)
        spans = within_budget(spans, budget)
        if not spans:
            self.stats.seconds += time.perf_counter() - started
            return window, transcript
        # Every word of the window, with the index of the segment it belongs to.
        words = [(k, w) for k, s in enumerate(mine) for w in s.words]
        edits = list(transcript.edits)
        earlier = [w for s in segments[:first] for w in s.words]
        work = []  # (span, first word, last word, language)
        for span in spans:
            inside = [i for i, (_, w) in enumerate(words) if span.start <= _mid(w) <= span.end]
            if inside:
                language = mine[words[inside[0]][0]].language or transcript.language or None
                work.append((span, inside[0], inside[-1], language))
        pack = self.settings.packed or len(work) > self.settings.pack_above
        packed = self._decode_packed(window, [(w[0], w[3]) for w in work]) if pack else None
        done: list[tuple[int, Word]] = []
        cursor = 0
        for n, (span, lo, hi, language) in enumerate(work):
            done.extend(words[cursor:lo])
            cursor = hi + 1
            if packed is not None:
                theirs = packed[n]
            else:
                context = earlier + [w for _, w in done]
                theirs = self._decode(window, span, context, language)
            ours = [w for _, w in words[lo : hi + 1]]
            combined, choices = combine(
                ours, theirs, self.settings, open_start=lo == 0, open_end=hi == len(words) - 1
            )
            done.extend(_owned(combined, words[lo : hi + 1]))
            edits.extend(self._edits(choices, span))
            self.stats.spans.append(span)
            self.stats.decoded_s += span.duration_s
            run.report(span.end)
        done.extend(words[cursor:])
        rebuilt = _rebuild(mine, done)
        self.stats.seconds += time.perf_counter() - started
        return window, replace(
            transcript, segments=tuple(segments[:first] + rebuilt), edits=tuple(edits)
        )

    def _decode_packed(
        self, window: AudioWindow, spans: Sequence[tuple[WeakSpan, str | None]]
    ) -> list[list[Word]]:
        """Pass 2's words for every span at once (``packed``): the spans of a language
        joined into as few Whisper inputs as they fill, decoded as a batch."""
        found: list[list[Word]] = [[] for _ in spans]
        settings = replace(self.recognition, batched=True, temperatures=(0.0,))
        for language in dict.fromkeys(language for _, language in spans):
            if language not in (None, "en") and not self.transcriber.multilingual:
                continue
            mine = [n for n, (_, spoken) in enumerate(spans) if spoken == language]
            regions = tuple(_samples(window, spans[n][0]) for n in mine)
            joined = replace(window, speech=tuple(r for r in regions if r[1] > r[0]))
            result = self.transcriber.recognise(joined, settings, language)
            decoded = [
                s
                for s in result.segments
                if s.compression_ratio <= self.settings.compression_ratio_above
            ]
            kept, _ = drop_unspoken(decoded, speech_spans(window), self.name)
            heard = [w for s in kept for w in s.words]
            for n in mine:
                span = spans[n][0]
                found[n] = [w for w in heard if span.start <= _mid(w) <= span.end]
        return found

    def _decode(
        self, window: AudioWindow, span: WeakSpan, context: Sequence[Word], language: str | None
    ) -> list[Word]:
        """Pass 2's words for one span (file times), without looping decodes or silence."""
        if language not in (None, "en") and not self.transcriber.multilingual:
            return []
        lo, hi = _samples(window, span)
        clip = window.samples[lo:hi]
        offset = window.start_s + lo / SAMPLE_RATE
        settings = self.recognition
        prompt = self._prompt(context)
        if prompt:
            settings = replace(settings, initial_prompt=prompt)
        # Whisper keeps at most 223 tokens of prompt in its 448: the rest is the most a
        # decode may write.
        limit = min(16 + math.ceil(self.settings.tokens_per_s * span.duration_s), 220)
        decoded = self.transcriber.decode_clip(clip, settings, language, max_new_tokens=limit)
        decoded = [
            _shifted(s, offset)
            for s in decoded
            if s.compression_ratio <= self.settings.compression_ratio_above
        ]
        kept, _ = drop_unspoken(decoded, speech_spans(window), self.name)
        return [w for s in kept for w in s.words if span.start <= _mid(w) <= span.end]

    def _prompt(self, context: Sequence[Word]) -> str | None:
        parts = []
        if self.recognition.initial_prompt:
            parts.append(self.recognition.initial_prompt)
        if self.settings.prompt_words > 0 and context:
            parts.append(render_words(list(context[-self.settings.prompt_words :])))
        return " ".join(parts) or None

    def _edits(self, choices: Sequence[Choice], span: WeakSpan) -> list[Edit]:
        edits = []
        for choice in choices:
            timed = choice.ours or choice.theirs
            start, end = timed[0].start, timed[-1].end
            edits.append(
                Edit(
                    self.name,
                    start,
                    end,
                    render_words(list(choice.ours)),
                    render_words(list(choice.theirs)),
                    "multipass",
                    "accepted" if choice.take else "rejected",
                    f"{choice.reason}; span {span.reason}",
                )
            )
        return edits


def _samples(window: AudioWindow, span: WeakSpan) -> tuple[int, int]:
    """The span as sample indices into the window."""
    lo = max(0, int((span.start - window.start_s) * SAMPLE_RATE))
    return lo, min(len(window.samples), int((span.end - window.start_s) * SAMPLE_RATE))


def _mid(word: Word) -> float:
    return (word.start + word.end) / 2


def _owned(
    combined: Sequence[Word], originals: Sequence[tuple[int, Word]]
) -> list[tuple[int, Word]]:
    """Each combined word with the segment it joins: a kept word its own, a new word that
    of the pass-1 word it follows (or the span's first segment)."""
    home = {id(w): k for k, w in originals}
    current = originals[0][0]
    out = []
    for word in combined:
        current = home.get(id(word), current)
        out.append((current, word))
    return out


def _rebuild(segments: Sequence[Segment], words: Sequence[tuple[int, Word]]) -> list[Segment]:
    """``segments`` with the words given for each; one left without words goes."""
    grouped: dict[int, list[Word]] = {}
    for k, word in words:
        grouped.setdefault(k, []).append(word)
    out = []
    for k, segment in enumerate(segments):
        if not segment.words:
            out.append(segment)
            continue
        mine = grouped.get(k)
        if not mine:
            continue
        if tuple(mine) == segment.words:
            out.append(segment)
            continue
        first = replace(mine[0], attached=False) if mine[0].attached else mine[0]
        mine = [first, *mine[1:]]
        out.append(
            replace(segment, start=mine[0].start, end=max(w.end for w in mine), words=tuple(mine))
        )
    return out


def _shifted(segment: Segment, offset: float) -> Segment:
    return replace(
        segment,
        start=segment.start + offset,
        end=segment.end + offset,
        words=tuple(replace(w, start=w.start + offset, end=w.end + offset) for w in segment.words),
    )
