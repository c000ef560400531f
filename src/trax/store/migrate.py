"""Alembic, driven from code, with the migrations shipped inside the package."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trax.errors import scrub

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

    from trax.store.database import Database

SCRIPT_LOCATION = "trax.store:migrations"

HEAD_REVISION = "0006"
"""The newest migration; kept here so an up-to-date database is recognised without
importing Alembic (a test checks it matches the migration scripts)."""


def alembic_config(database: Database) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def is_current(database: Database) -> bool:
    """True when the schema is at ``HEAD_REVISION`` (one cheap query, no Alembic)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with database.engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return False
    return [r[0] for r in rows] == [HEAD_REVISION]


def current_revision(database: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(database: Database) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


SCHEMA_LOCK = 727_300
"""PostgreSQL advisory lock held while the schema is created or upgraded."""


def upgrade(database: Database) -> tuple[str | None, str | None]:
    """Bring the schema to the newest revision; return (before, after).

    The whole upgrade is one transaction under a lock (an advisory lock on
    PostgreSQL, the write lock on SQLite): processes started together wait for
    the first, then find the schema current; a process killed half-way leaves
    the database as it was.

    A database this Trax cannot own is refused with one line, before anything
    is written to it: one made by a newer Trax, and a SQLite file that holds
    other tables but no Trax schema version.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import event, text
    from sqlalchemy.exc import DatabaseError as DriverError
    from sqlalchemy.exc import OperationalError

    from trax.failpoints import failpoint
    from trax.store.database import SQLITE_BEGIN, DatabaseError

    config = alembic_config(database)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    # Crash tests kill the process after any statement on the upgrade's connection
    # (TRAX_FAILPOINT=migrate.statement.N, counting from 0) or just before it
    # commits (migrate.commit): whichever, the transaction must undo it all.
    statements = iter(range(1_000_000))

    def after_statement(*_: object) -> None:
        failpoint(f"migrate.statement.{next(statements)}")

    try:
        with database.engine.connect() as connection:
            connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            event.listen(connection, "after_cursor_execute", after_statement)
            with connection.begin():
                if database.dialect == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK}
                    )
                before = MigrationContext.configure(connection).get_current_revision()
                known = {r.revision for r in script.walk_revisions()}
                if before is not None and before not in known:
                    raise DatabaseError(
                        f"database {database.where} was created by a newer Trax (schema "
                        f"{before}; this Trax knows up to {head}): upgrade Trax"
                    )
                if before is None and database.dialect == "sqlite":
                    _refuse_foreign(database, connection)
                if before != head:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    failpoint("migrate.commit")
            event.remove(connection, "after_cursor_execute", after_statement)
    except DriverError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        doing = "open" if isinstance(exc, OperationalError) else "upgrade"
        raise DatabaseError(f"cannot {doing} database {database.where}: {scrub(reason)}") from exc
    return before, head


def _refuse_foreign(database: Database, connection: Connection) -> None:
    """Make sure a SQLite file without a schema version can become a Trax database.

    An empty file can. So can a half-made schema left by an older Trax (whose
    upgrade was not one transaction) when none of its tables holds a row: those
    tables are dropped and made again. Anything else is refused: Trax never adds
    its tables to a file someone else made, nor guesses the version of its own.
    """
    from sqlalchemy import text

    from trax.store.database import DatabaseError

    tables = (
        connection.execute(
            text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version' ORDER BY name"
            )
        )
        .scalars()
        .all()
    )
    if not tables:
        return
    from trax.store.models import Base

    ours = [t for t in tables if t in Base.metadata.tables]
    fts = [t for t in tables if t.startswith("segments_fts")]
    if len(ours) + len(fts) < len(tables):
        shown = ", ".join(tables[:3]) + (", …" if len(tables) > 3 else "")
        raise DatabaseError(
            f"{database.where} is not a Trax database (it holds other tables: {shown}, "
            "and no Trax schema version); name another file with --db or TRAX_DATABASE_URL"
        )
    if any(connection.execute(text(f'SELECT 1 FROM "{t}" LIMIT 1')).first() for t in ours):
        raise DatabaseError(
            f"{database.where} holds part of a Trax schema, with data, but no schema "
            "version (an older Trax was stopped while upgrading it): restore it from a backup"
        )
    # Triggers first (dropping a table deletes its rows, which would fire them), then
    # the search index (dropping it drops its shadow tables), then the tables.
    triggers = connection.execute(
        text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    ).scalars()
    for trigger in list(triggers):
        connection.execute(text(f'DROP TRIGGER "{trigger}"'))
    for table in (["segments_fts"] if "segments_fts" in fts else []) + ours:
        connection.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
