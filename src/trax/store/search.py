"""Full-text search over stored segments, with the same hits on SQLite and PostgreSQL.

Neither engine tokenises anything itself: Python turns every segment's text
into a line of plain ASCII tokens (``index_text``) and every query into an
expression over those tokens (``parse_query``). FTS5's unicode61 tokenizer and
PostgreSQL's parser with the 'simple' configuration split such a line at its
spaces and nowhere else, so both index exactly the same tokens at the same
positions, whatever the script, the SQLite build or the server's locale.

Tokens are runs of letters and digits after NFKC and case folding, with the
combining marks that belong to them; ASCII digits are split from letters
("1080p" → 1080 p, which also keeps PostgreSQL from reading "1e5x" as a
number); scripts written without spaces (Chinese, Japanese, Thai, …) give one
token per character, so a word is found as a phrase of its characters. A
token with any non-ASCII character is spelled in ASCII: each character other
than a–z becomes ``x<code point>`` ("zürich" → "zx252rich"). Such a token
always mixes letters and digits, which no plain token does, so the spelling
cannot collide with a real word. Accents count ("zurich" does not find
"Zürich"); case and compatibility forms do not ("STRASSE" finds "Straße").

Queries use web-search syntax: words (all must appear), "quoted phrases",
``OR`` (or ``|``) between alternatives, and ``-word`` or ``-"phrase"`` to
exclude; ``AND`` may be written but changes nothing.
``OR`` separates whole alternatives (``a b OR c`` is (a and b) or c), as
PostgreSQL's ``websearch_to_tsquery`` reads it. Any text is a valid query:
what is not a word is ignored, and a query with nothing left to find finds
nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from trax.store.database import Database
    from trax.store.models import TranscriptRow

MAX_TOKEN_CHARS = 100
"""Longer (spelled) tokens are cut here, well below PostgreSQL's 2 KB lexeme limit."""

MAX_SEGMENT_TOKENS = 1000
"""Tokens indexed per segment; keeps every position within PostgreSQL's limits."""

MAX_QUERY_TOKENS = 64
"""Tokens read from a query; the rest is ignored, which bounds the work of any query."""

SNIPPET_CHARS = 200
"""Segments longer than this are shown as a window around the first match."""

MARK = "**"

_ALNUM = re.compile(r"[^\W_]+")
_ASCII_PIECES = re.compile(r"[a-z]+|[0-9]+")
_NOT_QUOTE_OR_SPACE = re.compile(r'[^\s"]+')
_JOINERS = {"\u200c", "\u200d"}  # zero-width (non-)joiners sit inside Persian and Indic words
# Scripts written without spaces between words: each character is a token.
_NO_SPACES = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
)


# --------------------------------------------------------------------------- tokens


def _is_mark(char: str) -> bool:
    return char in _JOINERS or unicodedata.category(char)[0] == "M"


def word_spans(text: str) -> list[tuple[int, int]]:
    """Where the words of ``text`` are: runs of letters and digits with their marks."""
    if text.isascii():  # no marks: the quick way
        return [m.span() for m in _ALNUM.finditer(text)]
    spans: list[tuple[int, int]] = []
    for match in _ALNUM.finditer(text):
        start, end = match.span()
        if spans and spans[-1][1] == start:  # only marks between them: one word
            start = spans.pop()[0]
        while end < len(text) and _is_mark(text[end]):
            end += 1
        spans.append((start, end))
    return spans


def _spell(token: str) -> str:
    if token.isascii():
        return token
    return "".join(c if "a" <= c <= "z" else f"x{ord(c)}" for c in token)


def word_tokens(word: str) -> list[str]:
    """The index tokens of one word (one span of ``word_spans``)."""
    if word.isascii():  # what the general way below gives for ASCII, 20 times faster
        return [t[:MAX_TOKEN_CHARS] for t in _ASCII_PIECES.findall(word.lower())]
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", word).casefold())
    folded = "".join(c for c in folded if c not in _JOINERS)
    tokens: list[str] = []
    for start, end in word_spans(folded):  # NFKC can split a word: "½" → "1⁄2"
        current, kind = "", ""
        for char in folded[start:end]:
            if _is_mark(char):
                current += char
                continue
            new = "d" if "0" <= char <= "9" else "i" if _NO_SPACES.match(char) else "l"
            if current and (new != kind or new == "i"):
                tokens.append(current)
                current = ""
            current, kind = current + char, new
        if current:
            tokens.append(current)
    return [_spell(t)[:MAX_TOKEN_CHARS] for t in tokens]


