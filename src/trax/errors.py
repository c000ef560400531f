"""One family for Trax's own errors.

Every error Trax raises on purpose is a ``TraxError`` whose message is one
line a user can act on (``error: <message>`` on the command line). What went
wrong underneath stays chained as the exception's cause, shown with ``-v``.
"""

from __future__ import annotations


class TraxError(Exception):
    """Root of Trax's errors: a one-line message; the cause, if any, is chained."""


def causes(exc: BaseException) -> list[str]:
    """The chain beneath ``exc``, outermost first, one line each (for ``-v``)."""
    lines: list[str] = []
    seen = {id(exc)}
    current = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        first = str(current).strip().splitlines()[0] if str(current).strip() else ""
        lines.append(f"{type(current).__module__}.{type(current).__qualname__}: {first}")
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return lines
