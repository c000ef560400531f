"""Alembic, driven from code, with the migrations shipped inside the package."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

    from trax.store.database import Database

SCRIPT_LOCATION = "trax.store:migrations"

HEAD_REVISION = "0005"
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
    """
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from trax.store.database import SQLITE_BEGIN, DatabaseError, redact

    head = head_revision(database)
    try:
        with database.engine.connect() as connection:
            connection.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with connection.begin():
                if database.dialect == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": SCHEMA_LOCK}
                    )
                from alembic.runtime.migration import MigrationContext

                before = MigrationContext.configure(connection).get_current_revision()
                if before != head:
                    config = alembic_config(database)
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseError(f"cannot open database {redact(database.url)}: {reason}") from exc
    return before, head