def tokens(text: str) -> list[str]:
    """The index tokens of ``text``, in order."""
    if text.isascii():
        return [t[:MAX_TOKEN_CHARS] for t in _ASCII_PIECES.findall(text.lower())]
    return [t for start, end in word_spans(text) for t in word_tokens(text[start:end])]


def index_text(text: str) -> str:
    """What both engines index for a segment: its tokens, joined by spaces."""
    return " ".join(tokens(text)[:MAX_SEGMENT_TOKENS])


# --------------------------------------------------------------------------- queries

Phrase = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Branch:
    """One alternative of a query: every ``include`` phrase and no ``exclude`` phrase."""

    include: tuple[Phrase, ...]
    exclude: tuple[Phrase, ...] = ()


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: it matches a segment when any branch does. No branch: no match."""

    branches: tuple[Branch, ...]

    @property
    def phrases(self) -> list[Phrase]:
        """What to highlight: every phrase looked for (not the excluded ones)."""
        return [p for b in self.branches for p in b.include]

    def fts5(self) -> str:
        """The FTS5 MATCH expression; every token is quoted, so no user syntax gets in."""
        parts = []
        for branch in self.branches:
            expr = "(" + " AND ".join(_quoted(p) for p in branch.include) + ")"
            for p in branch.exclude:
                expr = f"({expr} NOT {_quoted(p)})"
            parts.append(expr)
        return " OR ".join(parts)

    def websearch(self) -> str:
        """The same query for ``websearch_to_tsquery``: quoted tokens, ``-`` and ``or``."""
        return " or ".join(
            " ".join([*map(_quoted, b.include), *("-" + _quoted(p) for p in b.exclude)])
            for b in self.branches
        )


def _quoted(phrase: Phrase) -> str:
    return '"' + " ".join(phrase) + '"'


def parse_query(text: str) -> Query:
    """Read web-search syntax; never fails (see the module docstring)."""
    branches: list[Branch] = []
    include: list[Phrase] = []
    exclude: list[Phrase] = []
    budget = MAX_QUERY_TOKENS

    def close_branch() -> None:
        if include:  # a branch that only excludes would match nearly everything
            branches.append(Branch(tuple(include), tuple(exclude)))
        include.clear()
        exclude.clear()

    i, n = 0, len(text)
    while i < n and budget > 0:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-" and i + 1 < n and not text[i + 1].isspace()
        if negated:
            i += 1
        if text[i] == '"':  # a phrase; an unclosed quote runs to the end
            close = text.find('"', i + 1)
            end = n if close < 0 else close
            raw, quoted, i = text[i + 1 : end], True, end + 1
        else:
            match = _NOT_QUOTE_OR_SPACE.match(text, i)
            assert match is not None  # text[i] is neither space nor quote
            raw, quoted, i = match.group(), False, match.end()
        if not quoted and not negated and raw in ("OR", "|"):
            close_branch()
            continue
        if not quoted and not negated and raw == "AND":  # words are ANDed anyway
            continue
        phrase = tuple(tokens(raw)[:budget])
        if phrase:
            budget -= len(phrase)
            (exclude if negated else include).append(phrase)
    close_branch()
    return Query(tuple(branches))


# --------------------------------------------------------------------------- highlight


def highlight(text: str, query: Query) -> str:
    """``text`` with the words that match ``query`` between ``**`` marks.

    Done in Python on the rows returned, so both engines give the same snippet.
    A phrase is marked only where all of its words stand together.
    """
    text = text.strip()
    if text.isascii():  # the quick way: each letter or digit run is a word of its own
        pieces = list(_ASCII_PIECES.finditer(text.lower()))
        spans = [m.span() for m in pieces]
        tokens_at = [(m.group()[:MAX_TOKEN_CHARS], k) for k, m in enumerate(pieces)]
    else:
        spans = word_spans(text)
        tokens_at = [(t, k) for k, (s, e) in enumerate(spans) for t in word_tokens(text[s:e])]
    words = [t for t, _ in tokens_at]
    marked: set[int] = set()
    for phrase in query.phrases:
        size = len(phrase)
        for i in range(len(words) - size + 1):
            if tuple(words[i : i + size]) == phrase:
                marked.update(k for _, k in tokens_at[i : i + size])
    groups: list[tuple[int, int]] = []
    for k in sorted(marked):
        start, end = spans[k]
        if groups and not text[groups[-1][1] : start].strip():  # "**ask not**"
            groups[-1] = (groups[-1][0], end)
        else:
            groups.append((start, end))
    first, last = _window(text, groups)
    out = ["…" if first > 0 else ""]
    position = first
    for start, end in groups:
        if start >= last:
            break
        out += [text[position:start], MARK, text[start:end], MARK]
        position = end
    out += [text[position:last], "…" if last < len(text) else ""]
    return "".join(out)


def _window(text: str, groups: list[tuple[int, int]]) -> tuple[int, int]:
    """The part of a long segment to show: from a little before the first match."""
    if len(text) <= SNIPPET_CHARS:
        return 0, len(text)
    first = groups[0][0] if groups else 0
    start = max(0, first - SNIPPET_CHARS // 4)
    if start > 0:
        space = text.find(" ", start, first)
        start = space + 1 if space >= 0 else first
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > first else end
    for s, e in groups:  # never cut a marked word in two
        if s < end < e:
            end = e
    return start, end


def snippet_parts(snippet: str) -> list[tuple[str, bool]]:
    """A snippet as (text, matched) pieces, for showing matches in bold."""
    return [(part, i % 2 == 1) for i, part in enumerate(snippet.split(MARK)) if part]


# --------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching segment. ``rank``: higher is better (engine-specific scale)."""

    transcript_id: int
    media_id: int
    path: str
    position: int
    start: float
    end: float
    speaker: str | None
    text: str
    snippet: str
    rank: float


