"""Named points where a test can make this process die as if killed with SIGKILL.

Crash safety is only proven by crashing: tests set ``TRAX_FAILPOINT=<name>`` on a
real ``trax`` process and check that a rerun repairs everything. Unset (always,
outside tests) a failpoint costs one comparison.
"""

from __future__ import annotations

import os
import signal

_ACTIVE = os.environ.get("TRAX_FAILPOINT")


def failpoint(name: str) -> None:
    if name == _ACTIVE:
        os.kill(os.getpid(), signal.SIGKILL)
