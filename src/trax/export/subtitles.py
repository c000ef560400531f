"""Subtitle cues built from word timestamps, and SRT / WebVTT rendering.

Whisper segments are decoding windows, not subtitles: one can run for 30 s or
stop mid-sentence. Cues are therefore rebuilt from word timings, following
common timed-text conventions (``SubtitleOptions``: at most two lines of 42
characters, one to seven seconds on screen, at most 20 characters a second
where the speech allows, two frames between cues). The whole transcript text
survives: words are regrouped, never dropped, reordered or changed.

A cue list is made in five passes over the words:

1. group: fill cues word by word, ending them at sentence ends, clause
   punctuation, pauses and the size limits;
2. fold fragments: a cue too short to read, or of a single word, joins a
   neighbour where the limits allow;
3. reading speed: a cue too fast to read even when it stays on screen as long
   as the next cue allows is re-cut with its neighbours (merged, or split
   elsewhere) where that brings every cue involved within ``max_cps``;
4. orphans: a single word that could not be folded in is re-cut with a
   neighbour, so that neither cue is a lone word;
5. timing: each cue stays until it can have been read, into the silence after
   it, and leaves ``min_gap`` before the next; one still too fast may appear
   up to ``max_lead_in`` early, out of the silence before it.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from trax.core import Segment, Word
from trax.punctuation import ending

# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer,
# Chinese, Japanese, full-width forms): a line or cue may break between any
# two of their words.
_SPACELESS = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
)

# A clause break is taken only once the cue is this full or this long;
# breaking at every comma would flash many short, choppy cues.
_CLAUSE_FILL = 0.5
_CLAUSE_SECONDS = 3.0
# When a cue overflows, cut it at its last clause break instead of mid-phrase,
# provided the part kept still fills this share of the cue's capacity.
_BACKTRACK_FILL = 0.3
# Without a clause break, a silence at least this long between two words
# marks a phrase boundary worth cutting at.
_MIN_PHRASE_GAP = 0.15
# Costs of a line break, in the units of the squared line-length imbalance:
# a break after punctuation is worth a few characters of imbalance.
_PENALTY_SENTENCE = 0.0
_PENALTY_CLAUSE = 20.0
_PENALTY_PLAIN = 100.0
# Ending a line on a short word ("of", "the", "a", "I") splits it from the
# word it leads into; readers stumble on that.
_PENALTY_SHORT_WORD = 80.0
_SHORT_WORD = 3
# Cost of merging two cues to slow them down, on the same scale: dearer than
# cutting after a sentence end, cheaper than cutting mid-clause.
_PENALTY_MERGE = 10.0
# A cue whose speech runs straight into the next one gives up its end to make
# the gap, but stays at least this long (ms); below that the next cue waits.
_MIN_SHOWN_MS = 500


@dataclass(frozen=True, slots=True)
class SubtitleOptions:
    """How subtitle cues are laid out and timed; invalid values raise ``ValueError``.

    - ``max_line_width``, ``max_line_count``: characters a line, lines a cue;
    - ``max_cue_duration``, ``min_cue_duration``: seconds on screen (a cue
      stays the minimum only where the next one leaves room);
    - ``max_cps``: reading speed, characters a second (spaces count, line
      breaks do not), kept where the speech allows (``math.inf``: no limit);
    - ``min_gap``: seconds between a cue's end and the next one's start
      (0.08 s is two frames at 25 fps, enough for a viewer to see a change);
    - ``pause_break``: a silence at least this long always ends a cue;
    - ``max_lead_in``: seconds a cue too fast to read may appear before its
      speech, where the screen is empty then (0: cues start with the speech).
    """

    max_line_width: int = 42
    max_line_count: int = 2
    max_cue_duration: float = 7.0
    min_cue_duration: float = 1.0
    max_cps: float = 20.0
    min_gap: float = 0.08
    pause_break: float = 0.8
    max_lead_in: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_line_width", "max_line_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        for name in (
            "max_cue_duration",
            "min_cue_duration",
            "max_cps",
            "min_gap",
            "pause_break",
            "max_lead_in",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
        longest = self.max_cue_duration
        if not 0 < longest < math.inf:
            raise ValueError(
                f"max_cue_duration must be a finite number of seconds above 0, got {longest!r}"
            )
        if not 0 <= self.min_cue_duration <= longest:
            raise ValueError(
                f"min_cue_duration must be between 0 and max_cue_duration ({longest:g} s), "
                f"got {self.min_cue_duration!r}"
            )
        if not self.max_cps > 0:
            raise ValueError(
                f"max_cps must be more than 0 characters a second, got {self.max_cps!r}"
            )
        if not 0 <= self.min_gap < longest:
            raise ValueError(
                f"min_gap must be at least 0 and under max_cue_duration ({longest:g} s), "
                f"got {self.min_gap!r}"
            )
        if not self.pause_break > 0:
            raise ValueError(f"pause_break must be more than 0 seconds, got {self.pause_break!r}")
        if not 0 <= self.max_lead_in < longest:
            raise ValueError(
                f"max_lead_in must be at least 0 and under max_cue_duration ({longest:g} s), "
                f"got {self.max_lead_in!r}"
            )


@dataclass(frozen=True, slots=True)
class Cue:
    """One subtitle: times in seconds (whole milliseconds) and its lines."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(frozen=True, slots=True)
