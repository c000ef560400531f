"""What the numbers were measured on: machine, Python and the versions that matter."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trax", "faster-whisper", "ctranslate2", "onnxruntime", "av", "numpy")


@dataclass(slots=True)
class Environment:
    date: str
    started_at: str
    cpu_model: str
    cores: int
    python: str
    platform: str
    packages: dict[str, str]
    # Load before and after: a busy machine (another job on the same cores) shows here.
    load_average_start: tuple[float, float, float]
    load_average_end: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
    finished_at: str = ""
    # The git commit measured ("trax 0.1.0" alone does not say which code ran), at the
    # start and at the end: they differ when someone commits while a long run is going.
    source: str = ""
    source_end: str = ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cores() -> int:
    # The cores this process may run on, which is what the measured processes get.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> tuple[float, float, float]:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def git_source(repo: Path) -> str:
    """``<commit>`` or ``<commit> + uncommitted changes to src/``; "unknown" outside git."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=all", "--", "src")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} + uncommitted changes to src/" if dirty else commit


def capture() -> Environment:
    now = dt.datetime.now().astimezone()
    return Environment(
        date=now.date().isoformat(),
        started_at=now.isoformat(timespec="seconds"),
        cpu_model=cpu_model(),
        cores=cores(),
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.release()} ({sys.platform}, {platform.machine()})",
        packages={name: version_of(name) for name in PACKAGES},
        load_average_start=load_average(),
        source=git_source(REPO_ROOT),
    )


def finish(environment: Environment) -> None:
    environment.load_average_end = load_average()
    environment.source_end = git_source(REPO_ROOT)
    environment.finished_at = dt.datetime.now().astimezone().isoformat(timespec="seconds")
