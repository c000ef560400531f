"""A cache for expensive stage results, keyed by content and settings, with expiry.

Stored transcripts are the user's data and never expire; this cache holds
intermediate results that later pipeline versions can reuse (the ASR result
of a file under one model and decoding settings, an LLM's answer to one
prompt) and can be cleared or pruned without losing anything but time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from trax.store.database import Database
from trax.store.models import CacheEntryRow


def default_ttl() -> timedelta:
    """``cache_ttl_days`` of the config (``TRAX_CACHE_TTL_DAYS``; 30 days by default)."""
    from trax.config import load_config

    return timedelta(days=load_config().cache_ttl_days)


@dataclass(frozen=True, slots=True)
class NamespaceStats:
    namespace: str
    entries: int
    expired: int
    size_bytes: int
    hits: int


class StageCache(Protocol):
    def get(self, namespace: str, key: str) -> Any | None: ...
    def put(self, namespace: str, key: str, value: Any, ttl: timedelta | None = None) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class SqlStageCache:
    """``StageCache`` in the Trax database (JSONB on PostgreSQL)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, namespace: str, key: str) -> Any | None:
        """The value, or None when absent or expired (an expired entry is a miss)."""
        with self.database.transaction() as session:
            row = session.get(CacheEntryRow, (namespace, key))
            if row is None or _aware(row.expires_at) <= _now():
                return None
            row.hits += 1
            return row.value

    def put(self, namespace: str, key: str, value: Any, ttl: timedelta | None = None) -> None:
        stamp = _now()
        size = len(json.dumps(value, separators=(",", ":")))
        with self.database.transaction() as session:
            row = session.get(CacheEntryRow, (namespace, key))
            if row is None:
                row = CacheEntryRow(namespace=namespace, key=key, hits=0)
                session.add(row)
            row.value, row.size_bytes = value, size
            row.created_at, row.expires_at = stamp, stamp + (ttl or default_ttl())

    def stats(self) -> list[NamespaceStats]:
        from sqlalchemy import case, func, select

        now = _now()
        query = select(
            CacheEntryRow.namespace,
            func.count(),
            func.sum(case((CacheEntryRow.expires_at <= now, 1), else_=0)),
            func.sum(CacheEntryRow.size_bytes),
            func.sum(CacheEntryRow.hits),
        ).group_by(CacheEntryRow.namespace)
        with self.database.session() as session:
            return [
                NamespaceStats(ns, n, int(expired or 0), int(size or 0), int(hits or 0))
                for ns, n, expired, size, hits in session.execute(query)
            ]

    def clear(self, namespace: str | None = None) -> int:
        from sqlalchemy import delete

        query = delete(CacheEntryRow)
        if namespace is not None:
            query = query.where(CacheEntryRow.namespace == namespace)
        with self.database.transaction() as session:
            return int(session.execute(query).rowcount)  # type: ignore[attr-defined]

    def prune(self) -> int:
        """Delete expired entries; return how many."""
        from sqlalchemy import delete

        query = delete(CacheEntryRow).where(CacheEntryRow.expires_at <= _now())
        with self.database.transaction() as session:
            return int(session.execute(query).rowcount)  # type: ignore[attr-defined]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
