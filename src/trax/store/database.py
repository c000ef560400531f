"""Engines, sessions and migrations, one ``Database`` per URL.

The default is an embedded SQLite file in the user data directory;
``TRAX_DATABASE_URL`` points Trax at PostgreSQL (``postgresql://…``, driven by
psycopg 3, or libpq's ``host=… dbname=…`` settings). The schema is created or
upgraded with Alembic on first use.

A database URL usually holds a password, so none is ever put into a message as
it was given: ``redact`` masks every password-like part of any form (and
remembers it, so ``trax.errors.scrub`` also removes it from driver messages).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trax.errors import MASK, TraxError, hide_secret, scrub

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine, ExceptionContext
    from sqlalchemy.orm import Session, sessionmaker


class DatabaseError(TraxError):
    """The database cannot be reached, read or upgraded; the message is one line."""


def default_url() -> str:
    """The configured database (``TRAX_DATABASE_URL`` or the config file), else SQLite."""
    from trax.config import load_config

    return normalise_url(load_config().database)


# --------------------------------------------------------------------------- URLs and secrets

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DSN_START = re.compile(r"^\s*[A-Za-z_]\w*\s*=")
_DSN_KEY = re.compile(r"[A-Za-z_]\w*")
_SECRET_KEY = r"\w*(?:password|passwd|secret|token)\w*"
# A secret value runs to the next parameter, not merely to the next "&" or space: an
# unencoded "&" (or, in key=value form, a space) in a password must not cut it short
# and leave its tail visible.
_QUERY_SECRET = re.compile(rf"[?&;]{_SECRET_KEY}=(?P<value>.*?)(?=&\w+=|$)", re.I | re.S)
_DSN_SECRET = re.compile(
    rf"(?:^|\s){_SECRET_KEY}\s*=[ \t]*(?P<value>'(?:[^'\\]|\\.)*(?:'|$)|.*?)(?=\s+\w+\s*=|\s*$)",
    re.I | re.S,
)

NOT_SHOWN = "(not shown: not a URL)"
"""What a string that is neither a URL nor key=value settings is shown as: it cannot be
told which part of it is a password."""

_BAD_DSN = (
    "invalid database settings: expected key=value pairs such as "
    "'host=db user=me password=… dbname=trax' (quote values with spaces: password='a b')"
)


_HOST = r"(?:\[[0-9A-Fa-f:.]*\]|[\w.%-]*)(?::\d*)?"
_HOSTS = re.compile(rf"{_HOST}(?:,{_HOST})*")


def _userinfo_end(text: str, start: int) -> int:
    """Where a URL's credentials end (the '@' before the host), or -1 without any.

    An unencoded '@' (or '?', '/', ':') in a password is common, so the separator
    is not simply the first '@': that would make the rest of the password the host
    name, and drivers print host names. It is the last '@' that is followed by
    a valid host list and comes before the query; the query starts at the first
    '?' after the first such '@' (a '@' in a query value is not the separator).
    """
    candidates = []
    at = text.find("@", start)
    while at != -1:
        end = len(text)
        for stop in "/?#":
            found = text.find(stop, at + 1)
            end = found if found != -1 and found < end else end
        if _HOSTS.fullmatch(text, at + 1, end):
            candidates.append(at)
        at = text.find("@", at + 1)
    if not candidates:
        return text.rfind("@", start)
    query = text.find("?", candidates[0])
    return max(at for at in candidates if query == -1 or at < query)


def _secret_spans(text: str) -> list[tuple[int, int]] | None:
    """Where the passwords in ``text`` are; None when it is no form Trax knows."""
    if _SCHEME.match(text):
        start = text.index("://") + 3
        spans = [m.span("value") for m in _QUERY_SECRET.finditer(text, start)]
        if not text.lower().startswith("sqlite"):
            # Every reading a parser might take of the credentials is masked: the
            # separator Trax uses, the first '@' (SQLAlchemy's) and the last one.
            for at in {_userinfo_end(text, start), text.find("@", start), text.rfind("@")}:
                colon = text.find(":", start, at) if at >= start else -1
                if colon != -1:
                    spans.append((colon + 1, at))
        # A password with URL delimiters in it may be read differently by a driver
        # than by Trax, and then part of it becomes a host or database name, which
        # drivers do print: so its pieces are secrets too.
        for begin, end in spans:
            for piece in re.split(r"[@:/?&=%#]+", text[begin:end]):
                if len(piece) >= 4 and piece != text[begin:end]:
                    hide_secret(piece)
        return spans
    if _DSN_START.match(text):
        return [m.span("value") for m in _DSN_SECRET.finditer(text)]
    return None


def _remember(raw: str) -> None:
    from urllib.parse import unquote

    hide_secret(raw)
    hide_secret(unquote(raw))
    if raw.startswith("'"):
        hide_secret(re.sub(r"\\(.)", r"\1", raw[1:].removesuffix("'")))


def redact(url: str) -> str:
    """``url`` for messages: every password masked, in any form (URL, key=value, query).

    What it masks is also remembered, so that ``trax.errors.scrub`` takes it out of
    whatever a driver says about the URL later. A string of no known form is not
    shown at all.
    """
    text = url.strip()
    spans = _secret_spans(text)
    if spans is None:
        return NOT_SHOWN
    merged: list[list[int]] = []
    for begin, end in sorted(spans):
        _remember(text[begin:end])
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)  # readings overlap: mask their union
        else:
            merged.append([begin, end])
    shown, pieces = 0, []
    for begin, end in merged:
        pieces += [text[shown:begin], MASK]
        shown = end
    return "".join([*pieces, text[shown:]])


def normalise_url(url: str) -> str:
    """The URL Trax connects with: psycopg 3 for PostgreSQL, libpq settings turned into a
    URL, and an unencoded '@' in the credentials encoded (see ``_userinfo_end``)."""
    from urllib.parse import quote

    text = url.strip()
    redact(text)  # remember its secrets before anything can fail on it
    if not _SCHEME.match(text) and _DSN_START.match(text):
        text = _dsn_to_url(text)
    elif _SCHEME.match(text) and not text.lower().startswith("sqlite"):
        start = text.index("://") + 3
        at = _userinfo_end(text, start)
        if at != -1 and "@" in text[start:at]:
            encoded = text[start:at].replace("@", "%40")
            hide_secret(encoded.partition(":")[2])
            text = text[:start] + encoded + text[at:]
        # Likewise a password given as a query parameter: an '&' or '@' in it is
        # part of the value (as ``redact`` reads it), not another parameter or host.
        text = _QUERY_SECRET.sub(
            lambda m: text[m.start() : m.start("value")] + quote(m["value"], safe="%"), text
        )
    for prefix in ("postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text[len(prefix) :]
    return text


def _parse_dsn(text: str) -> dict[str, str]:
    """libpq's ``key=value`` connection settings (values may be quoted, with backslash
    escapes). Errors never quote the text: a stray word may be part of a password."""
    pairs: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i == n:
            return pairs
        key = _DSN_KEY.match(text, i)
        if key is None:
            raise DatabaseError(_BAD_DSN)
        i = key.end()
        while i < n and text[i].isspace():
            i += 1
        if i == n or text[i] != "=":
            raise DatabaseError(_BAD_DSN)
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        quoted = i < n and text[i] == "'"
        i += quoted
        value: list[str] = []
        while True:
            if i == n:
                if quoted:
                    raise DatabaseError(_BAD_DSN)  # unterminated quote
                break
            char = text[i]
            if char == "\\" and i + 1 < n:
                value.append(text[i + 1])
                i += 2
                continue
            if (quoted and char == "'") or (not quoted and char.isspace()):
                i += quoted
                break
            value.append(char)
            i += 1
        pairs[key.group()] = "".join(value)


def _dsn_to_url(text: str) -> str:
    """``host=db user=me password=… dbname=trax`` as ``postgresql://me:…@db/trax``."""
    from urllib.parse import quote, urlencode

    pairs = _parse_dsn(text)
    user = pairs.pop("user", "")
    password = pairs.pop("password", None)
    host = pairs.pop("host", "")
    port = pairs.pop("port", "")
    dbname = pairs.pop("dbname", "")
    netloc = ""
    if user or password is not None:
        netloc = quote(user, safe="")
        if password is not None:
            hide_secret(quote(password, safe=""))
            netloc += ":" + quote(password, safe="")
        netloc += "@"
    # A socket folder or a list of hosts goes in the query, where libpq takes it as is.
    if host and not re.search(r"[/,]", host):
        netloc += f"[{host}]" if ":" in host else host
        if port.isdigit():
            netloc += f":{port}"
            port = ""
    elif host:
        pairs["host"] = host
    if port:
        pairs["port"] = port
    query = "?" + urlencode(pairs) if pairs else ""
    return f"postgresql://{netloc}/{quote(dbname, safe='')}{query}"


