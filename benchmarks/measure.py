"""Wall time and peak memory of fresh processes.

Every measurement is a new process, so start-up, imports and model loading
count, as they do for someone running the command. Each command runs under
``rusage_wrapper.py``, which forks it from a tiny interpreter and reads its
peak RSS with ``wait4``: forked straight from this (large) harness, a child's
``ru_maxrss`` would start at the harness's own size.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

WRAPPER = Path(__file__).with_name("rusage_wrapper.py")


class MeasureError(Exception):
    """A measured command failed or hung; the message is one line."""


@dataclass(frozen=True, slots=True)
class Measurement:
    wall_s: float
    peak_rss_mib: float
    stdout: str


def run_measured(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 3600.0,
) -> Measurement:
    """Run ``command`` to completion; its wall time and peak resident set size."""
    shown = " ".join([Path(command[0]).name, *command[1:]])[:200]
    with tempfile.TemporaryDirectory(prefix="trax-measure-") as tmp:
        result_path = Path(tmp) / "result.json"
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(WRAPPER), str(result_path), *command],
                cwd=cwd, env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,  # one process group: a timeout kills the command too
            )  # fmt: skip
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                raise MeasureError(f"timed out after {timeout_s:.0f} s: {shown}") from None
            except BaseException:
                _kill_group(process)
                raise
        stdout = out_path.read_text(encoding="utf-8", errors="replace")
        stderr = err_path.read_text(encoding="utf-8", errors="replace")
        try:
            result = json.loads(result_path.read_text())
        except (OSError, ValueError):
            result = None

    if process.returncode != 0 or result is None:
        lines = [line for line in stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {process.returncode}"
        raise MeasureError(f"{shown} failed ({process.returncode}): {reason[:300]}")
    return Measurement(
        wall_s=float(result["wall_s"]),
        peak_rss_mib=float(result["max_rss_kib"]) / 1024,
        stdout=stdout,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group already ended
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
