"""Run a command and record its wall time and peak RSS: ``rusage_wrapper.py RESULT CMD...``.

Why a wrapper: on Linux a child's ``ru_maxrss`` starts from the RSS of the
process it was forked from (the pre-exec copy counts), so a benchmark harness
that holds a few hundred MB would put that floor under every measurement.
This script is started with ``python -I -S`` (a few MB) and forks the measured
command itself, so the floor is this script's size, below anything measured.

Writes ``{"wall_s", "max_rss_kib", "exit_code"}`` as JSON to RESULT and exits
with the command's exit code. Standard library only, on purpose.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    result_path, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            print(f"cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall_s = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: report it the way a shell would
        code = 128 - code
    with open(result_path, "w") as out:  # noqa: PTH123 - pathlib costs import time here
        # ru_maxrss is in KiB on Linux.
        json.dump({"wall_s": wall_s, "max_rss_kib": usage.ru_maxrss, "exit_code": code}, out)
    return code


if __name__ == "__main__":
    sys.exit(main())
