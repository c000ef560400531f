"""Query latency of ``trax.store.search.search`` over a thousand stored transcripts.

    uv run python -m benchmarks.search [--transcripts N] [--queries N] [--corpus PATH]

Fills a fresh SQLite file and a fresh PostgreSQL database (created on the
server at ``--postgres`` and dropped afterwards) with the same transcripts,
saved one by one through ``SqlTranscriptStore.save`` as Trax saves them, then
times ``search()`` in this process for a mix of queries. The segments are real
sentences (the corpus's reference transcripts), so word frequencies are those
of real speech; with a few dozen sentences reused many times, a common word
matches a large share of all segments, which is the expensive case.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trax.core import MediaInfo, Segment, Transcript, TranscriptionSettings
from trax.store import Database, SqlTranscriptStore
from trax.store.search import search, tokens

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
FALLBACK_REFERENCES = REPO_ROOT / "tests" / "data" / "audio" / "references.tsv"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET_P95_MS = 50.0
SEARCH_TRANSCRIPTS = 1000
NEW_VERSION_EVERY = 10
"""One transcript in ten is a newer version of an earlier file, as --force makes."""


def load_texts(corpus: Path = DEFAULT_CORPUS) -> list[str]:
    """Reference transcripts: the corpus's asr-dev if present, else the test clips'."""
    references = corpus / "asr-dev" / "references.tsv"
    if not references.is_file():
        references = FALLBACK_REFERENCES
    lines = references.read_text(encoding="utf-8").splitlines()
    return [line.partition("\t")[2].strip() for line in lines if "\t" in line]


def sentences(texts: list[str]) -> list[str]:
    """Segment-sized pieces: long references are cut at commas, as Whisper often does."""
    pieces: list[str] = []
    for text in texts:
        words = text.split()
        if len(words) <= 20:
            pieces.append(text)
            continue
        current: list[str] = []
        for word in words:
            current.append(word)
            if len(current) >= 8 and word.endswith((",", ";", ".")):
                pieces.append(" ".join(current))
                current = []
        if current:
            pieces.append(" ".join(current))
    return pieces


def make_transcript(number: int, version: int, pool: list[str], rng: random.Random) -> Transcript:
    name = f"recording-{number:05d}.wav"
    segments: list[Segment] = []
    at = 0.0
    speakers = ("SPEAKER_00", "SPEAKER_01") if number % 3 == 0 else (None,)
    for i in range(rng.randint(20, 60)):
        sentence = rng.choice(pool)
        length = 0.35 * len(sentence.split()) + rng.uniform(0.2, 1.0)
        segments.append(
            Segment(at, at + length, " " + sentence, speaker=speakers[i % len(speakers)])
        )
        at += length + rng.uniform(0.1, 1.5)
    sha = f"{number:064x}"
    media = MediaInfo(f"/bench/{name}", 1_000_000, sha, at, "wav", "pcm_s16le", 16_000, 1)
    return Transcript(
        media=media,
        segments=tuple(segments),
        language="en",
        language_probability=1.0,
        settings=TranscriptionSettings(),
        model_id=f"bench@{version}",
    )


def make_queries(pool: list[str], count: int, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, query) pairs, the kinds taking turns."""
    frequency = Counter(t for s in pool for t in set(tokens(s)))
    by_count = sorted(frequency, key=lambda t: (-frequency[t], t))
    common = [t for t in by_count[:15] if t.isalpha()]
    rare = [t for t in by_count if frequency[t] == 1 and t.isalpha() and len(t) > 3]
    words = [t for t in by_count if t.isalpha() and len(t) > 3]
    adjacent = [" ".join(s.split()[i : i + 2]) for s in pool for i in range(len(s.split()) - 1)]

    def two_words() -> str:  # two words said together, not next to each other
        said = [t for t in tokens(rng.choice(pool)) if len(t) > 2]
        return " ".join(rng.sample(said, 2)) if len(said) > 1 else said[0]

    kinds: list[tuple[str, Callable[[], str]]] = [
        ("common word", lambda: rng.choice(common)),
        ("rare word", lambda: rng.choice(rare)),
        ("two words", two_words),
        ("phrase", lambda: f'"{rng.choice(adjacent)}"'),
        ("or", lambda: f"{rng.choice(rare)} OR {rng.choice(words)}"),
        ("exclusion", lambda: f"{rng.choice(common)} -{rng.choice(words)}"),
        ("no hit", lambda: rng.choice(["xylophone", "quetzalcoatl", "zymurgy"])),
        ("punctuation", lambda: rng.choice(["?!", '"', "*", "-", "(", "'; --", "…"])),
    ]
    return [(kinds[i % len(kinds)][0], kinds[i % len(kinds)][1]()) for i in range(count)]


