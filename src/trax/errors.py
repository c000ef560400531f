"""One family for Trax's own errors, and the rule that no secret is ever shown.

Every error Trax raises on purpose is a ``TraxError`` whose message is one
line a user can act on (``error: <message>`` on the command line). What went
wrong underneath stays chained as the exception's cause, shown with ``-v``.

Messages are built from redacted values, but the causes beneath them come from
drivers that may quote what they were given (libpq echoes parts of a
connection string it cannot parse). So the passwords Trax has seen are
remembered here, and every line Trax prints passes through ``scrub``.
"""

from __future__ import annotations

import threading

MASK = "***"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

_MIN_SECRET = 3
"""Shorter values are not scrubbed: replacing every "pw" in a message would garble
it, and a one- or two-character password protects nothing."""


class TraxError(Exception):
    """Root of Trax's errors: a one-line message; the cause, if any, is chained."""


def hide_secret(value: str | None) -> None:
    """Remember ``value`` so that ``scrub`` removes it from anything printed later."""
    if value and len(value) >= _MIN_SECRET:
        with _secrets_lock:
            _secrets.add(value)


def scrub(text: str) -> str:
    """``text`` with every remembered secret masked, longest first (one may contain another)."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def causes(exc: BaseException) -> list[str]:
    """The chain beneath ``exc``, outermost first, one line each (for ``-v``), scrubbed."""
    lines: list[str] = []
    seen = {id(exc)}
    current = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        first = str(current).strip().splitlines()[0] if str(current).strip() else ""
        lines.append(scrub(f"{type(current).__module__}.{type(current).__qualname__}: {first}"))
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return lines
