"""The ``trax`` command line: a thin layer over the library.

Only click is imported at start-up; every command imports what it needs when
it runs, so ``trax --help`` and ``trax list`` answer quickly.
"""

from __future__ import annotations

from trax.cli import enhance as _enhance  # noqa: F401 - registers the commands
from trax.cli import jobs as _jobs  # noqa: F401
from trax.cli import search as _search  # noqa: F401
from trax.cli import transcribe as _transcribe  # noqa: F401
from trax.cli.main import cli, main

__all__ = ["cli", "main"]