def _summary(times_ms: list[float]) -> dict[str, Any]:
    ordered = sorted(times_ms)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
    }


def search_latency(
    database_url: str,
    texts: list[str],
    transcripts: int = 1000,
    queries: int = 200,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fill an empty database, then time ``search()``; latencies in milliseconds."""
    rng = random.Random(20261126)
    pool = sentences(texts)
    database = Database(database_url)
    store = SqlTranscriptStore(database)
    started = time.perf_counter()
    segments = 0
    for i in range(transcripts):
        if i % NEW_VERSION_EVERY == NEW_VERSION_EVERY - 1:
            transcript = make_transcript(rng.randrange(i), i, pool, rng)
        else:
            transcript = make_transcript(i, 0, pool, rng)
        store.save(transcript)
        segments += len(transcript.segments)
        if (i + 1) % 250 == 0:
            log(f"{database.dialect}: saved {i + 1}/{transcripts} transcripts")
    fill_s = time.perf_counter() - started
    log(f"{database.dialect}: {transcripts} transcripts, {segments} segments in {fill_s:.1f} s")

    plan = make_queries(pool, queries, rng)
    for _, query in plan[:16]:  # warm the connection pool and the caches
        search(database, query)
    per_kind: dict[str, list[float]] = {}
    hits: dict[str, list[int]] = {}
    every: list[float] = []
    for kind, query in plan:
        began = time.perf_counter()
        found = search(database, query)
        took = (time.perf_counter() - began) * 1000
        every.append(took)
        per_kind.setdefault(kind, []).append(took)
        hits.setdefault(kind, []).append(len(found))
    database.dispose()
    result = {
        "database": database.dialect,
        "transcripts": transcripts,
        "segments": segments,
        "fill_s": round(fill_s, 1),
        **_summary(every),
        "kinds": {
            kind: _summary(times) | {"mean_hits": round(statistics.mean(hits[kind]), 1)}
            for kind, times in per_kind.items()
        },
    }
    log(
        f"{database.dialect}: {result['n']} queries, median {result['median_ms']} ms, "
        f"p95 {result['p95_ms']} ms (target < {TARGET_P95_MS:.0f} ms)"
    )
    return result


@contextmanager
def fresh_postgres(admin_url: str = DEFAULT_POSTGRES) -> Iterator[str | None]:
    """A new, empty PostgreSQL database for one measurement, dropped afterwards
    (``None`` when no server answers)."""
    import psycopg

    name = f"trax_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    parser = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__)
    parser.add_argument("--transcripts", type=int, default=SEARCH_TRANSCRIPTS)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="Admin URL (no database).")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    texts = load_texts(args.corpus)
    results: dict[str, Any] = {"texts": len(texts)}
    with tempfile.TemporaryDirectory(prefix="trax-search-bench-") as folder:
        sqlite = f"sqlite:///{Path(folder) / 'bench.db'}"
        results["sqlite"] = search_latency(sqlite, texts, args.transcripts, args.queries, log)
    with fresh_postgres(args.postgres) as postgres:
        if postgres is None:
            results["postgresql"] = {"skipped": f"no server at {args.postgres}"}
        else:
            results["postgresql"] = search_latency(
                postgres, texts, args.transcripts, args.queries, log
            )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