# --------------------------------------------------------------------------- errors


def _fatal_message(database: str, error: BaseException) -> str | None:
    """One line for a database that cannot be used at all, or None for other errors.

    Only conditions no retry can fix are turned into a ``DatabaseError``: a damaged
    file, a file that is no database, a full disk. "Database is locked",
    constraint violations and dropped connections stay what they are, for the code
    that handles them.
    """
    reason = scrub(str(error).strip().splitlines()[0]) if str(error).strip() else ""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary == 11:  # SQLITE_CORRUPT
            return f"database {database} is damaged ({reason}): restore it from a backup"
        if primary == 26:  # SQLITE_NOTADB
            return f"{database} is not a Trax database ({reason})"
        if primary == 13:  # SQLITE_FULL
            return f"cannot write to database {database}: {reason} (free some space, then rerun)"
        if primary == 10:  # SQLITE_IOERR
            return f"cannot use database {database}: {reason}"
        if primary == 8:  # SQLITE_READONLY
            return f"cannot write to database {database}: {reason}"
        if primary == 14:  # SQLITE_CANTOPEN
            return f"cannot open database {database}: {reason}"
        return None
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str) and (state.startswith("53") or state.startswith("XX")):
        # Class 53: insufficient resources (disk full, out of memory); XX: internal
        # error, including data corruption.
        return f"database {database}: {reason}"
    return None


