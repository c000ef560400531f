"""Content leases: one process at a time transcribes the same bytes with the same settings.

A lease is a row naming its holder and when it runs out. The holder renews it
while it works and gives it back when done; a holder that died loses it when
it runs out, or at once when it was a process on this host that is gone. The
save of a result checks, in its own transaction, that the lease is still held:
a holder paused past its lease (``kill -STOP``, a laptop lid) finds another
process took over and stores nothing.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from trax.store.database import Database
from trax.store.models import LeaseRow, insert_if_absent

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LEASE_S = 15.0
"""How long a lease lasts without renewal; it is renewed three times as often."""


class LeaseLost(Exception):  # noqa: N818 - reads as what happened
    """The lease ran out and another process holds it now: this result must not be stored."""


def process_id() -> str:
    """``host:pid`` — enough to tell whether a holder on this host still lives."""
    return f"{socket.gethostname()}:{os.getpid()}"


def gone(holder: str | None) -> bool:
    """True when ``holder`` (``host:pid[:…]``) was a process on this host that no longer runs."""
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, owned by someone else
    return False


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Leases(Protocol):
    def acquire(self, key: str) -> Lease | None:
        """The lease on ``key``, or None while another live process holds it."""
        ...


class Lease:
    """A held lease: renewed in a thread while it is open, given back on close."""

    def __init__(self, database: Database, key: str, holder: str) -> None:
        self.database = database
        self.key = key
        self.holder = holder
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="trax-lease", daemon=True)
        self._thread.start()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def check(self, session: Session, _transcript_id: int | None = None) -> None:
        """Inside a save's transaction: raise ``LeaseLost`` unless this lease is still ours.

        It is extended at the same time, so it cannot run out before the commit.
        """
        from sqlalchemy import update

        result = session.execute(
            update(LeaseRow)
            .where(LeaseRow.key == self.key, LeaseRow.holder == self.holder)
            .values(expires_at=_now() + timedelta(seconds=LEASE_S))
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise LeaseLost(self.key)

    def _renew(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        while not self._closed.wait(LEASE_S / 3):
            try:
                with self.database.transaction() as session:
                    self.check(session)
            except LeaseLost:
                return  # the save will find out, in its own transaction
            except SQLAlchemyError:
                continue  # a dropped connection: try again; the lease has time left

    def close(self) -> None:
        from sqlalchemy import delete
        from sqlalchemy.exc import SQLAlchemyError

        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join()
        try:
            with self.database.transaction() as session:
                session.execute(
                    delete(LeaseRow).where(LeaseRow.key == self.key, LeaseRow.holder == self.holder)
                )
        except SQLAlchemyError:
            pass  # it runs out by itself


class SqlLeases:
    """``Leases`` in the Trax database, so processes on every machine see them."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def acquire(self, key: str) -> Lease | None:
        from sqlalchemy import select

        holder = f"{process_id()}:{uuid.uuid4().hex[:8]}"
        expires = _now() + timedelta(seconds=LEASE_S)
        with self.database.transaction() as session:
            values = {"key": key, "holder": holder, "expires_at": expires}
            inserted = session.execute(insert_if_absent(self.database.dialect, LeaseRow, values))
            if inserted.first() is None:
                row = session.scalars(
                    select(LeaseRow).where(LeaseRow.key == key).with_for_update()
                ).first()
                if row is None:
                    return None  # given back just now: the caller looks again
                if _utc(row.expires_at) > _now() and not gone(row.holder):
                    return None
                row.holder, row.expires_at = holder, expires
        return Lease(self.database, key, holder)