class _Token:
    """A word as laid out in a cue."""

    start: float
    end: float
    text: str
    # Joined to the previous token without a space (scripts written without spaces).
    glue: bool = False
    speaker: str | None = None


@dataclass(slots=True)
class _Group:
    """The words of a cue in the making; ``label`` is set where the speaker changes."""

    tokens: list[_Token]
    label: str | None = None

    @property
    def start(self) -> float:
        return self.tokens[0].start

    @property
    def end(self) -> float:
        return self.tokens[-1].end

    @property
    def speaker(self) -> str | None:
        return self.tokens[0].speaker

    def pieces(self) -> list[_Token]:
        if self.label is None:
            return list(self.tokens)
        # The label is welded to the first word so it never sits alone on a line.
        first = self.tokens[0]
        return [replace(first, text=f"[{self.label}] {first.text}"), *self.tokens[1:]]


def _join(pieces: Sequence[_Token]) -> str:
    parts: list[str] = []
    for i, piece in enumerate(pieces):
        if i and not piece.glue:
            parts.append(" ")
        parts.append(piece.text)
    return "".join(parts)


def _count_lines(pieces: Sequence[_Token], width: int) -> int:
    """Fewest lines of ``width`` characters that hold ``pieces`` (greedy is optimal).

    A piece longer than a line gets a line of its own rather than being split.
    """
    lines = 0
    length = 0
    for piece in pieces:
        extra = len(piece.text) + (0 if piece.glue else 1)
        if length and length + extra <= width:
            length += extra
        else:
            lines += 1
            length = len(piece.text)
    return lines


def _break_penalty(piece: _Token) -> float:
    kind = ending(piece.text)
    if kind == "sentence":
        return _PENALTY_SENTENCE
    if kind == "clause":
        return _PENALTY_CLAUSE
    if len(piece.text) <= _SHORT_WORD:
        return _PENALTY_PLAIN + _PENALTY_SHORT_WORD
    return _PENALTY_PLAIN


