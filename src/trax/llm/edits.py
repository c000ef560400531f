"""Guardrails in code: which of the model's proposed edits may change a transcript.

The prompt asks for small, justified edits; this module does not trust that it
got them. An edit replaces a run of words of one segment:

- **punctuation and casing** (the same letters, the same number of words) may
  go anywhere;
- **word edits** must be local (at most ``max_words`` words on either side),
  touch evidence (a word the recogniser was unsure of, or a glossary term),
  look or sound like what they replace, and add or drop no content (never
  an empty replacement, at most one word more or fewer);
- a chunk whose accepted word edits would move it more than a bounded
  distance from the original keeps only its punctuation and casing.

Every proposal ends as an ``Edit``: "accepted", or "rejected" with the reason.
Edited words keep the times of the words they replace (spread over the span
when the count changes), so subtitles and word timestamps stay right.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from trax.core import Edit, Segment, Word
from trax.llm.prompt import KINDS, LOW_MARK, Chunk

STAGE = "enhance"
STYLE_KINDS = ("punctuation", "casing")


@dataclass(frozen=True, slots=True)
class Guardrails:
    low_probability: float = 0.6
    max_words: int = 3
    min_similarity: float = 0.5
    max_drift: float = 0.1
    """The share of a chunk's words its word edits may change (at least ``drift_floor``)."""
    drift_floor: int = 3
    glossary: tuple[str, ...] = ()


@dataclass(slots=True)
class ChunkResult:
    """The chunk's segments after the accepted edits, and every proposal's outcome."""

    segments: dict[int, Segment] = field(default_factory=dict)
    edits: list[Edit] = field(default_factory=list)
    problem: str | None = None


# --------------------------------------------------------------------------- similarity


