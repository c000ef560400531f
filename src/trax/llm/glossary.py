"""The glossary: names and terms a transcript may contain, as evidence for word edits.

A file holds one term a line (blank lines and ``#`` comments ignored);
``--hotwords "Trax, DeepSeek"`` adds its comma-separated words too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from trax.config import ConfigError

MAX_TERMS = 500
"""More would crowd the prompt (every chunk carries the glossary) and the budget."""


def read_glossary(path: Path) -> list[str]:
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read glossary {path}: {reason}") from exc
    return [line.split("#", 1)[0].strip() for line in text.splitlines()]


def hotword_terms(hotwords: str | None) -> list[str]:
    return [t.strip() for t in (hotwords or "").split(",")]


def merge(*sources: Iterable[str]) -> tuple[str, ...]:
    """Every term once (first spelling wins, any case), in order, at most ``MAX_TERMS``."""
    seen: set[str] = set()
    terms: list[str] = []
    for source in sources:
        for term in source:
            term = " ".join(term.split())
            if term and term.casefold() not in seen:
                seen.add(term.casefold())
                terms.append(term)
    if len(terms) > MAX_TERMS:
        raise ConfigError(f"glossary has {len(terms)} terms; at most {MAX_TERMS} are sent")
    return tuple(terms)