def _wrap(pieces: Sequence[_Token], width: int) -> list[str]:
    """Lay ``pieces`` out on as few lines as possible, balanced in length.

    Among the layouts with the fewest lines, pick the one whose lines are
    closest to equal length, preferring breaks after punctuation.
    """
    n_lines = _count_lines(pieces, width)
    if n_lines <= 1:
        return [_join(pieces)]
    n = len(pieces)
    target = len(_join(pieces)) / n_lines
    inf = float("inf")
    # best[m][j] = (cost, i): cheapest layout of pieces[:j] on m lines whose
    # last line is pieces[i:j].
    best = [[(inf, 0)] * (n + 1) for _ in range(n_lines + 1)]
    best[0][0] = (0.0, 0)
    for m in range(1, n_lines + 1):
        for j in range(1, n + 1):
            for i in range(j):
                before = best[m - 1][i][0]
                if before == inf:
                    continue
                length = len(_join(pieces[i:j]))
                if length > width and j - i > 1:
                    continue
                cost = before + (length - target) ** 2
                if j < n:
                    cost += _break_penalty(pieces[j - 1])
                if cost < best[m][j][0]:
                    best[m][j] = (cost, i)
    lines: list[str] = []
    j = n
    for m in range(n_lines, 0, -1):
        i = best[m][j][1]
        lines.append(_join(pieces[i:j]))
        j = i
    return lines[::-1]


def _interpolate(segment: Segment) -> list[Word]:
    """Words for a segment without word timestamps, timed by character count."""
    words = segment.text.split()
    # The space after a word takes time to say too, so it counts as a character.
    weights = [len(word) + 1 for word in words]
    total = sum(weights)
    span = max(segment.end - segment.start, 0.0)
    timed: list[Word] = []
    done = 0
    for word, weight in zip(words, weights, strict=True):
        start = segment.start + span * done / total
        done += weight
        timed.append(Word(start, segment.start + span * done / total, word, 0.0))
    return timed


def _tokens(segments: Iterable[Segment]) -> list[_Token]:
    tokens: list[_Token] = []
    for segment in segments:
        for word in segment.words or _interpolate(segment):
            if not word.text:
                continue
            # An attached word ("-fattened", or any word of a script written
            # without spaces) is laid out with no space before it.
            glue = word.attached and bool(tokens)
            start, end = word.start, max(word.end, word.start)
            if glue and not _breakable(tokens[-1], word.text, segment.speaker):
                # "flower-fattened" is one word to a reader: never cut after "flower".
                last = tokens[-1]
                tokens[-1] = replace(last, end=max(last.end, end), text=last.text + word.text)
                continue
            tokens.append(_Token(start, end, word.text, glue, segment.speaker))
    return tokens