_HITS_SQLITE = """
SELECT s.id AS id, s.transcript_id AS transcript_id, s.position AS position,
       -bm25(segments_fts) AS score
FROM segments_fts CROSS JOIN segments AS s ON s.id = segments_fts.rowid
WHERE segments_fts MATCH :match{filters}
ORDER BY score DESC, s.transcript_id DESC, s.position
LIMIT :limit
"""

# ts_rank_cd's normalisation 1 divides by 1 + log(length): shorter segments that
# match rank higher, as they do under bm25.
_HITS_POSTGRESQL = """
SELECT s.id AS id, s.transcript_id AS transcript_id, s.position AS position,
       ts_rank_cd(s.tsv, websearch_to_tsquery('simple', :match), 1) AS score
FROM segments AS s
WHERE s.tsv @@ websearch_to_tsquery('simple', :match){filters}
ORDER BY score DESC, s.transcript_id DESC, s.position
LIMIT :limit
"""

_DETAILS = """
WITH hits AS ({hits})
SELECT h.score AS score, s.transcript_id AS transcript_id, t.media_id AS media_id,
       m.path AS path, s.position AS position, s.start AS start, s."end" AS "end",
       s.speaker AS speaker, s.text AS text
FROM hits AS h
JOIN segments AS s ON s.id = h.id
JOIN transcripts AS t ON t.id = s.transcript_id
JOIN media_files AS m ON m.id = t.media_id
ORDER BY h.score DESC, h.transcript_id DESC, h.position
"""