def letters(text: str) -> str:
    """Only letters and digits, case-folded and without accents: what a word *is*."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if c.isalnum())


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Edits (insert, delete, substitute) from ``a`` to ``b``; two rows of memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


_SOUNDS = (
    ("tch", "x"),
    ("sch", "sk"),
    ("ph", "f"),
    ("gh", "g"),
    ("ck", "k"),
    ("qu", "kw"),
    ("th", "0"),
    ("sh", "x"),
    ("ch", "x"),
    ("dg", "j"),
    ("wr", "r"),
    ("kn", "n"),
    ("ce", "se"),
    ("ci", "si"),
    ("cy", "sy"),
    ("x", "ks"),
    ("q", "k"),
    ("c", "k"),
    ("z", "s"),
    ("v", "f"),
)


def phonetic_key(text: str) -> str:
    """A rough English sound key: spelling variants of one sound made equal, vowels after
    the first letter dropped, doubled sounds collapsed ("missile", "missal" → "msl")."""
    key = letters(text)
    for spelled, sound in _SOUNDS:
        key = key.replace(spelled, sound)
    if not key:
        return ""
    body = "".join(c for c in key[1:] if c not in "aeiouyhw")
    out = key[0]
    for c in body:
        if c != out[-1]:
            out += c
    return out


def similarity(before: str, after: str) -> float:
    """How alike two spans look or sound, 0..1: the better of spelling and sound."""
    a, b = letters(before), letters(after)
    if not a or not b:
        return 0.0
    spelled = 1 - levenshtein(a, b) / max(len(a), len(b))
    ka, kb = phonetic_key(before), phonetic_key(after)
    sounded = 1 - levenshtein(ka, kb) / max(len(ka), len(kb), 1)
    return max(spelled, sounded)


# --------------------------------------------------------------------------- proposals


@dataclass(frozen=True, slots=True)
class Proposal:
    segment: int
    first: int
    last: int
    before: str | None
    after: str
    kind: str | None
    """What the model called it, if it did; the code decides in the end."""


_KIND_LETTERS = {k[0]: k for k in KINDS}


def _position(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse(item: Any) -> Proposal | str:
    """One entry of the model's edit list, or why it is unusable.

    The asked-for form is ``[segment, first word, "words replaced", "replacement"]``
    (the words replaced give the span's length); an optional fifth item names
    the kind. An object ``{"s", "from", "to", "before", "after", "kind"}`` is
    understood too.
    """
    if isinstance(item, list):
        if len(item) < 4 or not isinstance(item[2], str):
            return "not an edit [segment, position, words, replacement]"
        s, first, before, after = item[:4]
        kind = item[4] if len(item) > 4 else None
        last = first + max(1, len(before.split())) - 1 if _position(first) else None
    elif isinstance(item, dict):
        s, first = item.get("s"), item.get("from")
        last, before = item.get("to", first), item.get("before")
        after, kind = item.get("after"), item.get("kind")
    else:
        return "not an edit"
    if not (_position(s) and _position(first) and _position(last)):
        return "no segment and word positions"
    if not isinstance(after, str):
        return "no replacement text"
    assert isinstance(s, int) and isinstance(first, int) and isinstance(last, int)
    if isinstance(kind, str):
        kind = kind if kind in KINDS else _KIND_LETTERS.get(kind[:1].lower())
    return Proposal(
        s,
        first,
        last,
        _unmarked(before) if isinstance(before, str) else None,
        _unmarked(after),
        kind if isinstance(kind, str) else None,
    )


def _unmarked(text: str) -> str:
    """Without the request's unsure-word marks, should the model copy them."""
    return " ".join(w[: -len(LOW_MARK)] if w.endswith(LOW_MARK) else w for w in text.split())


def tokens(text: str) -> list[str]:
    """Replacement words; stray punctuation ("done ." ) joins the word before it."""
    out: list[str] = []
    for token in text.split():
        if out and not letters(token):
            out[-1] += token
        else:
            out.append(token)
    return out


def locate(words: Sequence[Word], proposal: Proposal) -> tuple[int, int] | None:
    """The proposal's word run, checked against its ``before``: models miscount
    positions, so the run of those words nearest the position wins (when no other
    is as near)."""
    first, last = proposal.first, proposal.last
    if proposal.before is None:
        return (first, last) if 0 <= first <= last < len(words) else None
    wanted = letters(proposal.before)
    if 0 <= first <= last < len(words) and letters(_text(words[first : last + 1])) == wanted:
        return first, last
    size = max(1, len(proposal.before.split()))
    found = [
        i for i in range(len(words) - size + 1) if letters(_text(words[i : i + size])) == wanted
    ]
    if not found:
        return None
    found.sort(key=lambda i: abs(i - first))
    if len(found) > 1 and abs(found[0] - first) == abs(found[1] - first):
        return None  # as near one way as the other: which one is meant is unknown
    return found[0], found[0] + size - 1


def _text(words: Sequence[Word]) -> str:
    from trax.core import render_words

    return render_words(list(words))


def guess_kind(before: str, after: str) -> str:
    """The kind of an edit from its text alone (for one that could not be placed)."""
    if letters(before) != letters(after):
        return "mishearing"
    return "casing" if before.casefold() == after.casefold() else "punctuation"


def judge(
    words: Sequence[Word],
    span: tuple[int, int],
    new: list[str],
    proposal: Proposal,
    rails: Guardrails,
) -> tuple[str, str | None]:
    """(kind, None) when the edit may be applied, else (kind, reason)."""
    old = words[span[0] : span[1] + 1]
    before = _text(old)
    after = " ".join(new)
    if letters(before) == letters(after) and len(new) == len(old):
        if before == after:
            return proposal.kind or "punctuation", "changes nothing"
        kind = "casing" if before.casefold() == after.casefold() else "punctuation"
        return kind, None
    in_glossary = _glossary_hit(before, after, rails.glossary)
    if proposal.kind in ("mishearing", "term"):
        kind = proposal.kind
    else:  # not said, or a style kind for what changes words
        kind = "term" if in_glossary or letters(before) == letters(after) else "mishearing"
    if not new:
        return kind, f"drops {len(old)} word(s)"
    if len(old) > rails.max_words or len(new) > rails.max_words:
        return kind, f"not local: {max(len(old), len(new))} words (at most {rails.max_words})"
    if abs(len(new) - len(old)) > 1:
        return kind, f"adds or drops words ({len(old)} → {len(new)})"
    unsure = min(w.probability for w in old)
    if unsure >= rails.low_probability and not in_glossary:
        return kind, (
            f"changes words the recogniser was sure of (p={unsure:.2f} ≥ "
            f"{rails.low_probability:g}) and no glossary term"
        )
    alike = similarity(before, after)
    if alike < rails.min_similarity:
        return kind, (
            f"does not look or sound like what it replaces (similarity {alike:.2f} < "
            f"{rails.min_similarity:g})"
        )
    return kind, None


def _glossary_hit(before: str, after: str, glossary: Sequence[str]) -> bool:
    """The replacement is (or contains) a glossary term, or the original already was one."""
    a, b = letters(after), letters(before)
    for term in glossary:
        t = letters(term)
        if t and (t in (a, b) or (len(t) > 3 and t in a)):
            return True
    return False


def replace_words(old: Sequence[Word], new: list[str]) -> list[Word]:
    """New words over the old ones' time span: one for one when the counts agree, else
    spread by length. The recogniser's probability stays (the evidence for the edit)."""
    if len(new) == len(old):
        return [replace(w, text=t) for w, t in zip(old, new, strict=True)]
    start, end = old[0].start, old[-1].end
    total = sum(len(t) for t in new) or 1
    lowest = min(w.probability for w in old)
    out: list[Word] = []
    cursor = start
    for i, text in enumerate(new):
        stop = end if i == len(new) - 1 else cursor + (end - start) * len(text) / total
        attached = old[0].attached if i == 0 else False
        out.append(Word(round(cursor, 3), round(stop, 3), text, lowest, old[0].speaker, attached))
        cursor = stop
    return out


def apply(segments: Sequence[Segment], chunk: Chunk, answer: Any, rails: Guardrails) -> ChunkResult:
    """Check every proposed edit of one chunk's answer and apply the accepted ones."""
    result = ChunkResult()
    items = None
    if isinstance(answer, dict):
        items = answer.get("e", answer.get("edits"))
    if not isinstance(items, list):
        result.problem = "the answer has no list of edits"
        return result
    fallback = segments[chunk.first]
    # (segment, first, last) → (new words, edit) for the accepted ones
    taken: dict[int, list[tuple[int, int, list[str], int]]] = {}
    style: set[int] = set()  # indices into result.edits that are punctuation/casing
    for item in items:
        proposal = parse(item)
        if isinstance(proposal, str):
            text = str(item)[:80]
            result.edits.append(_edit(fallback.start, fallback.start, text, "", "?", proposal))
            continue
        kind_said = proposal.kind or guess_kind(proposal.before or "", proposal.after)
        if proposal.segment not in chunk.editable:
            where = segments[proposal.segment] if 0 <= proposal.segment < len(segments) else None
            start = where.start if where else fallback.start
            outside = f"segment {proposal.segment} is not editable in this chunk"
            result.edits.append(
                _edit(start, start, proposal.before or "", proposal.after, kind_said, outside)
            )
            continue
        segment = segments[proposal.segment]
        words = segment.words
        span = locate(words, proposal)
        if span is None:
            mismatch = "does not match the words at that position"
            text = proposal.before or ""
            result.edits.append(
                _edit(segment.start, segment.end, text, proposal.after, kind_said, mismatch)
            )
            continue
        old = words[span[0] : span[1] + 1]
        new = tokens(proposal.after)
        kind, reason = judge(words, span, new, proposal, rails)
        if reason is None and any(
            not (span[1] < a or b < span[0]) for a, b, _, _ in taken.get(proposal.segment, [])
        ):
            reason = "overlaps an edit already accepted"
        edit = _edit(old[0].start, old[-1].end, _text(old), " ".join(new), kind, reason)
        result.edits.append(edit)
        if reason is None:
            index = len(result.edits) - 1
            taken.setdefault(proposal.segment, []).append((span[0], span[1], new, index))
            if kind in STYLE_KINDS:
                style.add(index)
    _bound_drift(segments, chunk, taken, style, result, rails)
    for index, runs in taken.items():
        edited = list(segments[index].words)
        for first, last, new, _ in sorted(runs, reverse=True):  # right to left: indices hold
            edited[first : last + 1] = replace_words(edited[first : last + 1], new)
        result.segments[index] = replace(segments[index], words=tuple(edited))
    return result


def _bound_drift(
    segments: Sequence[Segment],
    chunk: Chunk,
    taken: dict[int, list[tuple[int, int, list[str], int]]],
    style: set[int],
    result: ChunkResult,
    rails: Guardrails,
) -> None:
    """Undo every word edit of a chunk that would move too far from what was heard."""
    changed = 0
    total = 0
    for index in chunk.editable:
        old = [letters(w.text) for w in segments[index].words]
        total += len(old)
        runs = [r for r in taken.get(index, []) if r[3] not in style]
        new = list(old)
        for first, last, words, _ in sorted(runs, reverse=True):
            new[first : last + 1] = [letters(w) for w in words]
        changed += levenshtein(old, new)
    allowed = max(rails.drift_floor, int(rails.max_drift * total))
    if changed <= allowed:
        return
    reason = (
        f"the chunk would change {changed} of its {total} words (at most {allowed}): "
        "only punctuation and casing kept"
    )
    for index, runs in list(taken.items()):
        keep = []
        for run in runs:
            if run[3] in style:
                keep.append(run)
            else:
                result.edits[run[3]] = replace(
                    result.edits[run[3]], status="rejected", reason=reason
                )
        taken[index] = keep


def _edit(start: float, end: float, before: str, after: str, kind: str, reason: str | None) -> Edit:
    status = "accepted" if reason is None else "rejected"
    return Edit(STAGE, start, end, before, after, kind, status, reason or "")