def _breakable(previous: _Token, text: str, speaker: str | None) -> bool:
    """Whether a line or cue may break between ``previous`` and the attached ``text``.

    Only scripts written without spaces break between attached words (and a
    change of speaker always breaks); elsewhere an attached word is part of
    the one before.
    """
    if previous.speaker != speaker:
        return True
    return bool(_SPACELESS.match(previous.text[-1]) or _SPACELESS.match(text[0]))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class _Rules:
    options: SubtitleOptions

    @property
    def capacity(self) -> int:
        return self.options.max_line_width * self.options.max_line_count

    def fits(self, pieces: Sequence[_Token]) -> bool:
        return _count_lines(pieces, self.options.max_line_width) <= self.options.max_line_count

    def allowed(self, group: _Group) -> bool:
        """Whether ``group`` keeps the size limits of a cue."""
        span_ok = group.end - group.start <= self.options.max_cue_duration
        return span_ok and self.fits(group.pieces())

    def fill(self, group: _Group) -> int:
        return len(_join(group.pieces()))

    # -- pass 1: group words into cues --------------------------------------

    def ends_cue(self, group: _Group) -> bool:
        """Whether the word just added is a good place to end the cue."""
        kind = ending(group.tokens[-1].text)
        if kind == "sentence":
            return True
        if kind == "clause":
            full = self.fill(group) >= _CLAUSE_FILL * self.capacity
            return full or group.end - group.start >= _CLAUSE_SECONDS
        return False

    def cut_overflow(self, group: _Group) -> tuple[_Group, _Group | None]:
        """Split a full cue where a reader expects a break, if that keeps enough in it.

        First choice is the last clause break; failing that, the longest
        silence between two words (speakers breathe between phrases, and
        Whisper often drops the comma that marks it).
        """
        tokens = group.tokens
        for i in range(len(tokens) - 2, -1, -1):
            if not ending(tokens[i].text):
                continue
            head = _Group(tokens[: i + 1], group.label)
            if self.fill(head) >= _BACKTRACK_FILL * self.capacity:
                return head, _Group(tokens[i + 1 :])
            break
        best, best_gap = None, _MIN_PHRASE_GAP
        for i in range(len(tokens) - 1):
            gap = tokens[i + 1].start - tokens[i].end
            if gap > best_gap:
                head = _Group(tokens[: i + 1], group.label)
                if self.fill(head) >= _BACKTRACK_FILL * self.capacity:
                    best, best_gap = i, gap
        if best is not None:
            return _Group(tokens[: best + 1], group.label), _Group(tokens[best + 1 :])
        return group, None

    def group(self, tokens: Iterable[_Token]) -> list[_Group]:
        groups: list[_Group] = []
        current: _Group | None = None
        for token in tokens:
            # Loop because what is left after cutting an overflowing cue may
            # itself still be too long for this token.
            while current is not None:
                if token.speaker != current.speaker or (
                    token.start - current.end >= self.options.pause_break
                ):
                    groups.append(current)
                    current = None
                elif token.end - current.start > self.options.max_cue_duration or not self.fits(
                    [*current.pieces(), token]
                ):
                    head, current = self.cut_overflow(current)
                    groups.append(head)
                else:
                    break
            if current is None:
                previous = groups[-1].speaker if groups else None
                changed = token.speaker is not None and token.speaker != previous
                current = _Group([token], token.speaker if changed else None)
            else:
                current.tokens.append(token)
            if self.ends_cue(current):
                groups.append(current)
                current = None
        if current is not None:
            groups.append(current)
        return groups

    # -- pass 2: fold fragments into their neighbours -----------------------

    def joinable(self, first: _Group, second: _Group) -> bool:
        """Whether two neighbouring cues may share words: same speaker, no pause between."""
        return (
            first.speaker == second.speaker and second.start - first.end < self.options.pause_break
        )

    def merge(self, first: _Group, second: _Group) -> _Group | None:
        if not self.joinable(first, second):
            return None
        merged = _Group(first.tokens + second.tokens, first.label)
        return merged if self.allowed(merged) else None

    def fold_fragments(self, groups: list[_Group]) -> list[_Group]:
        """Fold cues too short to read, and single words (orphans), into a neighbour.

        Where no neighbour can take one (another speaker, a pause between,
        no room left) it stays as it is.
        """
        groups = list(groups)
        i = 0
        while i < len(groups):
            group = groups[i]
            short = group.end - group.start < self.options.min_cue_duration
            if not short and len(group.tokens) > 1:
                i += 1
                continue
            # A fragment continuing the previous cue's sentence belongs with
            # it; one that starts a sentence belongs with what follows.
            neighbours = [i - 1, i + 1]
            if i > 0 and ending(groups[i - 1].tokens[-1].text) == "sentence":
                neighbours.reverse()
            for j in neighbours:
                if not 0 <= j < len(groups):
                    continue
                lo, hi = min(i, j), max(i, j)
                merged = self.merge(groups[lo], groups[hi])
                if merged is not None:
                    groups[lo : hi + 1] = [merged]
                    i = lo  # the merged cue may still be short
                    break
            else:
                i += 1
        return groups

    # -- pass 3: reading speed ----------------------------------------------

    def end_ms(self, start: int, words_end: int, chars: int, next_start: int | None) -> int:
        """When a cue that starts at ``start`` leaves the screen (all in ms).

        It stays until it can have been read (``min_cue_duration``, and its
        characters at ``max_cps``), reaching into the silence after its words
        but never past ``max_cue_duration`` or closer than ``min_gap`` to the
        next cue. Speech running straight into the next cue gives up the end
        of its last word for the gap, keeping at least ``_MIN_SHOWN_MS``
        (then the next cue starts late instead: see ``cues``).
        """
        options = self.options
        longest = _ms(options.max_cue_duration)
        # A word can outlast the longest cue only by a timing glitch (Whisper
        # stretching it over a silence): the cue still leaves in time.
        end = max(min(words_end, start + longest), start + 1)
        reading = max(_ms(options.min_cue_duration), math.ceil(chars * 1000 / options.max_cps))
        wanted = start + min(reading, longest)
        if next_start is None:
            return max(end, wanted)
        cap = next_start - _ms(options.min_gap)
        if end > cap:
            floor = min(_MIN_SHOWN_MS, _ms(options.min_cue_duration))
            return max(cap, min(end, start + floor), start + 1)
        return max(end, min(wanted, cap))

    def cps(self, group: _Group, next_start: float | None) -> float:
        """Characters a second needed to read ``group`` shown as long as it can be.

        ``next_start`` is when the next cue starts (``None``: there is none).
        """
        chars = self.fill(group)
        start = _ms(group.start)
        following = None if next_start is None else _ms(next_start)
        return chars * 1000 / (self.end_ms(start, _ms(group.end), chars, following) - start)

    def cut_penalty(self, tokens: Sequence[_Token], j: int) -> float:
        """The cost of ending a cue after ``tokens[j - 1]`` (a breath counts as a comma)."""
        penalty = _break_penalty(tokens[j - 1])
        if penalty >= _PENALTY_PLAIN and tokens[j].start - tokens[j - 1].end >= _MIN_PHRASE_GAP:
            return _PENALTY_CLAUSE
        return penalty

    def recut(
        self, groups: Sequence[_Group], lo: int, hi: int, limit: float
    ) -> tuple[float, list[_Group]] | None:
        """The cheapest other cut of ``groups[lo:hi]`` into cues all read within ``limit``.

        The words stay in order and the first stays first, so no cue outside
        the window moves. Each new cue keeps the size limits, stays at least
        ``min_cue_duration`` and holds at least two words (making no orphan).
        Cuts are ranked like line breaks (after a sentence end best,
        mid-phrase worst); a sentence end left inside a cue costs
        ``_PENALTY_MERGE``. ``None`` when no cut will do.
        """
        window = groups[lo:hi]
        if not all(self.joinable(a, b) for a, b in itertools.pairwise(window)):
            return None
        tokens = [token for group in window for token in group.tokens]
        n = len(tokens)
        next_ms = _ms(groups[hi].start) if hi < len(groups) else None
        if next_ms is not None:
            # However it is cut, the window must be read before the next cue:
            # each cut saves at most a space, so a window this fast is hopeless.
            room = next_ms - _ms(self.options.min_gap) - _ms(tokens[0].start)
            chars = len(_join(tokens)) - n // 2
            if room <= 0 or chars * 1000 / room > limit:
                return None
        # The text as laid out: a speaker label rides on the first word.
        pieces = _Group(tokens, window[0].label).pieces()
        ends = [ending(token.text) == "sentence" for token in tokens]
        width, max_lines = self.options.max_line_width, self.options.max_line_count
        longest = self.options.max_cue_duration
        shortest = _ms(self.options.min_cue_duration)
        # best[a]: the cost and cut points of the cheapest cut of tokens[a:].
        best: list[tuple[float, list[int]] | None] = [None] * (n + 1)
        best[n] = (0.0, [])
        for a in range(n - 2, -1, -1):
            start = _ms(tokens[a].start)
            # The cue tokens[a:b] grows a word at a time; its characters and
            # lines (filled greedily, as _count_lines does) are kept as it grows.
            chars = lines = line = inside = 0
            for b in range(a + 1, n + 1):
                piece = pieces[b - 1]
                extra = len(piece.text) + (0 if piece.glue or b - 1 == a else 1)
                chars += extra
                if line and line + extra <= width:
                    line += extra
                else:
                    lines, line = lines + 1, len(piece.text)
                if lines > max_lines or tokens[b - 1].end - tokens[a].start > longest:
                    break  # a longer cue cannot fit either
                rest = best[b]
                if b - a < 2 or rest is None:
                    inside += ends[b - 1]
                    continue
                following = _ms(tokens[b].start) if b < n else next_ms
                shown = self.end_ms(start, _ms(tokens[b - 1].end), chars, following) - start
                # A new cue must also stay long enough to be seen, not flash by.
                if shown >= shortest and chars * 1000 / shown <= limit:
                    cost = rest[0] + _PENALTY_MERGE * inside
                    if b < n:
                        cost += self.cut_penalty(tokens, b)
                    current = best[a]
                    if current is None or cost < current[0]:
                        best[a] = (cost, [b, *rest[1]])
                inside += ends[b - 1]
        found = best[0]
        if found is None:
            return None
        cost, cuts = found
        starts = [0, *cuts[:-1]]
        parts = [_Group(tokens[a:b]) for a, b in zip(starts, cuts, strict=True)]
        # A label stays on the first cue: a window never spans a change of speaker.
        parts[0].label = window[0].label
        return cost, parts

    def recut_around(
        self, groups: list[_Group], i: int, sizes: Sequence[int], strict: bool
    ) -> int | None:
        """Re-cut, in place, the cheapest window of ``groups`` holding ``groups[i]`` that can be.

        Windows of each size in ``sizes`` are tried in turn. ``strict``:
        every new cue must read within ``max_cps``; otherwise within it or no
        faster than the window's fastest cue did. Returns the index after the
        new cues, or ``None`` where no window could be re-cut.
        """
        for size in sizes:
            choices: list[tuple[float, int, list[_Group]]] = []
            for lo in range(max(i - size + 1, 0), min(i, len(groups) - size) + 1):
                limit = self.options.max_cps
                if not strict:
                    limit = max(limit, *self.speeds(groups, lo, lo + size))
                found = self.recut(groups, lo, lo + size, limit)
                if found is not None:
                    choices.append((found[0], lo, found[1]))
            if choices:
                _, lo, parts = min(choices, key=lambda choice: choice[0])
                groups[lo : lo + size] = parts
                return lo + len(parts)
        return None

    def speeds(self, groups: Sequence[_Group], lo: int, hi: int) -> list[float]:
        """The reading speed of each of ``groups[lo:hi]``."""
        return [
            self.cps(groups[k], groups[k + 1].start if k + 1 < len(groups) else None)
            for k in range(lo, hi)
        ]

    def ease_reading(self, groups: list[_Group]) -> list[_Group]:
        """Re-cut each cue too fast to read together with its neighbours, where that cures it.

        A cue first gets all the time the silence after it allows (see
        ``end_ms``); one still too fast is re-cut with one neighbour, or
        failing that two, but only where every cue involved then reads
        within ``max_cps``: speech simply faster than that keeps its cues.
        """
        groups = list(groups)
        i = 0
        while i < len(groups):
            fast = self.speeds(groups, i, i + 1)[0] > self.options.max_cps
            after = self.recut_around(groups, i, (2, 3), strict=True) if fast else None
            i = i + 1 if after is None else after
        return groups

    # -- pass 4: orphans ----------------------------------------------------

    def fix_orphans(self, groups: list[_Group]) -> list[_Group]:
        """Re-cut a single-word cue with a neighbour where folding it in did not fit.

        "... the immediate predecessors of the true printed" + "book." becomes
        "... books," + "which were ... printed book.", as long as that reads
        within ``max_cps`` or no faster than before. A word alone between
        pauses, or beside another speaker, stays.
        """
        groups = list(groups)
        i = 0
        while i < len(groups):
            alone = len(groups[i].tokens) == 1
            after = self.recut_around(groups, i, (2,), strict=False) if alone else None
            i = i + 1 if after is None else after
        return groups

    # -- pass 5: timing -----------------------------------------------------

    def cues(self, groups: Sequence[_Group]) -> list[Cue]:
        """Time the cues in whole milliseconds: ordered, ``min_gap`` apart."""
        cues: list[Cue] = []
        gap = _ms(self.options.min_gap)
        previous_end: int | None = None
        for i, group in enumerate(groups):
            start = max(_ms(group.start), 0)
            if previous_end is not None:
                # Only where the previous cue could not give up its end.
                start = max(start, previous_end + gap)
            following = groups[i + 1] if i + 1 < len(groups) else None
            next_start = None if following is None else _ms(following.start)
            chars = self.fill(group)
            end = self.end_ms(start, _ms(group.end), chars, next_start)
            reading = math.ceil(chars * 1000 / self.options.max_cps)
            if end - start < reading:
                # Last resort for a cue still too fast: appear a little before
                # the speech, out of the silence before it.
                earliest = start - _ms(self.options.max_lead_in)
                if previous_end is not None:
                    earliest = max(earliest, previous_end + gap)
                start = max(
                    min(start, end - reading), earliest, end - _ms(self.options.max_cue_duration), 0
                )
            lines = _wrap(group.pieces(), self.options.max_line_width)
            cues.append(Cue(start / 1000, end / 1000, tuple(lines)))
            previous_end = end
        return cues


