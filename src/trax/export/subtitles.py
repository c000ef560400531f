"""Subtitle cues built from word timestamps, and SRT / WebVTT rendering.

Whisper segments are decoding windows, not subtitles: one can run for 30 s or
stop mid-sentence. Cues are therefore rebuilt from word timings, following
common timed-text conventions (at most two lines of 42 characters, one to
seven seconds on screen, breaks at sentence ends, clause punctuation and
pauses). The whole transcript text survives: words are regrouped, never
dropped or reordered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from trax.core import Segment, Word

SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
CLAUSE_END = (",", ";", ":", "—", "–", "，", "、", "；", "：")
# Closing quotes and brackets after a full stop still end the sentence.
_CLOSERS = "\"')]}»”’」』"

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


def _punctuation(text: str) -> str:
    """'sentence', 'clause' or '' for the punctuation that ends ``text``."""
    text = text.rstrip(_CLOSERS)
    if text.endswith(SENTENCE_END):
        return "sentence"
    if text.endswith(CLAUSE_END):
        return "clause"
    return ""


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
    kind = _punctuation(piece.text)
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
            tokens.append(_Token(start, end, word.text, glue, segment.speaker))
    return tokens


@dataclass(frozen=True, slots=True)
class _Rules:
    max_line_chars: int
    max_lines: int
    min_duration: float
    max_duration: float
    pause_break: float

    @property
    def capacity(self) -> int:
        return self.max_line_chars * self.max_lines

    def fits(self, pieces: Sequence[_Token]) -> bool:
        return _count_lines(pieces, self.max_line_chars) <= self.max_lines

    def fill(self, group: _Group) -> int:
        return len(_join(group.pieces()))

    def ends_cue(self, group: _Group) -> bool:
        """Whether the word just added is a good place to end the cue."""
        kind = _punctuation(group.tokens[-1].text)
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
            if not _punctuation(tokens[i].text):
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
                    token.start - current.end >= self.pause_break
                ):
                    groups.append(current)
                    current = None
                elif token.end - current.start > self.max_duration or not self.fits(
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

    def merge(self, first: _Group, second: _Group) -> _Group | None:
        if first.speaker != second.speaker:
            return None
        if second.start - first.end >= self.pause_break:
            return None
        if second.end - first.start > self.max_duration:
            return None
        merged = _Group(first.tokens + second.tokens, first.label)
        return merged if self.fits(merged.pieces()) else None

    def merge_short(self, groups: list[_Group]) -> list[_Group]:
        """Fold cues shorter than ``min_duration`` into a neighbour where they fit."""
        groups = list(groups)
        i = 0
        while i < len(groups):
            group = groups[i]
            if group.end - group.start >= self.min_duration:
                i += 1
                continue
            # A fragment continuing the previous cue's sentence belongs with
            # it; one that starts a sentence belongs with what follows.
            neighbours = [i - 1, i + 1]
            if i > 0 and _punctuation(groups[i - 1].tokens[-1].text) == "sentence":
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

    def cues(self, groups: Sequence[_Group]) -> list[Cue]:
        """Time the cues in whole milliseconds: ordered, never overlapping."""
        cues: list[Cue] = []
        previous_end = 0
        min_ms = round(self.min_duration * 1000)
        for i, group in enumerate(groups):
            start = max(round(group.start * 1000), previous_end)
            end = max(round(group.end * 1000), start + 1)
            if end - start < min_ms:
                # Stay up long enough to be read, but leave the screen before the next cue.
                wanted = start + min_ms
                if i + 1 < len(groups):
                    wanted = min(wanted, round(groups[i + 1].start * 1000))
                end = max(end, wanted)
            lines = _wrap(group.pieces(), self.max_line_chars)
            cues.append(Cue(start / 1000, end / 1000, tuple(lines)))
            previous_end = end
        return cues


def build_cues(
    segments: Iterable[Segment],
    max_line_chars: int = 42,
    max_lines: int = 2,
    min_duration: float = 1.0,
    max_duration: float = 7.0,
    pause_break: float = 0.8,
) -> list[Cue]:
    """Group the words of ``segments`` into subtitle cues.

    Segments without word timestamps are split into words timed in
    proportion to their length.
    """
    if max_line_chars < 1 or max_lines < 1:
        raise ValueError("max_line_chars and max_lines must be at least 1")
    if not 0 <= min_duration <= max_duration:
        raise ValueError("need 0 <= min_duration <= max_duration")
    rules = _Rules(max_line_chars, max_lines, min_duration, max_duration, pause_break)
    groups = rules.group(_tokens(segments))
    return rules.cues(rules.merge_short(groups))


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
