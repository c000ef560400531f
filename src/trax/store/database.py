"""Engines, sessions and migrations, one ``Database`` per URL.

The default is an embedded SQLite file in the user data directory;
``TRAX_DATABASE_URL`` points Trax at PostgreSQL (``postgresql://…``, driven by
psycopg 3). The schema is created or upgraded with Alembic on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trax.errors import TraxError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker


class DatabaseError(TraxError):
    """The database cannot be reached or upgraded; the message is one line."""


def default_url() -> str:
    """The configured database (``TRAX_DATABASE_URL`` or the config file), else SQLite."""
    from trax.config import load_config

    return normalise_url(load_config().database)


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and pick the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as its scheme only
        return url.split(":", 1)[0] + "://…"


class Database:
    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, event
        from sqlalchemy.orm import sessionmaker

        self.url = normalise_url(url)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except Exception as exc:
            raise DatabaseError(f"invalid database URL {redact(self.url)}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self._upgraded = False
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        """A new session on an up-to-date schema."""
        self.ensure_schema()
        return self.sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one write transaction: committed at the end, rolled back on error.

        On SQLite it holds the write lock from its first statement (``BEGIN
        IMMEDIATE``), so what it reads stays true until it commits and other
        writers wait their turn: a deferred transaction that reads, then writes,
        fails at once with "database is locked" when another writer got in
        between, whatever the busy timeout. PostgreSQL transactions lock rows.
        """
        with self.session() as session, session.begin():
            session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
            yield session

    def ensure_schema(self) -> None:
        with self._lock:
            if not self._upgraded:
                from trax.store.migrate import is_current, upgrade

                if not is_current(self):
                    upgrade(self)
                self._upgraded = True

    def dispose(self) -> None:
        self.engine.dispose()


SQLITE_BEGIN = "trax_sqlite_begin"
"""Execution option: how a transaction on this SQLite connection begins."""


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Trax, not the sqlite3 driver, opens transactions: the driver begins one
    # lazily, only before DML, so DDL (a migration) ran outside any transaction
    # and a kill half-way left tables without a version row. See ``_sqlite_begin``.
    dbapi_connection.isolation_level = None
    # WAL lets readers (``trax list``) work while a batch writes; foreign keys
    # are off by default in SQLite. synchronous=NORMAL is WAL's recommended
    # level: a killed process loses nothing committed, and a power cut can only
    # lose the last commits, which the job state makes a later run redo.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def open_database(url: str | None = None) -> Database:
    """The process-wide ``Database`` for ``url`` (default: ``default_url()``)."""
    key = normalise_url(url or default_url())
    with _databases_lock:
        if key not in _databases:
            _databases[key] = Database(key)
        return _databases[key]