def _sqlite_path(engine: Engine) -> str | None:
    """The file of a SQLite engine, or None for other databases and in-memory ones."""
    if engine.dialect.name != "sqlite":
        return None
    path = engine.url.database or ""
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path


def _create_private(path: str, create_folder: bool) -> None:
    """Make the database file (0600), and its folder (0700) when allowed, before SQLite does.

    SQLite creates files with the process umask (world-readable under the usual
    022), and gives its -wal and -shm files the database file's own mode; the
    transcripts are nobody else's business. Existing files and folders are left
    as their owner set them. Only the default location's folder is made: a folder
    named in a URL that does not exist is a typo far more often than a wish.
    """
    folder = Path(path).parent
    if create_folder:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the database folder {folder}: {exc.strerror or exc}"
            ) from exc
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        pass  # SQLite tries again on connect and says why it cannot


SUPPORTED = (
    "Trax supports SQLite (sqlite:///path/trax.db) and PostgreSQL (postgresql://user@host/trax)"
)

_DRIVERS = {"sqlite", "sqlite+pysqlite", "postgresql+psycopg"}
"""The SQLAlchemy drivers Trax is built and tested with (``normalise_url`` maps
``postgresql://`` to psycopg 3)."""


def _check_url(url: str, create_folder: bool) -> None:
    """Refuse, in one line, a URL that would make Trax use a database nobody meant.

    Without a database name, PostgreSQL connects to the server's default database
    (``postgres``, or the user's own) and Trax would add its tables there; an
    unsupported driver would only fail later with an import error.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"invalid database URL {redact(url)}: {SUPPORTED}") from exc
    if parsed.drivername not in _DRIVERS:
        raise DatabaseError(f"unsupported database URL {redact(url)}: {SUPPORTED}")
    if parsed.get_backend_name() == "postgresql":
        if not parsed.database and not parsed.query.get("dbname"):
            raise DatabaseError(
                f"no database named in {redact(url)}: name the database in the URL, "
                "e.g. postgresql://user@host/trax"
            )
        return
    path = parsed.database or ""
    if path and path != ":memory:" and not path.startswith("file:") and not create_folder:
        folder = Path(path).parent
        if not folder.is_dir():
            raise DatabaseError(
                f"the database folder {folder} does not exist: create it, or name another file"
            )


class Database:
    """One database: its engine and sessions, and its schema brought up to date on first use.

    ``create_folder`` allows making a missing folder for a SQLite file: only the
    default location under the user data folder is made (see ``open_database``).
    Nothing is created here: a SQLite file appears on the first connection, which
    read-only code avoids making (``has_library``).
    """

    def __init__(self, url: str, create_folder: bool = False) -> None:
        from sqlalchemy import create_engine, event

        self.url = normalise_url(url)
        _check_url(self.url, create_folder)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except Exception as exc:
            raise DatabaseError(
                f"invalid database URL {redact(self.url)}: {scrub(str(exc))}"
            ) from exc
        path = _sqlite_path(self.engine)
        self.file = Path(path) if path is not None else None
        if path is not None:

            def create_private(*_: object) -> None:
                _create_private(path, create_folder)  # before SQLite creates it

            event.listen(self.engine, "do_connect", create_private)
        # The database for messages: its file, or its URL without passwords.
        self.where = path if path is not None else redact(self.url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        event.listen(self.engine, "handle_error", self._handle_error)
        from sqlalchemy.orm import sessionmaker

        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self._upgraded = False
        self._lock = threading.Lock()

    def _handle_error(self, context: ExceptionContext) -> None:
        # Wherever a query runs (a command, a worker thread), a database that
        # cannot be used at all becomes one line instead of a traceback.
        message = _fatal_message(self.where, context.original_exception)
        if message is not None:
            raise DatabaseError(message) from context.original_exception

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

    def has_library(self) -> bool:
        """Whether there is a Trax schema to read; never creates one, nor a file.

        For read-only commands: False means nothing is stored yet (no SQLite file,
        an empty one, or a PostgreSQL database without Trax's tables). An existing
        schema of an older Trax is upgraded, as any command would: the upgrade is
        one transaction, and refusing would leave the user's transcripts
        unreadable until some write happened to upgrade them. A SQLite file
        holding other tables is refused by the upgrade, as it is for writes.
        """
        if self._upgraded:
            return True
        if self.file is not None:
            if not self.file.exists() or not _sqlite_has_tables(self.file, self.where):
                return False
        elif self.dialect == "postgresql":
            from sqlalchemy import text
            from sqlalchemy.exc import DBAPIError

            probe = text("SELECT to_regclass('alembic_version') IS NOT NULL")
            try:
                with self.engine.connect() as connection:
                    if not connection.execute(probe).scalar():
                        return False
            except DBAPIError as exc:  # as ``migrate.upgrade`` says it
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise DatabaseError(f"cannot open database {self.where}: {scrub(reason)}") from exc
        self.ensure_schema()
        return True

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_has_tables(path: Path, where: str) -> bool:
    """Whether a SQLite file holds any table, asked without the engine: its connections
    switch the file to WAL, which writes to it."""
    import sqlite3
    from contextlib import closing

    try:
        # mode=rw: never creates the file (and reads a WAL database, unlike mode=ro).
        with closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True)) as conn:
            return bool(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    except sqlite3.Error as exc:
        message = _fatal_message(where, exc)
        raise DatabaseError(message or f"cannot open database {where}: {exc}") from exc


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
    # SQLite's lower() folds ASCII only; ``trax list --path`` matches "zürich" in "Zürich".
    dbapi_connection.create_function("trax_lower", 1, _lower, deterministic=True)


def _lower(value: str | None) -> str | None:
    return value.lower() if value is not None else None


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


_databases: dict[str, Database] = {}
_databases_lock = threading.Lock()


def open_database(url: str | None = None) -> Database:
    """The process-wide ``Database`` for ``url`` (default: the configured one, else SQLite
    in the user data folder, the only database whose folder Trax makes)."""
    create_folder = False
    if url is None:
        from trax.config import load_config

        config = load_config()
        url, create_folder = config.database, config.database_url is None
    key = normalise_url(url)
    with _databases_lock:
        if key not in _databases:
            _databases[key] = Database(key, create_folder)
        return _databases[key]