def search(
    database: Database,
    query: str,
    *,
    speaker: str | None = None,
    limit: int = 20,
    all_versions: bool = False,
) -> list[SearchHit]:
    """The best-matching segments, best first; ties: newest transcript, then position.

    Only each file's current (newest) transcript is searched unless ``all_versions``.
    """
    from sqlalchemy import text as sql

    parsed = parse_query(query)
    if not parsed.branches or limit < 1:
        return []
    database.ensure_schema()
    postgresql = database.dialect == "postgresql"
    filters = ""
    params: dict[str, Any] = {"limit": limit}
    if not all_versions:
        current = "is_current" if postgresql else "is_current = 1"  # SQLite: use the index
        filters += f"\n  AND s.transcript_id IN (SELECT id FROM transcripts WHERE {current})"
    if speaker is not None:
        filters += "\n  AND s.speaker = :speaker"
        params["speaker"] = speaker
    if postgresql:
        hits, params["match"] = _HITS_POSTGRESQL, parsed.websearch()
    else:
        hits, params["match"] = _HITS_SQLITE, parsed.fts5()
    statement = sql(_DETAILS.format(hits=hits.format(filters=filters)))
    with database.engine.connect() as connection:
        rows = connection.execute(statement, params).all()
    return [
        SearchHit(
            transcript_id=row.transcript_id,
            media_id=row.media_id,
            path=row.path,
            position=row.position,
            start=row.start,
            end=row.end,
            speaker=row.speaker,
            text=row.text,
            snippet=highlight(row.text, parsed),
            rank=float(row.score),
        )
        for row in rows
    ]


def index_transcript(session: Session, row: TranscriptRow) -> None:
    """Index a just-flushed transcript's segments and make it its file's current one.

    Runs in the caller's transaction. On PostgreSQL, saves of the same media
    file take turns from here to their commit (a row lock on the media file),
    and the current transcript is always the one with the highest id, so
    concurrent saves cannot leave two current transcripts, or an older one.
    ``NO KEY UPDATE`` because each save already holds a ``KEY SHARE`` lock on
    the media row (its transcript's foreign key): ``FOR UPDATE`` would
    deadlock two concurrent saves. SQLite allows one writer at a time anyway.
    """
    from sqlalchemy import text as sql
    from sqlalchemy.orm.attributes import set_committed_value

    connection = session.connection()
    media = {"media": row.media_id}
    if connection.dialect.name == "postgresql":
        lock = "SELECT id FROM media_files WHERE id = :media FOR NO KEY UPDATE"
        connection.execute(sql(lock), media)
    write_segments(connection, row.id, row.segments)
    newest = connection.execute(
        sql("SELECT max(id) FROM transcripts WHERE media_id = :media"), media
    ).scalar_one()
    # Two statements, old first: the unique index on the current transcript of a
    # media file is checked row by row.
    connection.execute(
        sql(
            "UPDATE transcripts SET is_current = false "
            "WHERE media_id = :media AND is_current AND id <> :newest"
        ),
        media | {"newest": newest},
    )
    connection.execute(
        sql("UPDATE transcripts SET is_current = true WHERE id = :newest AND NOT is_current"),
        {"newest": newest},
    )
    set_committed_value(row, "is_current", row.id == newest)


def write_segments(
    connection: Connection, transcript_id: int, segments: Sequence[Mapping[str, Any]]
) -> None:
    """Insert a transcript's segments and index them (FTS5 rows, or the tsvector column)."""
    from sqlalchemy import text as sql

    rows = [
        {
            "transcript_id": transcript_id,
            "position": position,
            "start": float(segment["start"]),
            "end": float(segment["end"]),
            "speaker": segment.get("speaker"),
            "text": segment["text"],
            "tokens": index_text(segment["text"]),
        }
        for position, segment in enumerate(segments)
    ]
    if not rows:
        return
    columns = 'transcript_id, position, start, "end", speaker, text'
    values = ":transcript_id, :position, :start, :end, :speaker, :text"
    if connection.dialect.name == "postgresql":
        connection.execute(
            sql(
                f"INSERT INTO segments ({columns}, tsv) "
                f"VALUES ({values}, to_tsvector('simple', :tokens))"
            ),
            rows,
        )
        return
    connection.execute(sql(f"INSERT INTO segments ({columns}) VALUES ({values})"), rows)
    connection.execute(
        sql(
            "INSERT INTO segments_fts (rowid, tokens) VALUES ((SELECT id FROM segments "
            "WHERE transcript_id = :transcript_id AND position = :position), :tokens)"
        ),
        rows,
    )