def build_cues(segments: Iterable[Segment], options: SubtitleOptions | None = None) -> list[Cue]:
    """Group the words of ``segments`` into subtitle cues laid out by ``options``.

    Segments without word timestamps are split into words timed in
    proportion to their length.
    """
    rules = _Rules(SubtitleOptions() if options is None else options)
    groups = rules.fold_fragments(rules.group(_tokens(segments)))
    return rules.cues(rules.fix_orphans(rules.ease_reading(groups)))


@dataclass(frozen=True, slots=True)
class ReadingSpeed:
    """How fast a list of cues asks to be read."""

    cues: int
    limit: float
    # Share of cues read at no more than ``limit`` characters a second (1.0 for no cues).
    within: float
    # Characters a second of the fastest cue (0.0 for no cues).
    fastest: float


def cue_cps(cue: Cue) -> float:
    """Characters a second needed to read ``cue``: its text on one line over its time shown."""
    shown = _ms(cue.end - cue.start)
    return len(cue.text) * 1000 / shown if shown > 0 else math.inf


def reading_speed(cues: Iterable[Cue], limit: float = 20.0) -> ReadingSpeed:
    """The share of ``cues`` readable at ``limit`` characters a second, and the fastest."""
    speeds = [cue_cps(cue) for cue in cues]
    if not speeds:
        return ReadingSpeed(0, limit, 1.0, 0.0)
    within = sum(speed <= limit for speed in speeds) / len(speeds)
    return ReadingSpeed(len(speeds), limit, within, max(speeds))


def _timestamp(seconds: float, separator: str) -> str:
    ms = max(round(seconds * 1000), 0)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def render_srt(cues: Iterable[Cue]) -> str:
    blocks = [
        f"{index}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n"
        + "\n".join(cue.lines)
        + "\n"
        for index, cue in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def _vtt_escape(line: str) -> str:
    # WebVTT cue text is markup: a bare "<" or "&" would be read as a tag or entity.
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(cues: Iterable[Cue]) -> str:
    blocks = ["WEBVTT\n"]
    blocks += [
        f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n"
        + "\n".join(_vtt_escape(line) for line in cue.lines)
        + "\n"
        for cue in cues
    ]
    return "\n".join(blocks)
